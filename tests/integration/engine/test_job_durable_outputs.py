"""Nothing lost after anchoring (issue 10 item 3).

A party is killed (SIGKILL) or its disk fills up (ENOSPC on one output file) at every step
from the report to the end of the anchor.  Afterwards one of two things holds:

- nothing of the job is on the ledger, and running the same job again succeeds; or
- the statement is anchored, and every party has, or rebuilds with ``--recover``, outputs
  that agree with it: its records.parquet has the digest the statement binds, and its
  statement.json opens the commitment on the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from engine.durable import FULL_DISK_ENV
from engine.job.jobfile import Timeouts
from engine.job.local import LocalJob
from engine.job.party import FAULT_ENV
from engine.side import RECORDS_DIGEST_FORMAT
from ledger_anchor import open_ledger
from ledger_anchor.commitment import open_document
from ledger_anchor.sm3 import sm3
from tests.integration.engine.jobs import JOB_TIMEOUT_S, describe, generate

TIMEOUTS = Timeouts(connect_s=30, stage_s=60, peer_silence_s=6)

KILLS = [("A", "report:records"), ("B", "report:written"), ("A", "report:signed"),
         ("A", "anchor:ready"), ("B", "anchor:ready"), ("A", "anchor:appended"),
         ("B", "anchor:anchored"), ("H", "anchor:anchored"), ("A", "anchor:cosigned"),
         ("B", "anchor:statement")]
FULL_DISKS = [("A", "records.parquet"), ("B", "quarantine.parquet"), ("A", "summary.json"),
              ("B", "report.html"), ("A", "statement.json"), ("B", "anchor.json")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("durable-data"), records=1500, seed=17)


def job_entries(config: Path) -> list[tuple[int, dict]]:
    with open_ledger(config, readonly=True) as ledger:
        return [(i, e) for i, e in enumerate(ledger.entries(0, ledger.size()))
                if e.get("job_id") == "job-1"]


def start(folder: Path, data, env=None, *, config: Path | None = None,
          recover: bool = False) -> tuple[LocalJob, dict[str, int]]:
    job = LocalJob.prepare(folder, data.data, data.rules, job_id="job-1", config=config,
                           timeouts=TIMEOUTS)
    if recover:
        for party in job.parties.values():
            party.command.append("--recover")
    job.start(env)
    return job, job.wait(JOB_TIMEOUT_S)


def check_agrees_with_the_ledger(job: LocalJob) -> None:
    entries = dict((e["kind"], (i, e)) for i, e in job_entries(job.config))
    index, anchored = entries["settlement_statement"]
    for role in "AB":
        out = job.parties[role].out
        statement = json.loads((out / "statement.json").read_text())
        open_document(statement, anchored)  # raises unless it opens the anchored commitment
        assert statement["ledger"]["index"] == index
        assert json.loads((out / "anchor.json").read_text())["index"] == index
        frame = pl.read_parquet(out / "records.parquet")
        digest = sm3((RECORDS_DIGEST_FORMAT + "\n").encode() + frame.write_csv().encode()).hex()
        assert digest == statement["outputs"][role], role
        for name in ("summary.json", "report.html", "quarantine.parquet"):
            assert (out / name).is_file(), (role, name)
        assert not list(out.glob("*.tmp")), list(out.glob("*.tmp"))


def settle_or_recover(tmp_path: Path, data, job: LocalJob) -> None:
    """What an operator does after the failure: the rule of the module docstring."""
    if not job_entries(job.config):
        again, codes = start(tmp_path, data, config=job.config)  # the same folders
        assert codes == {"A": 0, "B": 0, "H": 0}, describe(again)
        check_agrees_with_the_ledger(again)
        return
    kinds = sorted(e["kind"] for _, e in job_entries(job.config))
    assert kinds[:3] == ["dataset_commitment", "dataset_commitment", "settlement_statement"] \
        or "settlement_statement" in kinds, kinds
    complete = all((job.parties[r].out / name).is_file() for r in "AB"
                   for name in ("statement.json", "anchor.json"))
    if not complete:
        recovered, codes = start(tmp_path, data, config=job.config, recover=True)
        assert codes == {"A": 0, "B": 0, "H": 0}, describe(recovered)
        job = recovered
    check_agrees_with_the_ledger(job)
    # a settled job is never run again
    again, codes = start(tmp_path, data, config=job.config)
    assert set(codes.values()) == {3}, describe(again)


@pytest.mark.slow
@pytest.mark.parametrize(("victim", "point"), KILLS, ids=[f"{r}-{p}" for r, p in KILLS])
def test_killed_party(tmp_path, data, victim, point):
    job, codes = start(tmp_path, data, {victim: {FAULT_ENV: point}})
    assert codes[victim] == -9, describe(job)
    for role, code in codes.items():
        console = job.parties[role].console_text()
        assert "Traceback" not in console, console
    settle_or_recover(tmp_path, data, job)


@pytest.mark.slow
@pytest.mark.parametrize(("victim", "name"), FULL_DISKS, ids=[f"{r}-{n}" for r, n in FULL_DISKS])
def test_full_disk(tmp_path, data, victim, name):
    job, codes = start(tmp_path, data, {victim: {FULL_DISK_ENV: name}})
    assert codes[victim] == 3, describe(job)
    out = job.parties[victim].out
    console = job.parties[victim].console_text()
    assert "No space left on device" in console and "Traceback" not in console, console
    assert "No space left on device" in (out / "party.log").read_text()
    status = json.loads((out / "status").read_text())
    assert status["stage"] == "stopped" and "No space left" in status.get("detail", ""), status
    assert not (out / (name + ".tmp")).exists()
    settle_or_recover(tmp_path, data, job)
