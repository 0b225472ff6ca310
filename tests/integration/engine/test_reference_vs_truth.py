"""The plaintext reference reconciler (the oracle) against the generator's true answer,
for several seeds and knob settings, through the real console script (`gen`,
`reconcile-plain`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

SETTLECHAIN = str(Path(sys.executable).with_name("settlechain"))

SCENARIOS = [
    pytest.param(["--seed", "1"], id="defaults"),
    pytest.param(["--seed", "2", "--format", "parquet"], id="parquet"),
    pytest.param(["--seed", "3", "--skew-share", "0.4", "--skew-beyond-share", "0.05",
                  "--duration-diff-share", "0.2", "--missing-share-a", "0.05",
                  "--duplicate-share", "0.02", "--split-share", "1.0",
                  "--increment-quirk-share", "0.2"], id="high-perturbation"),
    pytest.param(["--seed", "4", "--time-tolerance-s", "2", "--time-window-s", "4",
                  "--charge-tolerance", "0", "--duration-tolerance-s", "0"], id="tight-rules"),
]


def run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([SETTLECHAIN, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("knobs", SCENARIOS)
def test_reference_statuses_equal_truth(tmp_path, knobs):
    data = tmp_path / "data"
    run("gen", "--records", "8000", "--out", str(data), *knobs)
    fmt = "parquet" if "parquet" in knobs else "csv"
    out = tmp_path / "plain"
    run("reconcile-plain", "--a", str(data / f"a.{fmt}"), "--b", str(data / f"b.{fmt}"),
        "--rules", str(data / "rules.toml"), "--out", str(out), "--period", "2026-10")
    truth = pl.read_parquet(data / "truth.parquet")
    for role in "AB":
        got = pl.read_parquet(out / role / "records.parquet")
        want = truth.filter(pl.col("side") == role)
        joined = want.join(got, on="row", how="left")
        wrong = joined.filter((pl.col("status") != pl.col("expected_status"))
                              | pl.col("status").is_null())
        assert wrong.height == 0, wrong.select("row", "status", "expected_status",
                                               "perturbations").head()
        disputed = joined.filter(pl.col("expected_status") == "disputed")
        assert (disputed["reasons"] == disputed["expected_reasons"]).all()
        summary = json.loads((out / role / "summary.json").read_text())
        assert summary["counts"]["records"] == want.height
        totals = summary["totals"]
        assert totals["local_charge"] == (totals["agreed_local_charge"]
                                          + totals["disputed_local_charge"]
                                          + totals["unmatched_local_charge"])


def test_demo_through_the_console_script(tmp_path):
    proc = subprocess.run([SETTLECHAIN, "demo", "--records", "3000", "--out",
                           str(tmp_path / "demo")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "statuses equal to the generator's true answer" in proc.stdout
    found = re.search(r"true answer: ([\d,]+) of ([\d,]+) rows", proc.stdout)
    assert found, proc.stdout
    agree, total = (int(g.replace(",", "")) for g in found.groups())
    assert agree == total > 0
    assert "every hash and SM2 signature verified" in proc.stdout
    # a second run into the same folder is refused unless --force
    again = subprocess.run([SETTLECHAIN, "demo", "--records", "3000", "--out",
                            str(tmp_path / "demo")], capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--force" in again.stderr
