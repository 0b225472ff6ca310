"""The report page: one self-contained HTML document (inline CSS, SVG and one script;
no URL of any kind).

The Content-Security-Policy forbids every fetch and admits exactly the page's own
style sheet and script, by their SHA-256 hashes (no ``'unsafe-inline'``).  The
script (``worklist.js``) sorts, filters, pages and downloads the worklists from the
JSON embedded in ``<script type="application/json">`` data blocks; without it the
page still shows every number and the first page of each list.

The page is a pure function of its inputs (no clock, no randomness), so that the
same job gives byte-identical reports on re-rendering.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from importlib import metadata, resources
from typing import Any

import polars as pl

from engine.names import JOB_STAGES
from engine.report.aggregate import (
    ClassAmounts,
    Direction,
    ReportData,
    WorkList,
    _int,
)
from engine.report.frames import OUTCOMES, STATUSES
from engine.report.lists import DisplayColumn, offset_text
from engine.report.parties import Operator, Parties
from engine.report.svg import Column, DayBar, Series, attr, bar_grid, day_columns
from engine.rules import Rules

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
STATUS_COLORS: dict[str, str] = {
    "matched_exact": "#009E73", "matched_tolerance": "#56B4E9", "disputed": "#D55E00",
    "unmatched": "#E69F00", "duplicate": "#CC79A7", "invalid": "#6E6E6E",
    "excluded": "#B0B0B0",
}
OUTCOME_COLORS: dict[str, str] = {"agreed": "#009E73", "disputed": "#D55E00",
                                  "unmatched": "#E69F00"}
OURS_COLOR = "#0072B2"
THEIRS_COLOR = "#56B4E9"
STAGE_COLOR = "#0072B2"
ITEMS_COLOR = "#8C8C8C"

STATUS_NAMES: dict[str, str] = {
    "matched_exact": "Matched exactly", "matched_tolerance": "Matched within tolerance",
    "disputed": "Disputed", "unmatched": "Unmatched", "duplicate": "Duplicate",
    "invalid": "Invalid", "excluded": "Excluded by rule",
}
REASON_NAMES: dict[str, str] = {
    "start_time": "Start time", "duration": "Duration",
    "charge_rate_mismatch": "Charge: rate mismatch", "charge_rounding": "Charge: rounding",
    "charge_unexplained": "Charge: unexplained",
}
OUTCOME_NAMES: dict[str, str] = {"agreed": "Agreed", "disputed": "Disputed",
                                 "unmatched": "Unmatched"}
PAGE_ROWS = 100
"""Rows per page of a worklist table."""
MAX_TEXT_CHARS = 1_000
"""A longer text value of a list is cut on the page (the export keeps it whole)."""

STAGE_NAMES: dict[str, str] = {
    "ingest": "Ingest, validate, rate", "agree": "Agree (job, rules, sizes)",
    "commit": "Commit (Merkle root of the records)",
    "psi_exact": "PSI: exact and tolerant values", "psi_key": "PSI: match key only",
    "mpc": "MPC on differing pairs", "report": "Report", "anchor": "Ledger anchor",
}
STAGES: tuple[tuple[str, str], ...] = tuple((s, STAGE_NAMES[s]) for s in JOB_STAGES)
"""The job's stages in order (engine.names), with their names on the page; a stage
summary.json does not list is left out."""
DISCLOSURE_NAMES: dict[str, str] = {
    "aggregate": "aggregate — only counts and sums per reason",
    "flags": "flags — which values are beyond tolerance, per disputed pair",
    "differences": "differences — signed differences per disputed pair",
}


# ---------------------------------------------------------------------------
# formatting


def count(n: int) -> str:
    return f"{n:,}"


def yuan(fen: int) -> str:
    """Minor units (fen) as yuan: '¥1,234.56'; negative with a minus sign."""
    sign = "−" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def signed_yuan(fen: int) -> str:
    return ("+" if fen > 0 else "") + yuan(fen)


def signed_seconds(s: int) -> str:
    return f"{'+' if s > 0 else '−' if s < 0 else ''}{abs(s):,} s"


def percent(part: int, whole: int) -> str:
    if whole <= 0 or part <= 0:
        return "0 %"
    share = 100.0 * part / whole
    if share < 0.1:
        return "<0.1 %"
    if share > 99.9 and part < whole:
        return ">99.9 %"
    return f"{share:.1f} %"


def utc_offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def local_time(epoch_s: int, offset_s: int) -> str:
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=epoch_s + offset_s)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Any, missing: str = "—") -> str:
    """An escaped text node for any summary value."""
    if value is None or value == "":
        return f'<span class="missing">{missing}</span>'
    return attr(value)




def _money(mapping: Any, key: str) -> str:
    value = _int(mapping, key)
    return yuan(value) if value is not None else '<span class="missing">—</span>'


def _count(mapping: Any, key: str) -> str:
    value = _int(mapping, key)
    return count(value) if value is not None else '<span class="missing">—</span>'


# ---------------------------------------------------------------------------
# sections


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
           numeric: Sequence[bool] | None = None, cls: str = "numbers") -> str:
    """A table from already-escaped cells."""
    numeric = numeric or [False] * len(headers)
    head = "".join(f'<th scope="col"{" class=num" if n else ""}>{h}</th>'
                   for h, n in zip(headers, numeric, strict=True))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if n else ""}>{cell}</td>'
                         for cell, n in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _numbers(table: str) -> str:
    return f'<details class="numbers"><summary>The numbers</summary>{table}</details>'


def _figure(svg: str) -> str:
    """A chart in a box that scrolls sideways on narrow screens rather than shrinking
    the chart's text below legibility."""
    return f'<div class="chartbox">{svg}</div>'


def _section(section_id: str, title: str, lead: str, body: str) -> str:
    return (f'<section class="card" id="{section_id}"><h2>{title}</h2>'
            f'<p class="lead">{lead}</p>{body}</section>')


def _operator(operator: Operator, *, with_role: bool = True) -> str:
    """'CMCC China Mobile (A)': the id in bold, the name, the role."""
    parts = [f"<b>{attr(operator.label)}</b>"]
    if operator.name and operator.name != operator.member_id:
        parts.append(attr(operator.name))
    if with_role and operator.role and operator.member_id:
        parts.append(f'<span class="muted">(party {attr(operator.role)})</span>')
    return " ".join(parts)


def _key_id(operator: Operator) -> str:
    if not operator.key_id:
        return '<span class="missing">key id not given</span>'
    where = {"checkpoint": "as in its cosignature of the ledger checkpoint",
             "statement": "as stated in statement.json",
             "summary": "as stated in summary.json"}.get(operator.key_id_source or "", "")
    return (f'key id <code class="keyid">{attr(operator.key_id)}</code>'
            + (f' <span class="muted">{where}</span>' if where else ""))


def _signers(parties: Parties) -> str:
    if not parties.statement_given:
        return '<span class="missing" id="signers">statement not given to the report</span>'
    if not parties.signers:
        return '<span class="missing" id="signers">not signed</span>'
    items = "".join(f"<li>{_operator(s)} — {_key_id(s)}</li>" for s in parties.signers)
    return f'<ul class="signers" id="signers">{items}</ul>'


def _checkpoint_keys(parties: Parties) -> str:
    info = parties.checkpoint
    if info is None:
        return ""
    if info.problem:
        return f'<p class="muted">checkpoint not readable: {attr(info.problem)}</p>'
    rows = []
    for key in info.keys:
        if key.kind == "log":
            who = "the log"
        elif key.kind == "witness" and key.member_id:
            member = parties.by_id(key.member_id)
            who = "witness " + (_operator(member, with_role=False) if member
                                else f"<b>{attr(key.member_id)}</b>")
        else:
            who = "other key"
        rows.append(f"<li>{who}: <code class=\"keyid\">{attr(key.key_id)}</code> "
                    f'<span class="muted">{attr(key.key_name)}</span></li>')
    return (f"<p>Checkpoint of size {attr(info.size)} signed by {len(info.keys)} keys "
            f'(read here, verified by <code>settlechain ledger verify</code>):</p>'
            f'<ul class="signers" id="checkpoint-keys">{"".join(rows)}</ul>')


def _header(summary: Mapping[str, Any], data: ReportData, rules: Rules) -> str:
    parties = data.parties
    anchor = summary.get("anchor")
    if isinstance(anchor, Mapping) and anchor:
        checkpoint = anchor.get("checkpoint")
        anchor_html = (f'index <b>{_text(anchor.get("index"))}</b>, leaf hash '
                       f'<code class="hash">{_text(anchor.get("leaf_hash"))}</code>')
        if checkpoint:
            anchor_html += (f'<details><summary>checkpoint</summary>'
                            f'<pre>{attr(checkpoint)}</pre>{_checkpoint_keys(parties)}'
                            "</details>")
    else:
        anchor_html = '<span class="missing">not anchored (no ledger entry for this run)</span>'
    rows = [
        ("Job", f"<b>{_text(summary.get('job_id'))}</b>"),
        ("This party", f'<span id="this-party">{_operator(parties.this)}</span>'),
        ("Counterparty", f'<span id="counterparty">{_operator(parties.other)}</span>'),
        ("Period", f"{_text(summary.get('period'))} <span class=\"muted\">(days in local "
                   f"time, {utc_offset(rules.timezone_offset_s)})</span>"),
        ("Rules", f"{attr(rules.name)} <span class=\"muted\">version {attr(rules.version)}</span>"),
        ("Rules SM3 hash", f'<code class="hash">{_text(summary.get("rules_sm3"))}</code>'),
        ("Disclosure policy", attr(DISCLOSURE_NAMES.get(data.policy, data.policy))),
        ("Statement signed by", _signers(parties)),
        ("Ledger anchor", anchor_html),
    ]
    meta = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)

    def title_name(operator: Operator) -> str:
        name = f" {operator.name}" if operator.name and operator.name != operator.member_id \
            else ""
        return attr(operator.label + name)

    title = (f"{title_name(parties.this)} ↔ {title_name(parties.other)} · "
             f"{_text(summary.get('period'), 'period ?')}")
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (
        ("net", "Who pays whom"), ("disputes", "Disputes"), ("unmatched", "Unmatched"),
        ("invalid", "Invalid rows"), ("by-status", "Charts"), ("stages", "Timings")))
    return (f'<header><p class="kicker">settlechain · reconciliation report</p>'
            f"<h1 id=\"title\">{title}</h1><dl class=\"meta\">{meta}</dl>"
            f'<nav class="toc">{nav}</nav></header>')


def _decision(summary: Mapping[str, Any]) -> str:
    review = summary.get("review")
    settlement = review.get("settlement") if isinstance(review, Mapping) else None
    reasons = review.get("reasons") if isinstance(review, Mapping) else None
    reasons = reasons if isinstance(reasons, list) else []
    if settlement == "automatic":
        return ('<div class="decision ok" id="decision" role="status"><b>Settlement: '
                'automatic.</b> Disputed and unmatched shares are within the rules\' '
                "circuit-breaker bounds.</div>")
    items = "".join(f"<li>{attr(r)}</li>" for r in reasons)
    what = "manual review" if settlement == "manual_review" else attr(settlement or "unknown")
    return (f'<div class="decision review" id="decision" role="status"><b>Settlement: '
            f"{what}.</b>"
            + (f"<ul>{items}</ul>" if items else "") + "</div>")


def _settlement(summary: Mapping[str, Any]) -> str | None:
    review = summary.get("review")
    settlement = review.get("settlement") if isinstance(review, Mapping) else None
    return settlement if isinstance(settlement, str) else None


def owes(first: str, second: str, amount: int) -> str:
    """'CMCC pays CUCC ¥1.00' for a net amount first owes second (negative: the other
    way round)."""
    if amount > 0:
        return f"{attr(first)} pays {attr(second)} {yuan(amount)}"
    if amount < 0:
        return f"{attr(second)} pays {attr(first)} {yuan(-amount)}"
    return "nothing owed either way (¥0.00)"


def _fen_cell(amount: int | None, *, strong: bool = False) -> str:
    if amount is None:
        return '<td class="num"><span class="missing">—</span></td>'
    text = f"<b>{yuan(amount)}</b>" if strong else yuan(amount)
    return f'<td class="num" data-fen="{amount}">{text}</td>'


def _net_position(summary: Mapping[str, Any], data: ReportData) -> str:
    settlement = _settlement(summary)
    automatic = settlement == "automatic"
    ours = data.parties.this.label
    totals = summary.get("totals") or {}
    differences = data.policy == "differences"
    agreed_title = ("Agreed<br><span class=\"muted\">settled automatically</span>"
                    if automatic else
                    "Agreed<br><span class=\"muted\">held: settlement under review</span>")
    headers = ["", agreed_title,
               "Disputed<br><span class=\"muted\">held for review</span>",
               f"Agreed + disputed<br><span class=\"muted\">at {attr(ours)}'s charges</span>",
               "Unmatched<br><span class=\"muted\">only in our file; not settled</span>"]
    if differences:
        headers.append("Σ Δ charge, disputed<br><span class=\"muted\">ours − theirs</span>")

    def direction_row(d: Direction, row_id: str) -> str:
        cells = [_fen_cell(d.charge["agreed"]), _fen_cell(d.charge["disputed"]),
                 _fen_cell(d.charge["agreed"] + d.charge["disputed"]),
                 _fen_cell(d.charge["unmatched"])]
        if differences:
            cells.append(f'<td class="num" data-fen="{d.diff_charge}">'
                         f"{signed_yuan(d.diff_charge)}</td>" if d.diff_charge is not None
                         else '<td class="num"><span class="missing">—</span></td>')
        records = sum(d.records.values())
        return (f'<tr id="{row_id}" data-payer="{attr(d.payer)}" data-payee="{attr(d.payee)}">'
                f"<th scope=\"row\">{attr(d.payer)} → {attr(d.payee)}<br>"
                f'<span class="muted">{attr(d.payer)} pays; {count(records)} calls</span></th>'
                + "".join(cells) + "</tr>")

    head = "".join(f'<th scope="col"{" class=num" if i else ""}>{h}</th>'
                   for i, h in enumerate(headers))
    net = data.net
    others = list(data.directions[2:] if net is not None else data.directions)
    body = []
    lead_parts = []
    if net is not None:
        first, second = net.first, net.second
        body.append(direction_row(net.forward, "net-forward"))
        body.append(direction_row(net.backward, "net-backward"))
        cells = []
        for outcomes in (("agreed",), ("disputed",), ("agreed", "disputed"), ("unmatched",)):
            amount = net.net(*outcomes)
            cells.append(f'<td class="num" data-net="{amount}"><b>'
                         f"{owes(first, second, amount)}</b></td>")
        if differences:
            cells.append("<td></td>")
        body.append(f'<tr class="net" id="net-row"><th scope="row">Net</th>{"".join(cells)}</tr>')
        agreed = net.net("agreed")
        both = net.net("agreed", "disputed")
        when = ("settled automatically" if automatic else
                "held with everything else: the settlement is under manual review"
                if settlement == "manual_review" else
                f"settlement {attr(settlement or 'unknown')}")
        lead_parts.append(
            f'<p class="headline" id="net-agreed">On the agreed pairs, '
            f"<b>{owes(first, second, agreed)}</b> net — {when}.</p>")
        lead_parts.append(
            f'<p class="headline-sub" id="net-with-disputes">With the disputed pairs at '
            f"{attr(ours)}'s charges: {owes(first, second, both)} net "
            f"({yuan(net.forward.charge['disputed'] + net.backward.charge['disputed'])} "
            "held for review).</p>")
    else:
        lead_parts.append(
            '<p class="headline" id="net-agreed">No net position: the rules do not name '
            "this job's two operators (by their member ids) and have not exactly two "
            "operators.</p>")
    body += [direction_row(d, f"direction-{i}") for i, d in enumerate(others)]
    table = (f'<div class="scroll"><table class="totals net"><thead><tr>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table></div>')
    agreed_both = _int(totals, "agreed_charge")
    agreed_ours = _int(totals, "agreed_local_charge")
    note = ("Directions by the operators of the calling (payer) and called (payee) numbers "
            "(the rules' number prefixes); a payer owes the payee for its calls. Amounts are "
            f"{attr(ours)}'s own charges of its records.")
    if agreed_both is not None and agreed_ours is not None:
        note += (f" The co-signed agreed amount, both directions, is {yuan(agreed_both)}: "
                 "pairs within tolerance count at the midpoint of both parties' charges "
                 f"(at {attr(ours)}'s charges: {yuan(agreed_ours)}).")
    if net is not None and others:
        note += " Rows below the net line are calls not between these two operators."
    return (f'<section class="card" id="net"><h2>Who pays whom</h2>{"".join(lead_parts)}'
            f'{table}<p class="lead small">{note}</p></section>')


def _key_figures(summary: Mapping[str, Any], data: ReportData) -> str:
    totals = summary.get("totals") or {}
    counts = summary.get("counts") or {}
    pairs = summary.get("pairs") or {}
    party = attr(data.parties.this.label)
    counterparty = attr(data.parties.other.label)
    if data.net is not None:
        agreed = data.net.net("agreed")
        net_value = yuan(abs(agreed))
        net_sub = (owes(data.net.first, data.net.second, agreed)
                   + f"; agreed pairs, both directions {_money(totals, 'agreed_charge')}")
    else:
        net_value = _money(totals, "agreed_charge")
        net_sub = "agreed amount, both directions (no net position)"
    cards = [
        ("agreed", "Net, agreed pairs", net_value, net_sub),
        ("disputed", "Held for review", _money(totals, "disputed_local_charge"),
         f"{party}'s charge on {_count(pairs, 'disputed')} disputed pairs; "
         f"{counterparty}: {_money(totals, 'disputed_remote_charge')}"),
        ("unmatched", "Unmatched", _money(totals, "unmatched_local_charge"),
         f"{party}: {_count(counts, 'unmatched_local')} rows; {counterparty}: "
         f"{_count(counts, 'unmatched_remote')} rows, {_money(totals, 'unmatched_remote_charge')}"),
        ("rows", "Input rows", count(sum(data.status_rows.values())),
         f"{count(data.status_rows['invalid'])} invalid, "
         f"{count(data.status_rows['duplicate'])} duplicate, "
         f"{count(data.status_rows['excluded'])} excluded"),
    ]
    html = "".join(
        f'<div class="figure {key}" id="figure-{key}"><div class="label">{label}</div>'
        f'<div class="value">{value}</div><div class="sub">{sub}</div></div>'
        for key, label, value, sub in cards)
    rows = [
        ["Agreed (exact + within tolerance)", _count(pairs, "matched_exact") + " + "
         + _count(pairs, "matched_tolerance"), _money(totals, "agreed_local_charge"),
         _money(totals, "agreed_remote_charge")],
        ["Disputed", _count(pairs, "disputed"), _money(totals, "disputed_local_charge"),
         _money(totals, "disputed_remote_charge")],
        ["Unmatched", f"{_count(counts, 'unmatched_local')} / {_count(counts, 'unmatched_remote')}",
         _money(totals, "unmatched_local_charge"), _money(totals, "unmatched_remote_charge")],
        ["<b>All considered records</b>", "", f"<b>{_money(totals, 'local_charge')}</b>",
         f"<b>{_money(totals, 'remote_charge')}</b>"],
        ["<b>Agreed settlement amount</b> (both directions)", "",
         f"<b>{_money(totals, 'agreed_charge')}</b>", f"<b>{_money(totals, 'agreed_charge')}</b>"],
    ]
    table = _table(["", "pairs (unmatched: rows ours / theirs)", f"{party}'s charge",
                    f"{counterparty}'s charge"], rows,
                   numeric=[False, True, True, True], cls="totals")
    return f'<div class="figures">{html}</div>{table}'


def _checks(data: ReportData) -> str:
    failed = [c for c in data.checks if not c.ok]
    if not data.checks:
        return ('<p class="checks none">summary.json gives no counts or totals to check '
                "against the record files.</p>")
    if not failed:
        return (f'<p class="checks ok" id="checks">✓ All {len(data.checks)} checks pass: the '
                "counts and totals of summary.json agree with records.parquet and the "
                "canonical records, which hold nothing the disclosure policy does not "
                "disclose.</p>")
    def show(value: int | str) -> str:
        return count(value) if isinstance(value, int) else attr(value)

    rows = [[attr(c.what), show(c.expected), show(c.found)] for c in failed]
    return ('<div class="checks failed" id="checks"><b>Inconsistent inputs:</b> '
            "summary.json, the rules and the record files disagree. Do not settle on this "
            "report before this is explained."
            + _table(["what", "expected", "found"], rows,
                     numeric=[False, True, True]) + "</div>")


def _status_chart(data: ReportData) -> str:
    total = sum(data.status_rows.values())
    values = [data.status_rows[s] for s in STATUSES]
    labels = [f"{count(v)} · {percent(v, total)}" for v in values]
    names = [STATUS_NAMES[s] for s in STATUSES]
    desc = "; ".join(f"{n}: {count(v)} rows ({percent(v, total)})"
                     for n, v in zip(names, values, strict=True))
    chart = bar_grid(
        "status", "Input rows by status", desc, names,
        [Column("input rows", values, labels, [STATUS_COLORS[s] for s in STATUSES],
                tooltips=[f"{n} ({s}): {count(v)} rows, {percent(v, total)} of {count(total)}"
                          for n, s, v in zip(names, STATUSES, values, strict=True)])],
        label_width=190)
    table = _table(["status", "rows", "share"],
                   [[f"{attr(n)} <code>{s}</code>", count(v), percent(v, total)]
                    for n, s, v in zip(names, STATUSES, values, strict=True)]
                   + [["<b>all input rows</b>", f"<b>{count(total)}</b>", ""]],
                   numeric=[False, True, True])
    return _section("by-status", "Records by status",
                    f"Every one of the {count(total)} input rows of this party's file, by "
                    "the status it ended with.", _figure(chart) + _numbers(table))


def _reason_chart(data: ReportData, summary: Mapping[str, Any]) -> str:
    reasons = data.reasons
    party = data.parties.this.label
    counterparty = data.parties.other.label
    names = [REASON_NAMES.get(r.code, r.code) for r in reasons]
    pairs = [r.pairs for r in reasons]
    ours = [r.local_charge for r in reasons]
    theirs = [r.remote_charge for r in reasons]
    desc = "; ".join(f"{n}: {count(r.pairs)} pairs, {party} {yuan(r.local_charge)}, "
                     f"{counterparty} {yuan(r.remote_charge)}"
                     for n, r in zip(names, reasons, strict=True))
    chart = bar_grid(
        "reasons", "Disputed pairs by reason", desc, names,
        [Column("pairs", pairs, [count(v) for v in pairs], ["#D55E00"]),
         Column(f"{party}'s charge", ours, [yuan(v) for v in ours], [OURS_COLOR],
                scale_group="charge"),
         Column(f"{counterparty}'s charge", theirs, [yuan(v) for v in theirs], [THEIRS_COLOR],
                scale_group="charge")],
        label_width=170)
    table = _table(["reason", "pairs", f"{attr(party)}'s charge", f"{attr(counterparty)}'s charge",
                    "difference"],
                   [[f"{attr(n)} <code>{attr(r.code)}</code>", count(r.pairs),
                     yuan(r.local_charge), yuan(r.remote_charge),
                     signed_yuan(r.local_charge - r.remote_charge)]
                    for n, r in zip(names, reasons, strict=True)],
                   numeric=[False, True, True, True, True])
    n_disputed = _int(summary.get("pairs"), "disputed")
    lead = ("A pair can have several reasons, so the rows can add up to more than the "
            f"{count(n_disputed) if n_disputed is not None else ''} disputed pairs. "
            "Both parties' charges are disclosed as sums per reason under every policy.")
    if n_disputed == 0:
        lead = "No disputed pairs in this job."
    return _section("by-reason", "Disputes by reason", lead, _figure(chart) + _numbers(table))


MAX_CLASS_ROWS = 24
"""Charts by rate class or operator pair show at most this many rows; the smallest
(by total charge) are summed into one 'other' row."""


def _capped(classes: Sequence[ClassAmounts], names: Sequence[str],
            limit: int = MAX_CLASS_ROWS) -> tuple[list[ClassAmounts], list[str]]:
    if len(classes) <= limit:
        return list(classes), list(names)
    by_total = sorted(range(len(classes)), key=lambda i: (-sum(classes[i].charge.values()), i))
    keep = sorted(by_total[: limit - 1])
    rest = [classes[i] for i in by_total[limit - 1:]]
    other = ClassAmounts(
        key=("other",), charge={o: sum(c.charge[o] for c in rest) for o in OUTCOMES},
        records={o: sum(c.records[o] for c in rest) for o in OUTCOMES})
    return ([classes[i] for i in keep] + [other],
            [names[i] for i in keep] + [f"{len(rest)} others"])


def _class_chart(section_id: str, title: str, lead: str, classes: Sequence[ClassAmounts],
                 names: Sequence[str], empty: str) -> str:
    classes, names = _capped(classes, names)
    columns = []
    for outcome in OUTCOMES:
        values = [c.charge[outcome] for c in classes]
        columns.append(Column(
            OUTCOME_NAMES[outcome], values, [yuan(v) for v in values], [OUTCOME_COLORS[outcome]],
            tooltips=[f"{n} — {OUTCOME_NAMES[outcome].lower()}: {yuan(c.charge[outcome])} "
                      f"over {count(c.records[outcome])} records"
                      for n, c in zip(names, classes, strict=True)]))
    desc = "; ".join(
        f"{n}: " + ", ".join(f"{OUTCOME_NAMES[o].lower()} {yuan(c.charge[o])}" for o in OUTCOMES)
        for n, c in zip(names, classes, strict=True)) or empty
    chart = bar_grid(section_id, title, desc, names, columns, empty_text=empty)
    rows = [[attr(n)] + [f"{yuan(c.charge[o])} <span class=\"muted\">({count(c.records[o])})</span>"
                         for o in OUTCOMES]
            + [yuan(sum(c.charge.values()))] for n, c in zip(names, classes, strict=True)]
    totals = {o: sum(c.charge[o] for c in classes) for o in OUTCOMES}
    rows.append(["<b>all</b>"] + [f"<b>{yuan(totals[o])}</b>" for o in OUTCOMES]
                + [f"<b>{yuan(sum(totals.values()))}</b>"])
    table = _table(["", *[f"{OUTCOME_NAMES[o]} (records)" for o in OUTCOMES], "total"], rows,
                   numeric=[False, True, True, True, True])
    return _section(section_id, title, lead, _figure(chart) + _numbers(table))


def _day_chart(data: ReportData, rules: Rules) -> str:
    bars = []
    for day in data.days:
        agreed, disputed, unmatched = (day.records[o] for o in OUTCOMES)
        weekend = day.day is not None and day.day.weekday() >= 5
        tip = (f"{day.label}{'' if day.in_period else ' (outside the period)'}: "
               f"{count(agreed)} agreed ({yuan(day.charge['agreed'])}), "
               f"{count(disputed)} disputed ({yuan(day.charge['disputed'])}), "
               f"{count(unmatched)} unmatched ({yuan(day.charge['unmatched'])})")
        bars.append(DayBar(
            label=str(day.day.day) if day.day is not None else day.label,
            full_label=day.label, values=dict(day.records), tooltip=tip,
            shade=weekend or not day.in_period))
    series = [Series(o, OUTCOME_NAMES[o], OUTCOME_COLORS[o]) for o in OUTCOMES]
    total = {o: sum(d.records[o] for d in data.days) for o in OUTCOMES}
    desc = (f"{len(data.days)} days; calls agreed {count(total['agreed'])}, disputed "
            f"{count(total['disputed'])}, unmatched {count(total['unmatched'])}")
    span = ""
    if data.period_days is not None:
        first, last = data.period_days
        span = f" ({first.isoformat()} to {last.isoformat()})"
    chart = day_columns(
        "daily", "Daily volume: calls agreed vs disputed", desc, bars, series, series[1:],
        overview_title="all calls", zoom_title="zoom: disputed and unmatched only (own scale)",
        fmt=count, empty_text="no considered records in these days")
    rows = [[attr(d.label) + ("" if d.in_period else ' <span class="muted">outside period</span>')]
            + [f"{count(d.records[o])} <span class=\"muted\">{yuan(d.charge[o])}</span>"
               for o in OUTCOMES] for d in data.days]
    table = _table(["local day", *[OUTCOME_NAMES[o] for o in OUTCOMES]], rows,
                   numeric=[False, True, True, True])
    lead = (f"Calls (canonical records) per local day{span}, {utc_offset(rules.timezone_offset_s)}"
            ", by the local start time. Shaded: weekends and days outside the period. "
            "The lower panel enlarges the disputed and unmatched calls.")
    return _section("daily", "Daily volumes", lead, _figure(chart) + _numbers(table))


def _stage_chart(summary: Mapping[str, Any]) -> str:
    stages = summary.get("stages")
    stages = stages if isinstance(stages, Mapping) else {}
    known = [k for k, _ in STAGES]
    names = dict(STAGES)
    keys = [k for k in known if isinstance(stages.get(k), Mapping)]
    keys += sorted(str(k) for k, v in stages.items()
                   if k not in known and k != "total" and isinstance(v, Mapping))

    def seconds(key: str) -> float:
        value = stages[key].get("seconds")
        return float(value) if isinstance(value, (int, float)) else 0.0

    def items(key: str) -> int:
        value = stages[key].get("items")
        return int(value) if isinstance(value, (int, float)) else 0

    millis = [round(seconds(k) * 1000) for k in keys]
    labels = [f"{seconds(k):,.2f} s" for k in keys]
    counts = [items(k) for k in keys]
    row_names = [names.get(k, k) for k in keys]
    total = stages.get("total")
    total_s = (float(total["seconds"]) if isinstance(total, Mapping)
               and isinstance(total.get("seconds"), (int, float)) else None)
    peak = stages.get("peak_memory_mib")
    desc = "; ".join(f"{n}: {lab}, {count(c)} items"
                     for n, lab, c in zip(row_names, labels, counts, strict=True))
    chart = bar_grid(
        "stages", "Stage timings", desc or "no stage timings", row_names,
        [Column("wall seconds", millis, labels, [STAGE_COLOR]),
         Column("items processed", counts, [count(c) for c in counts], [ITEMS_COLOR])],
        empty_text="no stage timings in summary.json", label_width=210)
    facts = []
    if total_s is not None:
        facts.append(f"total wall time <b>{total_s:,.2f} s</b>")
    if isinstance(peak, (int, float)):
        facts.append(f"peak memory <b>{peak:,.0f} MiB</b>")
    lead = ("Wall-clock time and items (records, PSI elements, MPC pairs) per stage of this "
            "party's run" + (": " + ", ".join(facts) if facts else "") + ".")
    table = _table(["stage", "seconds", "items"],
                   [[attr(n), lab, count(c)]
                    for n, lab, c in zip(row_names, labels, counts, strict=True)],
                   numeric=[False, True, True])
    return _section("stages", "Stage timings", lead, _figure(chart) + _numbers(table))


def _display_cell(display: DisplayColumn, row: Mapping[str, Any], offset_s: int) -> str:
    """One cell of a worklist table, as worklist.js renders it (a test compares)."""
    value = row[display.columns[0]]
    missing = '<span class="missing">—</span>'
    kind = display.kind
    if kind == "fen":
        text = missing if value is None else yuan(value)
    elif kind == "diff_fen":
        text = missing if value is None else signed_yuan(value)
    elif kind == "diff_s":
        text = missing if value is None else signed_seconds(value)
    elif kind == "time":
        text = missing if value is None else \
            f'<span class="nowrap">{local_time(value, offset_s)}</span>'
    elif kind == "row":
        text = count(value)
        merged = row.get(display.columns[1]) if len(display.columns) > 1 else None
        if merged is not None:
            rows = merged.split(";")
            text += (f'<span class="muted merged" title="input rows {attr(", ".join(rows))}">'
                     f" ({len(rows)} rows)</span>")
    elif kind == "id":
        text = missing if value is None else \
            f'<span class="rid{" long" if len(value) > 24 else ""}">{attr(value)}</span>'
    elif kind == "reasons":
        text = missing if value is None else " ".join(
            f'<span class="tag">{attr(REASON_NAMES.get(code, code))}</span>'
            for code in value.split(","))
    elif kind == "call":
        amount = (f"{count(row['duration_s'])} s" if value == "voice" else
                  f"{count(row['volume_kb'])} KB" if value == "data" else "")
        text = f'<span class="muted">{attr(value)}</span>' + (f" {amount}" if amount else "")
    elif kind == "direction":
        text = attr(f"{row[display.columns[0]]} → {row[display.columns[1]]}")
    elif kind == "class":
        text = attr(" · ".join("" if row[c] is None else str(row[c]) for c in display.columns))
    else:
        text = missing if value is None else attr(value)
    cls = "num" if display.numeric else "nowrap" if kind in ("direction", "class") else ""
    return f'<td{" class=" + cls if cls else ""}>{text}</td>'


def _json_for_script(value: Any) -> str:
    """JSON that can sit inside a <script> data block: no '<', '>' or '&' as such."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def clip_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Text values longer than :data:`MAX_TEXT_CHARS` cut, with '…' (an invalid row's
    record id is as read, of any length: it must not swell the page)."""
    return frame.with_columns(
        pl.when(pl.col(name).str.len_chars() > MAX_TEXT_CHARS)
        .then(pl.col(name).str.slice(0, MAX_TEXT_CHARS - 1) + pl.lit("…"))
        .otherwise(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items() if dtype == pl.String)


def _list_payload(worklist: WorkList, frame: pl.DataFrame, summary: Mapping[str, Any],
                  rules: Rules) -> str:
    spec = worklist.spec
    data: dict[str, list[Any]] = {}
    dicts: dict[str, list[str]] = {}
    for column in spec.columns:
        series = frame[column.name]
        if column.category:
            values = sorted(v for v in series.unique().to_list() if v is not None)
            index = {v: i for i, v in enumerate(values)}
            dicts[column.name] = values
            data[column.name] = [None if v is None else index[v] for v in series.to_list()]
        else:
            data[column.name] = series.to_list()
    stem = "-".join(re.sub(r"[^A-Za-z0-9._-]+", "_", str(part)) for part in (
        summary.get("job_id") or "job", summary.get("party") or "party", spec.kind))
    default = spec.display[0]
    payload = {
        "kind": spec.kind, "file": f"{stem}.csv", "total": worklist.total,
        "offset_s": rules.timezone_offset_s, "offset": offset_text(rules.timezone_offset_s),
        "page_size": PAGE_ROWS,
        "sort": {"key": default.key, "desc": default.numeric and spec.kind != "invalid"},
        "columns": [{"name": c.name, "kind": c.kind} for c in spec.columns],
        "display": [{"key": d.key, "title": d.title, "kind": d.kind,
                     "columns": list(d.columns), "numeric": d.numeric} for d in spec.display],
        "filters": [{"key": f.key, "title": f.title, "kind": f.kind, "columns": list(f.columns)}
                    for f in spec.filters],
        "dicts": dicts, "data": data,
    }
    return f'<script type="application/json" class="list-data">{_json_for_script(payload)}</script>'


def _worklist(worklist: WorkList, summary: Mapping[str, Any], rules: Rules, *,
              section_id: str, title: str, noun: str, lead: str, empty: str,
              before: str = "") -> str:
    spec, frame = worklist.spec, clip_text(worklist.frame)
    embedded, total = frame.height, worklist.total
    if total == 0:
        return _section(section_id, title, lead, before + f'<p class="empty">{empty}</p>')
    offset = rules.timezone_offset_s
    if embedded < total:
        cap = (f'<p class="capped" id="{section_id}-capped"><b>This page holds the first '
               f"{count(embedded)} of {count(total)} {noun}</b> ({attr(spec.order)}); "
               "sorting, filters and the CSV download work on those. All of them: "
               "<code>settlechain export --out DIR</code> in this party's output folder "
               "(CSV, Parquet and XLSX).</p>")
    else:
        cap = (f'<p class="muted">All {count(total)} {noun} are on this page '
               f"({attr(spec.order)}).</p>")
    sortable = "".join(
        f'<th scope="col" data-key="{d.key}"{" class=num" if d.numeric else ""}'
        f'{" aria-sort=descending" if i == 0 and d.numeric and spec.kind != "invalid" else ""}'
        f'{" aria-sort=ascending" if i == 0 and spec.kind == "invalid" else ""}>'
        f'<button type="button" data-sort="{d.key}">{attr(d.title)}'
        + (f" ({utc_offset(offset)})" if d.kind == "time" else "") + "</button></th>"
        for i, d in enumerate(spec.display))
    first_page = "".join(
        "<tr>" + "".join(_display_cell(d, row, offset) for d in spec.display) + "</tr>"
        for row in frame.head(PAGE_ROWS).iter_rows(named=True))
    filters = "".join(
        f'<label>{attr(f.title)} <select data-filter="{f.key}">'
        '<option value="">all</option></select></label>' for f in spec.filters)
    controls = (f'<div class="controls" hidden>{filters}'
                '<button type="button" data-action="download" disabled>Download CSV</button>'
                '<span class="matching" aria-live="polite"></span></div>')
    noscript = (f"<noscript><p class=\"muted\">The first {count(min(PAGE_ROWS, embedded))} "
                f"{noun} ({attr(spec.order)}). Sorting, filters, more pages and the CSV "
                "download need JavaScript.</p></noscript>")
    table = (f'<div class="scroll"><table class="records worklist"><thead><tr>{sortable}'
             f"</tr></thead><tbody>{first_page}</tbody></table></div>")
    pager = ('<div class="pager" hidden><button type="button" data-action="prev">← Previous'
             '</button> <button type="button" data-action="next">Next →</button></div>')
    body = (before + cap + controls + noscript + table + pager
            + _list_payload(worklist, frame, summary, rules))
    return (f'<section class="card worklist" id="{section_id}" data-list="{spec.kind}">'
            f'<h2>{title}</h2><p class="lead">{lead}</p>{body}</section>')


def _disputes(data: ReportData, summary: Mapping[str, Any], rules: Rules) -> str:
    policy = data.policy
    ours = attr(data.parties.this.label)
    shown = {"aggregate": "Under the “aggregate” policy no per-pair reason or difference "
                          "is disclosed: the reasons are summed in “Disputes by reason”.",
             "flags": "Reasons per pair are disclosed; differences are not, under the "
                      "“flags” policy.",
             "differences": "Reasons and the signed differences (ours − theirs) per pair are "
                            "disclosed under the “differences” policy."}.get(
        policy, "The policy is unknown: nothing per pair is shown.")
    lead = (f"Every disputed pair, as {ours}'s side of it: the call's own values, the pair id "
            f"both parties share, and its rate class and payer → payee. {shown}")
    return _worklist(data.disputes, summary, rules, section_id="disputes",
                     title="Disputes worklist", noun="disputed pairs", lead=lead,
                     empty="No disputed pairs: every paired record agreed within the "
                           "tolerances.")


def _unmatched(data: ReportData, summary: Mapping[str, Any], rules: Rules) -> str:
    ours = attr(data.parties.this.label)
    lead = (f"Calls in {ours}'s file that the counterparty's file has no record of (within "
            "the time tolerance). The counterparty's unmatched records are never disclosed: "
            "only their count and total charge, in the figures above.")
    return _worklist(data.unmatched, summary, rules, section_id="unmatched",
                     title="Unmatched records", noun="unmatched records", lead=lead,
                     empty="No unmatched records on this side.")


def _invalid(data: ReportData, summary: Mapping[str, Any], rules: Rules) -> str:
    reasons = data.invalid_reasons
    rows = []
    for r in reasons:
        shown = ", ".join(count(n) for n in r.first_rows)
        more = r.rows - len(r.first_rows)
        rows.append([f"<code>{attr(r.reason)}</code>" if r.reason else _text(None),
                     count(r.rows), shown + (f" … and {count(more)} more" if more > 0 else "")])
    summary_table = (_table(["reason", "rows", "row numbers"], rows,
                            numeric=[False, True, False], cls="numbers invalid-reasons")
                     if rows else "")
    lead = ("Input rows that failed validation, by reason (<code>code:column</code>, "
            "docs/records.md), with their row numbers in the file; the rejected values are in "
            "quarantine.parquet. Invalid rows take no part in the reconciliation.")
    return _worklist(data.invalid, summary, rules, section_id="invalid",
                     title="Invalid rows", noun="invalid rows", lead=lead,
                     empty="No invalid rows.", before=summary_table)


# ---------------------------------------------------------------------------
# page


_CSS = """
:root{--ink:#1d2330;--muted:#5d6575;--line:#dde1e8;--bg:#f3f5f8;--card:#fff;--ok:#0b7a55;
--warn:#a34400}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC",
"PingFang SC","Microsoft YaHei",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1080px;margin:0 auto;padding:24px 20px 48px}
header{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px}
.kicker{margin:0;color:var(--muted);font-size:12px;letter-spacing:.06em;text-transform:uppercase}
h1{margin:2px 0 12px;font-size:24px}
h2{margin:0 0 4px;font-size:17px}
dl.meta{display:grid;grid-template-columns:150px 1fr;gap:4px 16px;margin:0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;min-width:0}
code,pre{font-family:ui-monospace,"SFMono-Regular","DejaVu Sans Mono",Menlo,Consolas,monospace;
font-size:12px}
code.hash{word-break:break-all}
pre{white-space:pre-wrap;word-break:break-all;background:var(--bg);padding:8px;border-radius:6px}
.muted,.missing{color:var(--muted)}
.decision{margin:16px 0;padding:12px 16px;border-radius:10px;border:1px solid}
.decision.ok{background:#e7f6ef;border-color:#9ad3bb;color:#0b5c40}
.decision.review{background:#fff3e6;border-color:#f0b47a;color:#7a3300}
.decision ul{margin:6px 0 0 20px;padding:0}
.figures{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin:16px 0}
.figure{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:12px 14px;border-top:4px solid var(--line)}
.figure.agreed{border-top-color:#009E73}.figure.disputed{border-top-color:#D55E00}
.figure.unmatched{border-top-color:#E69F00}.figure.rows{border-top-color:#0072B2}
.figure .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.figure .value{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums;margin:2px 0}
.figure .sub{color:var(--muted);font-size:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:16px 20px;margin:16px 0}
.lead{margin:0 0 10px;color:var(--muted)}
.chartbox{overflow-x:auto}
svg.chart{display:block;width:100%;min-width:560px;height:auto;overflow:visible}
svg.chart text{font-size:12px;fill:var(--ink)}
svg.chart .coltitle{font-weight:600;fill:var(--muted)}
svg.chart .val{font-variant-numeric:tabular-nums}
svg.chart .val.zero,svg.chart .axis,svg.chart .note{fill:var(--muted)}
svg.chart .axis{font-size:11px}
svg.chart .note{font-size:11px;font-style:italic}
svg.chart .empty{fill:var(--muted);font-style:italic}
svg.chart .stripe{fill:#f6f7fa}
svg.chart .shade{fill:#eef0f4}
svg.chart .grid{stroke:#e6e9ef;stroke-width:1}
svg.chart .baseline{stroke:#9aa1ad;stroke-width:1}
svg.chart .break{fill:#fff}
svg.chart .hit{fill:transparent}
svg.chart g.bar:hover rect:not(.hit){opacity:.8}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px}
td.num,th.num{text-align:right;white-space:nowrap}
table.totals{background:var(--card);border:1px solid var(--line);border-radius:10px;
border-collapse:separate;border-spacing:0;overflow:hidden}
table.totals td:first-child{width:34%}
table.records td{font-size:13px}table.records th,table.records td{padding:5px 6px}
.rid{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px;
white-space:nowrap}
.rid.long{white-space:normal;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
.nowrap{white-space:nowrap}
.tag{display:inline-block;background:#fbe9e0;color:#8a3200;border-radius:4px;padding:0 6px;
margin:1px 2px 1px 0;font-size:12px;white-space:nowrap}
details.numbers{margin-top:8px}
details.numbers summary{cursor:pointer;color:var(--muted);font-size:13px}
.checks{margin:12px 0;padding:10px 14px;border-radius:10px;border:1px solid var(--line);
background:var(--card)}
.checks.ok{color:var(--ok)}
.checks.failed{background:#fdecea;border-color:#e9a39a;color:#8a1c10}
footer{color:var(--muted);font-size:12px;margin-top:24px}
nav.toc{margin-top:12px;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px}
nav.toc a{color:#0b5cad;text-decoration:none}nav.toc a:hover{text-decoration:underline}
ul.signers{margin:0;padding:0 0 0 18px}
code.keyid{background:var(--bg);padding:0 4px;border-radius:4px}
.headline{font-size:17px;margin:4px 0}.headline-sub{margin:0 0 12px;color:var(--muted)}
table.net th[scope=row]{font-weight:600;color:var(--ink);font-size:13px;white-space:nowrap}
table.net th[scope=row] .muted{font-weight:400;font-size:12px}
table.net td.num,table.net th.num{white-space:normal}
table.net tr.net td,table.net tr.net th{border-top:2px solid var(--ink);background:#f6f8fb}
p.small{font-size:12px;margin-top:8px}
.capped{background:#fff3e6;border:1px solid #f0b47a;border-radius:8px;padding:8px 12px}
.controls{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;margin:8px 0}
.controls label{font-size:13px;color:var(--muted)}
.controls select{font:inherit;font-size:13px;max-width:260px}
button{font:inherit;font-size:13px;cursor:pointer}
.controls button,.pager button{border:1px solid var(--line);background:#f7f8fa;border-radius:6px;
padding:3px 10px}
button:disabled{cursor:default;opacity:.55}
.matching{font-size:13px;color:var(--muted)}
table.worklist th button{border:0;background:none;padding:0;color:inherit;font-weight:600;
font-size:12px;text-align:inherit}
table.worklist th[aria-sort=descending] button::after{content:" \\25BC"}
table.worklist th[aria-sort=ascending] button::after{content:" \\25B2"}
.pager{margin-top:8px;display:flex;gap:8px}
table.invalid-reasons{margin-bottom:12px}
@media (max-width:760px){.figures{grid-template-columns:repeat(2,1fr)}
dl.meta{grid-template-columns:1fr}}
@media print{body{background:#fff}main{max-width:none;padding:0}
.card,header,.figure{break-inside:avoid;border-color:#ccc}details.numbers{display:none}}
"""


def _version() -> str:
    try:
        return metadata.version("settlechain")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _script() -> str:
    return resources.files("engine.report").joinpath("worklist.js").read_text(encoding="utf-8")


def csp_hash(text: str) -> str:
    """A CSP source expression admitting an inline element with exactly this text."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy(style: str, script: str) -> str:
    """Nothing may be fetched; only this style sheet and this script run."""
    return (f"default-src 'none'; style-src {csp_hash(style)}; script-src {csp_hash(script)}; "
            "base-uri 'none'; form-action 'none'")


def render_page(summary: Mapping[str, Any], data: ReportData, rules: Rules) -> str:
    """The HTML text of the report."""
    party = data.parties.this.label
    labelled_classes = [" · ".join(c.key) for c in data.rate_classes]
    operator_names = {op.id: op.name for op in rules.operators}

    def pair_name(key: tuple[Any, ...]) -> str:
        payer, payee = key
        return f"{payer} → {payee}"

    sections = [
        _disputes(data, summary, rules),
        _unmatched(data, summary, rules),
        _invalid(data, summary, rules),
        _status_chart(data),
        _reason_chart(data, summary),
        _class_chart(
            "by-class", "Amounts by rate class",
            f"{attr(party)}'s own charge of its considered records per rate "
            "class (service · call type · time band, from the rules), split by what happened "
            "to them. Each column has its own scale; the amount is written beside each bar.",
            data.rate_classes, labelled_classes, "no considered records"),
        _class_chart(
            "by-operator", "Amounts by payer → payee",
            "The same charges by the operators of the calling (payer) and called (payee) "
            "numbers, by the rules' number prefixes"
            + (" (" + ", ".join(f"{attr(k)} = {attr(v)}" for k, v in operator_names.items()
                                if v) + ")" if any(operator_names.values()) else "") + ".",
            data.operator_pairs, [pair_name(c.key) for c in data.operator_pairs],
            "no considered records"),
        _day_chart(data, rules),
        _stage_chart(summary),
    ]
    title = (f"settlechain report — {summary.get('job_id', '')} — "
             f"{party} — {summary.get('period', '')}")
    script = _script()
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta http-equiv=\"Content-Security-Policy\" "
        f"content=\"{content_security_policy(_CSS, script)}\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{attr(title)}</title><style>{_CSS}</style></head><body><main>",
        _header(summary, data, rules),
        _decision(summary),
        _net_position(summary, data),
        _key_figures(summary, data),
        _checks(data),
        *sections,
        f"<footer>Generated by settlechain {attr(_version())}. Money in yuan (CNY) = minor "
        "units (fen) ÷ 100; every list's CSV holds fen. This file is self-contained: it "
        "loads nothing from any network.</footer>",
        f"</main><script>{script}</script></body></html>\n",
    ])


__all__: list[str] = ["content_security_policy", "count", "owes", "percent", "render_page",
                      "yuan"]
