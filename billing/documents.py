"""The billing documents: what travels, sealed, inside ledger entries (docs/billing.md "Documents").

Each document is a frozen dataclass with a ``TYPE`` (inside the encrypted body) and a
``KIND`` (the ledger entry kind, in clear).  Its JSON form is RFC 8785 canonical JSON of
its fields plus ``"type"``; :func:`parse_document` refuses missing or extra fields, wrong
types and malformed values, naming the field.  Dates are ISO ``YYYY-MM-DD`` strings,
money integer fen, rates integer basis points.

| type | kind | signed by | sealed to |
| --- | --- | --- | --- |
| ``invoice`` | invoice | issuer | issuer, payer |
| ``invoice_void`` | invoice | issuer | issuer, payer |
| ``invoice_receipt`` | invoice | payer | issuer, payer |
| ``fapiao`` | invoice | issuer | issuer, payer |
| ``hold`` | invoice | either operator | both |
| ``overdue_alert`` | invoice | the creditor | both |
| ``payment`` / ``payment_reversal`` | payment | the payee | payee, payer |
| ``payment_unmatched`` | payment | the payee | the payee |
| ``adjustment`` | adjustment | both operators | both |
| ``netting_call`` | netting | the agent | every member of the run |
| ``netting_submission`` | netting | the member | member, agent |
| ``netting_result`` | netting | the agent | member, agent |
| ``netting_acceptance`` | netting | the member | member, agent |
| ``netting_final`` | netting | the agent | every member of the run |
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import rfc8785

from billing.errors import BillingInputError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DocumentError(BillingInputError):
    """A decrypted document is not of the documented shape."""


# ---------------------------------------------------------------------------
# Parts


@dataclass(frozen=True)
class Line:
    """Money ``payer`` owes ``payee`` for one rate class (service, call type, time band).

    In a statement or an invoice ``amount`` >= 0; in an adjustment it is signed (negative:
    the payer owes less than the original statement said)."""

    payer: str
    payee: str
    service: str
    call_type: str
    time_band: str
    tax_class: str
    amount: int


@dataclass(frozen=True)
class TaxLine:
    """Tax on the lines of one direction (payer -> payee) and tax class."""

    payer: str
    payee: str
    tax_class: str
    rate_bp: int
    base: int
    tax: int


@dataclass(frozen=True)
class StatementRef:
    job_id: str
    period: str
    ledger_index: int
    statement_sm3: str


@dataclass(frozen=True)
class Charge:
    """The money of an invoice or note: ``debtor`` owes ``creditor`` ``gross`` fen.

    A line counts positively when its payee is the creditor and negatively when its payee
    is the debtor, so one document can carry both directions of a pair's traffic."""

    creditor: str
    debtor: str
    lines: tuple[Line, ...]
    tax_lines: tuple[TaxLine, ...]
    net: int
    tax: int
    gross: int


@dataclass(frozen=True)
class Payment1:
    """One net payment of a netting plan."""

    payer: str
    payee: str
    amount: int
    reference: str


# ---------------------------------------------------------------------------
# Documents


@dataclass(frozen=True)
class Invoice:
    TYPE: ClassVar[str] = "invoice"
    KIND: ClassVar[str] = "invoice"
    invoice_id: str          # = the reference the payer quotes: "<series>-<number, 6 digits>"
    issuer: str
    payer: str
    series: str
    number: int
    issue_date: dt.date
    due_date: dt.date
    currency: str
    statement: StatementRef
    charge: Charge
    terms_sm3: str
    replaces: str | None


@dataclass(frozen=True)
class InvoiceVoid:
    TYPE: ClassVar[str] = "invoice_void"
    KIND: ClassVar[str] = "invoice"
    invoice_id: str
    reason: str
    replaced_by: str | None
    date: dt.date


@dataclass(frozen=True)
class InvoiceReceipt:
    TYPE: ClassVar[str] = "invoice_receipt"
    KIND: ClassVar[str] = "invoice"
    invoice_id: str
    date: dt.date


@dataclass(frozen=True)
class Fapiao:
    """A tax e-invoice number and the SM3 of its file, attached to an invoice.  settlechain
    does not issue tax invoices; it records which one belongs to which invoice."""

    TYPE: ClassVar[str] = "fapiao"
    KIND: ClassVar[str] = "invoice"
    invoice_id: str
    fapiao_number: str
    file_sm3: str
    date: dt.date


@dataclass(frozen=True)
class Hold:
    """The payer disputes an item (``release`` false) or withdraws the dispute (true)."""

    TYPE: ClassVar[str] = "hold"
    KIND: ClassVar[str] = "invoice"
    item_id: str
    release: bool
    reason: str
    date: dt.date


@dataclass(frozen=True)
class OverdueAlert:
    TYPE: ClassVar[str] = "overdue_alert"
    KIND: ClassVar[str] = "invoice"
    item_id: str
    from_state: str
    to_state: str
    action: str
    as_of: dt.date
    days_past_due: int
    outstanding: int


@dataclass(frozen=True)
class Payment:
    """A bank credit applied to an item: ``applied`` to it, ``excess`` kept as the payer's credit."""

    TYPE: ClassVar[str] = "payment"
    KIND: ClassVar[str] = "payment"
    payment_id: str
    item_id: str
    payer: str
    payee: str
    amount: int
    applied: int
    excess: int
    currency: str
    booking_date: dt.date
    end_to_end_id: str
    bank_reference: str
    source_sm3: str


@dataclass(frozen=True)
class PaymentReversal:
    TYPE: ClassVar[str] = "payment_reversal"
    KIND: ClassVar[str] = "payment"
    payment_id: str
    reverses: str
    item_id: str
    payer: str
    payee: str
    amount: int
    booking_date: dt.date
    source_sm3: str


@dataclass(frozen=True)
class UnmatchedPayment:
    """A bank credit that matched no item: listed, never dropped."""

    TYPE: ClassVar[str] = "payment_unmatched"
    KIND: ClassVar[str] = "payment"
    payment_id: str
    payee: str
    amount: int
    currency: str
    booking_date: dt.date
    end_to_end_id: str
    remittance: str
    debtor_name: str
    reason: str
    source_sm3: str


@dataclass(frozen=True)
class Note:
    """The credit or debit note an adjustment produces in the current period."""

    note_type: str           # credit_note | debit_note
    note_id: str             # "<series>-<number>"
    issuer: str
    series: str
    number: int
    issue_date: dt.date
    due_date: dt.date
    charge: Charge


@dataclass(frozen=True)
class Adjustment:
    TYPE: ClassVar[str] = "adjustment"
    KIND: ClassVar[str] = "adjustment"
    adjustment_id: str
    operators: tuple[str, ...]
    original: StatementRef
    period: str
    reason: str
    lines: tuple[Line, ...]
    reverses: str | None
    currency: str
    terms_sm3: str
    note: Note


@dataclass(frozen=True)
class NettingSubmission:
    TYPE: ClassVar[str] = "netting_submission"
    KIND: ClassVar[str] = "netting"
    netting_id: str
    period: str
    member: str
    agent: str
    net_position: int                 # > 0: the member is owed this much net
    pair_commitments: tuple[tuple[str, str], ...]   # (counterparty, SM3 commitment to the bilateral amount)
    items: int
    held_out: int


@dataclass(frozen=True)
class NettingResult:
    TYPE: ClassVar[str] = "netting_result"
    KIND: ClassVar[str] = "netting"
    netting_id: str
    period: str
    member: str
    agent: str
    net_position: int
    payments: tuple[Payment1, ...]    # the plan's payments this member makes or receives
    members: int
    plan_payments: int                # how many payments the whole plan has (fewest possible)
    plan_commitment: str              # salted SM3 commitment to the whole plan, the same in every result


@dataclass(frozen=True)
class NettingAcceptance:
    """A member's signature on its part of the plan.  Holds no amount, so that the agent can
    show every member the acceptances (their salts) without revealing positions."""

    TYPE: ClassVar[str] = "netting_acceptance"
    KIND: ClassVar[str] = "netting"
    netting_id: str
    member: str
    plan_commitment: str


@dataclass(frozen=True)
class AcceptanceProof:
    member: str
    ledger_index: int
    salt: str


@dataclass(frozen=True)
class NettingCall:
    """The agent opens a netting run: the period, the ledger size whose state is netted
    (``cutoff``) and the members taking part.  Sealed to every member."""

    TYPE: ClassVar[str] = "netting_call"
    KIND: ClassVar[str] = "netting"
    netting_id: str
    period: str
    cutoff: int
    agent: str
    members: tuple[str, ...]
    settlement_date: dt.date


@dataclass(frozen=True)
class NettingFinal:
    """The agent's proof that every member accepted: for each acceptance entry its index and
    salt, so any member can check the commitment in clear opens to an acceptance of this plan."""

    TYPE: ClassVar[str] = "netting_final"
    KIND: ClassVar[str] = "netting"
    netting_id: str
    plan_commitment: str
    acceptances: tuple[AcceptanceProof, ...]


DOCUMENT_TYPES: dict[str, type] = {cls.TYPE: cls for cls in (
    Invoice, InvoiceVoid, InvoiceReceipt, Fapiao, Hold, OverdueAlert, Payment, PaymentReversal,
    UnmatchedPayment, Adjustment, NettingCall, NettingSubmission, NettingResult, NettingAcceptance,
    NettingFinal)}
BILLING_KINDS: frozenset[str] = frozenset(cls.KIND for cls in DOCUMENT_TYPES.values())

Document = typing.Union[Invoice, InvoiceVoid, InvoiceReceipt, Fapiao, Hold, OverdueAlert, Payment,  # noqa: UP007
                        PaymentReversal, UnmatchedPayment, Adjustment, NettingCall, NettingSubmission,
                        NettingResult, NettingAcceptance, NettingFinal]


# ---------------------------------------------------------------------------
# JSON form


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def document_json(document: Any) -> dict[str, Any]:
    return {"type": document.TYPE, **_to_json(document)}


def document_bytes(document: Any) -> bytes:
    """RFC 8785 canonical JSON of the document: what is sealed and committed to."""
    return rfc8785.dumps(document_json(document))


def _check(cls: type, name: str, value: Any, where: str) -> None:
    """Field-level value checks beyond the type."""
    if name in ("invoice_id", "item_id", "payment_id", "reverses", "adjustment_id", "netting_id", "note_id",
                "replaced_by", "replaces", "job_id") and value is not None and not _ID.match(value):
        raise DocumentError("malformed identifier", column=where, expected=_ID.pattern, found=repr(value))
    if name in ("statement_sm3", "terms_sm3", "source_sm3", "file_sm3", "plan_commitment", "salt") \
            and not _HEX64.match(value):
        raise DocumentError("malformed SM3 digest", column=where, expected="64 lowercase hex digits",
                            found=repr(value))
    if name in ("amount", "applied", "excess", "gross", "outstanding", "items", "held_out", "number",
                "days_past_due", "rate_bp", "ledger_index", "plan_payments", "cutoff") \
            and not (cls is Line and name == "amount") and value < 0:
        raise DocumentError("negative value", column=where, expected="an integer >= 0", found=repr(value))


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(o for o in options if o is not type(None))
        origin = typing.get_origin(hint)
    if hint is str:
        if not isinstance(value, str):
            raise DocumentError("wrong type", column=where, expected="a string", found=repr(value))
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise DocumentError("wrong type", column=where, expected="true or false", found=repr(value))
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise DocumentError("wrong type", column=where, expected="an integer", found=repr(value))
        return value
    if hint is dt.date:
        if not isinstance(value, str):
            raise DocumentError("wrong type", column=where, expected="a date YYYY-MM-DD", found=repr(value))
        try:
            parsed = dt.date.fromisoformat(value)
        except ValueError:
            raise DocumentError("malformed date", column=where, expected="YYYY-MM-DD", found=repr(value)) from None
        if parsed.isoformat() != value:
            raise DocumentError("malformed date", column=where, expected="YYYY-MM-DD", found=repr(value))
        return parsed
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise DocumentError("wrong type", column=where, expected="a list", found=type(value).__name__)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise DocumentError("wrong length", column=where, expected=f"{len(args)} items", found=str(len(value)))
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if dataclasses.is_dataclass(hint):
        return _from_json(hint, value, where)
    raise TypeError(f"unsupported field type {hint!r}")  # pragma: no cover - a programming error


def _from_json(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise DocumentError("wrong type", column=where, expected="an object", found=type(data).__name__)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    extra = sorted(set(data) - set(names) - ({"type"} if where == "" else set()))
    if extra:
        raise DocumentError("unknown field", column=f"{where}.{extra[0]}".lstrip("."),
                            expected=f"only {', '.join(names)}", found=repr(extra[0]))
    values = {}
    for name in names:
        path = f"{where}.{name}".lstrip(".")
        if name not in data:
            raise DocumentError("missing field", column=path, expected="a value", found="nothing")
        values[name] = _convert(hints[name], data[name], path)
        _check(cls, name, values[name], path)
    return cls(**values)


def parse_document(data: bytes | Mapping[str, Any], *, kind: str | None = None) -> Any:
    """A document from its JSON (bytes or parsed); ``kind`` (the entry's) must match its type."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DocumentError(f"not UTF-8 JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise DocumentError("wrong type", expected="a JSON object", found=type(data).__name__)
    cls = DOCUMENT_TYPES.get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise DocumentError("unknown document type", column="type", expected=" | ".join(DOCUMENT_TYPES),
                            found=repr(data.get("type")))
    if kind is not None and cls.KIND != kind:
        raise DocumentError("document type does not belong to the entry kind", column="type",
                            expected=f"a {kind} document", found=repr(cls.TYPE))
    return _from_json(cls, data, "")
