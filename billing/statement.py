"""The settlement statement as billing reads it: the party's ``statement.json`` checked against the ledger.

Billing never trusts a statement file by itself.  It finds the job's
``settlement_statement`` entry on the ledger, checks that the file opens it, and that
both operators signed the entry, before it takes any amount from the file
(docs/billing.md "From statement to invoice").

What billing needs from a statement (the adapter below is the one place that knows the
file's field names, so a change of the statement format is a change here only):

- ``job_id``, ``period``, ``operators`` {``A``, ``B``: member id}, ``settlement``;
- ``totals.agreed_charge`` (fen);
- ``classes``: the agreed amounts per direction and rate class, party-neutral::

      [{"payer": "A", "payee": "B", "service": "voice", "call_type": "domestic",
        "time_band": "peak", "agreed_charge": 123456}, ...]

  summing exactly to ``totals.agreed_charge``.  An invoice has a line per direction and
  rate class, so a statement without ``classes`` cannot be invoiced and is refused with
  that reason.

How a statement opens its ledger entry (:func:`opens_entry`): the entry holds a salted
commitment instead of amounts (the privacy issue's format); the file's
``ledger.commitment_salt`` and its canonical bytes (without ``signatures`` and ``ledger``)
must open it (:func:`ledger_anchor.commitment.open_document`).  Both operators signed
the entry (checked against the membership in force at it) and the statement itself (the
file's ``signatures``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billing.errors import BillingInputError, StatementError
from ledger_anchor import sm2
from ledger_anchor.commitment import document_bytes, document_signatures, open_document
from ledger_anchor.entries import canonical_entry_bytes, parse_signature_list
from ledger_anchor.errors import LedgerError
from ledger_anchor.sm3 import sm3

STATEMENT_KIND = "settlement_statement"
ROLES = ("A", "B")
SERVICES = ("voice", "sms", "data")
#: The adapter's field names, in one place.
CLASSES_FIELD = "classes"


@dataclass(frozen=True)
class SettledClass:
    """Agreed money ``payer`` owes ``payee`` (member ids) for one rate class."""

    payer: str
    payee: str
    service: str
    call_type: str
    time_band: str
    amount: int


@dataclass(frozen=True)
class SettledStatement:
    job_id: str
    period: str
    operators: Mapping[str, str]          # role -> member id
    settlement: str                       # automatic | manual_review
    agreed_charge: int
    classes: tuple[SettledClass, ...]
    ledger_index: int
    statement_sm3: str                    # SM3 of the statement's canonical bytes without signatures
    signers: tuple[str, ...]

    @property
    def members(self) -> tuple[str, str]:
        return self.operators["A"], self.operators["B"]

    def owed(self, creditor: str) -> int:
        """Net agreed money the other operator owes ``creditor`` (negative: ``creditor`` owes)."""
        return sum(c.amount if c.payee == creditor else -c.amount for c in self.classes)


def read_statement_file(path: str | Path) -> dict[str, Any]:
    source = str(path)
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BillingInputError("statement file not found", file=source) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BillingInputError(f"not a statement.json: {exc}", file=source) from None
    if not isinstance(value, dict):
        raise BillingInputError("not a statement.json", file=source, expected="a JSON object",
                                found=type(value).__name__)
    return value


def signing_bytes(statement: Mapping[str, Any]) -> bytes:
    """What both operators signed and committed to (RFC 8785, without signatures and ledger)."""
    return document_bytes(statement)


def find_statement_entry(ledger: Any, job_id: str, *, chunk: int = 1024) -> tuple[int, dict[str, Any]]:
    """The index and entry (with signatures) of the job's settlement statement on ``ledger``."""
    end = ledger.size()
    while end > 0:
        start = max(0, end - chunk)
        for offset, entry in enumerate(reversed(ledger.entries(start, end))):
            if entry.get("kind") == STATEMENT_KIND and entry.get("job_id") == job_id:
                return end - 1 - offset, entry
        end = start
    raise StatementError(f"no settlement_statement for job {job_id!r} on the ledger: the job never settled, "
                         "or this is another consortium's ledger")


def opens_entry(statement: Mapping[str, Any], entry: Mapping[str, Any]) -> None:
    """Return nothing if ``statement`` is the document the ledger entry commits to; else raise."""
    try:
        open_document(statement, entry)
    except LedgerError as exc:
        raise StatementError(f"statement.json does not open the ledger's commitment: {exc}") from None


def _classes(statement: Mapping[str, Any], operators: Mapping[str, str], source: str) -> tuple[SettledClass, ...]:
    raw = statement.get(CLASSES_FIELD)
    if raw is None:
        raise StatementError(
            f"{source}: the statement has no '{CLASSES_FIELD}' (agreed amounts per direction and rate class); "
            "an invoice has a line per direction and rate class, so this statement cannot be invoiced "
            "(docs/billing.md)")
    if not isinstance(raw, list):
        raise BillingInputError("wrong type", file=source, column=CLASSES_FIELD, expected="a list",
                                found=type(raw).__name__)
    result = []
    seen = set()
    for i, item in enumerate(raw):
        where = f"{CLASSES_FIELD}[{i}]"
        if not isinstance(item, Mapping):
            raise BillingInputError("wrong type", file=source, column=where, expected="an object", found=repr(item))
        payer, payee = item.get("payer"), item.get("payee")
        if payer not in ROLES or payee not in ROLES or payer == payee:
            raise BillingInputError("unknown direction", file=source, column=where,
                                    expected="payer and payee A and B (one each)", found=f"{payer!r} -> {payee!r}")
        service = item.get("service")
        if service not in SERVICES:
            raise BillingInputError("unknown service", file=source, column=f"{where}.service",
                                    expected=" | ".join(SERVICES), found=repr(service))
        call_type, band = item.get("call_type"), item.get("time_band")
        if not isinstance(call_type, str) or not isinstance(band, str) or not call_type or not band:
            raise BillingInputError("missing rate class", file=source, column=where,
                                    expected="call_type and time_band strings", found=repr(item))
        amount = item.get("agreed_charge")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise BillingInputError("wrong amount", file=source, column=f"{where}.agreed_charge",
                                    expected="an integer >= 0 (fen)", found=repr(amount))
        key = (payer, payee, service, call_type, band)
        if key in seen:
            raise BillingInputError("rate class listed twice", file=source, column=where,
                                    expected="each direction and rate class once", found=repr(key))
        seen.add(key)
        result.append(SettledClass(operators[payer], operators[payee], service, call_type, band, amount))
    return tuple(result)


def settled_statement(statement: Mapping[str, Any], entry: Mapping[str, Any], index: int,
                      member_keys: Mapping[str, bytes], *, source: str = "statement.json") -> SettledStatement:
    """Check ``statement`` against its ledger ``entry`` at ``index`` and read what billing needs.

    ``member_keys``: member id -> SM2 signing public key, of the membership in force."""
    job_id = statement.get("job_id")
    if not isinstance(job_id, str) or job_id != entry.get("job_id"):
        raise StatementError(f"{source}: job_id {job_id!r} is not the ledger entry's {entry.get('job_id')!r}")
    opens_entry(statement, entry)
    operators = statement.get("operators")
    if not isinstance(operators, Mapping) or set(operators) != set(ROLES) \
            or not all(isinstance(v, str) for v in operators.values()):
        raise BillingInputError("malformed operators", file=source, column="operators",
                                expected="{\"A\": member id, \"B\": member id}", found=repr(operators))
    for what, signed_list, signed in (("entry", entry.get("signatures"), canonical_entry_bytes(entry)),
                                      ("statement", None, signing_bytes(statement))):
        try:
            signatures = parse_signature_list(signed_list) if what == "entry" \
                else document_signatures(statement)
        except LedgerError as exc:
            raise StatementError(f"{source if what == 'statement' else f'ledger entry {index}'}: {exc}") from None
        for role in ROLES:
            member = operators[role]
            if member not in signatures:
                raise StatementError(f"the {what} of job {job_id} is not co-signed: no signature of {member} "
                                     f"(operator {role}); signed by {', '.join(sorted(signatures))}")
            key = member_keys.get(member)
            if key is None:
                raise StatementError(f"ledger entry {index}: {member} is not a member of the consortium in force")
            try:
                sm2.verify(key, signed, signatures[member])
            except LedgerError as exc:
                raise StatementError(f"the {what} of job {job_id}: {member}'s signature does not verify: {exc}"
                                     ) from None
    entry_operators = entry.get("operators")
    if isinstance(entry_operators, Mapping) and dict(entry_operators) != dict(operators):
        raise StatementError(f"ledger entry {index} names operators {dict(entry_operators)}, the file "
                             f"{dict(operators)}")
    totals = statement.get("totals")
    agreed = totals.get("agreed_charge") if isinstance(totals, Mapping) else None
    if not isinstance(agreed, int) or isinstance(agreed, bool) or agreed < 0:
        raise BillingInputError("missing agreed amount", file=source, column="totals.agreed_charge",
                                expected="an integer >= 0 (fen)", found=repr(agreed))
    classes = _classes(statement, operators, source)
    if sum(c.amount for c in classes) != agreed:
        raise StatementError(f"{source}: the classes sum to {sum(c.amount for c in classes)} fen, "
                             f"totals.agreed_charge is {agreed}")
    period = statement.get("period")
    if not isinstance(period, str):
        raise BillingInputError("missing period", file=source, column="period", expected="YYYY-MM",
                                found=repr(period))
    return SettledStatement(job_id=job_id, period=period, operators=dict(operators),
                            settlement=str(statement.get("settlement")), agreed_charge=agreed, classes=classes,
                            ledger_index=index, statement_sm3=sm3(signing_bytes(statement)).hex(),
                            signers=tuple(sorted(operators.values())))
