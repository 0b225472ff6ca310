"""Jobs whose operators run their buckets on workers: a local process pool, and each
operator's own two-node Ray cluster on this machine.  Statuses equal the single-process
job's; a worker killed mid-job is started again and the job still ends the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from engine.job.jobfile import Timeouts
from engine.job.local import LocalJob

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from jobs import JOB_TIMEOUT_S, describe, generate  # noqa: E402

PER_BUCKET = 1000
TIMEOUTS = Timeouts(connect_s=90, stage_s=180, peer_silence_s=6)


def _job(folder: Path, data, job_id: str, *, args=None, env=None) -> LocalJob:
    job = LocalJob.prepare(folder, data.data, data.rules, job_id=job_id,
                           records_per_bucket=PER_BUCKET, party_args=args, timeouts=TIMEOUTS)
    job.start(env)
    codes = job.wait(JOB_TIMEOUT_S)
    assert codes == {"A": 0, "B": 0, "H": 0}, describe(job)
    return job


def _outcome(job: LocalJob) -> dict[str, pl.DataFrame]:
    return {r: pl.read_parquet(job.folder / r / "records.parquet").select(
        "row", "status", "reasons") for r in "AB"}


def _summary(job: LocalJob, role: str) -> dict:
    return json.loads((job.folder / role / "summary.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("scale-data"), records=4000, seed=11)


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """The same data as a job without workers: the reference outcome."""
    job = _job(tmp_path_factory.mktemp("single"), data, "single")
    assert _summary(job, "A")["partition"]["buckets"] == 4
    return _outcome(job)


def _same(job: LocalJob, single) -> None:
    got = _outcome(job)
    for role in "AB":
        assert got[role].equals(single[role]), role
    for role in "AB":
        summary = _summary(job, role)
        assert summary["partition"]["buckets"] == 4
        assert summary["stages"]["psi_exact"]["items"] > 0


def _worker_logs(job: LocalJob, role: str) -> str:
    folder = next((job.folder / role / ".work").iterdir()) / "workers"
    return "\n".join(p.read_text() for p in sorted(folder.glob("*.log")))


def _manifest(job: LocalJob) -> dict:
    folder = next((job.folder / "A" / ".work").iterdir()) / "workers"
    return json.loads((folder / "manifest.json").read_text())


def test_local_pool_statuses_equal_the_single_process_job(data, single, tmp_path):
    job = _job(tmp_path, data, "pool", args={"A": ["--workers", "2"], "B": ["--workers", "3"]})
    _same(job, single)
    manifest = _manifest(job)["manifest"]
    assert [(r["first"], r["end"]) for r in manifest["ranges"]] == [(0, 2), (2, 4)]
    assert "2 worker pairs: 4 buckets run" in (job.folder / "A" / "party.log").read_text()


@pytest.mark.parametrize("role, fault", [("A", "A:1:S2a"), ("B", "B:3:S1:end")])
def test_a_worker_killed_mid_job_is_started_again(data, single, tmp_path, role, fault):
    once = tmp_path / "fault.once"
    job = _job(tmp_path / "job", data, f"kill-{role}",
               args={"A": ["--workers", "2"], "B": ["--workers", "2"]},
               env={role: {"SETTLECHAIN_WORKER_FAULT": fault,
                           "SETTLECHAIN_WORKER_FAULT_ONCE": str(once)}})
    assert once.exists(), "the fault was not injected"
    _same(job, single)
    party_log = (job.folder / role / "party.log").read_text()
    assert "died" in party_log and "starting it again (1 of 2)" in party_log
    other = "B" if role == "A" else "A"
    assert "a new epoch" in _worker_logs(job, other) or "epoch ends" in _worker_logs(job, other)


def test_without_ray_nothing_of_ray_is_imported():
    """The party, the driver and a local worker process run without importing Ray."""
    probe = (
        "import sys\n"
        "import engine.cli, engine.job.pipeline, engine.scale.driver, engine.scale.local\n"
        "from engine.scale.local import LocalHandle\n"
        "from engine.scale.worker import WorkerSetup\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]\n"
        "print('clean')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr


def test_ray_two_node_clusters_statuses_equal_the_single_process_job(data, single, tmp_path):
    """Each operator on a two-node Ray cluster of its own; one of A's workers is killed
    mid-job (Ray reports the actor dead; it is started again on the same node)."""
    from ray_nodes import RayCluster

    clusters = {"A": RayCluster(tmp_path / "ray-A", "127.0.0.2", "127.0.0.3"),
                "B": RayCluster(tmp_path / "ray-B", "127.0.0.4", "127.0.0.5")}
    try:
        for cluster in clusters.values():
            cluster.start()
        once = tmp_path / "fault.once"
        args = {r: ["--workers", "2", "--executor", "ray", "--ray-address", c.address]
                for r, c in clusters.items()}
        job = _job(tmp_path / "job", data, "ray",
                   args=args, env={"A": {"SETTLECHAIN_WORKER_FAULT": "A:2:S3a",
                                         "SETTLECHAIN_WORKER_FAULT_ONCE": str(once)}})
    finally:
        for cluster in clusters.values():
            cluster.stop()
    assert once.exists(), "the fault was not injected"
    _same(job, single)
    manifest = _manifest(job)["manifest"]
    # A's two workers on A's two nodes (each listens on its node's address)
    assert sorted(r["A"]["endpoint"].rpartition(":")[0] for r in manifest["ranges"]) == \
        ["127.0.0.2", "127.0.0.3"]
    assert all(r["B"]["node"].startswith("ray:") for r in manifest["ranges"])
    assert {r["B"]["node"].rpartition("@")[2] for r in manifest["ranges"]} == \
        {"127.0.0.4", "127.0.0.5"}
    assert "starting it again (1 of 2)" in (job.folder / "A" / "party.log").read_text()
