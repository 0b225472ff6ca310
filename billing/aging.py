"""Receivables and payables per counterparty in aging buckets (docs/billing.md "Aging").

An item is in the bucket of its days past due on the as-of date: ``current`` (not yet
due, or due that day), ``1-30``, ``31-60``, ``61-90``, ``over_90``.  Only what is still
outstanding counts: void items, paid items and items issued after the as-of date are
left out; held (disputed) items count in their bucket and also in ``held``.  The member
is the creditor of its receivables and the debtor of its payables; amounts are fen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from billing.state import BillingState, Item

BUCKETS: tuple[str, ...] = ("current", "1-30", "31-60", "61-90", "over_90")
SIDES: tuple[str, ...] = ("receivable", "payable")


def bucket_of(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "over_90"


@dataclass(frozen=True)
class AgingRow:
    counterparty: str
    side: str
    buckets: dict[str, int]
    held: int
    items: int

    @property
    def total(self) -> int:
        return sum(self.buckets.values())


def outstanding_items(state: BillingState, as_of: dt.date) -> list[Item]:
    return [i for i in state.items.values()
            if not i.is_void and i.outstanding > 0 and i.issue_date <= as_of
            and state.member in (i.creditor, i.debtor)]


def aging(state: BillingState, as_of: dt.date) -> list[AgingRow]:
    """One row per (counterparty, side) with anything outstanding, sorted."""
    table: dict[tuple[str, str], tuple[dict[str, int], list[int]]] = {}
    for item in outstanding_items(state, as_of):
        side = "receivable" if item.creditor == state.member else "payable"
        buckets, extra = table.setdefault((item.counterparty(state.member), side),
                                          ({b: 0 for b in BUCKETS}, [0, 0]))
        buckets[bucket_of(item.days_past_due(as_of))] += item.outstanding
        extra[1] += 1
        if item.payment_status == "held":
            extra[0] += item.outstanding
    return [AgingRow(cp, side, buckets, extra[0], extra[1])
            for (cp, side), (buckets, extra) in sorted(table.items())]


def totals(rows: list[AgingRow], side: str) -> dict[str, int]:
    result = {b: 0 for b in BUCKETS}
    for row in rows:
        if row.side == side:
            for b in BUCKETS:
                result[b] += row.buckets[b]
    return result
