"""Kill one party at a stage: the others stop with a clear error within the timeout, nothing
of the job reaches the ledger, and the same job id then runs to the end."""

from __future__ import annotations

import time

import pytest

from engine.job.jobfile import Timeouts
from engine.job.party import FAULT_ENV
from ledger_anchor import open_ledger
from tests.integration.engine.jobs import describe, generate, run_job

PEER_SILENCE_S = 6
FAULTS = [("A", "psi_exact"), ("B", "commit"), ("B", "psi_key"), ("H", "mpc"), ("A", "mpc"),
          ("B", "report"), ("A", "anchor"), ("H", "anchor")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("fault-data"), records=2000, seed=21)


def job_entries(config, job_id):
    with open_ledger(config, readonly=True) as ledger:
        entries = ledger.entries(0, ledger.size())
    return [e for e in entries if e.get("job_id") == job_id]


@pytest.mark.slow
@pytest.mark.parametrize(("victim", "stage"), FAULTS, ids=[f"{r}-{s}" for r, s in FAULTS])
def test_killed_party_stops_the_others_and_nothing_is_anchored(tmp_path, data, victim, stage):
    timeouts = Timeouts(connect_s=30, stage_s=60, peer_silence_s=PEER_SILENCE_S)
    started = time.monotonic()
    job, codes = run_job(tmp_path, data.data, data.rules, timeouts=timeouts,
                         env={victim: {FAULT_ENV: stage}})
    elapsed = time.monotonic() - started
    assert codes[victim] == -9, describe(job)
    for role, code in codes.items():
        if role == victim:
            continue
        assert code == 3, describe(job)
        console = job.parties[role].console_text()
        assert "error: the job was stopped" in console or "stopped the job" in console, console
        assert "Traceback" not in console, console
    # noticed through the session or the protocols, well before any stage timeout
    assert elapsed < 45, elapsed
    assert job_entries(job.config, "job-1") == []

    # the same job id runs to the end afterwards
    again, codes = run_job(tmp_path / "again", data.data, data.rules, timeouts=timeouts,
                           config=job.config)
    assert codes == {"A": 0, "B": 0, "H": 0}, describe(again)
    kinds = sorted(e["kind"] for e in job_entries(job.config, "job-1"))
    assert kinds == ["dataset_commitment", "dataset_commitment", "settlement_statement"]
