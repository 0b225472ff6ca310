"""Which rule package (and engine release) is in force for a settlement period.

A rule package is *adopted* when its ``rule_package`` proposal passes.  For a period P,
the package in force under a name is the adopted one with the highest ``sequence``
among those whose ``effective_from`` is at or before P.  So a change takes effect at a
period boundary, never inside a period that is already in force under another version
only because of timing; and a job checks its rules once, at its agree step, so a job
already running keeps its rules whatever is adopted meanwhile.  Replay refuses a
proposal whose sequence does not exceed an adopted one's, or whose effective_from
precedes it (:mod:`governance.state`), so in-force is well defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from governance import clock
from governance.errors import NotInForce
from governance.state import ConsortiumState


@dataclass(frozen=True)
class RulePackage:
    name: str
    version: str
    sequence: int
    effective_from: str
    rules_sm3: str
    proposal_id: str
    adopted_at: int  # ledger index of the vote that passed it


def adopted_packages(state: ConsortiumState) -> list[RulePackage]:
    result = []
    for proposal_state in state.proposals.values():
        proposal = proposal_state.proposal
        if proposal.type == "rule_package" and proposal_state.status == "passed":
            c = proposal.content
            result.append(RulePackage(c["name"], c["version"], c["sequence"], c["effective_from"], c["rules_sm3"],
                                      proposal.proposal_id, int(proposal_state.decided_at or 0)))
    return sorted(result, key=lambda p: (p.name, p.sequence))


def package_in_force(state: ConsortiumState, name: str, period: str) -> RulePackage | None:
    candidates = [p for p in adopted_packages(state) if p.name == name and p.effective_from <= period]
    return max(candidates, key=lambda p: p.sequence, default=None)


def rules_in_force(ledger: Any, period: str, rules_sm3: str, *, state: ConsortiumState | None = None) -> RulePackage:
    """The adopted rule package with ``rules_sm3`` if it is the one in force for
    ``period``; else :class:`~governance.errors.NotInForce` saying what is in force.

    ``ledger``: a :class:`~ledger_anchor.client.LedgerClient` (embedded or remote)."""
    clock.parse_period(period)
    state = state or ConsortiumState.replay(ledger)
    adopted = adopted_packages(state)
    matching = [p for p in adopted if p.rules_sm3 == rules_sm3]
    if not matching:
        pending = [s.proposal.proposal_id for s in state.proposals.values()
                   if s.proposal.type == "rule_package" and s.proposal.content["rules_sm3"] == rules_sm3]
        hint = f" (proposed as {', '.join(pending)}, not passed)" if pending else ""
        raise NotInForce(f"the rules {rules_sm3[:16]}… are not an adopted rule package{hint}; adopted: "
                         + (", ".join(f"{p.name} {p.version} (sequence {p.sequence}, from {p.effective_from})"
                                      for p in adopted) or "none"))
    reasons = []
    for package in matching:
        current = package_in_force(state, package.name, period)
        if current is not None and current.rules_sm3 == rules_sm3:
            return current
        if current is None:
            reasons.append(f"{package.name} {package.version} takes effect from {package.effective_from}, "
                           f"after {period}")
        else:
            reasons.append(f"for {period} the package {package.name} in force is {current.version} "
                           f"(sequence {current.sequence}, rules {current.rules_sm3[:16]}…), not "
                           f"{package.version} (sequence {package.sequence})")
    raise NotInForce(f"the rules {rules_sm3[:16]}… are not in force for {period}: " + "; ".join(reasons))


def engine_release_adopted(ledger: Any, package_sm3: str, *, state: ConsortiumState | None = None) -> str:
    """The version of the adopted engine release with ``package_sm3``, else NotInForce."""
    state = state or ConsortiumState.replay(ledger)
    for proposal_state in state.proposals.values():
        proposal = proposal_state.proposal
        if (proposal.type == "engine_release" and proposal_state.status == "passed"
                and proposal.content["package_sm3"] == package_sm3):
            return str(proposal.content["version"])
    raise NotInForce(f"engine release {package_sm3[:16]}… is not adopted")
