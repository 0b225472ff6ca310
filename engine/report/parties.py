"""Who the report is about: the two operators by name, and who signed what.

Read from the documents the job writes, never from the consortium's files:

- ``summary.json``: ``party`` and ``counterparty`` (roles A / B), ``member`` and
  ``counterparty_member`` (their member ids); optionally ``operators`` =
  ``{"A": {"id", "name", "key_id"}, "B": {...}}`` (each key optional; a plain string
  is read as the id);
- ``statement.json``: ``operators`` = ``{"A": id, "B": id}`` (an object with ``id``,
  ``name``, ``key_id`` is read as above) and ``signatures`` = ``[{"signer": id,
  "sig": hex, ["key_id": hex]}]``;
- the rules: an operator's ``name`` by its id (``[[operators]]``);
- the ledger checkpoint in ``summary.json`` (``anchor.checkpoint``, a C2SP signed
  note): the key name and key id of the log and of every witness that cosigned it.
  A member's witness key is its SM2 key, so a signer's key id is taken from its
  cosignature line when no document states one.  Nothing here verifies a
  signature: ``settlechain ledger verify`` and ``ledger check`` do.

Precedence for a name or key id: summary, then statement (for a key id: the signer's
signature entry, then ``operators``), then the rules (names) or the checkpoint (key
ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.report.frames import ReportInputError
from engine.rules import Rules
from ledger_anchor.errors import LedgerError
from ledger_anchor.note import Checkpoint, Note

ROLES: tuple[str, ...] = ("A", "B")
_WITNESS = "/witness/"


@dataclass(frozen=True)
class Operator:
    role: str | None
    member_id: str | None
    name: str | None
    key_id: str | None
    """Hex, as a document or the checkpoint gives it."""
    key_id_source: str | None
    """``statement`` | ``summary`` | ``checkpoint``: where ``key_id`` was read."""

    @property
    def label(self) -> str:
        """The id, else the role, else '?'."""
        return self.member_id or self.role or "?"


@dataclass(frozen=True)
class CheckpointKey:
    key_name: str
    member_id: str | None
    """For a witness line: the member whose witness key it is."""
    kind: str
    """``log`` | ``witness`` | ``other``."""
    key_id: str


@dataclass(frozen=True)
class CheckpointInfo:
    origin: str | None
    size: int | None
    keys: tuple[CheckpointKey, ...]
    problem: str | None
    """Why the checkpoint could not be read, if it could not."""


@dataclass(frozen=True)
class Parties:
    this: Operator
    other: Operator
    signers: tuple[Operator, ...]
    """The statement's signers, in its order."""
    statement_given: bool
    checkpoint: CheckpointInfo | None

    def by_id(self, member_id: str) -> Operator | None:
        for operator in (self.this, self.other, *self.signers):
            if operator.member_id == member_id:
                return operator
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _entry(document: Mapping[str, Any] | None, role: str) -> dict[str, str | None]:
    operators = document.get("operators") if document is not None else None
    value = operators.get(role) if isinstance(operators, Mapping) else None
    if isinstance(value, str):
        return {"id": _text(value), "name": None, "key_id": None}
    if isinstance(value, Mapping):
        return {k: _text(value.get(k)) for k in ("id", "name", "key_id")}
    return {"id": None, "name": None, "key_id": None}


def read_checkpoint(summary: Mapping[str, Any]) -> CheckpointInfo | None:
    anchor = summary.get("anchor")
    text = anchor.get("checkpoint") if isinstance(anchor, Mapping) else None
    if not isinstance(text, str) or not text:
        return None
    try:
        note = Note.parse(text)
        checkpoint = Checkpoint.parse_body(note.text)
    except LedgerError as exc:
        return CheckpointInfo(origin=None, size=None, keys=(), problem=str(exc))
    keys = []
    for signature in note.signatures:
        member = None
        if signature.name == checkpoint.origin:
            kind = "log"
        elif signature.name.startswith(checkpoint.origin + _WITNESS):
            kind, member = "witness", signature.name[len(checkpoint.origin + _WITNESS):]
        else:
            kind = "other"
        keys.append(CheckpointKey(key_name=signature.name, member_id=member, kind=kind,
                                  key_id=signature.key_id.hex()))
    return CheckpointInfo(origin=checkpoint.origin, size=checkpoint.size, keys=tuple(keys),
                          problem=None)


def _check_statement(statement: Any, summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The statement's signature entries; raises on a statement of another shape or job."""
    if not isinstance(statement, Mapping):
        raise ReportInputError("not an object", file="statement.json",
                               expected="the statement document as a dict",
                               found=type(statement).__name__)
    ours, theirs = summary.get("job_id"), statement.get("job_id")
    if ours is not None and theirs is not None and ours != theirs:
        raise ReportInputError("the statement is of another job", file="statement.json",
                               column="job_id", expected=repr(ours), found=repr(theirs))
    signatures = statement.get("signatures", [])
    if not isinstance(signatures, list):
        raise ReportInputError("wrong type", file="statement.json", column="signatures",
                               expected="a list of {signer, sig}",
                               found=type(signatures).__name__)
    for i, entry in enumerate(signatures):
        if not isinstance(entry, Mapping) or not _text(entry.get("signer")):
            raise ReportInputError("malformed signature entry", file="statement.json",
                                   column=f"signatures[{i}]",
                                   expected="an object with a non-empty 'signer'",
                                   found=repr(entry)[:80])
    return signatures


def read_parties(summary: Mapping[str, Any], statement: Mapping[str, Any] | None,
                 rules: Rules) -> Parties:
    """The operators and signers of this party's job (module docstring)."""
    signatures = [] if statement is None else _check_statement(statement, summary)
    rule_names = {op.id: op.name for op in rules.operators if op.name}
    checkpoint = read_checkpoint(summary)
    witness_keys = {k.member_id: k.key_id for k in (checkpoint.keys if checkpoint else ())
                    if k.kind == "witness"}
    signed_key = {s["signer"]: _text(s.get("key_id")) for s in signatures}

    def operator(role: str | None, member_id: str | None,
                 summary_member: str | None = None) -> Operator:
        from_summary = _entry(summary, role) if role else {}
        from_statement = _entry(statement, role) if role else {}
        member_id = (member_id or from_summary.get("id") or summary_member
                     or from_statement.get("id"))
        name = (from_summary.get("name") or from_statement.get("name")
                or (rule_names.get(member_id) if member_id else None))
        key_id, source = None, None
        for candidate, where in ((from_summary.get("key_id"), "summary"),
                                 (signed_key.get(member_id or ""), "statement"),
                                 (from_statement.get("key_id"), "statement"),
                                 (witness_keys.get(member_id), "checkpoint")):
            if candidate:
                key_id, source = candidate, where
                break
        return Operator(role=role, member_id=member_id, name=name, key_id=key_id,
                        key_id_source=source)

    party, counterparty = _text(summary.get("party")), _text(summary.get("counterparty"))
    this = operator(party, None, _text(summary.get("member")))
    other = operator(counterparty, None, _text(summary.get("counterparty_member")))
    roles = {o.member_id: o.role for o in (this, other) if o.member_id}
    signers = tuple(operator(roles.get(s["signer"]), s["signer"]) for s in signatures)
    return Parties(this=this, other=other, signers=signers,
                   statement_given=statement is not None, checkpoint=checkpoint)


__all__ = ["CheckpointInfo", "CheckpointKey", "Operator", "Parties", "read_checkpoint",
           "read_parties"]
