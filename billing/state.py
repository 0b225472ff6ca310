"""A member's billing state: the replay, in ledger order, of the documents it can open.

There is no second source of truth: :func:`replay` rebuilds everything from the ledger
(via :func:`billing.ledgerio.read_ledger`) through the state machines of
:mod:`billing.machines`.  A document that breaks a rule is not applied; it is kept in
:attr:`BillingState.refused` with the rule and the reason (docs/billing.md lists every
rule).  Two members replaying the documents they share reach the same state for them,
because both see the same documents in the same order.

Items: what one operator owes another -- an invoice, a credit or debit note (from an
adjustment), or a net payment (from a netting run).  Each has a creditor, a debtor, a
gross amount, a due date, and three machines: its lifecycle (invoices), its payment
status and its overdue state.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from billing import machines
from billing.config import BillingTerms
from billing.documents import (
    Adjustment,
    Line,
    Fapiao,
    Hold,
    Invoice,
    InvoiceReceipt,
    InvoiceVoid,
    NettingAcceptance,
    NettingCall,
    NettingFinal,
    NettingResult,
    NettingSubmission,
    OverdueAlert,
    Payment,
    PaymentReversal,
    UnmatchedPayment,
    document_bytes,
)
from billing.errors import RefusedError
from billing.invoices import charge_of, draft_invoice, reference
from billing.ledgerio import LedgerView, OpenedEntry
from billing.membership import Finality
from billing.statement import SettledStatement
from ledger_anchor.commitment import verify_commitment
from ledger_anchor.errors import LedgerError

log = logging.getLogger(__name__)

ITEM_TYPES = ("invoice", "credit_note", "debit_note", "net_payment")


@dataclass(frozen=True)
class Refusal:
    index: int
    document_type: str
    rule: str
    message: str


@dataclass(frozen=True)
class Movement:
    """A change of an item's outstanding amount, for receivables over time and the journal."""

    index: int
    date: dt.date
    item_id: str
    what: str          # issued | payment | reversal | netted | voided
    amount: int        # change of what the debtor owes (fen; negative reduces it)
    reference: str


@dataclass
class Item:
    item_id: str
    item_type: str
    creditor: str
    debtor: str
    gross: int
    issue_date: dt.date
    due_date: dt.date
    period: str
    job_id: str | None
    index: int
    document: Any
    lifecycle: machines.InvoiceLifecycle | None = None
    status: machines.PaymentStatus = field(default_factory=machines.PaymentStatus)
    overdue: machines.OverdueState = field(default_factory=machines.OverdueState)
    paid: int = 0
    payments: list[str] = field(default_factory=list)
    receipt: int | None = None
    fapiao: Fapiao | None = None
    alerts: list[OverdueAlert] = field(default_factory=list)
    netted_in: str | None = None
    voided: InvoiceVoid | None = None

    @property
    def outstanding(self) -> int:
        return 0 if self.is_void else self.gross - self.paid

    @property
    def is_void(self) -> bool:
        return self.lifecycle is not None and machines.state_of(self.lifecycle) == "voided"

    @property
    def payment_status(self) -> str:
        return "void" if self.is_void else machines.state_of(self.status)

    @property
    def overdue_state(self) -> str:
        return machines.state_of(self.overdue)

    def days_past_due(self, as_of: dt.date) -> int:
        return (as_of - self.due_date).days

    def counterparty(self, member: str) -> str:
        return self.debtor if member == self.creditor else self.creditor


@dataclass
class PaymentRecord:
    index: int
    document: Payment
    reversed_by: str | None = None


@dataclass
class AdjustmentRecord:
    index: int
    document: Adjustment
    lifecycle: machines.AdjustmentLifecycle = field(default_factory=machines.AdjustmentLifecycle)
    reversed_by: str | None = None


@dataclass
class NettingRecord:
    call: NettingCall
    index: int
    machine: machines.NettingRun = field(default_factory=machines.NettingRun)
    submissions: dict[str, tuple[int, NettingSubmission, bytes]] = field(default_factory=dict)
    results: dict[str, tuple[int, NettingResult]] = field(default_factory=dict)
    acceptances: dict[str, int] = field(default_factory=dict)
    final: NettingFinal | None = None
    final_index: int | None = None
    netted_items: tuple[str, ...] = ()


@dataclass
class BillingState:
    member: str
    terms: BillingTerms
    items: dict[str, Item] = field(default_factory=dict)
    series_last: dict[tuple[str, str], int] = field(default_factory=dict)
    invoice_of_job: dict[str, str] = field(default_factory=dict)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    reversals: dict[str, PaymentReversal] = field(default_factory=dict)
    unmatched: dict[str, tuple[int, UnmatchedPayment]] = field(default_factory=dict)
    credits: dict[tuple[str, str], int] = field(default_factory=dict)    # (creditor, debtor) -> overpaid fen
    adjustments: dict[str, AdjustmentRecord] = field(default_factory=dict)
    adjustments_by_job: dict[str, list[str]] = field(default_factory=dict)
    netting: dict[str, NettingRecord] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    size: int = 0

    # -- queries ------------------------------------------------------------------------

    def open_items(self) -> list[Item]:
        return [i for i in self.items.values() if not i.is_void and i.outstanding > 0]

    def next_number(self, issuer: str, series: str) -> int:
        return self.series_last.get((issuer, series), 0) + 1

    def item_by_reference(self, text: str) -> Item | None:
        return self.items.get(text)

    def refusals_for(self, rule: str) -> list[Refusal]:
        return [r for r in self.refused if r.rule == rule]


# ---------------------------------------------------------------------------


def _require(condition: bool, rule: str, message: str) -> None:
    if not condition:
        raise RefusedError(rule, message)


class _Replay:
    def __init__(self, view: LedgerView, terms: BillingTerms, statements: Mapping[str, SettledStatement],
                 finality: Finality | None = None) -> None:
        self.view = view
        self.state = BillingState(view.member, terms, size=view.size, unreadable=list(view.unreadable))
        self.statements = statements
        self.finality = finality or Finality()

    def run(self, documents: Iterable[OpenedEntry]) -> BillingState:
        for opened in documents:
            handler = getattr(self, f"_{opened.document.TYPE}")
            try:
                handler(opened, opened.document)
            except RefusedError as exc:
                self.state.refused.append(Refusal(opened.index, opened.document.TYPE, exc.rule, str(exc)))
                log.info("ledger entry %d (%s) refused: %s", opened.index, opened.document.TYPE, exc)
            except machines.TransitionNotAllowed as exc:
                self.state.refused.append(Refusal(opened.index, opened.document.TYPE, "transition", str(exc)))
        return self.state

    # -- helpers --------------------------------------------------------------------------

    def _signed_by(self, opened: OpenedEntry, *members: str) -> None:
        _require(opened.signers == frozenset(members), "signers",
                 f"a {opened.document.TYPE} must be signed by exactly {', '.join(sorted(members))}, "
                 f"found {', '.join(sorted(opened.signers)) or 'nobody'}")

    def _sealed_to(self, opened: OpenedEntry, *members: str) -> None:
        _require(set(opened.recipients) == set(members), "recipients",
                 f"a {opened.document.TYPE} must be sealed to exactly {', '.join(sorted(members))}, "
                 f"found {', '.join(opened.recipients)}")

    def _item(self, item_id: str) -> Item:
        item = self.state.items.get(item_id)
        _require(item is not None, "unknown_item", f"no item {item_id!r} on the ledger (as {self.state.member} "
                                                   "can see it)")
        return item  # type: ignore[return-value]

    def _move(self, index: int, date: dt.date, item: Item, what: str, amount: int, ref: str) -> None:
        self.state.movements.append(Movement(index, date, item.item_id, what, amount, ref))

    def _statement_entry(self, job_id: str, ledger_index: int, before: int) -> Mapping[str, Any]:
        found = self.view.statements.get(job_id)
        _require(found is not None and found[0] == ledger_index and ledger_index < before, "unknown_statement",
                 f"no settlement statement of job {job_id!r} at ledger index {ledger_index} before {before}")
        return found[1]  # type: ignore[index]

    def _number(self, issuer: str, series: str, number: int, what: str) -> None:
        last = self.state.series_last.get((issuer, series), 0)
        _require(number > last, "duplicate_number",
                 f"{what} number {number} of series {series} by {issuer} is already taken (last is {last})")
        _require(number == last + 1, "number_gap",
                 f"{what} number {number} of series {series} by {issuer} leaves a gap (expected {last + 1})")
        self.state.series_last[(issuer, series)] = number

    def _new_item(self, item: Item) -> None:
        _require(item.item_id not in self.state.items, "duplicate_item", f"item {item.item_id} exists already")
        self.state.items[item.item_id] = item
        self._move(item.index, item.issue_date, item, "issued", item.gross, item.item_id)

    # -- invoices ---------------------------------------------------------------------------

    def _invoice(self, opened: OpenedEntry, doc: Invoice) -> None:
        self._signed_by(opened, doc.issuer)
        self._sealed_to(opened, doc.issuer, doc.payer)
        _require(doc.charge.creditor == doc.issuer and doc.charge.debtor == doc.payer, "parties",
                 "the invoice's charge must run from its payer to its issuer")
        _require(doc.invoice_id == reference(doc.series, doc.number), "reference",
                 f"invoice id {doc.invoice_id} is not {reference(doc.series, doc.number)}")
        terms = self.state.terms
        _require(doc.terms_sm3 == terms.terms_sm3, "terms",
                 f"invoice priced under other billing terms ({doc.terms_sm3[:16]}…, in force {terms.terms_sm3[:16]}…)")
        _require(doc.series == terms.series_for(doc.issuer, doc.payer, doc.issue_date.year), "series",
                 f"series {doc.series} is not the rules' series for {doc.issuer} -> {doc.payer}")
        _require(doc.due_date == doc.issue_date + dt.timedelta(days=terms.payment_terms_days), "due_date",
                 f"due date {doc.due_date} is not issue date + {terms.payment_terms_days} days")
        entry = self._statement_entry(doc.statement.job_id, doc.statement.ledger_index, opened.index)
        operators = entry.get("operators")
        if isinstance(operators, Mapping):
            _require({doc.issuer, doc.payer} == set(operators.values()), "parties",
                     f"job {doc.statement.job_id} is between {sorted(operators.values())}, not the invoice's parties")
        known = self.statements.get(doc.statement.job_id)
        settlement = known.settlement if known is not None else entry.get("settlement")
        self.finality.check(doc.statement.job_id, settlement if isinstance(settlement, str) else None,
                            before=opened.index, statement_index=doc.statement.ledger_index)
        check = charge_of(doc.charge.lines, doc.issuer, doc.payer, terms)
        _require(check == doc.charge, "amounts", "the invoice's tax lines or totals do not follow from its lines")
        settled = self.statements.get(doc.statement.job_id)
        if settled is not None:  # this member holds the statement: the lines must be exactly its amounts
            expected = draft_invoice(settled, doc.issuer, terms, issue_date=doc.issue_date)
            _require(expected.charge == doc.charge and expected.statement == doc.statement, "amounts",
                     f"the invoice's lines differ from statement {doc.statement.job_id} "
                     f"(gross {doc.charge.gross} vs {expected.charge.gross})")
        active = self.state.invoice_of_job.get(doc.statement.job_id)
        _require(active is None, "already_invoiced",
                 f"job {doc.statement.job_id} is already invoiced by {active}")
        if doc.replaces is not None:
            old = self._item(doc.replaces)
            _require(old.voided is not None and old.voided.replaced_by == doc.invoice_id, "replaces",
                     f"{doc.invoice_id} replaces {doc.replaces}, which was not voided in its favour")
        _require(doc.invoice_id not in self.state.items, "duplicate_number", f"{doc.invoice_id} exists already")
        self._number(doc.issuer, doc.series, doc.number, "invoice")
        item = Item(doc.invoice_id, "invoice", doc.issuer, doc.payer, doc.charge.gross, doc.issue_date,
                    doc.due_date, doc.statement.period, doc.statement.job_id, opened.index, doc,
                    lifecycle=machines.InvoiceLifecycle())
        item.lifecycle.send("finalize")  # type: ignore[union-attr]
        self._new_item(item)
        self.state.invoice_of_job[doc.statement.job_id] = doc.invoice_id

    def _invoice_void(self, opened: OpenedEntry, doc: InvoiceVoid) -> None:
        item = self._item(doc.invoice_id)
        _require(item.item_type == "invoice", "not_an_invoice", f"{doc.invoice_id} is a {item.item_type}")
        self._signed_by(opened, item.creditor)
        self._sealed_to(opened, item.creditor, item.debtor)
        _require(item.paid == 0, "void_paid", f"{doc.invoice_id} has {item.paid} fen paid: it cannot be voided "
                                              "(an adjustment's credit note corrects a paid invoice)")
        _require(item.netted_in is None, "void_netted", f"{doc.invoice_id} was settled by netting {item.netted_in}")
        if doc.replaced_by is not None:
            invoice = item.document
            _require(doc.replaced_by == reference(invoice.series, self.state.next_number(item.creditor,
                                                                                         invoice.series)),
                     "replaced_by", f"the replacement {doc.replaced_by} is not the series' next number")
        item.lifecycle.send("void")  # type: ignore[union-attr]
        item.voided = doc
        if item.overdue_state != "settled":
            item.overdue.send("settle")
        if self.state.invoice_of_job.get(item.job_id or "") == item.item_id:
            del self.state.invoice_of_job[item.job_id]  # type: ignore[arg-type]
        self._move(opened.index, doc.date, item, "voided", -item.gross, doc.invoice_id)

    def _invoice_receipt(self, opened: OpenedEntry, doc: InvoiceReceipt) -> None:
        item = self._item(doc.invoice_id)
        self._signed_by(opened, item.debtor)
        _require(not item.is_void, "voided", f"{doc.invoice_id} is void")
        _require(item.receipt is None, "duplicate_receipt", f"{doc.invoice_id} was acknowledged at {item.receipt}")
        item.receipt = opened.index

    def _fapiao(self, opened: OpenedEntry, doc: Fapiao) -> None:
        item = self._item(doc.invoice_id)
        self._signed_by(opened, item.creditor)
        _require(not item.is_void, "voided", f"{doc.invoice_id} is void")
        _require(item.fapiao is None, "duplicate_fapiao",
                 f"{doc.invoice_id} already has fapiao {item.fapiao.fapiao_number if item.fapiao else ''}")
        item.fapiao = doc

    def _hold(self, opened: OpenedEntry, doc: Hold) -> None:
        item = self._item(doc.item_id)
        _require(len(opened.signers) == 1 and next(iter(opened.signers)) in (item.creditor, item.debtor),
                 "signers", "a hold is signed by one of the item's two operators")
        self._sealed_to(opened, item.creditor, item.debtor)
        _require(not item.is_void, "voided", f"{doc.item_id} is void")
        if doc.release:
            item.status.send("release", outstanding=item.outstanding, paid=item.paid)
            if item.overdue_state == "held":
                item.overdue.send("release")
        else:
            item.status.send("hold")
            if item.overdue_state not in ("held", "settled"):
                item.overdue.send("hold")

    def _overdue_alert(self, opened: OpenedEntry, doc: OverdueAlert) -> None:
        item = self._item(doc.item_id)
        self._signed_by(opened, item.creditor)
        self._sealed_to(opened, item.creditor, item.debtor)
        _require(doc.from_state == item.overdue_state, "overdue_state",
                 f"the alert moves {doc.item_id} from {doc.from_state}, but it is {item.overdue_state}")
        rule = next((r for r in self.state.terms.overdue if r.state == doc.to_state), None)
        _require(rule is not None and rule.action == doc.action, "overdue_rule",
                 f"no overdue rule moves items to {doc.to_state} with action {doc.action}")
        _require(doc.days_past_due == item.days_past_due(doc.as_of) and doc.days_past_due >= rule.days_past_due  # type: ignore[union-attr]
                 and doc.outstanding == item.outstanding and doc.outstanding >= rule.min_outstanding,  # type: ignore[union-attr]
                 "overdue_condition", f"{doc.item_id} does not meet the condition of {doc.to_state} on {doc.as_of}")
        item.overdue.send(machines.OverdueState.EVENT_TO[doc.to_state])
        if doc.action == "dispute_hold" and item.payment_status in ("open", "partial"):
            item.status.send("hold")
        item.alerts.append(doc)

    # -- payments ---------------------------------------------------------------------------

    def _payment_known(self, payment_id: str) -> None:
        _require(payment_id not in self.state.payments and payment_id not in self.state.unmatched
                 and payment_id not in self.state.reversals, "duplicate_payment",
                 f"bank transaction {payment_id} was already recorded")

    def _payment(self, opened: OpenedEntry, doc: Payment) -> None:
        self._signed_by(opened, doc.payee)
        self._sealed_to(opened, doc.payee, doc.payer)
        self._payment_known(doc.payment_id)
        item = self._item(doc.item_id)
        _require((item.creditor, item.debtor) == (doc.payee, doc.payer), "parties",
                 f"{doc.item_id} is owed by {item.debtor} to {item.creditor}, not by {doc.payer} to {doc.payee}")
        _require(not item.is_void, "voided", f"{doc.item_id} is void")
        _require(doc.currency == self.state.terms.currency, "currency", f"payment in {doc.currency}")
        applied = min(doc.amount, max(item.outstanding, 0))
        _require(doc.applied == applied and doc.excess == doc.amount - applied, "amounts",
                 f"{doc.amount} fen against {item.outstanding} outstanding applies {applied}, "
                 f"the document says {doc.applied} (+{doc.excess} excess)")
        item.paid += applied
        item.payments.append(doc.payment_id)
        item.status.send("pay", outstanding=item.outstanding, paid=item.paid)
        if item.outstanding <= 0 and item.overdue_state != "settled":
            item.overdue.send("settle")
        if doc.excess:
            key = (doc.payee, doc.payer)
            self.state.credits[key] = self.state.credits.get(key, 0) + doc.excess
        self.state.payments[doc.payment_id] = PaymentRecord(opened.index, doc)
        self._move(opened.index, doc.booking_date, item, "payment", -applied, doc.payment_id)

    def _payment_reversal(self, opened: OpenedEntry, doc: PaymentReversal) -> None:
        self._signed_by(opened, doc.payee)
        self._sealed_to(opened, doc.payee, doc.payer)
        self._payment_known(doc.payment_id)
        record = self.state.payments.get(doc.reverses)
        _require(record is not None, "unknown_payment", f"no payment {doc.reverses} to reverse")
        _require(record.reversed_by is None, "already_reversed",  # type: ignore[union-attr]
                 f"payment {doc.reverses} was already reversed by {record.reversed_by}")  # type: ignore[union-attr]
        original = record.document  # type: ignore[union-attr]
        _require(doc.amount == original.amount and doc.item_id == original.item_id, "amounts",
                 f"a reversal must undo exactly payment {doc.reverses} ({original.amount} fen on {original.item_id})")
        item = self._item(doc.item_id)
        item.paid -= original.applied
        if original.excess:
            key = (doc.payee, doc.payer)
            self.state.credits[key] = self.state.credits.get(key, 0) - original.excess
        if item.overdue_state == "settled" and item.outstanding > 0:
            item.overdue.send("reopen")
        item.status.send("reverse", outstanding=item.outstanding, paid=item.paid)
        record.reversed_by = doc.payment_id  # type: ignore[union-attr]
        self.state.reversals[doc.payment_id] = doc
        self._move(opened.index, doc.booking_date, item, "reversal", original.applied, doc.payment_id)

    def _payment_unmatched(self, opened: OpenedEntry, doc: UnmatchedPayment) -> None:
        self._signed_by(opened, doc.payee)
        self._sealed_to(opened, doc.payee)
        self._payment_known(doc.payment_id)
        self.state.unmatched[doc.payment_id] = (opened.index, doc)

    # -- adjustments -------------------------------------------------------------------------

    def _adjustment(self, opened: OpenedEntry, doc: Adjustment) -> None:
        operators = tuple(sorted(doc.operators))
        _require(len(operators) == 2 and operators[0] != operators[1], "parties", "an adjustment is between two operators")
        _require(opened.signers == frozenset(operators), "one_sided_adjustment",
                 f"an adjustment must be co-signed by both {operators[0]} and {operators[1]}, "
                 f"found {', '.join(sorted(opened.signers)) or 'no signature'}")
        self._sealed_to(opened, *operators)
        _require(doc.adjustment_id not in self.state.adjustments, "duplicate_adjustment",
                 f"adjustment {doc.adjustment_id} exists already")
        entry = self._statement_entry(doc.original.job_id, doc.original.ledger_index, opened.index)
        job_ops = entry.get("operators")
        if isinstance(job_ops, Mapping):
            _require(set(operators) == set(job_ops.values()), "parties",
                     f"job {doc.original.job_id} is not between {operators}")
        terms = self.state.terms
        _require(doc.terms_sm3 == terms.terms_sm3 and doc.currency == terms.currency, "terms",
                 "the adjustment is priced under other billing terms")
        for line in doc.lines:
            _require({line.payer, line.payee} == set(operators), "foreign_line",
                     f"a line from {line.payer} to {line.payee} is not between the operators")
            _require(line.tax_class == terms.tax_class_of(line.service).name, "tax_class",
                     f"{line.service} is in tax class {terms.tax_class_of(line.service).name}, not {line.tax_class}")
        if doc.reverses is not None:
            target = self.state.adjustments.get(doc.reverses)
            _require(target is not None, "unknown_adjustment", f"no adjustment {doc.reverses} to reverse")
            _require(target.reversed_by is None, "already_reversed",  # type: ignore[union-attr]
                     f"adjustment {doc.reverses} was already reversed by {target.reversed_by}")  # type: ignore[union-attr]
            want = sorted((x.payer, x.payee, x.service, x.call_type, x.time_band, x.tax_class, -x.amount)
                          for x in target.document.lines)  # type: ignore[union-attr]
            got = sorted((x.payer, x.payee, x.service, x.call_type, x.time_band, x.tax_class, x.amount)
                         for x in doc.lines)
            _require(got == want and doc.original == target.document.original, "reversal_mismatch",  # type: ignore[union-attr]
                     f"a reversal must negate every line of {doc.reverses} exactly, for the same job")
        note = doc.note
        check = charge_of(note.charge.lines, note.charge.creditor, note.charge.debtor, terms)
        _require(check == note.charge and note.charge.gross > 0, "amounts",
                 "the note's tax lines or totals do not follow from its lines")
        _require(_note_lines(doc.lines) == tuple(sorted(note.charge.lines, key=_line_key)), "amounts",
                 "the note's lines are not the adjustment's lines, seen from its creditor")
        _require(note.issuer in operators, "parties", f"note issuer {note.issuer} is not an operator")
        counterparty = operators[1] if note.issuer == operators[0] else operators[0]
        want_type = "debit_note" if note.charge.creditor == note.issuer else "credit_note"
        _require(note.note_type == want_type, "note_type", f"the note must be a {want_type}")
        _require(note.series == terms.series_for(note.issuer, counterparty, note.issue_date.year,
                                                 "-DN" if want_type == "debit_note" else "-CN"), "series",
                 f"series {note.series} is not the rules' note series")
        _require(note.note_id == reference(note.series, note.number), "reference", "note id is not series-number")
        _require(note.due_date == note.issue_date + dt.timedelta(days=terms.payment_terms_days), "due_date",
                 "the note's due date is not issue date + the payment terms")
        self._number(note.issuer, note.series, note.number, note.note_type)
        record = AdjustmentRecord(opened.index, doc)
        if doc.reverses is not None:
            target = self.state.adjustments[doc.reverses]
            target.lifecycle.send("reverse")
            target.reversed_by = doc.adjustment_id
        self.state.adjustments[doc.adjustment_id] = record
        self.state.adjustments_by_job.setdefault(doc.original.job_id, []).append(doc.adjustment_id)
        self._new_item(Item(note.note_id, note.note_type, note.charge.creditor, note.charge.debtor,
                            note.charge.gross, note.issue_date, note.due_date, doc.period, doc.original.job_id,
                            opened.index, doc))

    # -- netting ------------------------------------------------------------------------------

    def _netting_call(self, opened: OpenedEntry, doc: NettingCall) -> None:
        self._signed_by(opened, doc.agent)
        self._sealed_to(opened, *doc.members)
        _require(doc.agent == self.state.terms.netting_agent, "netting_agent",
                 f"{doc.agent} is not the rules' netting agent ({self.state.terms.netting_agent})")
        _require(doc.netting_id not in self.state.netting, "duplicate_netting", f"{doc.netting_id} exists already")
        _require(doc.cutoff <= opened.index, "cutoff", "a netting run cannot net a ledger it has not seen")
        self.state.netting[doc.netting_id] = NettingRecord(doc, opened.index)

    def _run(self, netting_id: str) -> NettingRecord:
        record = self.state.netting.get(netting_id)
        _require(record is not None, "unknown_netting", f"no netting run {netting_id}")
        return record  # type: ignore[return-value]

    def _netting_submission(self, opened: OpenedEntry, doc: NettingSubmission) -> None:
        record = self._run(doc.netting_id)
        self._signed_by(opened, doc.member)
        self._sealed_to(opened, doc.member, record.call.agent)
        _require(doc.member in record.call.members and doc.agent == record.call.agent, "parties",
                 f"{doc.member} is not part of {doc.netting_id}")
        _require(machines.state_of(record.machine) == "collecting", "netting_state",
                 f"{doc.netting_id} is no longer collecting submissions")
        _require(doc.member not in record.submissions, "duplicate_submission",
                 f"{doc.member} already submitted to {doc.netting_id}")
        record.submissions[doc.member] = (opened.index, doc, opened.salt)

    def _netting_result(self, opened: OpenedEntry, doc: NettingResult) -> None:
        record = self._run(doc.netting_id)
        self._signed_by(opened, record.call.agent)
        self._sealed_to(opened, doc.member, record.call.agent)
        _require(doc.member not in record.results, "duplicate_result", f"{doc.member} already has a result")
        own = record.submissions.get(doc.member)
        if own is not None:  # the member (or the agent) checks the result against the submission
            _require(own[1].net_position == doc.net_position, "netting_position",
                     f"the result gives {doc.member} a net position of {doc.net_position}, "
                     f"it submitted {own[1].net_position}")
        flow = sum(p.amount if p.payee == doc.member else -p.amount for p in doc.payments
                   if doc.member in (p.payer, p.payee))
        _require(flow == doc.net_position and all(doc.member in (p.payer, p.payee) for p in doc.payments),
                 "netting_position", f"the payments of {doc.member} do not add up to its net position")
        if machines.state_of(record.machine) == "collecting":
            record.machine.send("compute")
        record.results[doc.member] = (opened.index, doc)

    def _netting_acceptance(self, opened: OpenedEntry, doc: NettingAcceptance) -> None:
        record = self._run(doc.netting_id)
        self._signed_by(opened, doc.member)
        self._sealed_to(opened, doc.member, record.call.agent)
        result = record.results.get(doc.member)
        _require(result is not None and result[1].plan_commitment == doc.plan_commitment, "netting_plan",
                 f"{doc.member} accepts a plan it was not given")
        record.acceptances[doc.member] = opened.index

    def _netting_final(self, opened: OpenedEntry, doc: NettingFinal) -> None:
        record = self._run(doc.netting_id)
        self._signed_by(opened, record.call.agent)
        self._sealed_to(opened, *record.call.members)
        _require(record.final is None, "duplicate_final", f"{doc.netting_id} is final already")
        members = sorted(p.member for p in doc.acceptances)
        _require(members == sorted(record.call.members), "netting_incomplete",
                 f"{doc.netting_id} is final only when every member accepted; proofs for {members}")
        for proof in doc.acceptances:
            entry = self.view.entries_by_index.get(proof.ledger_index)
            _require(entry is not None and entry.get("kind") == "netting"
                     and _entry_signers(entry) == {proof.member} and proof.ledger_index < opened.index,
                     "netting_proof", f"ledger entry {proof.ledger_index} is not {proof.member}'s netting entry")
            acceptance = NettingAcceptance(doc.netting_id, proof.member, doc.plan_commitment)
            try:
                verify_commitment(str(entry.get("commitment")), "netting", bytes.fromhex(proof.salt),  # type: ignore[union-attr]
                                  document_bytes(acceptance))
            except (LedgerError, ValueError) as exc:
                raise RefusedError("netting_proof", f"{proof.member}'s acceptance does not open: {exc}") from None
        mine = record.results.get(self.state.member)
        if mine is not None:
            _require(mine[1].plan_commitment == doc.plan_commitment, "netting_plan",
                     "the final plan is not the one this member was given")
        record.final = doc
        record.final_index = opened.index
        if machines.state_of(record.machine) == "collecting":  # a member given no result sees only the call
            record.machine.send("compute")
        record.machine.send("accept", missing=0)
        self._settle_by_netting(opened, record)

    def _settle_by_netting(self, opened: OpenedEntry, record: NettingRecord) -> None:
        """Settle what the run netted: each item's outstanding amount *at the cutoff* (a
        payment booked after the cutoff becomes the debtor's credit)."""
        member = self.state.member
        call = record.call
        at_cutoff = state_at(self.view, self.state.terms, self.statements, call.cutoff, self.finality)
        netted = []
        for then in netting_items(at_cutoff, call, member):
            item = self.state.items[then.item_id]
            amount = then.outstanding
            applied = min(amount, max(item.outstanding, 0))
            item.paid += applied
            if amount > applied:
                key = (item.creditor, item.debtor)
                self.state.credits[key] = self.state.credits.get(key, 0) + amount - applied
            item.netted_in = call.netting_id
            if item.payment_status != "held":
                item.status.send("pay", outstanding=item.outstanding, paid=item.paid)
            if item.overdue_state != "settled" and item.outstanding <= 0:
                item.overdue.send("settle")
            self._move(opened.index, call.settlement_date, item, "netted", -applied, call.netting_id)
            netted.append(item.item_id)
        record.netted_items = tuple(netted)
        result = record.results.get(member)
        if result is None:
            return
        for payment in result[1].payments:
            due = call.settlement_date
            self._new_item(Item(payment.reference, "net_payment", payment.payee, payment.payer, payment.amount,
                                due, due, call.period, None, opened.index, result[1]))


def _entry_signers(entry: Mapping[str, Any]) -> set[str]:
    signatures = entry.get("signatures")
    if not isinstance(signatures, list):
        return set()
    return {s.get("signer") for s in signatures if isinstance(s, Mapping)}


def _line_key(line: Any) -> tuple:
    return (line.payer, line.payee, line.service, line.call_type, line.time_band)


def _note_lines(lines: Iterable[Any]) -> tuple:
    """An adjustment's signed lines as a note's non-negative lines: a negative amount owed by
    payer to payee is the same amount owed by payee to payer."""
    result = []
    for x in lines:
        if x.amount >= 0:
            result.append(x)
        else:
            result.append(Line(x.payee, x.payer, x.service, x.call_type, x.time_band, x.tax_class, -x.amount))
    return tuple(sorted((x for x in result if x.amount), key=_line_key))


def netting_items(state: BillingState, call: NettingCall, member: str) -> list[Item]:
    """The items a netting run settles for ``member``: of the run's period, entered before its
    cutoff, open and not held at the cutoff, between two members of the run."""
    chosen = []
    for item in state.items.values():
        if item.item_type == "net_payment" or item.period != call.period or item.index >= call.cutoff:
            continue
        if member not in (item.creditor, item.debtor) or item.counterparty(member) not in call.members:
            continue
        if item.is_void or item.outstanding <= 0 or item.payment_status == "held" or item.netted_in:
            continue
        chosen.append(item)
    return chosen


def replay(view: LedgerView, terms: BillingTerms, statements: Mapping[str, SettledStatement] | None = None,
           finality: Finality | None = None) -> BillingState:
    """The billing state of ``view.member`` from the documents it opened, in ledger order."""
    return _Replay(view, terms, statements or {}, finality).run(view.documents)


def state_at(view: LedgerView, terms: BillingTerms, statements: Mapping[str, SettledStatement] | None,
             size: int, finality: Finality | None = None) -> BillingState:
    """The state as it was when the ledger had ``size`` entries."""
    state = _Replay(view, terms, statements or {}, finality).run(d for d in view.documents if d.index < size)
    state.size = size
    return state
