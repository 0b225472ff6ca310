"""Matching bank transactions to what a member is owed (docs/billing.md "Payments").

For each transaction of a bank file, in file order, against the member's replayed state:

1. not booked (``PDNG``/``INFO``) -> ``not_booked``; a transaction already recorded on
   the ledger (same payment id) -> ``duplicate``; listed, nothing appended;
2. a reversal (``RvslInd``) -> the earlier, unreversed payment with the same end-to-end
   id and amount is reversed (``reversal``); none -> ``unmatched``;
3. a debit -> ``ignored_debit`` (money out; listed, nothing appended);
4. a credit: its references are the item ids found as whole tokens in its end-to-end
   id, else in its remittance information.  The end-to-end id wins: when it names an
   item, the remittance is not read.  Exactly one item of which this member is the
   creditor -> applied to it: ``full`` when it covers the outstanding amount exactly,
   ``partial`` below, ``overpaid`` above (the excess is kept as the payer's credit);
   two or more -> ``unmatched`` (refused: a payment matching two invoices); none, a void
   item, another currency -> ``unmatched`` with the reason (and, when exactly one open
   item has that outstanding amount, a hint naming it -- never applied by amount alone).

Every transaction ends with one outcome: matched ones become ``payment`` /
``payment_reversal`` documents (sealed to payee and payer), unmatched credits
``payment_unmatched`` documents (sealed to the payee): listed, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from billing.bank import BankFile, BankTransaction
from billing.documents import Payment, PaymentReversal, UnmatchedPayment
from billing.state import BillingState
from ledger_anchor.sm3 import sm3

OUTCOMES: tuple[str, ...] = ("full", "partial", "overpaid", "reversal", "unmatched", "duplicate", "ignored_debit",
                             "not_booked")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_PAYMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")


@dataclass(frozen=True)
class MatchOutcome:
    transaction: BankTransaction
    payment_id: str
    outcome: str
    item_id: str | None
    applied: int
    excess: int
    reason: str
    document: Payment | PaymentReversal | UnmatchedPayment | None


def payment_id(bank: BankFile, transaction: BankTransaction) -> str:
    """A ledger-wide id of a bank transaction: the account and the bank's reference."""
    text = f"{bank.account}:{transaction.transaction_id}" if bank.account else transaction.transaction_id
    if _PAYMENT_ID.match(text):
        return text
    return "tx:" + sm3(text.encode("utf-8")).hex()[:40]


def references_in(text: str, known: set[str]) -> list[str]:
    found: list[str] = []
    for token in _TOKEN.findall(text or ""):
        if token in known and token not in found:
            found.append(token)
    return found


def match_transactions(bank: BankFile, state: BillingState, member: str) -> list[MatchOutcome]:
    """Match every transaction of ``bank`` for ``member`` (the account holder, the payee)."""
    currency = state.terms.currency
    mine = {item_id: item for item_id, item in state.items.items() if item.creditor == member}
    known = set(mine)
    outstanding = {item_id: item.outstanding for item_id, item in mine.items()}
    paid = {item_id: item.paid for item_id, item in mine.items()}
    recorded = set(state.payments) | set(state.unmatched) | set(state.reversals)
    reversible = {pid: rec.document for pid, rec in state.payments.items()
                  if rec.reversed_by is None and rec.document.payee == member}
    outcomes: list[MatchOutcome] = []
    for tx in bank.transactions:
        pid = payment_id(bank, tx)

        def out(outcome: str, reason: str, item_id: str | None = None, applied: int = 0, excess: int = 0,
                document=None, _tx=tx, _pid=pid) -> None:  # type: ignore[no-untyped-def]
            outcomes.append(MatchOutcome(_tx, _pid, outcome, item_id, applied, excess, reason, document))

        def unmatched(reason: str, _tx=tx, _pid=pid) -> None:  # type: ignore[no-untyped-def]
            out("unmatched", reason, document=UnmatchedPayment(
                _pid, member, _tx.amount, _tx.currency, _tx.booking_date, _tx.end_to_end_id, _tx.remittance[:500],
                _tx.debtor_name[:140], reason, bank.sm3))

        if not tx.booked:
            out("not_booked", "the bank has not booked this entry (status other than BOOK)")
            continue
        if pid in recorded:
            out("duplicate", "this bank transaction is already on the ledger")
            continue
        recorded.add(pid)
        if tx.reversal:
            original = next((p for p in reversible.values()
                             if p.amount == tx.amount and p.end_to_end_id == tx.end_to_end_id
                             and (tx.end_to_end_id or tx.remittance and p.item_id in tx.remittance)), None)
            if original is None:
                unmatched("a reversal of no payment on the ledger (same end-to-end id and amount)")
                continue
            del reversible[original.payment_id]
            outstanding[original.item_id] += original.applied
            paid[original.item_id] -= original.applied
            out("reversal", f"reverses {original.payment_id}", original.item_id, -original.applied, 0,
                PaymentReversal(pid, original.payment_id, original.item_id, original.payer, member, tx.amount,
                                tx.booking_date, bank.sm3))
            continue
        if not tx.credit:
            out("ignored_debit", "money out of the account")
            continue
        if tx.currency != currency:
            unmatched(f"currency {tx.currency}, the terms are in {currency}")
            continue
        candidates = references_in(tx.end_to_end_id, known) or references_in(tx.remittance, known)
        if len(candidates) > 1:
            unmatched(f"refused: the payment names {len(candidates)} items ({', '.join(candidates)}); "
                      "a payment is applied to one item only")
            continue
        if not candidates:
            hint = [i for i, o in outstanding.items() if o == tx.amount and not mine[i].is_void]
            unmatched("no item reference in the end-to-end id or remittance information"
                      + (f" (the amount equals what {hint[0]} still owes)" if len(hint) == 1 else ""))
            continue
        item = mine[candidates[0]]
        if item.is_void:
            replaced = item.voided.replaced_by if item.voided else None
            unmatched(f"{item.item_id} is void" + (f"; it was replaced by {replaced}" if replaced else ""))
            continue
        owed = max(outstanding[item.item_id], 0)
        applied = min(tx.amount, owed)
        excess = tx.amount - applied
        outstanding[item.item_id] -= applied
        paid[item.item_id] += applied
        kind = "overpaid" if excess else "full" if outstanding[item.item_id] == 0 else "partial"
        reversible[pid] = Payment(pid, item.item_id, item.debtor, member, tx.amount, applied, excess, tx.currency,
                                  tx.booking_date, tx.end_to_end_id, tx.transaction_id[:128], bank.sm3)
        out(kind, f"{applied} fen applied to {item.item_id}" + (f", {excess} fen excess" if excess else ""),
            item.item_id, applied, excess, reversible[pid])
    return outcomes


def counts(outcomes: Sequence[MatchOutcome]) -> dict[str, int]:
    result = {name: 0 for name in OUTCOMES}
    for o in outcomes:
        result[o.outcome] += 1
    return result
