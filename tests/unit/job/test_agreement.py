"""The agreement check that runs before any record is touched (engine.job.agree).  The
circuit breaker over the sizes has its own tests (tests/unit/matching/test_matching_api)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.job import session_pb2
from engine.job.agree import agreement
from engine.job.jobfile import load_job, write_job
from engine.job.session import PROTOCOL_VERSION

MEMBERS = {"A": "opA", "B": "opB", "H": "opH"}
RULES_SM3 = "ab" * 32


@pytest.fixture
def job(tmp_path: Path):
    return load_job(write_job(tmp_path / "job.toml", job_id="j1", period="2026-10",
                              rules="rules.toml", rules_sm3=RULES_SM3, parties=MEMBERS))


def hellos(**changes):
    out = {}
    for role in ("A", "B", "H"):
        fields = dict(job_id="j1", role=role, member_id=MEMBERS[role], rules_sm3=RULES_SM3,
                      protocol_version=PROTOCOL_VERSION, psi_protocol="kkrt16",
                      records_per_bucket=1 << 20)
        fields.update(changes.get(role, {}))
        out[role] = session_pb2.Hello(**fields)
    return out


def check(job, hs, *, recover=False, adopted=True, settled_at=None):
    return agreement(job, hs, recover=recover, settled_at=settled_at,
                     rules_not_in_force=None if adopted else "no package adopted for 2026-10")


def test_agreeing_parties_pass(job):
    assert check(job, hellos()) is None


@pytest.mark.parametrize("changes, reason", [
    ({"B": {"rules_sm3": "0" * 64}}, "B has 0000"),
    ({"H": {"job_id": "j2"}}, "runs job 'j2'"),
    ({"B": {"member_id": "mallory"}}, "is member 'mallory'"),
    ({"H": {"protocol_version": 1}}, "protocol version 1"),
    ({"B": {"psi_protocol": "rr22"}}, "another PSI protocol"),
    ({"B": {"records_per_bucket": 5}}, "another partitioning"),
    ({"H": {"recover": True}}, "--recover on all three or none"),
])
def test_disagreement_is_named(job, changes, reason):
    got = check(job, hellos(**changes))
    assert got is not None and reason in got


def test_rules_must_be_adopted_and_the_job_not_settled(job):
    got = check(job, hellos(), adopted=False)
    assert "not in force for period 2026-10" in got and "no package adopted" in got
    got = check(job, hellos(), settled_at=7)
    assert "already settled" in got and "entry 7" in got


def test_recovery_needs_a_settled_job(job):
    all_recover = hellos(**{r: {"recover": True} for r in ("A", "B", "H")})
    assert "nothing to recover" in check(job, all_recover, recover=True)
    assert check(job, all_recover, recover=True, settled_at=3) is None
