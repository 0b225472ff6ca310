"""Proposals and votes (issue 13 items 1 and 6): every transition of the proposal
lifecycle and every refusal, through the API (which refuses before appending) and
through raw entries (which replay refuses, so nothing counts)."""

import datetime as dt

import pytest

from governance import api, clock, policy
from governance.documents import proposal_entry, read_proposal, vote_entry
from governance.errors import PolicyError, ProposalError
from governance.state import ConsortiumState
from ledger_anchor.entries import canonical_entry_bytes
from ledger_anchor.errors import EntryError

ENGINE = {"version": "1.4.0", "package_sm3": "ee" * 32}


def _propose(consortium, ledger, **kwargs):
    kwargs.setdefault("type", "engine_release")
    kwargs.setdefault("content", ENGINE)
    return api.propose(ledger, proposer="A", key=consortium.member_keys["A"], **kwargs)[0]


def _raw(consortium, ledger, entry: dict, signer: str):
    """Append an entry without the API's checks (as a hostile member could)."""
    return ledger.append(entry, consortium.sign(entry, signer))


def _state(ledger, when=None) -> ConsortiumState:
    return api.replay(ledger, as_of=when)


# -- transitions ------------------------------------------------------------------

def test_pending_to_passed_when_every_member_approves(consortium, ledger) -> None:
    proposal_id = _propose(consortium, ledger)
    for voter in ("A", "B"):
        api.vote(ledger, proposal_id=proposal_id, voter=voter, key=consortium.member_keys[voter])
        assert _state(ledger).proposals[proposal_id].status == "pending"
    receipt = api.vote(ledger, proposal_id=proposal_id, voter="C", key=consortium.member_keys["C"])
    state = _state(ledger).proposals[proposal_id]
    assert state.status == "passed" and state.decided_at == receipt.index


def test_pending_to_rejected_once_the_policy_cannot_be_met(consortium, ledger) -> None:
    proposal_id = _propose(consortium, ledger, policy_text="OutOf(2, '*.member')")
    api.vote(ledger, proposal_id=proposal_id, voter="A", key=consortium.member_keys["A"], decision="reject")
    assert _state(ledger).proposals[proposal_id].status == "pending"  # B and C could still pass it
    api.vote(ledger, proposal_id=proposal_id, voter="B", key=consortium.member_keys["B"], decision="reject")
    assert _state(ledger).proposals[proposal_id].status == "rejected"
    with pytest.raises(ProposalError, match="already rejected"):
        api.vote(ledger, proposal_id=proposal_id, voter="C", key=consortium.member_keys["C"])


def test_pending_to_expired_and_a_late_vote_is_refused(consortium, ledger) -> None:
    expires = clock.time_in("1h")
    proposal_id = _propose(consortium, ledger, expires_at=expires)
    later = clock.parse_time(expires) + dt.timedelta(seconds=1)
    assert _state(ledger, later).proposals[proposal_id].status == "expired"
    assert _state(ledger).proposals[proposal_id].status == "pending"
    proposal = _state(ledger).proposals[proposal_id].proposal
    late = vote_entry(proposal=proposal, voter="B", created_at=clock.format_time(later))
    with pytest.raises(ProposalError, match="expired"):
        _state(ledger).apply(ledger.size(), {**late, "signatures": [{"signer": "B"}]}, strict=True)
    receipt = _raw(consortium, ledger, late, "B")
    state = _state(ledger)
    assert state.proposals[proposal_id].status == "expired"  # the late entry moved the clock past expiry
    assert [r.index for r in state.refused] == [receipt.index] and "expired" in state.refused[0].reason


def test_passed_to_executed_by_its_manifest_only(consortium, ledger) -> None:
    proposal_id = _propose(consortium, ledger, type="witness_policy", content={"k": 2})
    with pytest.raises(ProposalError, match="is pending, not passed"):
        api.manifest_for(ledger, proposal_id)
    for voter in "ABC":
        api.vote(ledger, proposal_id=proposal_id, voter=voter, key=consortium.member_keys[voter])
    assert ledger.final_size() is None
    receipt = api.execute_with_keys(ledger, proposal_id=proposal_id,
                                    keys={m: consortium.member_keys[m] for m in "AB"})
    state = _state(ledger)
    assert state.proposals[proposal_id].status == "executed"
    assert state.proposals[proposal_id].executed_at == receipt.index
    assert state.membership.current.witness_k == 2 and state.membership.current.epoch == 1
    for member in "AB":  # two cosignatures now make a checkpoint final
        ledger.cosign(member, consortium.member_keys[member])
    assert ledger.final_size() == ledger.size()


def test_a_manifest_that_executes_no_passed_proposal_is_reported(consortium, ledger) -> None:
    from tests.unit.ledger.ledger_consortium import manifest_entry

    genesis = consortium.config.genesis_manifest()
    rogue = genesis.successor(proposal_id="nobody-voted", witness_k=1)
    body, signatures = manifest_entry(rogue, {m: consortium.member_keys[m] for m in "AB"})
    receipt = ledger.append(body, signatures)  # the ledger accepts a threshold-signed manifest ...
    state = _state(ledger)
    assert state.membership.current.witness_k == 1
    assert [(r.index, "executes no passed membership proposal" in r.reason) for r in state.refused] == [
        (receipt.index, True)]  # ... and governance reports it


# -- refusals ---------------------------------------------------------------------

def test_unknown_member_is_refused(consortium, ledger) -> None:
    proposal_id = _propose(consortium, ledger)
    with pytest.raises(EntryError, match="unknown signer 'Z'"):
        ledger.append({"kind": "vote", "proposal_id": proposal_id}, {"Z": bytes(64)})
    with pytest.raises(ProposalError, match="unknown member\\(s\\) Z"):
        _propose(consortium, ledger, policy_text="AND('A.member', 'Z.member')")
    proposal = _state(ledger).proposals[proposal_id].proposal
    with pytest.raises(ProposalError, match="unknown proposal"):
        api.vote(ledger, proposal_id="nope", voter="B", key=consortium.member_keys["B"])
    forged = vote_entry(proposal=proposal, voter="B")
    receipt = _raw(consortium, ledger, forged, "A")  # signed by A, claims to be B's vote
    assert "signed by exactly its voter" in _state(ledger).refused[-1].reason
    assert _state(ledger).refused[-1].index == receipt.index


def test_second_vote_by_the_same_member_or_key_is_refused(consortium, ledger) -> None:
    proposal_id = _propose(consortium, ledger)
    api.vote(ledger, proposal_id=proposal_id, voter="A", key=consortium.member_keys["A"])
    with pytest.raises(ProposalError, match="second vote by the same key"):
        api.vote(ledger, proposal_id=proposal_id, voter="A", key=consortium.member_keys["A"])
    proposal = _state(ledger).proposals[proposal_id].proposal
    _raw(consortium, ledger, vote_entry(proposal=proposal, voter="A"), "A")
    state = _state(ledger)
    assert "second vote by the same key" in state.refused[-1].reason
    assert [r.vote.voter for r in state.proposals[proposal_id].votes] == ["A"]


def test_a_quorum_of_one_keys_repeated_signatures_is_not_a_quorum() -> None:
    node = policy.expand(policy.parse("OutOf(2, '*.member')"), ["A", "B", "C"])
    one_key = [policy.Signer(b"k1", frozenset({"A.member"})), policy.Signer(b"k1", frozenset({"B.member"})),
               policy.Signer(b"k1", frozenset({"C.member"}))]
    assert not policy.satisfied(node, one_key)
    assert policy.satisfied(node, one_key[:1] + [policy.Signer(b"k2", frozenset({"B.member"}))])
    # one key standing for two principals counts once
    both = policy.expand(policy.parse("AND('A.finance', 'A.marketing')"), ["A"])
    assert not policy.satisfied(both, [policy.Signer(b"k", frozenset({"A.finance", "A.marketing"}))])


def test_a_key_moved_to_another_member_cannot_vote_twice(consortium, ledger) -> None:
    """C rotates away from key k; a new member D is then added with k (not revoked).  On a
    proposal that both C (with k, before the rotation) and D (with k) vote on, k counts once."""
    from ledger_anchor import sm2

    proposal_id = _propose(consortium, ledger, policy_text="OutOf(2, '*.member')")
    api.vote(ledger, proposal_id=proposal_id, voter="C", key=consortium.member_keys["C"])
    new_c, new_c_public = sm2.generate_keypair()
    rotation, _ = api.propose(ledger, proposer="C", key=consortium.member_keys["C"], type="key_rotation",
                              content={"member_id": "C", "sm2_public_key": new_c_public.hex()})
    for voter in "ABC":
        api.vote(ledger, proposal_id=rotation, voter=voter, key=consortium.member_keys[voter])
    api.execute_with_keys(ledger, proposal_id=rotation, keys={"A": consortium.member_keys["A"],
                                                               "B": consortium.member_keys["B"], "C/next": new_c})
    old_c_public = sm2.public_key_of(consortium.member_keys["C"])
    add_d, _ = api.propose(ledger, proposer="A", key=consortium.member_keys["A"], type="member_add",
                           content={"member": {"id": "D", "name": "D", "sm2_public_key": old_c_public.hex(),
                                               "roles": ["member"], "tls_cert_sha256": ""}})
    for voter, key in (("A", consortium.member_keys["A"]), ("B", consortium.member_keys["B"]), ("C", new_c)):
        api.vote(ledger, proposal_id=add_d, voter=voter, key=key)
    api.execute_with_keys(ledger, proposal_id=add_d, keys={"A": consortium.member_keys["A"],
                                                            "B": consortium.member_keys["B"],
                                                            "D": consortium.member_keys["C"]})
    # D is not in the electorate of the first proposal anyway; and the key's second vote is refused first
    proposal = _state(ledger).proposals[proposal_id].proposal
    entry = vote_entry(proposal=proposal, voter="D")
    ledger.append(entry, {"D": sm2.sign(consortium.member_keys["C"], canonical_entry_bytes(entry))})
    state = _state(ledger)
    assert "unknown member 'D'" in state.refused[-1].reason
    assert state.proposals[proposal_id].status == "pending"


def test_a_vote_by_a_revoked_key_is_refused(consortium, ledger) -> None:
    proposal_id = _propose(consortium, ledger, policy_text="OutOf(2, '*.member')")
    from ledger_anchor import sm2

    revoke, _ = api.propose(ledger, proposer="A", key=consortium.member_keys["A"], type="key_revocation",
                            content={"member_id": "C", "sm2_public_key":
                                     sm2.public_key_of(consortium.member_keys["C"]).hex()},
                            policy_text="OutOf(2, '*.member')")
    for voter in "AB":
        api.vote(ledger, proposal_id=revoke, voter=voter, key=consortium.member_keys[voter])
    api.execute_with_keys(ledger, proposal_id=revoke, keys={m: consortium.member_keys[m] for m in "AB"})
    with pytest.raises(EntryError, match="'C': its key is revoked in epoch 1"):
        api.vote(ledger, proposal_id=proposal_id, voter="C", key=consortium.member_keys["C"])
    assert _state(ledger).proposals[proposal_id].votes == []


def test_a_vote_for_other_content_does_not_count_and_inspect_shows_where(consortium, ledger) -> None:
    proposal_id = _propose(consortium, ledger)
    api.vote(ledger, proposal_id=proposal_id, voter="A", key=consortium.member_keys["A"])
    api.vote(ledger, proposal_id=proposal_id, voter="B", key=consortium.member_keys["B"],
             approved={"type": "engine_release", "content": {**ENGINE, "version": "1.4.1"}})
    report = api.inspect(ledger, proposal_id)
    assert report["status"] == "rejected"  # ALL can no longer be met: B approved something else
    rows = {row["member"]: row for row in report["members"]}
    assert rows["A"]["counts"] and not rows["B"]["counts"] and rows["C"]["vote"] is None
    assert rows["B"]["differs"] == ["content.version"] and rows["B"]["approved"]["content"]["version"] == "1.4.1"


def test_malformed_proposals_and_policies_are_refused_naming_the_field(consortium, ledger) -> None:
    with pytest.raises(ProposalError, match="field 'content.sequence'"):
        _propose(consortium, ledger, type="rule_package",
                 content={"name": "p", "version": "1", "sequence": 0, "effective_from": "2026-10",
                          "rules_sm3": "aa" * 32})
    with pytest.raises(PolicyError, match="expected 'ORG.role'"):
        _propose(consortium, ledger, policy_text="AND('A')")
    with pytest.raises(ProposalError, match="already a member"):
        _propose(consortium, ledger, type="member_add",
                 content={"member": {"id": "B", "name": "B", "sm2_public_key": "ab" * 64, "roles": ["member"],
                                     "tls_cert_sha256": ""}})
    entry = proposal_entry(proposal_id="x", proposer="A", type="engine_release", content=ENGINE,
                           expires_at=clock.time_in("1h"))
    with pytest.raises(ProposalError, match="field 'surprise'|exactly the fields"):
        read_proposal({**entry, "surprise": 1})
