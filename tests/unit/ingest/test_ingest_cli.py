"""``settlechain validate`` through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.unit.ingest.ingest_helpers import EXAMPLE_RULES, FIXTURES, good_row, write_csv

SCRIPT = Path(sys.executable).parent / "settlechain"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), "validate", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_clean_file_exits_zero_and_writes_an_empty_quarantine(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "a.csv", [good_row(), good_row(record_id="r2", service="sms",
                                                              duration_s="0", charge="1")])
    proc = run("--data", data, "--rules", EXAMPLE_RULES)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"file:       {data} (csv)"
    assert lines[1:4] == ["rows:       2", "valid:      2  (ok 2, duplicate 0, excluded 0)",
                          "invalid:    0"]
    assert f"quarantine: {tmp_path / 'a.quarantine.csv'} (0 entries)" in lines
    assert (tmp_path / "a.quarantine.csv").read_text().startswith("row,record_id,code,column")


def test_invalid_rows_exit_one_with_counts_by_reason(tmp_path: Path) -> None:
    quarantine = tmp_path / "bad.parquet"
    proc = run("--data", FIXTURES / "rows_malformed_number.csv", "--rules", EXAMPLE_RULES,
               "--quarantine", quarantine)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1:4] == ["rows:       6", "valid:      1  (ok 1, duplicate 0, excluded 0)",
                          "invalid:    5"]
    assert lines[4:6] == ["  malformed_number:calling  3", "  malformed_number:called   2"]
    assert pl.read_parquet(quarantine).get_column("row").to_list() == [2, 3, 4, 5, 6]


def test_json_summary(tmp_path: Path) -> None:
    proc = run("--data", FIXTURES / "rows_duplicate_record_id.csv", "--rules", EXAMPLE_RULES,
               "--quarantine", tmp_path / "q.csv", "--json")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert {k: summary[k] for k in ("rows", "valid", "invalid", "records", "invalid_by_reason")} \
        == {"rows": 4, "valid": 2, "invalid": 2, "records": 2,
            "invalid_by_reason": {"duplicate_record_id:record_id": 2}}
    assert len(summary["rules_sm3"]) == 64


def test_file_level_error_exits_two_with_the_diagnosis(tmp_path: Path) -> None:
    proc = run("--data", FIXTURES / "file_missing_columns.csv", "--rules", EXAMPLE_RULES,
               "--quarantine", tmp_path / "q.csv")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[0] == (
        f"settlechain validate: error: {FIXTURES / 'file_missing_columns.csv'}: required columns "
        "missing: called, volume_kb, trunk_group, part_seq")
    assert not (tmp_path / "q.csv").exists()


def test_bad_rules_exit_two(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text("[meta]\nname = 1\n")
    proc = run("--data", FIXTURES / "rows_wrong_type.csv", "--rules", rules)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == \
        f"settlechain validate: error: {rules}, column 'meta.name': wrong type"


def test_progress_bar_on_request(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "a.csv", [good_row()])
    proc = run("--data", data, "--rules", EXAMPLE_RULES, "--progress", "always")
    assert proc.returncode == 0, proc.stderr
    assert "3/3 stages" in proc.stderr
    quiet = run("--data", data, "--rules", EXAMPLE_RULES)  # auto: not a terminal, small file
    assert "stages" not in quiet.stderr


def test_help_lists_validate() -> None:
    proc = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "validate" in proc.stdout
