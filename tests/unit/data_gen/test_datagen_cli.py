"""`settlechain gen` through the real console script."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import polars as pl

from data_gen.config import GenConfig

SCRIPT = str(Path(sys.executable).parent / "settlechain")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=120)


def test_gen_writes_the_dataset(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _run("gen", "--records", "1500", "--seed", "3", "--out", str(out),
                "--format", "parquet", "--skew-share", "0.1", "--missing-share-b", "0.02")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.parquet", "b.parquet", "manifest.json",
                                                     "rules.toml", "truth.parquet"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["events"] == 1500
    assert manifest["knobs"]["skew_share"] == 0.1
    assert manifest["knobs"]["missing_share_b"] == 0.02
    truth = pl.read_parquet(out / "truth.parquet")
    assert truth.height == manifest["rows"]["A"] + manifest["rows"]["B"]
    assert "pairs:" in proc.stdout


def test_help_lists_every_knob_with_its_default() -> None:
    proc = _run("gen", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for f in dataclasses.fields(GenConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
    assert "(default: 0.05)" in text and "(default: 100000)" in text


def test_bad_knob_is_a_clear_error(tmp_path: Path) -> None:
    proc = _run("gen", "--records", "100", "--out", str(tmp_path / "x"), "--skew-share", "2")
    assert proc.returncode == 2
    assert "bad knob skew_share: expected a share in [0, 1], found 2.0" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = _run("gen", "--records", "100", "--out", str(blocker / "sub"))
    assert proc.returncode == 2
    assert "cannot create the output folder" in proc.stderr
