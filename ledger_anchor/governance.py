"""Governance on the ledger: proposals, votes and adoption (DESIGN.md "Ledger").

Entry shapes (all signed like every entry; the voter's signature is the vote):

``rule_proposal``  ``{"kind", "proposal_id", "version", "rules_sm3": 64 hex, ["policy"]}``
``member_change``  ``{"kind", "proposal_id", "action": "add"|"remove", "member": {"id", ...}, ["policy"]}``
``rule_vote``      ``{"kind", "proposal_id", "voter": member id, "vote": "approve"|"reject"}``,
                   signed by exactly the voter.

A proposal is *adopted* when the number of distinct members approving it reaches its
policy (``"all"`` members by default, ``"majority"``, or an integer k; the proposal's own
``policy`` or else ``[ledger].proposal_policy``), counted over the members of the
consortium file; it is *rejected* once enough members have rejected it that the policy
can no longer be met.  Each member votes once per proposal; a vote on an unknown,
adopted or rejected proposal is refused at append time.  Jobs may use only adopted
rule versions: :meth:`GovernanceState.adopted_rules`.  An adopted ``member_change`` is
reported; applying it to the consortium file is the operators' step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger_anchor.config import policy_threshold
from ledger_anchor.entries import GOVERNANCE_KINDS, SignedEntry
from ledger_anchor.errors import ConfigError, GovernanceError

_HEX64 = re.compile(r"[0-9a-f]{64}")
PROPOSAL_KINDS = frozenset({"rule_proposal", "member_change"})


@dataclass
class Proposal:
    proposal_id: str
    kind: str
    index: int
    body: Mapping[str, Any]
    required: int
    approvals: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    adopted_at: int | None = None
    rejected_at: int | None = None

    @property
    def status(self) -> str:
        if self.adopted_at is not None:
            return "adopted"
        if self.rejected_at is not None:
            return "rejected"
        return "pending"


@dataclass(frozen=True)
class AdoptedRule:
    version: str
    rules_sm3: str
    proposal_id: str
    proposed_at: int
    adopted_at: int


def _text(body: Mapping[str, Any], key: str, index: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise GovernanceError(f"entry {index} ({body.get('kind')}): expected a non-empty string {key!r}, "
                              f"found {value!r}")
    return value


class GovernanceState:
    """Replays governance entries in index order; refuses entries that break the rules."""

    def __init__(self, member_ids: tuple[str, ...], default_policy: str | int) -> None:
        self.member_ids = member_ids
        self.default_policy = default_policy
        self.proposals: dict[str, Proposal] = {}

    def check(self, index: int, entry: SignedEntry) -> None:
        """Raise GovernanceError if ``entry`` may not be appended at ``index`` now."""
        self._apply(index, entry, commit=False)

    def apply(self, index: int, entry: SignedEntry) -> None:
        self._apply(index, entry, commit=True)

    def _apply(self, index: int, entry: SignedEntry, *, commit: bool) -> None:
        kind = entry.kind
        if kind not in GOVERNANCE_KINDS:
            return
        body = entry.body
        proposal_id = _text(body, "proposal_id", index)
        if kind in PROPOSAL_KINDS:
            if proposal_id in self.proposals:
                raise GovernanceError(f"entry {index}: proposal {proposal_id!r} already exists "
                                      f"(entry {self.proposals[proposal_id].index})")
            if kind == "rule_proposal":
                _text(body, "version", index)
                if not _HEX64.fullmatch(str(body.get("rules_sm3", ""))):
                    raise GovernanceError(f"entry {index}: expected rules_sm3 as 64 lowercase hex digits, "
                                          f"found {body.get('rules_sm3')!r}")
            else:
                if body.get("action") not in ("add", "remove"):
                    raise GovernanceError(f"entry {index}: expected action \"add\" or \"remove\", "
                                          f"found {body.get('action')!r}")
                member = body.get("member")
                if not isinstance(member, Mapping) or not isinstance(member.get("id"), str):
                    raise GovernanceError(f"entry {index}: expected member as an object with an id")
            try:
                required = policy_threshold(body.get("policy", self.default_policy), len(self.member_ids))
            except ConfigError as exc:
                raise GovernanceError(f"entry {index}: {exc}") from None
            if commit:
                self.proposals[proposal_id] = Proposal(proposal_id, kind, index, body, required)
            return
        # rule_vote
        voter = _text(body, "voter", index)
        vote = body.get("vote")
        if vote not in ("approve", "reject"):
            raise GovernanceError(f"entry {index}: expected vote \"approve\" or \"reject\", found {vote!r}")
        if set(entry.signatures) != {voter}:
            raise GovernanceError(f"entry {index}: a vote must be signed by exactly its voter {voter!r}, "
                                  f"found signatures by {', '.join(sorted(entry.signatures))}")
        if voter not in self.member_ids:
            raise GovernanceError(f"entry {index}: voter {voter!r} is not a member")
        proposal = self.proposals.get(proposal_id)
        if proposal is None:
            raise GovernanceError(f"entry {index}: vote on unknown proposal {proposal_id!r}")
        if proposal.status != "pending":
            raise GovernanceError(f"entry {index}: proposal {proposal_id!r} is already {proposal.status}")
        if voter in proposal.approvals or voter in proposal.rejections:
            raise GovernanceError(f"entry {index}: {voter!r} has already voted on proposal {proposal_id!r}")
        if not commit:
            return
        if vote == "approve":
            proposal.approvals.append(voter)
            if len(proposal.approvals) >= proposal.required:
                proposal.adopted_at = index
        else:
            proposal.rejections.append(voter)
            if len(self.member_ids) - len(proposal.rejections) < proposal.required:
                proposal.rejected_at = index

    def adopted_rules(self) -> list[AdoptedRule]:
        return [AdoptedRule(str(p.body["version"]), str(p.body["rules_sm3"]), p.proposal_id, p.index, p.adopted_at)
                for p in self.proposals.values() if p.kind == "rule_proposal" and p.adopted_at is not None]

    def summary(self) -> list[dict[str, Any]]:
        return [{"proposal_id": p.proposal_id, "kind": p.kind, "index": p.index, "status": p.status,
                 "required": p.required, "approvals": list(p.approvals), "rejections": list(p.rejections),
                 "adopted_at": p.adopted_at,
                 **({"version": p.body.get("version"), "rules_sm3": p.body.get("rules_sm3")}
                    if p.kind == "rule_proposal" else {"action": p.body.get("action"), "member": p.body.get("member")})}
                for p in self.proposals.values()]
