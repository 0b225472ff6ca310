"""The governance entries: their exact fields, how they are built, and how they are read.

Every entry below is a ledger entry (RFC 8785 JSON, signed by its author member, see
:mod:`ledger_anchor.entries`).  Fields are exact: an unknown or missing field is
refused naming the entry and the field.

``proposal``  ``{proposal_id, proposer, created_at, expires_at, policy, type, content}``
              signed by ``proposer``.  ``type`` and its ``content``:

              ========================  =================================================
              ``rule_package``          ``name, version, sequence, effective_from, rules_sm3``
              ``member_add``            ``member: {id, name, sm2_public_key, roles, tls_cert_sha256}``
              ``member_remove``         ``member_id``
              ``key_rotation``          ``member_id, sm2_public_key`` (the new key)
              ``key_revocation``        ``member_id, sm2_public_key`` (the key revoked)
              ``witness_policy``        ``k`` (cosignatures that make a checkpoint final)
              ``engine_release``        ``version, package_sm3``
              ========================  =================================================

``vote``      ``{proposal_id, voter, created_at, decision: approve|reject, approved: {type, content}}``
              signed by ``voter``.  ``approved`` is what the voter approves (as in
              Fabric's ``approveformyorg``); it counts only if it equals the proposal's.

``person_certificate``  ``{cert_id, operator, person, role, sm2_public_key, created_at, valid_until}``
              signed by ``operator``: the operator certifies one person's SM2 key with
              a role; the person stands for the principal ``<operator>.<role>``.
``person_revocation``   ``{cert_id, operator, created_at, reason}`` signed by ``operator``.

``approval_request``    ``{request_id, requester, created_at, action, ...}`` signed by
              ``requester``; ``action`` ``draft`` carries ``subject: {type, job_id, entry_index,
              leaf_hash}, steps: [{name, policy}], deadline``; ``submit`` and ``withdraw``
              carry nothing more.
``approval``  ``{request_id, created_at, envelope}`` relayed (signed) by the person's
              operator; ``envelope`` is a DSSE envelope (``payloadType``, ``payload``
              base64, ``signatures: [{keyid: cert_id, sig: hex r||s}]``) whose payload is
              the canonical JSON ``{request_id, request_sm3, step, decision, cert_id,
              signed_at}``.  The person's SM2 signature is over DSSE's PAE
              (``DSSEv1 <len> <type> <len> <payload>``), so the payload type is inside
              the signed bytes (DSSE protocol, secure-systems-lab/dsse ``protocol.md``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from governance import clock, policy
from governance.errors import ApprovalError, GovernanceError, ProposalError
from ledger_anchor.membership import MEMBER_ID, ROLE
from ledger_anchor.sm3 import sm3

PROPOSAL = "proposal"
VOTE = "vote"
CERTIFICATE = "person_certificate"
REVOCATION = "person_revocation"
REQUEST = "approval_request"
APPROVAL = "approval"
MANIFEST = "membership_manifest"

PAYLOAD_TYPE = "application/vnd.settlechain.approval+json"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")

Check = Callable[[Any, str, int | None], Any]


def sm3_of(value: Any) -> str:
    """SM3 (hex) of the RFC 8785 canonical JSON of ``value``."""
    return sm3(rfc8785.dumps(value)).hex()


def _fail(error: type[GovernanceError], message: str, field: str, index: int | None) -> GovernanceError:
    return error(message, index=index, field=field)


def _text(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: Any, field: str, index: int | None) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise _fail(ProposalError, f"expected {what}, found {value!r}", field, index)
        return value
    return check


def _integer(low: int) -> Check:
    def check(value: Any, field: str, index: int | None) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise _fail(ProposalError, f"expected an integer >= {low}, found {value!r}", field, index)
        return value
    return check


def _period(value: Any, field: str, index: int | None) -> str:
    return clock.parse_period(value, field=field, index=index)


def _version(value: Any, field: str, index: int | None) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isprintable():
        raise _fail(ProposalError, f"expected a version string of 1..64 printable characters, found {value!r}",
                    field, index)
    return value


def _roles(value: Any, field: str, index: int | None) -> list[str]:
    if (not isinstance(value, list) or not value or len(set(value)) != len(value)
            or not all(isinstance(r, str) and ROLE.fullmatch(r) for r in value)):
        raise _fail(ProposalError, f"expected distinct lowercase role names, found {value!r}", field, index)
    return value


def _tls(value: Any, field: str, index: int | None) -> str:
    if not isinstance(value, str) or (value and not _HEX64.fullmatch(value)):
        raise _fail(ProposalError, f"expected 64 lowercase hex digits or \"\", found {value!r}", field, index)
    return value


_member_id = _text(MEMBER_ID, "a member id")
_key = _text(_HEX128, "128 lowercase hex digits of an SM2 public key x||y")
_hex64 = _text(_HEX64, "64 lowercase hex digits (SM3)")


def _fields(spec: Mapping[str, Check], value: Any, field: str, index: int | None,
            error: type[GovernanceError] = ProposalError) -> dict[str, Any]:
    if not isinstance(value, Mapping) or set(value) != set(spec):
        found = sorted(value) if isinstance(value, Mapping) else type(value).__name__
        raise _fail(error, f"expected exactly the fields {sorted(spec)}, found {found}", field, index)
    return {name: check(value[name], f"{field}.{name}" if field else name, index) for name, check in spec.items()}


def _member(value: Any, field: str, index: int | None) -> dict[str, Any]:
    return _fields({"id": _member_id, "name": _text(re.compile(r".{1,128}"), "a name"), "sm2_public_key": _key,
                    "roles": _roles, "tls_cert_sha256": _tls}, value, field, index)


CONTENT: dict[str, dict[str, Check]] = {
    "rule_package": {"name": _text(_NAME, "a package name (lowercase, digits, _ . -)"), "version": _version,
                     "sequence": _integer(1), "effective_from": _period, "rules_sm3": _hex64},
    "member_add": {"member": _member},
    "member_remove": {"member_id": _member_id},
    "key_rotation": {"member_id": _member_id, "sm2_public_key": _key},
    "key_revocation": {"member_id": _member_id, "sm2_public_key": _key},
    "witness_policy": {"k": _integer(1)},
    "engine_release": {"version": _version, "package_sm3": _hex64},
}
#: Proposal types that change the membership: once passed, a manifest executes them.
MEMBERSHIP_TYPES = frozenset({"member_add", "member_remove", "key_rotation", "key_revocation", "witness_policy"})


# ---------------------------------------------------------------------------
# Proposals and votes


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    proposer: str
    created_at: str
    expires_at: str
    policy: str  # canonical policy text
    type: str
    content: dict[str, Any]
    index: int | None = None

    @property
    def subject(self) -> dict[str, Any]:
        """What a vote approves: the type and the content."""
        return {"type": self.type, "content": self.content}


def proposal_entry(*, proposal_id: str, proposer: str, type: str, content: Mapping[str, Any],
                   expires_at: str, policy_text: str = "ALL", created_at: str | None = None) -> dict[str, Any]:
    body = {"kind": PROPOSAL, "proposal_id": proposal_id, "proposer": proposer,
            "created_at": created_at or clock.now_text(), "expires_at": expires_at,
            "policy": policy.normalise(policy_text), "type": type, "content": dict(content)}
    read_proposal(body)
    return body


def read_proposal(body: Mapping[str, Any], index: int | None = None) -> Proposal:
    fields = _fields({"kind": _text(re.compile(PROPOSAL), PROPOSAL), "proposal_id": _text(_ID, "an id"),
                      "proposer": _member_id, "created_at": _time, "expires_at": _time,
                      "policy": _policy, "type": _text(re.compile("|".join(CONTENT)), f"one of {sorted(CONTENT)}"),
                      "content": lambda v, f, i: v}, body, "", index)
    content = _fields(CONTENT[fields["type"]], fields["content"], "content", index)
    if clock.parse_time(fields["expires_at"]) <= clock.parse_time(fields["created_at"]):
        raise ProposalError("expires_at must be later than created_at", index=index, field="expires_at")
    return Proposal(fields["proposal_id"], fields["proposer"], fields["created_at"], fields["expires_at"],
                    fields["policy"], fields["type"], content, index)


def _time(value: Any, field: str, index: int | None) -> str:
    clock.parse_time(value, field=field, index=index)
    return value


def _policy(value: Any, field: str, index: int | None) -> str:
    try:
        text = policy.normalise(value)
    except GovernanceError as exc:
        raise ProposalError(str(exc), index=index, field=field) from None
    if text != value:
        raise ProposalError(f"expected the canonical policy text {text!r}, found {value!r}", index=index, field=field)
    return value


@dataclass(frozen=True)
class Vote:
    proposal_id: str
    voter: str
    created_at: str
    decision: str
    approved: dict[str, Any]
    index: int | None = None


def vote_entry(*, proposal: Proposal, voter: str, decision: str = "approve",
               approved: Mapping[str, Any] | None = None, created_at: str | None = None) -> dict[str, Any]:
    body = {"kind": VOTE, "proposal_id": proposal.proposal_id, "voter": voter,
            "created_at": created_at or clock.now_text(), "decision": decision,
            "approved": dict(approved) if approved is not None else proposal.subject}
    read_vote(body)
    return body


def read_vote(body: Mapping[str, Any], index: int | None = None) -> Vote:
    fields = _fields({"kind": _text(re.compile(VOTE), VOTE), "proposal_id": _text(_ID, "an id"),
                      "voter": _member_id, "created_at": _time,
                      "decision": _text(re.compile("approve|reject"), "approve or reject"),
                      "approved": lambda v, f, i: v}, body, "", index)
    approved = fields["approved"]
    if not isinstance(approved, Mapping) or set(approved) != {"type", "content"}:
        raise ProposalError("expected {type, content}", index=index, field="approved")
    return Vote(fields["proposal_id"], fields["voter"], fields["created_at"], fields["decision"], dict(approved), index)


# ---------------------------------------------------------------------------
# People


@dataclass(frozen=True)
class Certificate:
    cert_id: str
    operator: str
    person: str
    role: str
    sm2_public_key: bytes
    created_at: str
    valid_until: str
    index: int | None = None

    @property
    def principal(self) -> str:
        return f"{self.operator}.{self.role}"


def certificate_entry(*, cert_id: str, operator: str, person: str, role: str, public_key: bytes,
                      valid_until: str, created_at: str | None = None) -> dict[str, Any]:
    body = {"kind": CERTIFICATE, "cert_id": cert_id, "operator": operator, "person": person, "role": role,
            "sm2_public_key": bytes(public_key).hex(), "created_at": created_at or clock.now_text(),
            "valid_until": valid_until}
    read_certificate(body)
    return body


def read_certificate(body: Mapping[str, Any], index: int | None = None) -> Certificate:
    try:
        f = _fields({"kind": _text(re.compile(CERTIFICATE), CERTIFICATE), "cert_id": _text(_ID, "an id"),
                     "operator": _member_id, "person": _text(_NAME, "a person id (lowercase)"),
                     "role": _text(ROLE, "a lowercase role"), "sm2_public_key": _key, "created_at": _time,
                     "valid_until": _time}, body, "", index)
    except ProposalError as exc:
        raise ApprovalError(str(exc)) from None
    if f["role"] == "member":
        raise ApprovalError("the role 'member' names an operator itself, not a person", index=index, field="role")
    return Certificate(f["cert_id"], f["operator"], f["person"], f["role"], bytes.fromhex(f["sm2_public_key"]),
                       f["created_at"], f["valid_until"], index)


def revocation_entry(*, cert_id: str, operator: str, reason: str, created_at: str | None = None) -> dict[str, Any]:
    body = {"kind": REVOCATION, "cert_id": cert_id, "operator": operator,
            "created_at": created_at or clock.now_text(), "reason": reason}
    read_revocation(body)
    return body


def read_revocation(body: Mapping[str, Any], index: int | None = None) -> dict[str, Any]:
    try:
        return _fields({"kind": _text(re.compile(REVOCATION), REVOCATION), "cert_id": _text(_ID, "an id"),
                        "operator": _member_id, "created_at": _time,
                        "reason": _text(re.compile(r".{1,200}"), "a reason")}, body, "", index)
    except ProposalError as exc:
        raise ApprovalError(str(exc)) from None


# ---------------------------------------------------------------------------
# Approval requests and approvals

SUBJECT_TYPES = ("settlement_statement", "adjustment", "invoice")


def _subject(value: Any, field: str, index: int | None) -> dict[str, Any]:
    return _fields({"type": _text(re.compile("|".join(SUBJECT_TYPES)), f"one of {SUBJECT_TYPES}"),
                    "job_id": _text(_ID, "a job id"), "entry_index": _integer(0), "leaf_hash": _hex64},
                   value, field, index)


def _steps(value: Any, field: str, index: int | None) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ProposalError("expected a non-empty list of {name, policy}", index=index, field=field)
    steps = [_fields({"name": _text(_NAME, "a step name"), "policy": _policy}, step, f"{field}[{i}]", index)
             for i, step in enumerate(value)]
    if len({s["name"] for s in steps}) != len(steps):
        raise ProposalError("step names must be distinct", index=index, field=field)
    return steps


@dataclass(frozen=True)
class RequestAction:
    request_id: str
    requester: str
    created_at: str
    action: str
    subject: dict[str, Any] | None = None
    steps: tuple[dict[str, Any], ...] = ()
    deadline: str = ""
    index: int | None = None


def request_entry(*, request_id: str, requester: str, action: str, subject: Mapping[str, Any] | None = None,
                  steps: list[dict[str, Any]] | None = None, deadline: str | None = None,
                  created_at: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": REQUEST, "request_id": request_id, "requester": requester,
                            "created_at": created_at or clock.now_text(), "action": action}
    if action == "draft":
        body.update(subject=dict(subject or {}), deadline=deadline,
                    steps=[{"name": s["name"], "policy": policy.normalise(s["policy"])} for s in steps or []])
    read_request(body)
    return body


def read_request(body: Mapping[str, Any], index: int | None = None) -> RequestAction:
    common = {"kind": _text(re.compile(REQUEST), REQUEST), "request_id": _text(_ID, "an id"),
              "requester": _member_id, "created_at": _time,
              "action": _text(re.compile("draft|submit|withdraw"), "draft, submit or withdraw")}
    action = body.get("action") if isinstance(body, Mapping) else None
    spec = dict(common)
    if action == "draft":
        spec.update(subject=_subject, steps=_steps, deadline=_time)
    try:
        f = _fields(spec, body, "", index)
    except ProposalError as exc:
        raise ApprovalError(str(exc)) from None
    return RequestAction(f["request_id"], f["requester"], f["created_at"], f["action"], f.get("subject"),
                         tuple(f.get("steps", ())), f.get("deadline", ""), index)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the person signs."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Approval:
    request_id: str
    created_at: str
    request_sm3: str
    step: str
    decision: str
    cert_id: str
    signed_at: str
    payload: bytes
    signature: bytes
    index: int | None = None


def approval_payload(*, request_id: str, request_sm3: str, step: str, decision: str, cert_id: str,
                     signed_at: str | None = None) -> bytes:
    return rfc8785.dumps({"request_id": request_id, "request_sm3": request_sm3, "step": step,
                          "decision": decision, "cert_id": cert_id, "signed_at": signed_at or clock.now_text()})


def approval_entry(*, payload: bytes, signature: bytes, cert_id: str, created_at: str | None = None) -> dict[str, Any]:
    request_id = read_payload(payload)["request_id"]
    body = {"kind": APPROVAL, "request_id": request_id, "created_at": created_at or clock.now_text(),
            "envelope": {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
                         "signatures": [{"keyid": cert_id, "sig": bytes(signature).hex()}]}}
    read_approval(body)
    return body


def read_payload(payload: bytes, index: int | None = None) -> dict[str, Any]:
    import json  # noqa: PLC0415

    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApprovalError("envelope payload: expected UTF-8 JSON", index=index, field="envelope.payload") from None
    try:
        fields = _fields({"request_id": _text(_ID, "an id"), "request_sm3": _hex64,
                          "step": _text(_NAME, "a step name"),
                          "decision": _text(re.compile("approve|reject"), "approve or reject"),
                          "cert_id": _text(_ID, "an id"), "signed_at": _time}, value, "envelope.payload", index)
    except ProposalError as exc:
        raise ApprovalError(str(exc)) from None
    if rfc8785.dumps(value) != payload:
        raise ApprovalError("envelope payload: expected RFC 8785 canonical JSON", index=index,
                            field="envelope.payload")
    return fields


def read_approval(body: Mapping[str, Any], index: int | None = None) -> Approval:
    try:
        f = _fields({"kind": _text(re.compile(APPROVAL), APPROVAL), "request_id": _text(_ID, "an id"),
                     "created_at": _time, "envelope": lambda v, f, i: v}, body, "", index)
    except ProposalError as exc:
        raise ApprovalError(str(exc)) from None
    envelope = f["envelope"]
    if not isinstance(envelope, Mapping) or set(envelope) != {"payloadType", "payload", "signatures"}:
        raise ApprovalError("expected a DSSE envelope {payloadType, payload, signatures}", index=index,
                            field="envelope")
    if envelope["payloadType"] != PAYLOAD_TYPE:
        raise ApprovalError(f"expected payloadType {PAYLOAD_TYPE!r}, found {envelope['payloadType']!r}",
                            index=index, field="envelope.payloadType")
    signatures = envelope["signatures"]
    if (not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], Mapping)
            or set(signatures[0]) != {"keyid", "sig"}):
        raise ApprovalError("expected exactly one signature {keyid, sig}: one person's approval per entry",
                            index=index, field="envelope.signatures")
    sig = signatures[0]["sig"]
    if not isinstance(sig, str) or not re.fullmatch(r"[0-9a-f]{128}", sig):
        raise ApprovalError("expected 128 lowercase hex digits r||s", index=index, field="envelope.signatures[0].sig")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True) if isinstance(envelope["payload"], str) else b""
    except binascii.Error:
        payload = b""
    if not payload or base64.b64encode(payload).decode("ascii") != envelope["payload"]:
        raise ApprovalError("expected canonical base64", index=index, field="envelope.payload")
    fields = read_payload(payload, index)
    if fields["request_id"] != f["request_id"]:
        raise ApprovalError(f"the payload is for request {fields['request_id']!r}, the entry for "
                            f"{f['request_id']!r}", index=index, field="request_id")
    if signatures[0]["keyid"] != fields["cert_id"]:
        raise ApprovalError("keyid must be the payload's cert_id", index=index, field="envelope.signatures[0].keyid")
    return Approval(f["request_id"], f["created_at"], fields["request_sm3"], fields["step"], fields["decision"],
                    fields["cert_id"], fields["signed_at"], payload, bytes.fromhex(sig), index)
