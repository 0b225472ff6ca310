"""The circuit breaker and agreement check that runs before any record is touched."""

from __future__ import annotations

import dataclasses

import pytest

from engine.job import session_pb2
from engine.job.agreement import check_agreement
from engine.rules import load_rules

MEMBERS = {"A": "opA", "B": "opB", "H": "opH"}


@pytest.fixture(scope="module")
def rules():
    return load_rules("docs/example_rules.toml")


def hellos(rules_sm3, a_rows=5000, b_rows=5000, **changes):
    out = {}
    for role, rows in (("A", a_rows), ("B", b_rows), ("H", 0)):
        fields = dict(job_id="j1", role=role, member_id=MEMBERS[role], rules_sm3=rules_sm3,
                      protocol_version=1, input_rows=rows)
        fields.update(changes.get(role, {}))
        out[role] = session_pb2.Hello(**fields)
    return out


def check(rules, hs, **kw):
    return check_agreement(hs, job_id="j1", rules_sm3=rules.sm3_hash(), members=MEMBERS,
                           rules=kw.get("rules_obj", rules))


def test_agreeing_parties_pass(rules):
    assert check(rules, hellos(rules.sm3_hash())) is None


def test_other_rules_named_with_the_role(rules):
    reason = check(rules, hellos(rules.sm3_hash(), B={"rules_sm3": "0" * 64}))
    assert reason is not None and reason.startswith("rules differ") and "B has 0000" in reason


def test_other_job_and_member(rules):
    assert "runs job 'j2'" in check(rules, hellos(rules.sm3_hash(), H={"job_id": "j2"}))
    assert "is member 'mallory'" in check(rules, hellos(rules.sm3_hash(),
                                                         B={"member_id": "mallory"}))


def test_size_bounds(rules):
    small = dataclasses.replace(rules, circuit_breaker=dataclasses.replace(
        rules.circuit_breaker, max_records=1000))
    reason = check_agreement(hellos(rules.sm3_hash(), a_rows=1001, b_rows=900), job_id="j1",
                             rules_sm3=rules.sm3_hash(), members=MEMBERS, rules=small)
    assert reason is not None and "A has 1,001 input rows" in reason
    # ratio 2.0 with at least 1000 rows on the smaller side
    assert check(rules, hellos(rules.sm3_hash(), a_rows=2000, b_rows=1000)) is None
    assert "factor 2.00" not in (check(rules, hellos(rules.sm3_hash(), a_rows=2000,
                                                     b_rows=1000)) or "")
    assert "differ by a factor 2.01" in check(rules, hellos(rules.sm3_hash(), a_rows=2010,
                                                             b_rows=1000))
    # tiny inputs never trip the ratio, a tiny side against a huge one does
    assert check(rules, hellos(rules.sm3_hash(), a_rows=10, b_rows=1)) is None
    assert "fewer than 1,000 rows" in check(rules, hellos(rules.sm3_hash(), a_rows=10,
                                                            b_rows=1_000_000))


def test_rules_not_adopted_on_the_ledger(rules):
    reason = check_agreement(hellos(rules.sm3_hash()), job_id="j1", rules_sm3=rules.sm3_hash(),
                             members=MEMBERS, rules=rules, rules_adopted=False)
    assert reason is not None and "not adopted on the consortium ledger" in reason
