"""Exports for an ERP and for analysts: items, payments, aging, and a double-entry journal.

``settlechain billing report`` writes each table as CSV and Parquet next to the HTML
report (docs/billing.md "Exports").  The journal has one balanced set of lines (Σ debit
= Σ credit, integer fen) per invoice or note, void, payment, reversal, unmatched credit
and netting settlement, from the member's own side, with the account codes of the
rules' ``[billing.accounts]`` (PRC chart of accounts by default):

| document | member is creditor | member is debtor |
| --- | --- | --- |
| invoice / note | Dr receivable gross; Cr revenue (lines it is paid for), Dr cost (lines it pays); Cr VAT output, Dr VAT input likewise | Cr payable gross; Dr cost, Cr revenue; Dr VAT input, Cr VAT output |
| void | the invoice's lines, debit and credit swapped | the same |
| payment | Dr bank amount; Cr receivable applied; Cr advances excess | Dr payable applied; Dr advances excess; Cr bank amount |
| reversal | the payment's lines swapped | the same |
| unmatched credit | Dr bank; Cr advances (unapplied cash) | – |
| netted item | Dr netting clearing; Cr receivable | Dr payable; Cr netting clearing |
| net payment (from a run) | Dr receivable; Cr netting clearing | Dr netting clearing; Cr payable |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from billing.aging import BUCKETS, aging
from billing.config import JournalAccounts
from billing.documents import Charge
from billing.errors import BillingError
from billing.state import BillingState, Item


@dataclass(frozen=True)
class JournalLine:
    journal_id: str
    date: dt.date
    account: str
    debit: int
    credit: int
    counterparty: str
    document_type: str
    reference: str
    ledger_index: int


JOURNAL_SCHEMA = {"journal_id": pl.String, "date": pl.Date, "account": pl.String, "debit": pl.Int64,
                  "credit": pl.Int64, "counterparty": pl.String, "document_type": pl.String, "reference": pl.String,
                  "ledger_index": pl.Int64}


def _charge_lines(charge: Charge, member: str, accounts: JournalAccounts) -> list[tuple[str, int, int]]:
    """(account, debit, credit) of a charge from ``member``'s side."""
    out: list[tuple[str, int, int]] = []
    if member == charge.creditor:
        out.append((accounts.receivable, charge.gross, 0))
    else:
        out.append((accounts.payable, 0, charge.gross))
    for line in charge.lines:
        if line.payee == member:
            out.append((accounts.revenue, 0, line.amount))
        else:
            out.append((accounts.cost, line.amount, 0))
    for tax in charge.tax_lines:
        if tax.payee == member:
            out.append((accounts.vat_output, 0, tax.tax))
        else:
            out.append((accounts.vat_input, tax.tax, 0))
    return [(a, d, c) for a, d, c in out if d or c]


def _item_charge(item: Item) -> Charge | None:
    doc = item.document
    if item.item_type == "invoice":
        return doc.charge
    if item.item_type in ("credit_note", "debit_note"):
        return doc.note.charge
    return None


def journal(state: BillingState) -> list[JournalLine]:
    accounts = state.terms.accounts
    member = state.member
    lines: list[JournalLine] = []

    def add(journal_id: str, date: dt.date, parts: Iterable[tuple[str, int, int]], counterparty: str, kind: str,
            reference: str, index: int) -> None:
        for account, debit, credit in parts:
            if debit < 0 or credit < 0:  # a negative amount goes to the other column
                debit, credit = max(debit, 0) + max(-credit, 0), max(credit, 0) + max(-debit, 0)
            lines.append(JournalLine(journal_id, date, account, debit, credit, counterparty, kind, reference, index))

    for item in sorted(state.items.values(), key=lambda i: i.index):
        if member not in (item.creditor, item.debtor):
            continue
        other = item.counterparty(member)
        charge = _item_charge(item)
        if charge is not None:
            parts = _charge_lines(charge, member, accounts)
            add(f"{item.item_id}/issue", item.issue_date, parts, other, item.item_type, item.item_id, item.index)
            if item.voided is not None:
                add(f"{item.item_id}/void", item.voided.date, [(a, c, d) for a, d, c in parts], other, "invoice_void",
                    item.item_id, item.index)
        elif item.item_type == "net_payment":
            parts = ([(accounts.receivable, item.gross, 0), (accounts.netting, 0, item.gross)] if item.creditor == member
                     else [(accounts.netting, item.gross, 0), (accounts.payable, 0, item.gross)])
            add(f"{item.item_id}/issue", item.issue_date, parts, other, "net_payment", item.item_id, item.index)
    for movement in state.movements:
        if movement.what != "netted":
            continue
        item = state.items[movement.item_id]
        amount = -movement.amount
        parts = ([(accounts.netting, amount, 0), (accounts.receivable, 0, amount)] if item.creditor == member
                 else [(accounts.payable, amount, 0), (accounts.netting, 0, amount)])
        add(f"{item.item_id}/netted", movement.date, parts, item.counterparty(member), "netting", movement.reference,
            movement.index)
    for payment_id, record in state.payments.items():
        p = record.document
        if p.payee == member:
            parts = [(accounts.bank, p.amount, 0), (accounts.receivable, 0, p.applied), (accounts.advances, 0, p.excess)]
            other = p.payer
        else:
            parts = [(accounts.payable, p.applied, 0), (accounts.advances, p.excess, 0), (accounts.bank, 0, p.amount)]
            other = p.payee
        parts = [x for x in parts if x[1] or x[2]]
        add(f"{payment_id}/payment", p.booking_date, parts, other, "payment", p.item_id, record.index)
        if record.reversed_by is not None:
            reversal = state.reversals[record.reversed_by]
            add(f"{record.reversed_by}/reversal", reversal.booking_date, [(a, c, d) for a, d, c in parts], other,
                "payment_reversal", p.item_id, record.index)
    for payment_id, (index, u) in state.unmatched.items():
        add(f"{payment_id}/unapplied", u.booking_date, [(accounts.bank, u.amount, 0), (accounts.advances, 0, u.amount)],
            "", "payment_unmatched", payment_id, index)
    return lines


def check_balanced(lines: Iterable[JournalLine]) -> None:
    """Raise unless every journal entry balances (Σ debit = Σ credit)."""
    sums: dict[str, list[int]] = {}
    for line in lines:
        d, c = sums.setdefault(line.journal_id, [0, 0])
        sums[line.journal_id] = [d + line.debit, c + line.credit]
    bad = {k: v for k, v in sums.items() if v[0] != v[1]}
    if bad:
        key = next(iter(bad))
        raise BillingError(f"journal entry {key} does not balance: debit {bad[key][0]}, credit {bad[key][1]}")


def items_frame(state: BillingState) -> pl.DataFrame:
    rows = [{"item_id": i.item_id, "item_type": i.item_type, "side": "receivable" if i.creditor == state.member
             else "payable", "creditor": i.creditor, "debtor": i.debtor, "period": i.period, "job_id": i.job_id,
             "issue_date": i.issue_date, "due_date": i.due_date, "gross": i.gross, "paid": i.paid,
             "outstanding": i.outstanding, "payment_status": i.payment_status, "overdue_state": i.overdue_state,
             "fapiao": i.fapiao.fapiao_number if i.fapiao else None, "netted_in": i.netted_in,
             "ledger_index": i.index} for i in sorted(state.items.values(), key=lambda i: i.index)]
    schema = {"item_id": pl.String, "item_type": pl.String, "side": pl.String, "creditor": pl.String,
              "debtor": pl.String, "period": pl.String, "job_id": pl.String, "issue_date": pl.Date, "due_date": pl.Date,
              "gross": pl.Int64, "paid": pl.Int64, "outstanding": pl.Int64, "payment_status": pl.String,
              "overdue_state": pl.String, "fapiao": pl.String, "netted_in": pl.String, "ledger_index": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def payments_frame(state: BillingState) -> pl.DataFrame:
    rows = [{"payment_id": pid, "outcome": "matched", "item_id": r.document.item_id, "payer": r.document.payer,
             "payee": r.document.payee, "amount": r.document.amount, "applied": r.document.applied,
             "excess": r.document.excess, "booking_date": r.document.booking_date,
             "end_to_end_id": r.document.end_to_end_id, "reversed_by": r.reversed_by, "reason": None,
             "ledger_index": r.index} for pid, r in state.payments.items()]
    rows += [{"payment_id": pid, "outcome": "unmatched", "item_id": None, "payer": None, "payee": u.payee,
              "amount": u.amount, "applied": 0, "excess": 0, "booking_date": u.booking_date,
              "end_to_end_id": u.end_to_end_id, "reversed_by": None, "reason": u.reason, "ledger_index": index}
             for pid, (index, u) in state.unmatched.items()]
    schema = {"payment_id": pl.String, "outcome": pl.String, "item_id": pl.String, "payer": pl.String,
              "payee": pl.String, "amount": pl.Int64, "applied": pl.Int64, "excess": pl.Int64,
              "booking_date": pl.Date, "end_to_end_id": pl.String, "reversed_by": pl.String, "reason": pl.String,
              "ledger_index": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort("ledger_index")


def aging_frame(state: BillingState, as_of: dt.date) -> pl.DataFrame:
    rows = [{"counterparty": r.counterparty, "side": r.side, **{b: r.buckets[b] for b in BUCKETS}, "held": r.held,
             "total": r.total, "items": r.items} for r in aging(state, as_of)]
    schema = {"counterparty": pl.String, "side": pl.String, **{b: pl.Int64 for b in BUCKETS}, "held": pl.Int64,
              "total": pl.Int64, "items": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def journal_frame(state: BillingState) -> pl.DataFrame:
    lines = journal(state)
    check_balanced(lines)
    return pl.DataFrame([line.__dict__ for line in lines], schema=JOURNAL_SCHEMA)


def write_exports(state: BillingState, as_of: dt.date, folder: str | Path) -> dict[str, Path]:
    """``items``, ``payments``, ``aging`` and ``journal`` as ``.csv`` and ``.parquet`` in ``folder``."""
    target = Path(folder)
    frames = {"items": items_frame(state), "payments": payments_frame(state), "aging": aging_frame(state, as_of),
              "journal": journal_frame(state)}
    written: dict[str, Path] = {}
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, frame in frames.items():
            frame.write_csv(target / f"{name}.csv")
            frame.write_parquet(target / f"{name}.parquet")
            written[f"{name}.csv"] = target / f"{name}.csv"
            written[f"{name}.parquet"] = target / f"{name}.parquet"
    except OSError as exc:
        raise BillingError(f"cannot write the exports into {target}: {exc.strerror or exc}") from None
    return written
