"""Reading a party's outputs: the typed objects say what the files say, and a folder that
was tampered with, mixed up or cut short is refused naming the file and the field."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import settlechain
from conftest import DocRun
from engine.errors import InputError
from ledger_anchor.errors import EntryError


@pytest.fixture
def job(api_doc_run: DocRun) -> Path:
    """The local job of docs/api.md (its outputs are real), after the documented run."""
    folder = api_doc_run.folder / "job"
    assert (folder / "A" / "summary.json").exists(), "the documented local job did not run"
    return folder


@pytest.fixture
def copy_of(job: Path, tmp_path: Path):
    def make(role: str) -> Path:
        target = tmp_path / role
        shutil.copytree(job / role, target, ignore=shutil.ignore_patterns(".work"))
        return target
    return make


def _edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text("utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")


def test_the_objects_hold_what_the_files_hold(job: Path) -> None:
    a = settlechain.read_operator_outputs(job / "A")
    summary = json.loads((job / "A" / "summary.json").read_text("utf-8"))
    statement = json.loads((job / "A" / "statement.json").read_text("utf-8"))
    anchor = json.loads((job / "A" / "anchor.json").read_text("utf-8"))
    assert a.summary.counts == summary["counts"] and a.summary.totals == summary["totals"]
    assert a.summary.settlement == summary["review"]["settlement"] == a.settlement
    assert a.summary.stages["ingest"].seconds == summary["stages"]["ingest"]["seconds"]
    assert a.statement is not None and a.anchor is not None
    assert a.statement.signers == tuple(s["signer"] for s in statement["signatures"])
    assert a.statement.ledger_index == statement["ledger"]["index"] == a.anchor.index
    assert a.anchor.commitment_indices == tuple(anchor["commitment_indices"])
    assert a.statement.document == statement and a.summary.document == summary
    # the statement both signed is the same at A and B
    b = settlechain.read_operator_outputs(job / "B")
    assert b.statement is not None and b.statement.signing_bytes() == a.statement.signing_bytes()
    # records.parquet: every input row once, statuses adding up to the counts
    records = a.records()
    assert records.height == a.summary.counts["records"]
    by_status = dict(records.group_by("status").len().iter_rows())
    assert by_status["disputed"] == a.summary.counts["disputed"]
    assert by_status.get("unmatched", 0) == a.summary.counts["unmatched_local"]
    quarantine = a.quarantine()
    assert quarantine is not None and quarantine.height == a.summary.counts["invalid"]
    h = settlechain.read_helper_outputs(job / "H")
    assert h.summary.mpc_pairs == json.loads(
        (job / "H" / "summary.json").read_text("utf-8"))["learned"]["mpc_pairs"]
    assert h.anchor is not None and h.anchor.index == a.anchor.index


def test_a_missing_or_unreadable_file_names_it(tmp_path: Path, copy_of) -> None:
    with pytest.raises(InputError, match="file not found") as caught:
        settlechain.read_outputs(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "summary.json") in caught.value.diagnostics()
    folder = copy_of("A")
    (folder / "summary.json").write_text('{"job_id": ', encoding="utf-8")
    with pytest.raises(InputError, match="not JSON"):
        settlechain.read_outputs(folder)
    (folder / "summary.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError, match="not a JSON object"):
        settlechain.read_outputs(folder)


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("counts"), "counts"),
    (lambda d: d.update(counts=[1, 2]), "counts"),
    (lambda d: d["counts"].update(disputed="9"), "counts.disputed"),
    (lambda d: d["counts"].update(disputed=True), "counts.disputed"),  # a bool is no count
    (lambda d: d["review"].update(reasons="none"), "review.reasons"),
    (lambda d: d["stages"]["ingest"].pop("seconds"), "stages.ingest.seconds"),
    (lambda d: d["stages"]["ingest"].update(seconds=False), "stages.ingest.seconds"),
    (lambda d: d["stages"].update(peak_memory_mib="300"), "stages.peak_memory_mib"),
    (lambda d: d.update(job_id=7), "job_id"),
])
def test_a_malformed_summary_names_the_field(copy_of, change, field: str) -> None:
    folder = copy_of("A")
    _edit(folder / "summary.json", change)
    with pytest.raises(InputError) as caught:
        settlechain.read_outputs(folder)
    assert f"column {field!r}" in caught.value.diagnostics()
    assert str(folder / "summary.json") in caught.value.diagnostics()


def test_mixed_up_folders_are_refused(copy_of) -> None:
    folder = copy_of("A")
    _edit(folder / "statement.json", lambda d: d.update(job_id="another-job"))
    with pytest.raises(InputError, match="statement is of another job"):
        settlechain.read_outputs(folder)
    helper = copy_of("H")
    with pytest.raises(InputError, match="not an operator's"):
        settlechain.read_operator_outputs(helper)
    with pytest.raises(InputError, match="not the helper's"):
        settlechain.read_helper_outputs(copy_of("B"))
    _edit(helper / "summary.json", lambda d: d.update(party="Z"))
    with pytest.raises(InputError, match="unknown party"):
        settlechain.read_outputs(helper)


def test_malformed_statement_and_anchor_name_the_field(copy_of) -> None:
    folder = copy_of("A")
    _edit(folder / "statement.json", lambda d: d["signatures"].append("CMCC"))
    with pytest.raises(InputError, match="malformed signature") as caught:
        settlechain.read_outputs(folder)
    assert "signatures[2]" in caught.value.diagnostics()
    folder = copy_of("B")
    _edit(folder / "anchor.json", lambda d: d.update(commitment_indices=[4, "5"]))
    with pytest.raises(InputError, match="commitment_indices"):
        settlechain.read_outputs(folder)


def test_records_are_held_to_their_schema(copy_of) -> None:
    folder = copy_of("A")
    outputs = settlechain.read_operator_outputs(folder)
    frame = pl.read_parquet(folder / "records.parquet")
    frame.with_columns(pl.col("row").cast(pl.String)).write_parquet(folder / "records.parquet")
    with pytest.raises(InputError, match="wrong column type") as caught:
        outputs.records()
    assert "'row'" in caught.value.diagnostics()
    (folder / "records.parquet").unlink()
    with pytest.raises(InputError, match="file not found"):
        outputs.records()
    (folder / "quarantine.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="cannot read the file"):
        outputs.quarantine()
    (folder / "quarantine.parquet").unlink()
    assert outputs.quarantine() is None


def test_a_statement_is_checked_against_its_own_ledger_entry(api_doc_run: DocRun,
                                                             job: Path) -> None:
    a = settlechain.read_operator_outputs(job / "A")
    assert a.statement is not None and a.statement.ledger_index is not None
    config = job / "consortium" / "consortium.toml"
    with settlechain.open_ledger(config, readonly=True) as ledger:
        assert a.statement.check_against(ledger) is None
        # pointed at another entry (a dataset commitment of the same job)
        elsewhere = dataclasses.replace(a.statement, ledger_index=a.statement.ledger_index - 1)
        with pytest.raises(EntryError, match="is not the settlement statement"):
            elsewhere.check_against(ledger)
        # the second job's statement is on the same ledger: A's salt does not open it
        second = settlechain.read_operator_outputs(api_doc_run.folder / "out" / "A")
        assert second.statement is not None
        swapped = dataclasses.replace(a.statement, ledger_index=second.statement.ledger_index,
                                      job_id=second.statement.job_id)
        with pytest.raises(EntryError, match="does not open the commitment"):
            swapped.check_against(ledger)
        # without the salt nothing can be checked
        unsalted = dataclasses.replace(a.statement, document={
            k: v for k, v in a.statement.document.items() if k != "ledger"})
        with pytest.raises(EntryError, match="commitment_salt"):
            unsalted.check_against(ledger)
        never = dataclasses.replace(a.statement, ledger_index=None)
        with pytest.raises(EntryError, match="not anchored"):
            never.check_against(ledger)
