"""``billing-report.html``: one member's billing at a date, self-contained (no script, no network).

Sections (docs/billing.md "Report"): aging by bucket and counterparty (table and a
stacked bar per counterparty and side), the overdue list, receivables and payables
over time (outstanding after every movement on the ledger), the expected cash flow
(what is due in and out per week from the as-of date; overdue amounts in the first
column), adjustments by original job, unmatched payments, netting runs, and the
documents the replay refused.  Charts are inline SVG with one ``<g class="bar">`` per
bar carrying its numbers in ``data-*`` attributes, which the Chromium test reads.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import defaultdict
from pathlib import Path

from billing.aging import BUCKETS, aging, totals
from billing.errors import BillingError
from billing.money import show
from billing.state import BillingState

COLOURS = {"current": "#4c9a6a", "1-30": "#c9b037", "31-60": "#e08a2c", "61-90": "#d0543c", "over_90": "#8e1f2f",
           "in": "#3b7dd8", "out": "#c2553a", "receivable": "#3b7dd8", "payable": "#c2553a"}
FILE = "billing-report.html"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _stacked_bars(chart: str, title: str, rows: list[tuple[str, dict[str, int]]], keys: tuple[str, ...]) -> str:
    width, label_w, bar_h, gap = 760, 190, 22, 10
    biggest = max([sum(v.values()) for _, v in rows] + [1])
    height = max(len(rows), 1) * (bar_h + gap) + 40
    parts = [f'<svg class="chart" data-chart="{_e(chart)}" role="img" aria-labelledby="{_e(chart)}-title" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<title id="{_e(chart)}-title">{_e(title)}</title>']
    if not rows:
        parts.append('<text class="empty" x="10" y="24">nothing outstanding</text>')
    for n, (label, values) in enumerate(rows):
        y = 10 + n * (bar_h + gap)
        x = float(label_w)
        parts.append(f'<g class="bar" data-label="{_e(label)}" data-total="{sum(values.values())}">'
                     f'<text x="0" y="{y + bar_h * 0.7:.1f}">{_e(label)}</text>')
        for key in keys:
            value = values.get(key, 0)
            if value <= 0:
                continue
            w = (width - label_w - 110) * value / biggest
            parts.append(f'<rect data-key="{_e(key)}" data-value="{value}" x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" '
                         f'height="{bar_h}" fill="{COLOURS.get(key, "#777")}"><title>{_e(key)}: {show(value)}</title></rect>')
            x += max(w, 1)
        parts.append(f'<text x="{x + 6:.1f}" y="{y + bar_h * 0.7:.1f}">{_e(show(sum(values.values())))}</text></g>')
    legend_y = height - 12
    for n, key in enumerate(keys):
        parts.append(f'<rect x="{label_w + n * 110}" y="{legend_y - 10}" width="12" height="12" '
                     f'fill="{COLOURS.get(key, "#777")}"/><text x="{label_w + n * 110 + 16}" y="{legend_y}">{_e(key)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _lines_chart(chart: str, title: str, series: dict[str, list[tuple[dt.date, int]]]) -> str:
    width, height, pad = 760, 240, 50
    points = [p for s in series.values() for p in s]
    parts = [f'<svg class="chart" data-chart="{_e(chart)}" role="img" aria-labelledby="{_e(chart)}-title" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<title id="{_e(chart)}-title">{_e(title)}</title>']
    if not points:
        parts.append('<text class="empty" x="10" y="24">no movements</text></svg>')
        return "".join(parts)
    first, last = min(d for d, _ in points), max(d for d, _ in points)
    span = max((last - first).days, 1)
    top = max([v for _, v in points] + [1])

    def xy(day: dt.date, value: int) -> tuple[float, float]:
        return (pad + (width - 2 * pad) * (day - first).days / span,
                height - pad - (height - 2 * pad) * value / top)

    parts.append(f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>')
    parts.append(f'<text x="{pad}" y="{height - pad + 18}">{first.isoformat()}</text>'
                 f'<text x="{width - pad - 70}" y="{height - pad + 18}">{last.isoformat()}</text>'
                 f'<text x="4" y="{pad - 8}">{_e(show(top))}</text>')
    for name, steps in series.items():
        if not steps:
            continue
        if steps[0][0] > first:  # nothing outstanding before the first movement of this side
            steps = [(first, 0), *steps]
        coords = []
        for n, (day, value) in enumerate(steps):
            if n:
                coords.append(xy(day, steps[n - 1][1]))   # a step: the level holds until the next movement
            coords.append(xy(day, value))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<g class="series" data-series="{_e(name)}" data-last="{steps[-1][1]}" data-points="{len(steps)}">'
                     f'<polyline fill="none" stroke-width="2" stroke="{COLOURS.get(name, "#555")}" points="{path}"/>'
                     f'<text x="{coords[-1][0] - 60:.1f}" y="{coords[-1][1] - 6:.1f}">{_e(name)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[object]], css: str = "") -> str:
    if not rows:
        return '<p class="none">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def over_time(state: BillingState) -> dict[str, list[tuple[dt.date, int]]]:
    """Outstanding receivables and payables of the member after each day with a movement."""
    by_day: dict[str, dict[dt.date, int]] = {"receivable": defaultdict(int), "payable": defaultdict(int)}
    for m in state.movements:
        item = state.items.get(m.item_id)
        if item is None or state.member not in (item.creditor, item.debtor):
            continue
        side = "receivable" if item.creditor == state.member else "payable"
        by_day[side][m.date] += m.amount
    series: dict[str, list[tuple[dt.date, int]]] = {}
    for side, days in by_day.items():
        level, steps = 0, []
        for day in sorted(days):
            level += days[day]
            steps.append((day, level))
        series[side] = steps
    return series


def cash_flow(state: BillingState, as_of: dt.date, weeks: int = 8) -> list[tuple[str, dict[str, int]]]:
    """(week label, {"in": fen, "out": fen}) of what falls due, overdue first."""
    columns: list[tuple[str, dict[str, int]]] = [("overdue", {"in": 0, "out": 0})]
    starts = [as_of + dt.timedelta(days=7 * k) for k in range(weeks)]
    columns += [(f"week of {s.isoformat()}", {"in": 0, "out": 0}) for s in starts]
    columns.append(("later", {"in": 0, "out": 0}))
    for item in state.open_items():
        if state.member not in (item.creditor, item.debtor) or item.payment_status == "held":
            continue
        direction = "in" if item.creditor == state.member else "out"
        if item.due_date < as_of:
            slot = 0
        else:
            k = (item.due_date - as_of).days // 7
            slot = 1 + k if k < weeks else weeks + 1
        columns[slot][1][direction] += item.outstanding
    return columns


def render(state: BillingState, as_of: dt.date, *, title: str = "") -> str:
    member = state.member
    rows = aging(state, as_of)
    aging_rows = [[r.counterparty, r.side, *[show(r.buckets[b]) for b in BUCKETS], show(r.held), show(r.total)]
                  for r in rows]
    for side in ("receivable", "payable"):
        t = totals(rows, side)
        if any(t.values()):
            aging_rows.append(["all", side, *[show(t[b]) for b in BUCKETS], "", show(sum(t.values()))])
    overdue = sorted((i for i in state.open_items() if i.days_past_due(as_of) > 0 and member in (i.creditor, i.debtor)),
                     key=lambda i: -i.days_past_due(as_of))
    overdue_rows = [[i.item_id, "receivable" if i.creditor == member else "payable", i.counterparty(member),
                     i.due_date.isoformat(), i.days_past_due(as_of), show(i.outstanding), i.overdue_state,
                     i.payment_status, ", ".join(f"{a.to_state} ({a.as_of})" for a in i.alerts)] for i in overdue]
    item_rows = [[i.item_id, i.item_type, "receivable" if i.creditor == member else "payable", i.counterparty(member),
                  i.period, i.job_id or "", i.issue_date.isoformat(), i.due_date.isoformat(), show(i.gross),
                  show(i.outstanding), i.payment_status,
                  (i.voided.replaced_by or "void") if i.voided else (i.fapiao.fapiao_number if i.fapiao else "")]
                 for i in sorted(state.items.values(), key=lambda i: i.index)]
    adjustments = []
    for job, ids in sorted(state.adjustments_by_job.items()):
        for adjustment_id in ids:
            record = state.adjustments[adjustment_id]
            doc = record.document
            adjustments.append([job, adjustment_id, doc.period, doc.reason, doc.note.note_type, doc.note.note_id,
                                show(doc.note.charge.gross if doc.note.charge.creditor == member
                                     else -doc.note.charge.gross),
                                doc.reverses or "", record.reversed_by or ""])
    unmatched = [[pid, u.booking_date.isoformat(), show(u.amount), u.end_to_end_id, u.remittance[:60], u.reason]
                 for pid, (_, u) in sorted(state.unmatched.items(), key=lambda kv: kv[1][0])]
    netting = []
    for record in state.netting.values():
        result = record.results.get(member)
        netting.append([record.call.netting_id, record.call.period, record.machine.current_state_value,
                        show(result[1].net_position) if result else "",
                        "; ".join(f"{p.payer}→{p.payee} {show(p.amount)}" for p in result[1].payments) if result else "",
                        len(record.netted_items)])
    refused = [[r.index, r.document_type, r.rule, r.message[:160]] for r in state.refused]
    refused += [[index, "unreadable", "unreadable", reason[:160]] for index, reason in state.unreadable]
    aging_chart = _stacked_bars("aging", "Outstanding by counterparty, side and aging bucket",
                                [(f"{r.counterparty} {r.side}", r.buckets) for r in rows], BUCKETS)
    flows = cash_flow(state, as_of)
    flow_chart = _stacked_bars("cash-flow", "Expected cash flow: due in and out per week",
                               [(label, v) for label, v in flows], ("in", "out"))
    time_chart = _lines_chart("over-time", "Outstanding receivables and payables over time", over_time(state))
    heading = title or f"Billing of {member} on {as_of.isoformat()}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(heading)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 8px 0 18px; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f0f0f0; }} td:first-child, th:first-child {{ text-align: left; }}
svg.chart {{ display: block; margin: 8px 0 18px; font-size: 12px; }}
p.none {{ color: #777; }} .meta {{ color: #555; }}
</style></head><body>
<h1>{_e(heading)}</h1>
<p class="meta" id="meta" data-member="{_e(member)}" data-as-of="{as_of.isoformat()}" data-items="{len(state.items)}"
   data-refused="{len(refused)}">Replayed from the ledger (size {state.size}): {len(state.items)} items,
{len(state.payments)} payments, {len(state.unmatched)} unmatched credits, {len(state.adjustments)} adjustments,
{len(state.netting)} netting runs. Amounts in CNY; integer fen throughout.</p>
<h2 id="aging">Aging by bucket and counterparty</h2>
{aging_chart}
{_table(["counterparty", "side", *BUCKETS, "held", "total"], aging_rows, "aging")}
<h2 id="overdue">Overdue</h2>
{_table(["item", "side", "counterparty", "due", "days past due", "outstanding", "overdue state", "status", "alerts"],
        overdue_rows, "overdue")}
<h2 id="over-time">Receivables and payables over time</h2>
{time_chart}
<h2 id="cash-flow">Expected cash flow</h2>
{flow_chart}
{_table(["due", "in", "out"], [[label, show(v["in"]), show(v["out"])] for label, v in flows], "cash-flow")}
<h2 id="items">Invoices and notes</h2>
{_table(["item", "type", "side", "counterparty", "period", "job", "issued", "due", "gross", "outstanding", "status",
         "void / fapiao"], item_rows, "items")}
<h2 id="adjustments">Adjustments by original job</h2>
{_table(["job", "adjustment", "period", "reason", "note", "note id", "amount (+ owed to us)", "reverses",
         "reversed by"], adjustments, "adjustments")}
<h2 id="unmatched">Unmatched payments</h2>
{_table(["payment", "booked", "amount", "end-to-end id", "remittance", "reason"], unmatched, "unmatched")}
<h2 id="netting">Netting</h2>
{_table(["run", "period", "state", "net position", "payments", "items netted"], netting, "netting")}
<h2 id="refused">Refused or unreadable ledger entries</h2>
{_table(["ledger index", "document", "rule", "reason"], refused, "refused")}
</body></html>
"""


def write_report(state: BillingState, as_of: dt.date, folder: str | Path, *, title: str = "") -> Path:
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
        path = target / FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(render(state, as_of, title=title), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise BillingError(f"cannot write the billing report into {target}: {exc.strerror or exc}") from None
    return path
