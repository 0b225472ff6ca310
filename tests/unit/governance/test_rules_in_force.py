"""Rules in force (issue 13 item 3): only an adopted rule package that is effective for
the job's period; a change takes effect at a period boundary."""

import pytest

from governance import api
from governance.errors import NotInForce, ProposalError
from governance.rules import rules_in_force

SM3_V1, SM3_V2, SM3_OTHER = "a1" * 32, "b2" * 32, "c3" * 32


def _package(version: str, sequence: int, effective_from: str, rules_sm3: str) -> dict:
    return {"name": "voice-sms", "version": version, "sequence": sequence, "effective_from": effective_from,
            "rules_sm3": rules_sm3}


def _adopt(consortium, ledger, content: dict, voters=("A", "B", "C")) -> str:
    proposal_id, _ = api.propose(ledger, proposer="A", key=consortium.member_keys["A"], type="rule_package",
                                 content=content)
    for voter in voters:
        api.vote(ledger, proposal_id=proposal_id, voter=voter, key=consortium.member_keys[voter])
    return proposal_id


def test_only_an_adopted_package_effective_for_the_period_is_in_force(consortium, ledger) -> None:
    with pytest.raises(NotInForce, match="not an adopted rule package"):
        rules_in_force(ledger, "2026-10", SM3_V1)
    pending = _adopt(consortium, ledger, _package("2026.1", 1, "2026-10", SM3_V1), voters=("A", "B"))
    with pytest.raises(NotInForce, match=f"proposed as {pending}, not passed"):
        rules_in_force(ledger, "2026-10", SM3_V1)
    api.vote(ledger, proposal_id=pending, voter="C", key=consortium.member_keys["C"])
    package = rules_in_force(ledger, "2026-10", SM3_V1)
    assert (package.version, package.sequence, package.proposal_id) == ("2026.1", 1, pending)
    with pytest.raises(NotInForce, match="takes effect from 2026-10, after 2026-09"):
        rules_in_force(ledger, "2026-09", SM3_V1)
    # version 2 from 2026-12: October and November keep version 1, December on uses version 2
    _adopt(consortium, ledger, _package("2026.2", 2, "2026-12", SM3_V2))
    assert rules_in_force(ledger, "2026-11", SM3_V1).version == "2026.1"
    assert rules_in_force(ledger, "2027-03", SM3_V2).version == "2026.2"
    with pytest.raises(NotInForce, match="in force is 2026.2"):
        rules_in_force(ledger, "2026-12", SM3_V1)
    with pytest.raises(NotInForce):
        rules_in_force(ledger, "2026-11", SM3_V2)
    with pytest.raises(NotInForce):
        rules_in_force(ledger, "2026-11", SM3_OTHER)


def test_sequences_only_move_forward(consortium, ledger) -> None:
    _adopt(consortium, ledger, _package("2026.2", 2, "2026-12", SM3_V2))
    for content, match in ((_package("2026.1", 1, "2026-10", SM3_V1), "must be greater"),
                           (_package("2027.1", 3, "2026-11", SM3_OTHER), "precedes")):
        with pytest.raises(ProposalError, match=match):
            api.propose(ledger, proposer="A", key=consortium.member_keys["A"], type="rule_package",
                        content=content)


def test_a_bad_period_is_refused(ledger) -> None:
    with pytest.raises(Exception, match="YYYY-MM"):
        rules_in_force(ledger, "2026-13", SM3_V1)
