"""One member's billing: its keys, its ledger, its state, and every action it can take.

:class:`BillingMember` is what the CLI and the demo use.  Each action reads the ledger,
replays the member's state (:mod:`billing.state`), checks the action against it, and
appends the sealed document(s) in one batch; nothing is kept between actions except the
ledger (the state is always derived).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from billing import membership
from billing.adjustments import build_adjustment, countersign, propose, reversal_lines
from billing.bank import read_bank_file
from billing.config import BillingTerms
from billing.documents import (
    AcceptanceProof,
    Adjustment,
    Fapiao,
    Hold,
    Invoice,
    InvoiceReceipt,
    InvoiceVoid,
    Line,
    NettingAcceptance,
    NettingCall,
    NettingFinal,
    NettingResult,
    NettingSubmission,
    OverdueAlert,
    UnmatchedPayment,
    document_json,
    parse_document,
)
from billing.errors import BillingInputError, RefusedError
from billing.invoices import draft_invoice, finalize
from billing.ledgerio import (
    LedgerView,
    Outgoing,
    append_documents,
    load_or_create_sealing_key,
    publish_sealing_key,
    read_ledger,
)
from billing.matching import MatchOutcome, match_transactions
from billing.netting import bilateral_amounts, check_submissions, netting_id_for, pair_commitment, plan
from billing.overdue import plan_sweep
from billing.state import BillingState, NettingRecord, netting_items, replay, state_at
from billing.statement import SettledStatement, find_statement_entry, read_statement_file, settled_statement
from ledger_anchor import open_ledger, sm2
from ledger_anchor.config import ConsortiumConfig, load_config
from ledger_anchor.sm3 import sm3

log = logging.getLogger(__name__)


class BillingMember:
    """``member``'s billing over the consortium's ledger.  Use as a context manager."""

    def __init__(self, consortium: str | os.PathLike[str] | ConsortiumConfig, member: str, terms: BillingTerms,
                 *, ledger: Any | None = None, statements: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.config = consortium if isinstance(consortium, ConsortiumConfig) else load_config(consortium)
        self.config.member(member)  # refuses an unknown member
        self.member = member
        self.terms = terms
        self._own_ledger = ledger is None
        self.ledger = ledger if ledger is not None else open_ledger(self.config, member_id=member)
        self.signing_key = sm2.load_private_key(self.config.member_key_path(member))
        self.sealing_key, created = load_or_create_sealing_key(self.config.base_dir, member)
        if created:
            log.info("created the sealing key of %s", member)
        self.statements: dict[str, SettledStatement] = {}
        self._opened: dict[int, Any] = {}   # ledger index -> (commitment, opened document): entries never change
        for path in statements:
            self.read_statement(path)

    def close(self) -> None:
        if self._own_ledger:
            self.ledger.close()

    def __enter__(self) -> BillingMember:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------

    def publish_keys(self) -> int | None:
        """Publish this member's sealing key on the ledger if it is not the one in force."""
        return publish_sealing_key(self.ledger, self.member, self.signing_key, self.sealing_key)

    def view(self, until: int | None = None) -> LedgerView:
        view = read_ledger(self.ledger, self.member, self.sealing_key, until=until, cache=self._opened)
        view.members_in_force = membership.members_in_force(self.config, self.ledger)
        return view

    def state(self, view: LedgerView | None = None) -> BillingState:
        return replay(view or self.view(), self.terms, self.statements, membership.Finality(self.ledger))

    def state_at(self, size: int) -> BillingState:
        return state_at(self.view(), self.terms, self.statements, size, membership.Finality(self.ledger))

    def read_statement(self, path: str | os.PathLike[str]) -> SettledStatement:
        """Read a statement.json this member holds and check it against the ledger."""
        statement = read_statement_file(path)
        job_id = statement.get("job_id")
        if not isinstance(job_id, str):
            raise BillingInputError("missing job_id", file=str(path), column="job_id", expected="a string",
                                    found=repr(job_id))
        index, entry = find_statement_entry(self.ledger, job_id)
        settled = settled_statement(statement, entry, index, membership.signing_keys(self.config, self.ledger, index),
                                    source=str(path))
        self.statements[job_id] = settled
        return settled

    # -- invoices -------------------------------------------------------------------------

    def draft_invoice(self, statement: str | os.PathLike[str] | SettledStatement, issue_date: dt.date) -> Invoice:
        settled = statement if isinstance(statement, SettledStatement) else self.read_statement(statement)
        membership.require_final(settled, self.ledger)
        return draft_invoice(settled, self.member, self.terms, issue_date=issue_date)

    def finalize_invoice(self, draft: Invoice) -> Invoice:
        """Give ``draft`` its gapless number and append it, sealed to both operators."""
        if draft.issuer != self.member:
            raise RefusedError("not_issuer", f"{self.member} cannot finalise an invoice issued by {draft.issuer}")
        settled = self.statements.get(draft.statement.job_id)
        if settled is None:
            raise RefusedError("unknown_statement", f"read the statement of job {draft.statement.job_id} first")
        membership.require_final(settled, self.ledger)
        fresh = draft_invoice(settled, self.member, self.terms, issue_date=draft.issue_date, replaces=draft.replaces)
        if dataclasses.replace(draft, number=0, invoice_id=fresh.invoice_id) != fresh:
            raise RefusedError("draft_changed", "the draft no longer matches its statement and the billing terms")
        view = self.view()
        state = self.state(view)
        active = state.invoice_of_job.get(draft.statement.job_id)
        if active is not None:
            raise RefusedError("already_invoiced", f"job {draft.statement.job_id} is already invoiced by {active}")
        invoice = finalize(draft, state.next_number(self.member, draft.series))
        self._append(view, [Outgoing(invoice, (invoice.issuer, invoice.payer))])
        return invoice

    def issue_invoice(self, statement: str | os.PathLike[str] | SettledStatement, issue_date: dt.date) -> Invoice:
        return self.finalize_invoice(self.draft_invoice(statement, issue_date))

    def void_invoice(self, invoice_id: str, reason: str, date: dt.date, *, reissue: bool = True
                     ) -> tuple[InvoiceVoid, Invoice | None]:
        """Void an unpaid invoice; with ``reissue``, append in the same batch a new invoice for
        the same statement (issued on ``date``) that replaces it."""
        view = self.view()
        state = self.state(view)
        item = state.items.get(invoice_id)
        if item is None or item.item_type != "invoice":
            raise RefusedError("unknown_item", f"no invoice {invoice_id}")
        if item.creditor != self.member:
            raise RefusedError("not_issuer", f"{invoice_id} was issued by {item.creditor}")
        if item.is_void:
            raise RefusedError("transition", f"{invoice_id} is void already")
        if item.paid:
            raise RefusedError("void_paid", f"{invoice_id} has {item.paid} fen paid; correct it by an adjustment")
        replacement = None
        outgoing: list[Outgoing] = []
        if reissue:
            settled = self.statements.get(item.job_id or "")
            if settled is None:
                raise RefusedError("unknown_statement", f"read the statement of job {item.job_id} to reissue")
            membership.require_final(settled, self.ledger)
            draft = draft_invoice(settled, self.member, self.terms, issue_date=date, replaces=invoice_id)
            replacement = finalize(draft, state.next_number(self.member, draft.series))
        void = InvoiceVoid(invoice_id, reason, replacement.invoice_id if replacement else None, date)
        outgoing.append(Outgoing(void, (item.creditor, item.debtor)))
        if replacement is not None:
            outgoing.append(Outgoing(replacement, (item.creditor, item.debtor)))
        self._append(view, outgoing)
        return void, replacement

    def acknowledge(self, invoice_id: str, date: dt.date) -> InvoiceReceipt:
        view = self.view()
        item = self.state(view).items.get(invoice_id)
        if item is None or item.debtor != self.member:
            raise RefusedError("not_payer", f"{self.member} is not the payer of {invoice_id}")
        receipt = InvoiceReceipt(invoice_id, date)
        self._append(view, [Outgoing(receipt, (item.creditor, item.debtor))])
        return receipt

    def attach_fapiao(self, invoice_id: str, fapiao_number: str, file: str | os.PathLike[str], date: dt.date
                      ) -> Fapiao:
        try:
            digest = sm3(Path(file).read_bytes()).hex()
        except OSError as exc:
            raise BillingInputError(f"cannot read the fapiao file: {exc}", file=str(file)) from None
        view = self.view()
        item = self.state(view).items.get(invoice_id)
        if item is None or item.creditor != self.member:
            raise RefusedError("not_issuer", f"{self.member} did not issue {invoice_id}")
        doc = Fapiao(invoice_id, fapiao_number, digest, date)
        self._append(view, [Outgoing(doc, (item.creditor, item.debtor))])
        return doc

    def hold(self, item_id: str, reason: str, date: dt.date, *, release: bool = False) -> Hold:
        view = self.view()
        item = self.state(view).items.get(item_id)
        if item is None or self.member not in (item.creditor, item.debtor):
            raise RefusedError("unknown_item", f"no item {item_id} between {self.member} and another operator")
        doc = Hold(item_id, release, reason, date)
        self._append(view, [Outgoing(doc, (item.creditor, item.debtor))])
        return doc

    # -- payments ---------------------------------------------------------------------------

    def import_payments(self, path: str | os.PathLike[str], *, account: str = "", dry_run: bool = False
                        ) -> list[MatchOutcome]:
        """Match every transaction of a bank file (camt.053/054 or CSV) and record the matches
        (``payment``, ``payment_reversal``) and the unmatched credits (``payment_unmatched``)."""
        bank = read_bank_file(path, account=account)
        view = self.view()
        outcomes = match_transactions(bank, self.state(view), self.member)
        outgoing = []
        for outcome in outcomes:
            doc = outcome.document
            if doc is None:
                continue
            recipients = (self.member,) if isinstance(doc, UnmatchedPayment) else (doc.payee, doc.payer)
            outgoing.append(Outgoing(doc, recipients))
        if outgoing and not dry_run:
            self._append(view, outgoing)
        return outcomes

    # -- overdue --------------------------------------------------------------------------------

    def sweep(self, as_of: dt.date) -> list[OverdueAlert]:
        """Record the overdue alerts due on ``as_of`` (hooks are the caller's, after this)."""
        view = self.view()
        state = self.state(view)
        alerts = plan_sweep(state, as_of)
        if alerts:
            self._append(view, [Outgoing(a, (state.items[a.item_id].creditor, state.items[a.item_id].debtor))
                                for a in alerts])
        return alerts

    # -- adjustments --------------------------------------------------------------------------

    def propose_adjustment(self, job_id: str, lines: Sequence[Line], *, reason: str, period: str,
                           issue_date: dt.date, reverses: str | None = None) -> dict[str, Any]:
        """A proposal file for the other operator to countersign (nothing is appended yet)."""
        settled = self.statements.get(job_id)
        if settled is None:
            raise RefusedError("unknown_statement", f"read the statement of job {job_id} first (--statement)")
        view = self.view()
        state = self.state(view)
        if reverses is not None:
            lines = reversal_lines(state, reverses)
        adjustment = build_adjustment(state, settled, lines, reason=reason, period=period, issue_date=issue_date,
                                      terms=self.terms, reverses=reverses)
        return propose(view, state, adjustment, self.member, self.signing_key, self.sealing_key, self.statements)

    def countersign_adjustment(self, proposal: dict[str, Any]) -> Adjustment:
        """Check the other operator's proposal and append it with both signatures."""
        view = self.view()
        entry, signatures, adjustment = countersign(
            view, proposal, self.member, self.signing_key, self.sealing_key,
            membership.signing_keys(self.config, self.ledger), self.terms, self.statements)
        index = self.ledger.append(entry, signatures).index
        refused = [r for r in self.state().refused if r.index == index]
        if refused:
            raise RefusedError(refused[0].rule, refused[0].message)
        return adjustment

    # -- netting ------------------------------------------------------------------------------

    def open_netting(self, period: str, settlement_date: dt.date, members: Sequence[str] | None = None
                     ) -> NettingCall:
        if self.terms.netting_agent != self.member:
            raise RefusedError("netting_agent", f"only the rules' netting agent ({self.terms.netting_agent}) "
                                                "opens a netting run")
        view = self.view()
        chosen = tuple(sorted(members or [m.id for m in self.config.members]))
        call = NettingCall(netting_id_for(period, view.size), period, view.size, self.member, chosen,
                           settlement_date)
        self._append(view, [Outgoing(call, chosen)])
        return call

    def _netting_record(self, state: BillingState, netting_id: str | None) -> NettingRecord:
        runs = [r for r in state.netting.values() if netting_id in (None, r.call.netting_id)]
        if netting_id is None:
            runs = [r for r in runs if r.final is None]
        if len(runs) != 1:
            raise RefusedError("unknown_netting", f"expected one open netting run{' ' + netting_id if netting_id else ''}, "
                                                  f"found {len(runs)}; pass --netting-id")
        return runs[0]

    def submit_netting(self, netting_id: str | None = None) -> NettingSubmission:
        view = self.view()
        record = self._netting_record(self.state(view), netting_id)
        call = record.call
        at_cutoff = state_at(view, self.terms, self.statements, call.cutoff, membership.Finality(self.ledger))
        amounts = bilateral_amounts(at_cutoff, self.member, call.netting_id, call.members, call.period, call.cutoff)
        included = netting_items(at_cutoff, call, self.member)
        held = [i for i in at_cutoff.items.values() if i.period == call.period and i.payment_status == "held"
                and self.member in (i.creditor, i.debtor) and not i.is_void]
        submission = NettingSubmission(
            call.netting_id, call.period, self.member, call.agent, sum(amounts.values()),
            tuple((cp, pair_commitment(view, self.member, cp, call.netting_id, call.cutoff, amount))
                  for cp, amount in sorted(amounts.items())), len(included), len(held))
        self._append(view, [Outgoing(submission, (self.member, call.agent))])
        return submission

    def compute_netting(self, netting_id: str | None = None) -> list[NettingResult]:
        view = self.view()
        record = self._netting_record(self.state(view), netting_id)
        if record.call.agent != self.member:
            raise RefusedError("netting_agent", f"only {record.call.agent} computes {record.call.netting_id}")
        positions = check_submissions(record)
        payments, plan_commitment = plan(record, positions)
        results = [NettingResult(record.call.netting_id, record.call.period, m, self.member, positions[m],
                                 tuple(p for p in payments if m in (p.payer, p.payee)), len(positions),
                                 len(payments), plan_commitment) for m in sorted(positions)]
        self._append(view, [Outgoing(r, (r.member, self.member)) for r in results])
        return results

    def accept_netting(self, netting_id: str | None = None) -> NettingAcceptance:
        view = self.view()
        record = self._netting_record(self.state(view), netting_id)
        result = record.results.get(self.member)
        if result is None:
            raise RefusedError("netting_state", f"{record.call.netting_id} has no result for {self.member} yet")
        acceptance = NettingAcceptance(record.call.netting_id, self.member, result[1].plan_commitment)
        self._append(view, [Outgoing(acceptance, (self.member, record.call.agent))])
        return acceptance

    def finalize_netting(self, netting_id: str | None = None) -> NettingFinal:
        view = self.view()
        record = self._netting_record(self.state(view), netting_id)
        if record.call.agent != self.member:
            raise RefusedError("netting_agent", f"only {record.call.agent} finalises {record.call.netting_id}")
        missing = [m for m in record.call.members if m not in record.acceptances]
        if missing:
            raise RefusedError("netting_incomplete", f"{record.call.netting_id}: not accepted by {', '.join(missing)}")
        by_index = {d.index: d for d in view.documents}
        proofs = tuple(AcceptanceProof(m, record.acceptances[m], by_index[record.acceptances[m]].salt.hex())
                       for m in sorted(record.call.members))
        commitment = next(iter(record.results.values()))[1].plan_commitment
        final = NettingFinal(record.call.netting_id, commitment, proofs)
        self._append(view, [Outgoing(final, record.call.members)])
        return final

    def _append(self, view: LedgerView, outgoing: Sequence[Outgoing]) -> list[int]:
        """Append, then replay: every appended document must have been accepted (a document the
        replay refuses stays on the ledger and is ignored by every state; say so loudly)."""
        indices = append_documents(self.ledger, view, self.member, self.signing_key, outgoing)
        refused = [r for r in self.state().refused if r.index in indices]
        if refused:
            raise RefusedError(refused[0].rule, f"ledger entry {refused[0].index} was appended but the replay "
                                                f"refuses it: {refused[0].message}")
        return indices


def save_draft(invoice: Invoice, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.write_text(json.dumps(document_json(invoice), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def load_draft(path: str | os.PathLike[str]) -> Invoice:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BillingInputError(f"cannot read the draft: {exc}", file=str(path)) from None
    doc = parse_document(data)
    if not isinstance(doc, Invoice):
        raise BillingInputError("not an invoice draft", file=str(path), column="type", expected="invoice",
                                found=doc.TYPE)
    return doc


def statements_in(folders: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """statement.json files given directly or inside the given folders."""
    found: list[Path] = []
    for entry in folders:
        path = Path(entry)
        found.extend(sorted(path.rglob("statement.json")) if path.is_dir() else [path])
    return found
