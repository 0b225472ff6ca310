"""Adjustments: a dispute resolved after settlement, co-signed by both operators (docs/billing.md).

An adjustment references the original job and its settlement statement and lists
signed lines per direction and rate class (a positive amount: the payer owes the payee
that much more than the statement said; negative: less).  It produces a note in the
current period:

- its issuer is the operator that issued the original job's invoice (else the one the
  adjustment makes money flow to);
- a **debit note** when the money flows to the issuer, a **credit note** when it flows
  from the issuer to the other operator; tax per direction and tax class as for
  invoices; due date = note date + payment terms;
- numbered gaplessly in the issuer's note series (the invoice series + ``-DN`` / ``-CN``),
  both operators seeing every number of it.

Co-signing (:func:`propose` then :func:`countersign`): the proposer seals the
adjustment to both operators, signs the entry and hands the proposal file to the other
operator, who opens it with its own key, checks it against its own replayed state as if
it were appended now, signs the same entry and appends it with both signatures.  An
adjustment entry without both signatures is refused by every replay
(``one_sided_adjustment``).  An adjustment is never voided: it is undone only by another
adjustment that ``reverses`` it with every line negated.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from billing.config import BillingTerms
from billing.documents import Adjustment, Line, Note, StatementRef, parse_document
from billing.errors import BillingInputError, RefusedError
from billing.invoices import charge_of, reference
from billing.ledgerio import LedgerView, OpenedEntry, Outgoing, prepare, sign_entry
from billing.state import BillingState, _note_lines, replay
from billing.statement import SettledStatement
from ledger_anchor import sm2
from ledger_anchor.entries import canonical_entry_bytes
from ledger_anchor.errors import LedgerError
from ledger_anchor.sealed import SealedDocument, open_sealed

PROPOSAL_FORMAT = "settlechain/adjustment-proposal/v1"


def build_adjustment(state: BillingState, settled: SettledStatement, lines: Sequence[Line], *, reason: str,
                     period: str, issue_date: dt.date, terms: BillingTerms, reverses: str | None = None
                     ) -> Adjustment:
    """The adjustment of ``settled``'s job with ``lines``, and its note, numbered for ``state``."""
    operators = tuple(sorted(settled.members))
    if not lines or not any(x.amount for x in lines):
        raise RefusedError("empty_adjustment", "an adjustment needs at least one line with a non-zero amount")
    for line in lines:
        if {line.payer, line.payee} != set(operators):
            raise RefusedError("foreign_line", f"a line from {line.payer} to {line.payee} is not between "
                                               f"{operators[0]} and {operators[1]}")
    note_lines = _note_lines(lines)
    charge = charge_of(note_lines, operators[0], operators[1], terms)
    if charge.gross < 0:
        charge = charge_of(note_lines, operators[1], operators[0], terms)
    if charge.gross == 0:
        raise RefusedError("empty_adjustment", "the adjustment moves no money (its lines cancel out)")
    invoice_id = state.invoice_of_job.get(settled.job_id)
    issuer = state.items[invoice_id].creditor if invoice_id else charge.creditor
    counterparty = operators[1] if issuer == operators[0] else operators[0]
    note_type = "debit_note" if charge.creditor == issuer else "credit_note"
    series = terms.series_for(issuer, counterparty, issue_date.year, "-DN" if note_type == "debit_note" else "-CN")
    number = state.next_number(issuer, series)
    note = Note(note_type, reference(series, number), issuer, series, number, issue_date,
                issue_date + dt.timedelta(days=terms.payment_terms_days), charge)
    existing = len(state.adjustments_by_job.get(settled.job_id, []))
    adjustment_id = f"ADJ-{settled.job_id}-{existing + 1}"[:128]
    while adjustment_id in state.adjustments:
        existing += 1
        adjustment_id = f"ADJ-{settled.job_id}-{existing + 1}"[:128]
    original = StatementRef(settled.job_id, settled.period, settled.ledger_index, settled.statement_sm3)
    return Adjustment(adjustment_id, operators, original, period, reason, tuple(lines), reverses, terms.currency,
                      terms.terms_sm3, note)


def reversal_lines(state: BillingState, adjustment_id: str) -> tuple[Line, ...]:
    record = state.adjustments.get(adjustment_id)
    if record is None:
        raise RefusedError("unknown_adjustment", f"no adjustment {adjustment_id}")
    if record.reversed_by is not None:
        raise RefusedError("already_reversed", f"{adjustment_id} was already reversed by {record.reversed_by}")
    return tuple(Line(x.payer, x.payee, x.service, x.call_type, x.time_band, x.tax_class, -x.amount)
                 for x in record.document.lines)


def _would_accept(view: LedgerView, terms: BillingTerms, statements: Any, entry: dict[str, Any],
                  adjustment: Adjustment, salt: bytes, signers: frozenset[str]) -> None:
    """Replay this member's documents plus ``adjustment`` as the next entry; raise the refusal, if any."""
    sealed = SealedDocument.from_entry(entry)
    probe = OpenedEntry(view.size, adjustment.KIND, adjustment, signers, sealed.members, salt, sealed.commitment)
    state = replay(LedgerView(view.member, view.size + 1, view.statements, view.sealing_keys,
                              [*view.documents, probe]), terms, statements)
    refused = [r for r in state.refused if r.index == view.size]
    if refused:
        raise RefusedError(refused[0].rule, refused[0].message)


def propose(view: LedgerView, state: BillingState, adjustment: Adjustment, member: str, signing_key: bytes,
            sealing_key: bytes, statements: Any) -> dict[str, Any]:
    """The proposal file: the sealed entry and the proposer's signature over it."""
    if member not in adjustment.operators:
        raise RefusedError("not_an_operator", f"{member} is not an operator of job {adjustment.original.job_id}")
    entry = prepare(view, Outgoing(adjustment, adjustment.operators))
    opened = open_sealed(entry, member, sealing_key)
    _would_accept(view, state.terms, statements, entry, adjustment, opened.salt, frozenset(adjustment.operators))
    return {"format": PROPOSAL_FORMAT, "proposer": member, "entry": entry,
            "signature": sign_entry(entry, signing_key).hex()}


def read_proposal(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        proposal = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BillingInputError(f"not an adjustment proposal: {exc}", file=str(path)) from None
    if not isinstance(proposal, dict) or proposal.get("format") != PROPOSAL_FORMAT:
        raise BillingInputError("not an adjustment proposal", file=str(path), column="format",
                                expected=PROPOSAL_FORMAT, found=repr(proposal.get("format") if isinstance(
                                    proposal, dict) else proposal))
    return proposal


def countersign(view: LedgerView, proposal: dict[str, Any], member: str, signing_key: bytes, sealing_key: bytes,
                member_keys: dict[str, bytes], terms: BillingTerms, statements: Any
                ) -> tuple[dict[str, Any], dict[str, bytes], Adjustment]:
    """Check a proposal as ``member`` and return (entry, both signatures, the adjustment)."""
    entry = proposal.get("entry")
    proposer = proposal.get("proposer")
    if not isinstance(entry, dict) or entry.get("kind") != "adjustment":
        raise RefusedError("not_an_adjustment", "the proposal does not hold an adjustment entry")
    opened = open_sealed(entry, member, sealing_key)
    adjustment = parse_document(opened.document, kind="adjustment")
    if member not in adjustment.operators or proposer not in adjustment.operators or proposer == member:
        raise RefusedError("one_sided_adjustment", f"the proposal must come from the other operator of "
                                                   f"{adjustment.operators}, found {proposer!r}")
    try:
        signature = bytes.fromhex(str(proposal.get("signature")))
        sm2.verify(member_keys[proposer], canonical_entry_bytes(entry), signature)
    except (ValueError, KeyError, LedgerError) as exc:
        raise RefusedError("one_sided_adjustment", f"the proposer's signature does not verify: {exc}") from None
    _would_accept(view, terms, statements, entry, adjustment, opened.salt, frozenset(adjustment.operators))
    return entry, {proposer: signature, member: sign_entry(entry, signing_key)}, adjustment


def parse_lines(specs: Sequence[str], operators: Sequence[str], terms: BillingTerms) -> tuple[Line, ...]:
    """``PAYER>PAYEE:SERVICE:CALL_TYPE:TIME_BAND:AMOUNT_FEN`` (amount signed), e.g.
    ``CMCC>CUCC:voice:domestic:peak:-1250``."""
    lines = []
    for spec in specs:
        try:
            direction, service, call_type, band, amount = spec.split(":")
            payer, payee = direction.split(">")
            value = int(amount)
        except ValueError:
            raise BillingInputError("malformed adjustment line", column="--line", line_word="option",
                                    expected="PAYER>PAYEE:SERVICE:CALL_TYPE:TIME_BAND:AMOUNT_FEN", found=repr(spec)
                                    ) from None
        if {payer, payee} != set(operators):
            raise BillingInputError("adjustment line between other operators", column="--line",
                                    line_word="option", expected=" and ".join(operators), found=repr(spec))
        lines.append(Line(payer, payee, service, call_type, band, terms.tax_class_of(service).name, value))
    return tuple(lines)
