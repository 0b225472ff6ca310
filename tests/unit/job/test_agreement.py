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


def test_a_settled_job_is_refused_before_the_rules_are_looked_at(rules):
    reason = check_agreement(hellos(rules.sm3_hash()), job_id="j1", rules_sm3=rules.sm3_hash(),
                             members=MEMBERS, rules=rules, rules_adopted=False, settled_at=41)
    assert reason is not None
    assert reason.startswith("job 'j1' is already settled: its settlement statement is ledger entry 41;")
    assert check_agreement(hellos(rules.sm3_hash()), job_id="j1", rules_sm3=rules.sm3_hash(),
                           members=MEMBERS, rules=rules, settled_at=None) is None


class _Entries:
    """Just the two reads settled_at makes (size, entries), over a list of entries."""

    def __init__(self, entries):
        self.list = entries
        self.reads = []

    def size(self):
        return len(self.list)

    def entries(self, start, end):
        self.reads.append((start, end))
        return self.list[start:end]


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_settled_at_finds_the_last_statement_of_the_job(chunk):
    from engine.job.pipeline import settled_at

    entries = [{"kind": "rule_proposal"}, {"kind": "dataset_commitment", "job_id": "j1"},
               {"kind": "settlement_statement", "job_id": "j1"},
               {"kind": "settlement_statement", "job_id": "j10"},
               {"kind": "dataset_commitment", "job_id": "j2"},
               {"kind": "settlement_statement", "job_id": "j2"}, {"kind": "rule_vote"}]
    ledger = _Entries(entries)
    assert settled_at(ledger, "j1", chunk=chunk) == 2
    assert settled_at(ledger, "j2", chunk=chunk) == 5
    assert settled_at(ledger, "j3", chunk=chunk) is None
    # every entry read once when the id is absent, nothing past the start
    ledger.reads.clear()
    settled_at(ledger, "j3", chunk=chunk)
    covered = sorted(i for start, end in ledger.reads for i in range(start, end))
    assert covered == list(range(len(entries)))
    assert settled_at(_Entries([]), "j1", chunk=chunk) is None
