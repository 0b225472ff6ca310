"""The write path and the queries of governance, on any ledger client.

Every write replays the consortium entries (:class:`~governance.state.ConsortiumState`),
checks that the new entry would be accepted there, then appends it signed by its
author; so what is on the ledger through this API is never refused on replay.
``ledger`` is a :class:`~ledger_anchor.client.LedgerClient` (embedded or remote);
keys are :class:`ledger_anchor.sm2.PrivateKey` objects or 32-byte private keys.

Passing ``state_path`` (the author member's witness state file) makes the author check
the log before it appends (:meth:`ledger_anchor.client.LedgerClient.check_before_rely`).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance import clock, policy
from governance.documents import (
    MEMBERSHIP_TYPES,
    PAYLOAD_TYPE,
    approval_entry,
    approval_payload,
    certificate_entry,
    pae,
    proposal_entry,
    request_entry,
    revocation_entry,
    vote_entry,
)
from governance.errors import ApprovalError, ProposalError
from governance.manifests import successor_for
from governance.state import ConsortiumState, ProposalState, RequestState
from ledger_anchor import merkle, sm2
from ledger_anchor.entries import canonical_entry_bytes
from ledger_anchor.log import AppendReceipt
from ledger_anchor.membership import Manifest

DEFAULT_EXPIRY = "14d"
DEFAULT_DEADLINE = "14d"
PathLike = str | os.PathLike[str]


def _key(key: bytes | sm2.PrivateKey) -> sm2.PrivateKey:
    return key if isinstance(key, sm2.PrivateKey) else sm2.PrivateKey(bytes(key))


def _append(ledger: Any, entry: dict[str, Any], author: str, key: bytes | sm2.PrivateKey,
            state: ConsortiumState, state_path: PathLike | None) -> AppendReceipt:
    state.apply(ledger.size(), {**entry, "signatures": [{"signer": author}]}, strict=True)
    signature = _key(key).sign(canonical_entry_bytes(entry))
    if state_path is not None:
        return ledger.append(entry, {author: signature}, verify_as=author, state_path=state_path)
    return ledger.append(entry, {author: signature})


def replay(ledger: Any, *, as_of: dt.datetime | None = None) -> ConsortiumState:
    """The governance state of ``ledger`` now (or ``as_of``)."""
    return ConsortiumState.replay(ledger).as_of(as_of)


def default_policy(ledger: Any) -> str:
    """The policy of a proposal that names none: ``[ledger].proposal_policy`` of the
    consortium file -- ``all`` members (the default), ``majority``, or k members."""
    configured = getattr(getattr(ledger, "config", None), "ledger", None)
    setting = getattr(configured, "proposal_policy", "all")
    if setting == "all":
        return "ALL"
    if setting == "majority":
        return f"OutOf({len(ledger.membership().current.members) // 2 + 1}, '*.member')"
    return f"OutOf({int(setting)}, '*.member')"


# ---------------------------------------------------------------------------
# Proposals, votes, execution


def propose(ledger: Any, *, proposer: str, key: bytes | sm2.PrivateKey, type: str, content: Mapping[str, Any],
            policy_text: str | None = None, expires_at: str | None = None, proposal_id: str | None = None,
            state_path: PathLike | None = None) -> tuple[str, AppendReceipt]:
    """Put a typed proposal on the ledger; returns its id and receipt."""
    state = replay(ledger)
    proposal_id = proposal_id or f"{type.replace('_', '-')}-{secrets.token_hex(4)}"
    entry = proposal_entry(proposal_id=proposal_id, proposer=proposer, type=type, content=content,
                           policy_text=policy_text or default_policy(ledger),
                           expires_at=expires_at or clock.time_in(DEFAULT_EXPIRY))
    return proposal_id, _append(ledger, entry, proposer, key, state, state_path)


def vote(ledger: Any, *, proposal_id: str, voter: str, key: bytes | sm2.PrivateKey, decision: str = "approve",
         approved: Mapping[str, Any] | None = None, state_path: PathLike | None = None) -> AppendReceipt:
    """Vote on a proposal.  ``approved``: what this member approves (default: exactly the
    proposal's type and content; anything else does not count, and ``inspect`` shows it)."""
    state = replay(ledger)
    proposal_state = _proposal_state(state, proposal_id)
    entry = vote_entry(proposal=proposal_state.proposal, voter=voter, decision=decision, approved=approved)
    return _append(ledger, entry, voter, key, state, state_path)


def _proposal_state(state: ConsortiumState, proposal_id: str) -> ProposalState:
    found = state.proposals.get(proposal_id)
    if found is None:
        raise ProposalError(f"unknown proposal {proposal_id!r} (known: {', '.join(state.proposals) or 'none'})")
    return found


def manifest_for(ledger: Any, proposal_id: str) -> Manifest:
    """Manifest N+1 that executes the passed membership proposal ``proposal_id``: what
    the members (and a joining member) sign."""
    state = replay(ledger)
    proposal_state = _proposal_state(state, proposal_id)
    if proposal_state.proposal.type not in MEMBERSHIP_TYPES:
        raise ProposalError(f"proposal {proposal_id!r} ({proposal_state.proposal.type}) changes no membership")
    if proposal_state.status != "passed":
        raise ProposalError(f"proposal {proposal_id!r} is {proposal_state.status}, not passed")
    return successor_for(proposal_state.proposal, state.membership.current)


def sign_manifest(manifest: Manifest, key: bytes | sm2.PrivateKey) -> bytes:
    """One member's signature of a manifest (its entry body)."""
    return _key(key).sign(canonical_entry_bytes(manifest.body()))


def manifest_labels(ledger: Any, manifest: Manifest) -> dict[str, bytes]:
    """{signature label: public key} of the keys that may sign ``manifest``."""
    return ledger.membership().current.successor_signers(manifest)


def execute(ledger: Any, *, proposal_id: str, signatures: Mapping[str, bytes]) -> AppendReceipt:
    """Append the manifest that executes a passed membership proposal, with the
    signatures collected from the members (labels: member ids, ``<id>/next`` for a
    rotated member's new key).  The ledger refuses it unless the thresholds are met."""
    manifest = manifest_for(ledger, proposal_id)
    return ledger.append(manifest.body(), dict(signatures))


def execute_with_keys(ledger: Any, *, proposal_id: str, keys: Mapping[str, bytes | sm2.PrivateKey]) -> AppendReceipt:
    """:func:`execute` when one process holds the keys (tests, the demo)."""
    manifest = manifest_for(ledger, proposal_id)
    return execute(ledger, proposal_id=proposal_id,
                   signatures={label: sign_manifest(manifest, key) for label, key in keys.items()})


# ---------------------------------------------------------------------------
# Status and inspect


def proposal_summary(proposal_state: ProposalState) -> dict[str, Any]:
    p = proposal_state.proposal
    return {"proposal_id": p.proposal_id, "type": p.type, "status": proposal_state.status, "index": p.index,
            "proposer": p.proposer, "policy": p.policy, "expires_at": p.expires_at, "content": p.content,
            "electorate_epoch": proposal_state.electorate.epoch,
            "approvals": [r.vote.voter for r in proposal_state.votes if r.counted],
            "rejections": [r.vote.voter for r in proposal_state.votes if r.vote.decision == "reject"],
            "mismatched": [r.vote.voter for r in proposal_state.votes if r.vote.decision == "approve" and r.differs],
            "decided_at": proposal_state.decided_at, "executed_at": proposal_state.executed_at}


def status(ledger: Any, *, as_of: dt.datetime | None = None) -> dict[str, Any]:
    state = replay(ledger, as_of=as_of)
    manifest = state.membership.current
    from governance.rules import adopted_packages  # noqa: PLC0415

    return {"epoch": manifest.epoch, "members": list(manifest.member_ids), "witness_k": manifest.witness_k,
            "proposals": [proposal_summary(s) for s in state.proposals.values()],
            "rule_packages": [p.__dict__ for p in adopted_packages(state)],
            "refused": [r.__dict__ for r in state.refused]}


def inspect(ledger: Any, proposal_id: str, *, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Per member of the proposal's electorate: whether it voted, what it approved, and
    which fields of what it approved differ from the proposal (Fabric's
    ``checkcommitreadiness --inspect``); and whether the policy is met."""
    state = replay(ledger, as_of=as_of)
    proposal_state = _proposal_state(state, proposal_id)
    by_member = {r.vote.voter: r for r in proposal_state.votes}
    members = []
    for member in proposal_state.electorate.members:
        record = by_member.get(member.id)
        if record is None:
            members.append({"member": member.id, "vote": None, "counts": False, "differs": []})
            continue
        members.append({"member": member.id, "vote": record.vote.decision, "index": record.vote.index,
                        "counts": record.counted, "differs": list(record.differs),
                        "approved": record.vote.approved if record.differs else None})
    return {**proposal_summary(proposal_state), "members": members,
            "expanded_policy": proposal_state.expanded_policy().text()}


# ---------------------------------------------------------------------------
# People


def certify(ledger: Any, *, operator: str, key: bytes | sm2.PrivateKey, person: str, role: str,
            public_key: bytes, valid_until: str | None = None, cert_id: str | None = None,
            state_path: PathLike | None = None) -> tuple[str, AppendReceipt]:
    """The operator certifies one person's SM2 key with a role (principal ``operator.role``)."""
    state = replay(ledger)
    cert_id = cert_id or f"{operator}.{person}.{role}.{secrets.token_hex(3)}"
    entry = certificate_entry(cert_id=cert_id, operator=operator, person=person, role=role, public_key=public_key,
                              valid_until=valid_until or clock.time_in("365d"))
    return cert_id, _append(ledger, entry, operator, key, state, state_path)


def revoke_certificate(ledger: Any, *, operator: str, key: bytes | sm2.PrivateKey, cert_id: str, reason: str,
                       state_path: PathLike | None = None) -> AppendReceipt:
    state = replay(ledger)
    return _append(ledger, revocation_entry(cert_id=cert_id, operator=operator, reason=reason), operator, key,
                   state, state_path)


def certificate_of(state: ConsortiumState, public_key: bytes) -> list[str]:
    """The ids of the valid certificates of a person's key."""
    now = clock.now()
    return [c.certificate.cert_id for c in state.certificates.values()
            if c.certificate.sm2_public_key == public_key and c.valid_at(state.size, now)]


# ---------------------------------------------------------------------------
# Approval requests and approvals


def default_statement_steps(a: str, b: str) -> list[dict[str, str]]:
    """One finance approver of each operator of the pair (issue 13 item 4)."""
    return [{"name": "finance", "policy": f"AND('{a}.finance', '{b}.finance')"}]


def request_approval(ledger: Any, *, requester: str, key: bytes | sm2.PrivateKey, subject_type: str, job_id: str,
                     entry_index: int, steps: Sequence[Mapping[str, str]], deadline: str | None = None,
                     request_id: str | None = None, submit: bool = True,
                     state_path: PathLike | None = None) -> tuple[str, list[AppendReceipt]]:
    """Create an approval request (draft) for the ledger entry ``entry_index`` and, unless
    ``submit`` is False, submit it (pending)."""
    if not 0 <= entry_index < ledger.size():
        raise ApprovalError(f"subject: expected a ledger index below {ledger.size()}, found {entry_index}")
    leaf_hash = merkle.SM3_HASHER.hash_leaf(ledger.entry_data(entry_index)).hex()
    request_id = request_id or f"{subject_type.replace('_', '-')}-{job_id}-{secrets.token_hex(3)}"
    state = replay(ledger)
    draft = request_entry(request_id=request_id, requester=requester, action="draft",
                          subject={"type": subject_type, "job_id": job_id, "entry_index": entry_index,
                                   "leaf_hash": leaf_hash},
                          steps=[dict(s) for s in steps], deadline=deadline or clock.time_in(DEFAULT_DEADLINE))
    receipts = [_append(ledger, draft, requester, key, state, state_path)]
    if submit:
        receipts.append(change_request(ledger, requester=requester, key=key, request_id=request_id, action="submit",
                                       state_path=state_path))
    return request_id, receipts


def change_request(ledger: Any, *, requester: str, key: bytes | sm2.PrivateKey, request_id: str, action: str,
                   state_path: PathLike | None = None) -> AppendReceipt:
    """``submit`` (draft -> pending) or ``withdraw`` (draft | pending -> withdrawn)."""
    state = replay(ledger)
    return _append(ledger, request_entry(request_id=request_id, requester=requester, action=action), requester,
                   key, state, state_path)


def statement_entry_index(ledger: Any, job_id: str) -> int:
    """The ledger index of the last settlement statement of ``job_id``."""
    end = ledger.size()
    while end > 0:
        start = max(0, end - 1024)
        for offset, entry in enumerate(reversed(ledger.entries(start, end))):
            if entry.get("kind") == "settlement_statement" and entry.get("job_id") == job_id:
                return end - 1 - offset
        end = start
    raise ApprovalError(f"no settlement statement of job {job_id!r} on the ledger")


def request_statement_approval(ledger: Any, *, job_id: str, requester: str, key: bytes | sm2.PrivateKey,
                               operators: tuple[str, str] | None = None, steps: Sequence[Mapping[str, str]] | None = None,
                               deadline: str | None = None, state_path: PathLike | None = None) -> str:
    """Ask for the approval of a job's settlement statement (default policy: one finance
    approver of each operator of the pair, the statement's signers); returns the id."""
    index = statement_entry_index(ledger, job_id)
    if operators is None:
        signers = [s["signer"] for s in ledger.entry(index)["signatures"]]
        if len(signers) != 2:
            raise ApprovalError(f"the statement of job {job_id!r} is signed by {signers}; name the two operators")
        operators = (signers[0], signers[1])
    request_id, _ = request_approval(ledger, requester=requester, key=key, subject_type="settlement_statement",
                                     job_id=job_id, entry_index=index,
                                     steps=steps or default_statement_steps(*operators), deadline=deadline,
                                     request_id=f"statement-{job_id}", state_path=state_path)
    return request_id


def sign_approval(ledger: Any, *, request_id: str, cert_id: str, person_key: bytes | sm2.PrivateKey,
                  relay_key: bytes | sm2.PrivateKey, decision: str = "approve", step: str | None = None,
                  state_path: PathLike | None = None) -> AppendReceipt:
    """A person approves (or rejects) a request with their key; the envelope is relayed
    onto the ledger by the person's operator (``relay_key``: the operator's member key)."""
    state = replay(ledger)
    request = _request(state, request_id)
    cert_state = state.certificates.get(cert_id)
    if cert_state is None:
        raise ApprovalError(f"unknown certificate {cert_id!r}")
    person = _key(person_key)
    if person.public.raw != cert_state.certificate.sm2_public_key:
        raise ApprovalError(f"the key given is not the key certified by {cert_id!r}")
    if step is None:
        open_steps = [s for s in request.steps if not s.met()]
        step = (open_steps[0] if open_steps else request.steps[-1]).name
    payload = approval_payload(request_id=request_id, request_sm3=request.request_sm3, step=step, decision=decision,
                               cert_id=cert_id)
    entry = approval_entry(payload=payload, signature=person.sign(pae(PAYLOAD_TYPE, payload)), cert_id=cert_id)
    return _append(ledger, entry, cert_state.certificate.operator, relay_key, state, state_path)


def _request(state: ConsortiumState, request_id: str) -> RequestState:
    found = state.requests.get(request_id)
    if found is None:
        raise ApprovalError(f"unknown request {request_id!r} (known: {', '.join(state.requests) or 'none'})")
    return found


def request_summary(request: RequestState) -> dict[str, Any]:
    d = request.draft
    return {"request_id": d.request_id, "status": request.status, "index": d.index, "requester": d.requester,
            "subject": d.subject, "deadline": d.deadline, "request_sm3": request.request_sm3,
            "steps": [{"name": s.name, "policy": s.policy_text, "met": s.met(),
                       "approvals": [{"cert_id": a.cert_id, "index": a.index, "signed_at": a.signed_at}
                                     for a, _ in s.approvals]} for s in request.steps],
            "rejections": [{"cert_id": a.cert_id, "index": a.index} for a in request.rejections],
            "decided_at": request.decided_at}


def approvals(ledger: Any, *, as_of: dt.datetime | None = None, cert_id: str | None = None) -> list[dict[str, Any]]:
    """Every approval request; with ``cert_id``, those pending on a step whose policy
    names that certificate's principal (what this person may sign)."""
    state = replay(ledger, as_of=as_of)
    result = []
    principal = None
    if cert_id is not None:
        if cert_id not in state.certificates:
            raise ApprovalError(f"unknown certificate {cert_id!r}")
        principal = state.certificates[cert_id].certificate.principal
    for request in state.requests.values():
        if principal is not None and (request.status != "pending" or not any(
                not s.met() and policy.can_principal_matter(s.node, {principal}) for s in request.steps)):
            continue
        result.append(request_summary(request))
    return result


@dataclass(frozen=True)
class StatementApproval:
    job_id: str
    request_id: str | None
    status: str  # "none" when no request exists
    final_for_payment: bool
    entry_index: int | None


def statement_approval(ledger: Any, job_id: str, *, as_of: dt.datetime | None = None,
                       state: ConsortiumState | None = None) -> StatementApproval:
    """Whether the settlement statement of ``job_id`` is final for payment: its approval
    request (the latest one for that statement) is approved."""
    state = (state or ConsortiumState.replay(ledger)).as_of(as_of)
    matching = [r for r in state.requests.values()
                if r.draft.subject and r.draft.subject["type"] == "settlement_statement"
                and r.draft.subject["job_id"] == job_id]
    if not matching:
        return StatementApproval(job_id, None, "none", False, None)
    request = max(matching, key=lambda r: r.draft.index or 0)
    return StatementApproval(job_id, request.draft.request_id, request.status, request.status == "approved",
                             request.draft.subject["entry_index"])
