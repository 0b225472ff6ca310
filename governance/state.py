"""The consortium's governance state, derived only by replaying ledger entries.

:class:`ConsortiumState` replays the consortium entries (membership manifests,
proposals, votes, people's certificates and revocations, approval requests and
approvals) in index order.  Nothing else is a source of truth: there is no table of
proposals or approvals anywhere, and any state shown (by the CLI, the audit bundle,
the job) is this replay's.

An entry that breaks a rule is *refused*: it stays on the ledger (the ledger only
checks who signed it), is listed in :attr:`ConsortiumState.refused` with the reason,
and changes nothing.  The write path (:mod:`governance.api`) replays first and appends
only what this replay would accept.  The refusals (issue 13 item 6): an unknown
member, a vote after expiry, a second vote by the same key, a vote or approval whose
key is revoked (the ledger itself refuses such a signature), a quorum from one key's
repeated signatures (only distinct keys count), an approval by the wrong role, an
approval after the deadline.

Time is the entries' own ``created_at`` (:mod:`governance.clock`): a proposal expires
when an entry later than its ``expires_at`` is replayed, or when the state is read
``as_of`` a later time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from governance import clock, policy
from governance.documents import (
    APPROVAL,
    CERTIFICATE,
    MANIFEST,
    MEMBERSHIP_TYPES,
    PROPOSAL,
    REQUEST,
    REVOCATION,
    VOTE,
    Approval,
    Certificate,
    Proposal,
    RequestAction,
    Vote,
    pae,
    read_approval,
    read_certificate,
    read_proposal,
    read_request,
    read_revocation,
    read_vote,
    sm3_of,
)
from governance.errors import ApprovalError, GovernanceError, ProposalError
from governance.lifecycle import ApprovalLifecycle, ProposalLifecycle, TransitionNotAllowed, state_of
from governance.manifests import successor_for
from ledger_anchor.errors import LedgerError
from ledger_anchor.membership import Manifest, Membership
from ledger_anchor.sm2 import PublicKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    index: int
    kind: str
    reason: str


@dataclass
class VoteRecord:
    vote: Vote
    key: bytes
    counted: bool  # an approval of exactly the proposal's content
    differs: tuple[str, ...]  # the fields of ``approved`` that differ from the proposal


@dataclass
class ProposalState:
    proposal: Proposal
    electorate: Manifest  # the manifest in force at the proposal
    machine: ProposalLifecycle = field(default_factory=ProposalLifecycle)
    votes: list[VoteRecord] = field(default_factory=list)
    decided_at: int | None = None  # index of the vote that passed or rejected it
    executed_at: int | None = None  # index of the manifest that executed it

    @property
    def status(self) -> str:
        return state_of(self.machine)

    def expanded_policy(self) -> policy.Node:
        return policy.expand(policy.parse(self.proposal.policy), self.electorate.member_ids)

    def signer(self, member_id: str, key: bytes) -> policy.Signer:
        member = self.electorate.member(member_id)
        roles = member.roles if member is not None else ()
        return policy.Signer(key, frozenset({f"{member_id}.member", *(f"{member_id}.{r}" for r in roles)}),
                             member_id)


@dataclass
class CertificateState:
    certificate: Certificate
    revoked_at: int | None = None
    reason: str = ""

    def valid_at(self, index: int, when: dt.datetime) -> bool:
        return ((self.revoked_at is None or index < self.revoked_at)
                and when <= clock.parse_time(self.certificate.valid_until))


@dataclass
class StepState:
    name: str
    policy_text: str
    node: policy.Node
    approvals: list[tuple[Approval, policy.Signer]] = field(default_factory=list)

    def met(self) -> bool:
        return policy.satisfied(self.node, [signer for _, signer in self.approvals])


@dataclass
class RequestState:
    draft: RequestAction
    request_sm3: str  # SM3 of the draft entry body: what every approval names
    steps: list[StepState]
    machine: ApprovalLifecycle = field(default_factory=ApprovalLifecycle)
    decided_at: int | None = None
    rejections: list[Approval] = field(default_factory=list)

    @property
    def status(self) -> str:
        return state_of(self.machine)

    @property
    def deadline(self) -> dt.datetime:
        return clock.parse_time(self.draft.deadline)


class ConsortiumState:
    """Replays consortium entries (see the module docstring)."""

    def __init__(self, genesis: Manifest, *, keys: Mapping[bytes, PublicKey] | None = None) -> None:
        self.membership = Membership(genesis)
        if keys:
            self.membership.public_key_cache().update(keys)
        self.proposals: dict[str, ProposalState] = {}
        self.certificates: dict[str, CertificateState] = {}
        self.requests: dict[str, RequestState] = {}
        self.refused: list[Refusal] = []
        self.latest: dt.datetime | None = None
        self.size = 0  # entries below this index have been replayed

    # -- replay -----------------------------------------------------------------
    @classmethod
    def replay(cls, ledger: Any, *, until: int | None = None) -> ConsortiumState:
        """The state of ``ledger`` (a :class:`~ledger_anchor.client.LedgerClient`) from its
        consortium entries, up to index ``until`` (exclusive; default: all)."""
        identity = ledger.identity
        state = cls(identity.genesis_manifest(), keys={k.raw: k for k in identity.members.values()})
        entries = [(i, e) for i, e in ledger.governance_entries() if until is None or i < until]
        state.replay_entries(entries)
        state.size = ledger.size() if until is None else until
        return state

    def replay_entries(self, entries: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        for index, entry in entries:
            self.apply(index, entry)

    def apply(self, index: int, entry: Mapping[str, Any], *, strict: bool = False) -> None:
        """Take the entry at ``index`` (with its ``signatures`` list) into account.
        ``strict``: raise :class:`GovernanceError` instead of recording a refusal."""
        body = {key: value for key, value in entry.items() if key != "signatures"}
        signers = [item["signer"] for item in entry.get("signatures", [])]
        kind = body.get("kind")
        try:
            if kind == MANIFEST:
                self._manifest(index, body, signers)
                return
            self._clock(index, body)
            handler = {PROPOSAL: self._proposal, VOTE: self._vote, CERTIFICATE: self._certificate,
                       REVOCATION: self._revocation, REQUEST: self._request, APPROVAL: self._approval}.get(kind)
            if handler is None:
                return
            handler(index, body, signers)
        except GovernanceError as exc:
            if strict:
                raise
            self.refused.append(Refusal(index, str(kind), str(exc)))
            log.info("entry %d (%s) refused: %s", index, kind, exc)
        finally:
            self.size = max(self.size, index + 1)

    def _clock(self, index: int, body: Mapping[str, Any]) -> None:
        when = clock.parse_time(body.get("created_at"), field="created_at", index=index)
        if self.latest is not None and when < self.latest - dt.timedelta(seconds=clock.MAX_SKEW_S):
            raise GovernanceError(f"created_at {body['created_at']} is earlier than an earlier entry's "
                                  f"{clock.format_time(self.latest)} by more than {clock.MAX_SKEW_S} s (backdated?)",
                                  index=index, field="created_at")
        self.expire(when)
        self.latest = when if self.latest is None else max(self.latest, when)

    def expire(self, when: dt.datetime) -> None:
        """Move what is pending past its expiry or deadline at ``when`` to expired."""
        for state in self.proposals.values():
            if state.status == "pending" and when > clock.parse_time(state.proposal.expires_at):
                state.machine.send("expire")
        for request in self.requests.values():
            if request.status == "pending" and when > request.deadline:
                request.machine.send("expire")

    def as_of(self, when: dt.datetime | None = None) -> ConsortiumState:
        """This state with expiries applied up to ``when`` (default: now).  Mutates and
        returns self (a replay is cheap to repeat)."""
        self.expire(when or clock.now())
        return self

    @staticmethod
    def _author(index: int, body: Mapping[str, Any], field_name: str, signers: list[str],
                error: type[GovernanceError]) -> str:
        author = body.get(field_name)
        if signers != [author]:
            raise error(f"must be signed by exactly its {field_name} {author!r}, found signatures by "
                        f"{', '.join(signers) or 'nobody'}", index=index, field=field_name)
        return str(author)

    # -- membership ---------------------------------------------------------------
    def _manifest(self, index: int, body: Mapping[str, Any], signers: list[str]) -> None:
        current = self.membership.current
        try:
            manifest = self.membership.apply(index, MANIFEST, body, signers)  # the ledger's own rule
        except LedgerError as exc:
            raise GovernanceError(str(exc), index=index) from None
        state = self.proposals.get(manifest.proposal_id)
        if state is None or state.proposal.type not in MEMBERSHIP_TYPES or state.status != "passed":
            raise ProposalError(f"membership manifest epoch {manifest.epoch} is in force on the ledger but "
                                f"executes no passed membership proposal ({manifest.proposal_id!r})", index=index)
        expected = successor_for(state.proposal, current)
        if expected.body() != {**manifest.body()}:
            raise ProposalError(f"membership manifest epoch {manifest.epoch} differs from what proposal "
                                f"{manifest.proposal_id!r} decided", index=index)
        state.machine.send("execute")
        state.executed_at = index

    # -- proposals and votes --------------------------------------------------------
    def _proposal(self, index: int, body: Mapping[str, Any], signers: list[str]) -> None:
        proposal = read_proposal(body, index)
        self._author(index, body, "proposer", signers, ProposalError)
        if proposal.proposal_id in self.proposals:
            raise ProposalError(f"proposal {proposal.proposal_id!r} already exists "
                                f"(entry {self.proposals[proposal.proposal_id].proposal.index})", index=index)
        electorate = self.membership.at(index)
        try:
            node = policy.expand(policy.parse(proposal.policy), electorate.member_ids)
        except GovernanceError as exc:
            raise ProposalError(str(exc), index=index, field="policy") from None
        unknown = sorted({p.split(".")[0] for p in policy.principals_of(node)} - set(electorate.member_ids))
        if unknown:
            raise ProposalError(f"policy names unknown member(s) {', '.join(unknown)} (members in epoch "
                                f"{electorate.epoch}: {', '.join(electorate.member_ids)})", index=index,
                                field="policy")
        if proposal.type == "rule_package":
            self._check_rule_sequence(proposal, index)
        if proposal.type in MEMBERSHIP_TYPES:
            successor_for(proposal, electorate)  # refuse now what could never be executed
        self.proposals[proposal.proposal_id] = ProposalState(proposal, electorate)

    def _check_rule_sequence(self, proposal: Proposal, index: int) -> None:
        name = proposal.content["name"]
        for state in self.proposals.values():
            other = state.proposal
            if other.type != "rule_package" or other.content["name"] != name or state.status != "passed":
                continue
            if other.content["sequence"] >= proposal.content["sequence"]:
                raise ProposalError(f"rule package {name!r}: sequence {proposal.content['sequence']} must be "
                                    f"greater than the adopted {other.content['sequence']}", index=index,
                                    field="content.sequence")
            if other.content["effective_from"] > proposal.content["effective_from"]:
                raise ProposalError(f"rule package {name!r}: effective_from {proposal.content['effective_from']} "
                                    f"precedes the adopted sequence {other.content['sequence']}'s "
                                    f"{other.content['effective_from']}", index=index, field="content.effective_from")

    def _vote(self, index: int, body: Mapping[str, Any], signers: list[str]) -> None:
        vote = read_vote(body, index)
        voter = self._author(index, body, "voter", signers, ProposalError)
        state = self.proposals.get(vote.proposal_id)
        if state is None:
            raise ProposalError(f"vote on unknown proposal {vote.proposal_id!r}", index=index)
        if state.electorate.member(voter) is None:
            raise ProposalError(f"unknown member {voter!r}: not in the electorate of proposal {vote.proposal_id!r} "
                                f"(epoch {state.electorate.epoch}: {', '.join(state.electorate.member_ids)})",
                                index=index, field="voter")
        if clock.parse_time(vote.created_at) > clock.parse_time(state.proposal.expires_at):
            raise ProposalError(f"proposal {vote.proposal_id!r} expired at {state.proposal.expires_at}",
                                index=index, field="created_at")
        if state.status != "pending":
            raise ProposalError(f"proposal {vote.proposal_id!r} is already {state.status}", index=index)
        key = self.membership.at(index).key_of(voter, what="voter")
        for record in state.votes:
            if record.key == key:
                raise ProposalError(f"second vote by the same key (first: entry {record.vote.index} by "
                                    f"{record.vote.voter!r}); only distinct keys count", index=index)
            if record.vote.voter == voter:
                raise ProposalError(f"{voter!r} has already voted (entry {record.vote.index})", index=index)
        subject = state.proposal.subject
        differs = tuple(sorted(_differences(vote.approved, subject)))
        counted = vote.decision == "approve" and not differs
        state.votes.append(VoteRecord(vote, key, counted, differs))
        node = state.expanded_policy()
        approving = [state.signer(r.vote.voter, r.key) for r in state.votes if r.counted]
        if policy.satisfied(node, approving):
            state.machine.send("adopt")
            state.decided_at = index
            return
        voted = {r.vote.voter for r in state.votes}
        possible = approving + [state.signer(m.id, m.sm2_public_key) for m in state.electorate.members
                                if m.id not in voted and m.sm2_public_key is not None]
        if not policy.satisfied(node, possible):
            state.machine.send("reject")
            state.decided_at = index

    # -- people ---------------------------------------------------------------------
    def _certificate(self, index: int, body: Mapping[str, Any], signers: list[str]) -> None:
        certificate = read_certificate(body, index)
        self._author(index, body, "operator", signers, ApprovalError)
        if certificate.cert_id in self.certificates:
            raise ApprovalError(f"certificate {certificate.cert_id!r} already exists", index=index, field="cert_id")
        if clock.parse_time(certificate.valid_until) <= clock.parse_time(certificate.created_at):
            raise ApprovalError("valid_until must be later than created_at", index=index, field="valid_until")
        try:
            PublicKey(certificate.sm2_public_key)
        except LedgerError as exc:
            raise ApprovalError(str(exc), index=index, field="sm2_public_key") from None
        self.certificates[certificate.cert_id] = CertificateState(certificate)

    def _revocation(self, index: int, body: Mapping[str, Any], signers: list[str]) -> None:
        fields = read_revocation(body, index)
        operator = self._author(index, body, "operator", signers, ApprovalError)
        state = self.certificates.get(fields["cert_id"])
        if state is None:
            raise ApprovalError(f"unknown certificate {fields['cert_id']!r}", index=index, field="cert_id")
        if state.certificate.operator != operator:
            raise ApprovalError(f"certificate {fields['cert_id']!r} was issued by {state.certificate.operator!r}; "
                                "only its issuer revokes it", index=index, field="operator")
        if state.revoked_at is not None:
            raise ApprovalError(f"certificate {fields['cert_id']!r} is already revoked (entry {state.revoked_at})",
                                index=index)
        state.revoked_at, state.reason = index, fields["reason"]

    def people(self) -> list[CertificateState]:
        return list(self.certificates.values())

    # -- approvals ------------------------------------------------------------------
    def _request(self, index: int, body: Mapping[str, Any], signers: list[str]) -> None:
        action = read_request(body, index)
        requester = self._author(index, body, "requester", signers, ApprovalError)
        if action.action == "draft":
            if action.request_id in self.requests:
                raise ApprovalError(f"request {action.request_id!r} already exists", index=index, field="request_id")
            if clock.parse_time(action.deadline) <= clock.parse_time(action.created_at):
                raise ApprovalError("the deadline must be later than created_at", index=index, field="deadline")
            if action.subject["entry_index"] >= index:
                raise ApprovalError("the subject must be an earlier ledger entry", index=index,
                                    field="subject.entry_index")
            manifest = self.membership.at(index)
            steps = []
            for position, step in enumerate(action.steps):
                node = policy.expand(policy.parse(step["policy"]), manifest.member_ids)
                unknown = sorted({p.split(".")[0] for p in policy.principals_of(node)} - set(manifest.member_ids))
                if unknown:
                    raise ApprovalError(f"step {step['name']!r}: policy names unknown member(s) "
                                        f"{', '.join(unknown)}", index=index, field=f"steps[{position}].policy")
                steps.append(StepState(step["name"], step["policy"], node))
            self.requests[action.request_id] = RequestState(action, sm3_of(dict(body)), steps)
            return
        request = self.requests.get(action.request_id)
        if request is None:
            raise ApprovalError(f"unknown request {action.request_id!r}", index=index, field="request_id")
        if request.draft.requester != requester:
            raise ApprovalError(f"only the requester {request.draft.requester!r} may {action.action} it",
                                index=index, field="requester")
        try:
            request.machine.send(action.action)
        except TransitionNotAllowed:
            raise ApprovalError(f"request {action.request_id!r} is {request.status}; cannot {action.action}",
                                index=index) from None

    def _approval(self, index: int, body: Mapping[str, Any], signers: list[str]) -> None:
        approval = read_approval(body, index)
        request = self.requests.get(approval.request_id)
        if request is None:
            raise ApprovalError(f"approval of unknown request {approval.request_id!r}", index=index)
        signed_at = clock.parse_time(approval.signed_at)
        created_at = clock.parse_time(approval.created_at)
        if max(signed_at, created_at) > request.deadline:
            raise ApprovalError(f"approval after the deadline {request.draft.deadline} of request "
                                f"{approval.request_id!r}", index=index, field="signed_at")
        if request.status != "pending":
            raise ApprovalError(f"request {approval.request_id!r} is {request.status}, not pending", index=index)
        if approval.request_sm3 != request.request_sm3:
            raise ApprovalError(f"the approval names request content {approval.request_sm3[:16]}…, the request is "
                                f"{request.request_sm3[:16]}…", index=index, field="envelope.payload.request_sm3")
        cert_state = self.certificates.get(approval.cert_id)
        if cert_state is None:
            raise ApprovalError(f"unknown certificate {approval.cert_id!r}", index=index, field="keyid")
        certificate = cert_state.certificate
        if cert_state.revoked_at is not None and index > cert_state.revoked_at:
            raise ApprovalError(f"certificate {approval.cert_id!r} ({certificate.principal}) was revoked at entry "
                                f"{cert_state.revoked_at}", index=index, field="keyid")
        if not cert_state.valid_at(index, signed_at):
            raise ApprovalError(f"certificate {approval.cert_id!r} is not valid at {approval.signed_at}",
                                index=index, field="keyid")
        if signers != [certificate.operator]:
            raise ApprovalError(f"an approval is relayed by the person's operator {certificate.operator!r}, found "
                                f"{', '.join(signers)}", index=index)
        try:
            self.membership.public_key(certificate.sm2_public_key).verify(pae(
                "application/vnd.settlechain.approval+json", approval.payload), approval.signature)
        except LedgerError as exc:
            raise ApprovalError(f"the envelope's signature by {approval.cert_id!r} fails: {exc}", index=index,
                                field="envelope.signatures[0].sig") from None
        names = [step.name for step in request.steps]
        if approval.step not in names:
            raise ApprovalError(f"unknown step {approval.step!r} (steps: {', '.join(names)})", index=index,
                                field="envelope.payload.step")
        step = request.steps[names.index(approval.step)]
        earlier = [s.name for s in request.steps[:names.index(approval.step)] if not s.met()]
        if earlier:
            raise ApprovalError(f"step {approval.step!r} comes after step(s) {', '.join(earlier)}, not yet met",
                                index=index, field="envelope.payload.step")
        signer = policy.Signer(certificate.sm2_public_key, frozenset({certificate.principal}), approval.cert_id)
        if not policy.can_principal_matter(step.node, signer.principals):
            raise ApprovalError(f"approval by the wrong role: {certificate.principal} ({approval.cert_id}) is not "
                                f"in the policy of step {step.name!r}: {step.policy_text}", index=index,
                                field="keyid")
        for other in request.steps:
            for earlier_approval, earlier_signer in other.approvals:
                if earlier_signer.key == signer.key:
                    raise ApprovalError(f"second approval by the same key (first: entry {earlier_approval.index}, "
                                        f"{earlier_approval.cert_id}); only distinct keys count", index=index)
        if approval.decision == "reject":
            request.rejections.append(approval)
            request.machine.send("reject")
            request.decided_at = index
            return
        step.approvals.append((approval, signer))
        if all(s.met() for s in request.steps):
            request.machine.send("approve")
            request.decided_at = index


def _differences(approved: Mapping[str, Any], subject: Mapping[str, Any]) -> set[str]:
    """Field paths where what a voter approved differs from the proposal."""
    if approved.get("type") != subject["type"]:
        return {"type"}
    mine, theirs = approved.get("content"), subject["content"]
    if not isinstance(mine, Mapping):
        return {"content"}
    return {f"content.{key}" for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key)}
