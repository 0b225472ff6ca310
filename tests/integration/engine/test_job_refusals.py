"""Parties that must not run together are refused before any record-level message, and every
party says why."""

from __future__ import annotations

import shutil

import pytest
from cryptography.hazmat.primitives import serialization

from engine.job.jobfile import Timeouts, load_job, write_job
from engine.job.local import LocalJob
from engine.job.tls import issue_member_cert, make_ca
from tests.integration.engine.jobs import JOB_TIMEOUT_S, describe, generate

TIMEOUTS = Timeouts(connect_s=10, stage_s=60, peer_silence_s=5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("refusal-data"), records=500, seed=31)


def prepare(tmp_path, data, **kw) -> LocalJob:
    return LocalJob.prepare(tmp_path, data.data, data.rules, job_id="job-1",
                            timeouts=TIMEOUTS, **kw)


def rewrite_job_for_b(job: LocalJob, tmp_path, **changes):
    """Give B its own job file that differs from A's and H's."""
    base = load_job(job.job_path)
    fields = dict(job_id=base.id, period=base.period, rules=str(base.rules_path),
                  rules_sm3=base.rules_sm3, parties=base.parties, timeouts=TIMEOUTS)
    fields.update(changes)
    path = write_job(tmp_path / "b-job.toml", **fields)
    command = job.parties["B"].command
    command[command.index("--job") + 1] = str(path)


def run(job: LocalJob) -> dict[str, int]:
    job.start()
    return job.wait(JOB_TIMEOUT_S)


def assert_all_stopped(job, codes, text):
    assert codes == {"A": 3, "B": 3, "H": 3}, describe(job)
    for role, party in job.parties.items():
        console = party.console_text()
        assert text in console, f"{role}:\n{console}"
        assert "Traceback" not in console
        assert not (party.out / "records.parquet").exists()


@pytest.mark.slow
def test_party_with_other_rules_is_refused(tmp_path, data):
    job = prepare(tmp_path, data)
    other_rules = tmp_path / "other-rules.toml"
    other_rules.write_text(data.rules.read_text().replace("time_tolerance_s = 5",
                                                          "time_tolerance_s = 4"))
    from engine.rules import load_rules

    rewrite_job_for_b(job, tmp_path, rules=str(other_rules),
                      rules_sm3=load_rules(other_rules).sm3_hash())
    assert_all_stopped(job, run(job), "rules differ from the job's")


@pytest.mark.slow
def test_party_with_another_job_id_is_refused(tmp_path, data):
    job = prepare(tmp_path, data)
    rewrite_job_for_b(job, tmp_path, job_id="job-2")
    assert_all_stopped(job, run(job), "B joined job 'job-2' but the session is for job 'job-1'")


@pytest.mark.slow
def test_rules_not_adopted_are_refused(tmp_path, data):
    job = prepare(tmp_path, data, adopt=False)
    assert_all_stopped(job, run(job), "are not in force for period 2026-10")


@pytest.mark.slow
def test_circuit_breaker_on_input_sizes(tmp_path, data):
    small = tmp_path / "rules.toml"
    text = data.rules.read_text()
    assert "max_records" in text
    import re

    small.write_text(re.sub(r"max_records = \d+", "max_records = 100", text))
    job = LocalJob.prepare(tmp_path, data.data, small, job_id="job-1", timeouts=TIMEOUTS)
    assert_all_stopped(job, run(job), "circuit breaker: A has")


@pytest.mark.slow
def test_certificate_from_another_ca_is_refused(tmp_path, data):
    job = prepare(tmp_path, data)
    # B presents a certificate for "CUCC" issued by a CA the consortium never heard of
    rogue = tmp_path / "rogue"
    shutil.copytree(job.config.parent, rogue)
    ca_key, ca_cert = make_ca("rogue CA")
    key, cert = issue_member_cert(ca_key, ca_cert, "CUCC", "127.0.0.1")
    (rogue / "members" / "CUCC" / "tls.crt").write_bytes(cert.public_bytes(
        serialization.Encoding.PEM))
    (rogue / "members" / "CUCC" / "tls.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    command = job.parties["B"].command
    command[command.index("--config") + 1] = str(rogue / "consortium.toml")
    codes = run(job)
    assert codes == {"A": 3, "B": 3, "H": 3}, describe(job)
    assert "could not reach party A" in job.parties["B"].console_text()
    for role in "AH":
        assert "B did not join within 10 s" in job.parties[role].console_text()


@pytest.mark.slow
def test_a_settled_job_is_not_run_again(tmp_path, data):
    """A second run of a job id whose statement is on the ledger is refused before any
    record is read: in the settled job's own folders nothing is written at all (each party
    finds anchor.json there), and from fresh folders the agreement refuses it on every
    party.  The ledger and the first run's outputs stay as they were."""
    import hashlib
    import json

    from ledger_anchor.opening import open_ledger

    job = prepare(tmp_path, data)
    assert run(job) == {"A": 0, "B": 0, "H": 0}, describe(job)
    anchor = json.loads((job.parties["A"].out / "anchor.json").read_text())["index"]
    with open_ledger(job.config, readonly=True) as ledger:
        size = ledger.size()
        assert ledger.entry(anchor)["kind"] == "settlement_statement"

    def snapshot():
        return {role: {p.relative_to(party.out): hashlib.sha256(p.read_bytes()).digest()
                       for p in party.out.rglob("*") if p.is_file() and p.name != "console.log"}
                for role, party in job.parties.items()}

    before = snapshot()
    codes = run(job)
    assert codes == {"A": 3, "B": 3, "H": 3}, describe(job)
    for role, party in job.parties.items():
        console = party.console_text()
        assert f"job 'job-1' is already settled in {party.out}" in console, f"{role}:\n{console}"
        assert f"ledger entry {anchor}" in console and "nothing was written there" in console
        assert "Traceback" not in console
    assert snapshot() == before

    # the same job from fresh folders: refused at the agree step, before any record
    for role, party in job.parties.items():
        fresh = tmp_path / "fresh" / role
        party.command[party.command.index("--out") + 1] = str(fresh)
        party.out = fresh
    codes = run(job)
    assert codes == {"A": 3, "B": 3, "H": 3}, describe(job)
    for role, party in job.parties.items():
        console = party.console_text()
        assert f"job 'job-1' is already settled: its settlement statement is ledger entry {anchor}" \
            in console, f"{role}:\n{console}"
        assert not (party.out / "quarantine.parquet").exists()  # no input was read
    with open_ledger(job.config, readonly=True) as ledger:
        assert ledger.size() == size
    for party in job.parties.values():  # the fresh folders hold only the log and status
        assert {p.name for p in party.out.iterdir()} <= {"party.log", "status", "console.log"}
