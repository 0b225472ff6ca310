"""The report page: one self-contained HTML document (inline CSS and SVG, no script,
no URL of any kind; a Content-Security-Policy forbids every fetch).

The page is a pure function of its inputs (no clock, no randomness), so that the
same job gives byte-identical reports on re-rendering.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from engine.report.aggregate import _int
from engine.report.aggregate import (
    DIFF_COLUMNS,
    OUTCOMES,
    STATUSES,
    ClassAmounts,
    ReportData,
)
from engine.report.svg import Column, DayBar, Series, attr, bar_grid, day_columns
from engine.rules import SERVICES, Rules

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
STAGES: tuple[tuple[str, str], ...] = (
    ("ingest", "Ingest, validate, rate"), ("psi_exact", "PSI: exact and tolerant values"),
    ("psi_key", "PSI: match key only"), ("mpc", "MPC on differing pairs"),
    ("report", "Report"), ("anchor", "Ledger anchor"),
)
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


def _header(summary: Mapping[str, Any], rules: Rules) -> str:
    party, counterparty = summary.get("party"), summary.get("counterparty")
    anchor = summary.get("anchor")
    if isinstance(anchor, Mapping) and anchor:
        checkpoint = anchor.get("checkpoint")
        anchor_html = (f'index <b>{_text(anchor.get("index"))}</b>, leaf hash '
                       f'<code class="hash">{_text(anchor.get("leaf_hash"))}</code>')
        if checkpoint:
            anchor_html += (f'<details><summary>checkpoint</summary>'
                            f'<pre>{attr(checkpoint)}</pre></details>')
    else:
        anchor_html = '<span class="missing">not anchored (no ledger entry for this run)</span>'
    disclosure = summary.get("disclosure")
    rows = [
        ("Job", f"<b>{_text(summary.get('job_id'))}</b>"),
        ("This party", f"<b>{_text(party)}</b>"),
        ("Counterparty", _text(counterparty)),
        ("Period", f"{_text(summary.get('period'))} <span class=\"muted\">(days in local "
                   f"time, {utc_offset(rules.timezone_offset_s)})</span>"),
        ("Rules", f"{attr(rules.name)} <span class=\"muted\">version {attr(rules.version)}</span>"),
        ("Rules SM3 hash", f'<code class="hash">{_text(summary.get("rules_sm3"))}</code>'),
        ("Disclosure policy", attr(DISCLOSURE_NAMES.get(str(disclosure), disclosure))
         if disclosure is not None else _text(None)),
        ("Ledger anchor", anchor_html),
    ]
    meta = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    title = (f"{_text(party, '?')} ↔ {_text(counterparty, '?')} · "
             f"{_text(summary.get('period'), 'period ?')}")
    return (f'<header><p class="kicker">settlechain · reconciliation report</p>'
            f"<h1>{title}</h1><dl class=\"meta\">{meta}</dl></header>")


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


def _key_figures(summary: Mapping[str, Any], data: ReportData) -> str:
    totals = summary.get("totals") or {}
    counts = summary.get("counts") or {}
    pairs = summary.get("pairs") or {}
    party = _text(summary.get("party"), "us")
    counterparty = _text(summary.get("counterparty"), "them")
    agreed_pairs = (_int(pairs, "matched_exact") or 0) + (_int(pairs, "matched_tolerance") or 0)
    cards = [
        ("agreed", "Agreed amount", _money(totals, "agreed_charge"),
         f"{count(agreed_pairs)} agreed pairs; tolerance pairs at the midpoint"),
        ("disputed", "Disputed", _money(totals, "disputed_local_charge"),
         f"{party}'s charge on {_count(pairs, 'disputed')} pairs; "
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
        ["<b>Agreed settlement amount</b>", "", f"<b>{_money(totals, 'agreed_charge')}</b>",
         f"<b>{_money(totals, 'agreed_charge')}</b>"],
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
        return (f'<p class="checks ok" id="checks">✓ All {len(data.checks)} counts and totals '
                "of summary.json agree with records.parquet and the canonical records.</p>")
    rows = [[attr(c.what), count(c.expected), count(c.found)] for c in failed]
    return ('<div class="checks failed" id="checks"><b>Inconsistent inputs:</b> '
            "summary.json and the record files disagree. Do not settle on this report "
            "before this is explained."
            + _table(["what", "summary.json", "record files"], rows,
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
    party = str(summary.get("party") or "us")
    counterparty = str(summary.get("counterparty") or "them")
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


def _disputed_table(data: ReportData, summary: Mapping[str, Any], rules: Rules) -> str:
    frame = data.disputed_rows
    policy = summary.get("disclosure")
    shows_diffs = policy == "differences" or any(
        frame[c].null_count() < frame.height for c in DIFF_COLUMNS if frame.height)
    headers = ["row", "record id", f"start ({utc_offset(rules.timezone_offset_s)})",
               "call", "our charge", "reasons"]
    numeric = [True, False, False, True, True, False]
    if shows_diffs:
        headers += ["Δ start", "Δ duration", "Δ charge", "Δ rated"]
        numeric += [True] * 4
    rows = []
    for rec in frame.iter_rows(named=True):
        reasons = rec["reasons"]
        if reasons:
            reason_html = " ".join(f'<span class="tag">{attr(REASON_NAMES.get(code, code))}</span>'
                                   for code in str(reasons).split(","))
        else:
            reason_html = ('<span class="missing">not disclosed</span>'
                           if policy == "aggregate" else '<span class="missing">—</span>')
        record_id = rec["record_id"]
        rid = (f'<span class="rid{" long" if len(record_id) > 24 else ""}">{attr(record_id)}'
               "</span>" if record_id is not None else _text(None))
        merged_into = rec.get("merged_into")
        if merged_into and merged_into == record_id:
            rid += '<br><span class="muted">first part of a merged call</span>'
        elif merged_into:
            rid += f'<br><span class="muted">part of {attr(merged_into)}</span>'
        service = rec.get("service")
        if service is None or rec["duration_s"] is None:
            call = _text(None)
        else:
            amount = (f"{count(rec['volume_kb'])} KB" if service == 2
                      else "" if service == 1 else f"{count(rec['duration_s'])} s")
            call = f'<span class="muted">{SERVICES[service]}</span> {amount}'
        cells = [
            count(rec["row"]), rid,
            f'<span class="nowrap">{local_time(rec["start"], rules.timezone_offset_s)}</span>'
            if rec["start"] is not None else _text(None),
            call,
            yuan(rec["charge"]) if rec["charge"] is not None else _text(None),
            reason_html,
        ]
        if shows_diffs:
            for column, fmt in (("diff_start_s", signed_seconds),
                                ("diff_duration_s", signed_seconds),
                                ("diff_charge", signed_yuan), ("diff_rated_charge", signed_yuan)):
                value = rec[column]
                cells.append(fmt(value) if value is not None else _text(None))
        rows.append(cells)
    total = data.disputed_total_rows
    if total == 0:
        body = '<p class="empty">No disputed records.</p>'
    else:
        body = f'<div class="scroll">{_table(headers, rows, numeric=numeric, cls="records")}</div>'
    shown = frame.height
    lead = (f"The first {count(shown)} of {count(total)} disputed input rows, by row number. "
            "Values are this party's own; differences are ours − theirs"
            + ("" if shows_diffs else f" and are not disclosed under the "
               f"“{attr(policy)}” policy") + ".")
    if total == 0:
        lead = "Every paired record agreed within the tolerances."
    return _section("disputed", "Disputed records", lead, body)


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


def render_page(summary: Mapping[str, Any], data: ReportData, rules: Rules) -> str:
    """The HTML text of the report."""
    party = str(summary.get("party") or "")
    labelled_classes = [" · ".join(c.key) for c in data.rate_classes]
    operator_names = {op.id: op.name for op in rules.operators}

    def pair_name(key: tuple[Any, ...]) -> str:
        payer, payee = key
        return f"{payer} → {payee}"

    sections = [
        _status_chart(data),
        _reason_chart(data, summary),
        _class_chart(
            "by-class", "Amounts by rate class",
            f"{attr(party) or 'This party'}'s own charge of its considered records per rate "
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
        _disputed_table(data, summary, rules),
    ]
    title = (f"settlechain report — {summary.get('job_id', '')} — "
             f"{party} — {summary.get('period', '')}")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{attr(title)}</title><style>{_CSS}</style></head><body><main>",
        _header(summary, rules),
        _decision(summary),
        _key_figures(summary, data),
        _checks(data),
        *sections,
        f"<footer>Generated by settlechain {attr(_version())}. Money in yuan (CNY) = minor "
        "units (fen) ÷ 100. This file is self-contained: it loads nothing from any network."
        "</footer>",
        "</main></body></html>\n",
    ])


__all__: list[str] = ["render_page", "yuan", "count", "percent"]
