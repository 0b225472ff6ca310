"""People and approvals (issue 13 item 4): certificates with roles, approval requests
through every state, DSSE envelopes by one person's key, and every refusal."""

import datetime as dt

import pytest

from governance import api, clock
from governance.documents import PAYLOAD_TYPE, approval_entry, approval_payload, pae
from governance.errors import ApprovalError
from ledger_anchor import sm2


@pytest.fixture
def people(consortium, ledger):
    """alice: A.finance, bob: B.finance, carol: A.marketing; a statement of job j1 at index 0."""
    statement = {"kind": "settlement_statement", "job_id": "j1", "commitment": "cd" * 32}
    ledger.append(statement, consortium.sign(statement, "A", "B"))
    keys, certs = {}, {}
    for person, operator, role in (("alice", "A", "finance"), ("bob", "B", "finance"), ("carol", "A", "marketing")):
        private, public = sm2.generate_keypair()
        keys[person] = private
        certs[person], _ = api.certify(ledger, operator=operator, key=consortium.member_keys[operator], person=person,
                                       role=role, public_key=public)
    return keys, certs


def _sign(consortium, ledger, people, person: str, request_id: str, **kwargs):
    keys, certs = people
    operator = {"alice": "A", "bob": "B", "carol": "A"}[person]
    return api.sign_approval(ledger, request_id=request_id, cert_id=certs[person], person_key=keys[person],
                             relay_key=consortium.member_keys[operator], **kwargs)


def _status(ledger, request_id: str, when=None) -> str:
    return api.replay(ledger, as_of=when).requests[request_id].status


def test_a_statement_is_final_for_payment_once_both_finance_approvers_signed(consortium, ledger, people) -> None:
    assert api.statement_approval(ledger, "j1").status == "none"
    request_id = api.request_statement_approval(ledger, job_id="j1", requester="A", key=consortium.member_keys["A"])
    summary = api.approvals(ledger)[0]
    assert summary["steps"] == [{"name": "finance", "policy": "AND('A.finance', 'B.finance')", "met": False,
                                 "approvals": []}]
    assert summary["subject"]["entry_index"] == 0 and _status(ledger, request_id) == "pending"
    _sign(consortium, ledger, people, "alice", request_id)
    assert not api.statement_approval(ledger, "j1").final_for_payment
    _sign(consortium, ledger, people, "bob", request_id)
    result = api.statement_approval(ledger, "j1")
    assert result.status == "approved" and result.final_for_payment and result.request_id == request_id


def _request(consortium, ledger, *, steps=None, deadline=None, submit=True) -> str:
    request_id, _ = api.request_approval(ledger, requester="A", key=consortium.member_keys["A"],
                                         subject_type="adjustment", job_id="j1", entry_index=0,
                                         steps=steps or api.default_statement_steps("A", "B"), deadline=deadline,
                                         submit=submit)
    return request_id


def test_draft_pending_and_withdrawn(consortium, ledger, people) -> None:
    request_id = _request(consortium, ledger, submit=False)
    assert _status(ledger, request_id) == "draft"
    with pytest.raises(ApprovalError, match="is draft, not pending"):
        _sign(consortium, ledger, people, "alice", request_id)
    with pytest.raises(ApprovalError, match="only the requester 'A'"):
        api.change_request(ledger, requester="B", key=consortium.member_keys["B"], request_id=request_id,
                           action="submit")
    api.change_request(ledger, requester="A", key=consortium.member_keys["A"], request_id=request_id, action="submit")
    assert _status(ledger, request_id) == "pending"
    api.change_request(ledger, requester="A", key=consortium.member_keys["A"], request_id=request_id,
                       action="withdraw")
    assert _status(ledger, request_id) == "withdrawn"
    with pytest.raises(ApprovalError, match="is withdrawn; cannot submit"):
        api.change_request(ledger, requester="A", key=consortium.member_keys["A"], request_id=request_id,
                           action="submit")
    draft_only = _request(consortium, ledger, submit=False)
    api.change_request(ledger, requester="A", key=consortium.member_keys["A"], request_id=draft_only,
                       action="withdraw")
    assert _status(ledger, draft_only) == "withdrawn"


def test_pending_to_rejected(consortium, ledger, people) -> None:
    request_id = _request(consortium, ledger)
    _sign(consortium, ledger, people, "alice", request_id)
    _sign(consortium, ledger, people, "bob", request_id, decision="reject")
    assert _status(ledger, request_id) == "rejected"
    with pytest.raises(ApprovalError, match="is rejected"):
        _sign(consortium, ledger, people, "bob", request_id)


def test_pending_to_expired_and_an_approval_after_the_deadline_is_refused(consortium, ledger, people) -> None:
    deadline = clock.time_in("1h")
    request_id = _request(consortium, ledger, deadline=deadline)
    late = clock.parse_time(deadline) + dt.timedelta(seconds=5)
    assert _status(ledger, request_id, late) == "expired"
    keys, certs = people
    state = api.replay(ledger)
    payload = approval_payload(request_id=request_id, request_sm3=state.requests[request_id].request_sm3,
                               step="finance", decision="approve", cert_id=certs["alice"],
                               signed_at=clock.format_time(late))
    entry = approval_entry(payload=payload, signature=sm2.sign(keys["alice"], pae(PAYLOAD_TYPE, payload)),
                           cert_id=certs["alice"], created_at=clock.format_time(late))
    with pytest.raises(ApprovalError, match="after the deadline"):
        api.replay(ledger).apply(ledger.size(), {**entry, "signatures": [{"signer": "A"}]}, strict=True)
    receipt = ledger.append(entry, consortium.sign(entry, "A"))
    state = api.replay(ledger)
    assert state.refused[-1].index == receipt.index and "after the deadline" in state.refused[-1].reason
    assert state.requests[request_id].steps[0].approvals == []


def test_approval_by_the_wrong_role_is_refused(consortium, ledger, people) -> None:
    request_id = _request(consortium, ledger)
    with pytest.raises(ApprovalError, match="wrong role: A.marketing"):
        _sign(consortium, ledger, people, "carol", request_id)
    assert _status(ledger, request_id) == "pending"


def test_steps_are_met_in_order(consortium, ledger, people) -> None:
    steps = [{"name": "marketing", "policy": "'A.marketing'"}, {"name": "finance", "policy": "OR('A.finance', "
                                                                                             "'B.finance')"}]
    request_id = _request(consortium, ledger, steps=steps)
    with pytest.raises(ApprovalError, match="comes after step\\(s\\) marketing"):
        _sign(consortium, ledger, people, "bob", request_id, step="finance")
    _sign(consortium, ledger, people, "carol", request_id)
    assert _status(ledger, request_id) == "pending"
    _sign(consortium, ledger, people, "bob", request_id)
    assert _status(ledger, request_id) == "approved"


def test_second_approval_by_the_same_key_and_revoked_certificates_are_refused(consortium, ledger, people) -> None:
    keys, certs = people
    request_id = _request(consortium, ledger)
    _sign(consortium, ledger, people, "alice", request_id)
    with pytest.raises(ApprovalError, match="second approval by the same key"):
        _sign(consortium, ledger, people, "alice", request_id)
    # the same key certified again under another role still counts once
    cert2, _ = api.certify(ledger, operator="A", key=consortium.member_keys["A"], person="alice", role="finance",
                           public_key=sm2.public_key_of(keys["alice"]))
    with pytest.raises(ApprovalError, match="second approval by the same key"):
        api.sign_approval(ledger, request_id=request_id, cert_id=cert2, person_key=keys["alice"],
                          relay_key=consortium.member_keys["A"])
    api.revoke_certificate(ledger, operator="B", key=consortium.member_keys["B"], cert_id=certs["bob"],
                           reason="left the company")
    with pytest.raises(ApprovalError, match="was revoked at entry"):
        _sign(consortium, ledger, people, "bob", request_id)
    with pytest.raises(ApprovalError, match="only its issuer revokes it"):
        api.revoke_certificate(ledger, operator="B", key=consortium.member_keys["B"], cert_id=certs["alice"],
                               reason="x")


def test_forged_envelopes_and_relays_are_refused(consortium, ledger, people) -> None:
    keys, certs = people
    request_id = _request(consortium, ledger)
    state = api.replay(ledger)
    payload = approval_payload(request_id=request_id, request_sm3=state.requests[request_id].request_sm3,
                               step="finance", decision="approve", cert_id=certs["bob"])
    # carol's key signs an envelope naming bob's certificate
    forged = approval_entry(payload=payload, signature=sm2.sign(keys["carol"], pae(PAYLOAD_TYPE, payload)),
                            cert_id=certs["bob"])
    ledger.append(forged, consortium.sign(forged, "B"))
    assert "envelope's signature by" in api.replay(ledger).refused[-1].reason
    # the payload type is inside the signed bytes: a signature over the bare payload fails
    bare = approval_entry(payload=payload, signature=sm2.sign(keys["bob"], payload), cert_id=certs["bob"])
    ledger.append(bare, consortium.sign(bare, "B"))
    assert "envelope's signature by" in api.replay(ledger).refused[-1].reason
    # relayed by another operator than the person's
    good = approval_entry(payload=payload, signature=sm2.sign(keys["bob"], pae(PAYLOAD_TYPE, payload)),
                          cert_id=certs["bob"])
    ledger.append(good, consortium.sign(good, "A"))
    assert "relayed by the person's operator 'B'" in api.replay(ledger).refused[-1].reason
    ledger.append(good, consortium.sign(good, "B"))
    assert api.replay(ledger).requests[request_id].steps[0].approvals[0][0].cert_id == certs["bob"]
    with pytest.raises(ApprovalError, match="not the key certified"):
        api.sign_approval(ledger, request_id=request_id, cert_id=certs["alice"], person_key=keys["bob"],
                          relay_key=consortium.member_keys["A"])


def test_list_for_a_person_shows_what_they_may_sign(consortium, ledger, people) -> None:
    keys, certs = people
    request_id = _request(consortium, ledger)
    assert [r["request_id"] for r in api.approvals(ledger, cert_id=certs["alice"])] == [request_id]
    assert api.approvals(ledger, cert_id=certs["carol"]) == []
    _sign(consortium, ledger, people, "alice", request_id)
    assert [r["request_id"] for r in api.approvals(ledger, cert_id=certs["bob"])] == [request_id]
