"""Running parties through the API when things go wrong: bad input is refused with the
package's own error, a failing party is named, and an integrator's callback that raises
stops nothing."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import polars as pl
import pytest

import settlechain
from conftest import DocRun
from settlechain.jobs import _shielded


def test_a_raising_callback_is_logged_once_and_does_not_propagate(caplog) -> None:
    calls: list[str] = []

    def callback(status: settlechain.Status) -> None:
        calls.append(status["stage"])
        raise ValueError("the integrator's bug")

    shielded = _shielded(callback)
    with caplog.at_level(logging.WARNING, logger="settlechain.jobs"):
        shielded({"stage": "ingest"})
        shielded({"stage": "psi_exact"})
    assert calls == ["ingest", "psi_exact"]  # still called after it failed
    failures = [r for r in caplog.records if "on_status callback failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_run_party_refuses_what_it_can_check_alone(api_doc_run: DocRun, tmp_path: Path) -> None:
    folder = api_doc_run.folder
    config, job = folder / "job" / "consortium" / "consortium.toml", folder / "job-02.toml"
    assert job.exists(), "the documented second job did not run"
    with pytest.raises(settlechain.InputError, match="holds no data"):
        settlechain.run_party(config, job, "CTCC", out=tmp_path / "H", data=folder / "data/a.csv")
    with pytest.raises(settlechain.InputError, match="needs its billing export"):
        settlechain.run_party(config, job, "CMCC", out=tmp_path / "A")
    with pytest.raises(settlechain.InputError, match="takes no part") as caught:
        settlechain.run_party(config, job, "CBN", out=tmp_path / "X")
    assert isinstance(caught.value, settlechain.ERRORS)
    # a settled job's folder is not touched: the job is refused before anything is written
    before = sorted(p.name for p in (folder / "out" / "A").iterdir())
    with pytest.raises(settlechain.JobError, match="already settled"):
        settlechain.run_party(config, job, "CMCC", out=folder / "out" / "A",
                              data=folder / "data" / "a.csv")
    assert sorted(p.name for p in (folder / "out" / "A").iterdir()) == before
    assert not (tmp_path / "H").exists() and not (tmp_path / "A").exists()


def test_generate_data_names_a_bad_knob(tmp_path: Path) -> None:
    with pytest.raises(settlechain.DataGenError, match="unknown knob 'missing_share'"):
        settlechain.generate_data(tmp_path, records=10, seed=1, missing_share=0.1)
    with pytest.raises(settlechain.DataGenError, match="missing_share_b"):
        settlechain.generate_data(tmp_path, records=10, seed=1, missing_share_b=1.5)
    assert not any(tmp_path.iterdir())


def test_validate_applies_the_period(api_doc_run: DocRun) -> None:
    data = api_doc_run.folder / "data"
    whole = settlechain.validate(data / "a.csv", data / "rules.toml")
    inside = settlechain.validate(data / "a.csv", data / "rules.toml", period="2026-10")
    before = settlechain.validate(data / "a.csv", data / "rules.toml", period="2026-09")
    job = settlechain.read_operator_outputs(api_doc_run.folder / "job" / "A")  # same period
    assert whole.counts["out_of_period"] == 0
    assert inside.counts["out_of_period"] == job.summary.excluded_by_reason["out_of_period"] > 0
    # the months are disjoint: a row matched in one is out of the other's period
    statuses = inside.rows.select("row", "status", "reason").join(
        before.rows.select("row", pl.col("status").alias("before"),
                           pl.col("reason").alias("before_reason")), on="row")
    ok_inside = statuses.filter(pl.col("status") == "ok")
    ok_before = statuses.filter(pl.col("before") == "ok")
    assert ok_inside.height > 1000
    assert (ok_inside.get_column("before_reason") == "out_of_period").all()
    assert (ok_before.get_column("reason") == "out_of_period").all()
    with pytest.raises(settlechain.InputError, match="period"):
        settlechain.validate(data / "a.csv", data / "rules.toml", period="2026-13")


def test_a_local_job_that_fails_names_the_party_and_why(api_doc_run: DocRun, tmp_path: Path,
                                                        caplog) -> None:
    folder = api_doc_run.folder
    bad = tmp_path / "b.csv"
    bad.write_text("record_id,service\nx,voice\n", encoding="utf-8")
    statuses: list[tuple[str, str]] = []

    def on_status(role: str, status: settlechain.Status) -> None:
        statuses.append((role, status["stage"]))
        raise RuntimeError("a display that breaks")

    with caplog.at_level(logging.WARNING, logger="settlechain.jobs"), \
            pytest.raises(settlechain.JobError) as caught:
        settlechain.run_local_job(tmp_path / "job", {"A": folder / "data" / "a.csv", "B": bad},
                                  folder / "data" / "rules.toml", period="2026-10",
                                  job_id="bad-input-1", timeout_s=120,
                                  config=folder / "job" / "consortium" / "consortium.toml",
                                  on_status=on_status)
    text = caught.value.diagnostics()
    assert "party B exited with 2 (failed: " in text
    assert "required columns missing" in text  # B's own reason, from the end of its output
    assert "party A exited with 3" in text and "party H exited with 3" in text
    assert {role for role, _ in statuses} == {"A", "B", "H"}
    assert ("B", "failed") in statuses
    assert sum("on_status callback failed" in r.getMessage() for r in caplog.records) == 3
    shutil.rmtree(tmp_path / "job")
