"""A consortium's period: three members each run `settlechain period run --as` with only
their own exports; every pair is settled, each helped by the third member."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import polars as pl

from engine.job.local import adopt_rules, create_consortium
from engine.rules import load_rules

from data_gen.config import GenConfig
from data_gen.dataset import generate, write_dataset

PAIRS = (("CMCC", "CUCC"), ("CMCC", "CTCC"), ("CUCC", "CTCC"))


def test_each_member_runs_its_own_parties_and_every_pair_settles(tmp_path):
    config = create_consortium(tmp_path / "consortium",
                               {"A": "CMCC", "B": "CUCC", "H": "CTCC"}, name="period")
    shared = tmp_path / "generated"
    for i, (a, b) in enumerate(PAIRS):
        pair = f"{a}+{b}"
        write_dataset(generate(GenConfig(records=1500, seed=20 + i, operator_a=a, operator_b=b),
                               "csv"), shared / pair)
        rules_path = shared / pair / "rules.toml"
        rules = load_rules(rules_path)
        adopt_rules(config, rules.sm3_hash(), rules.version, name=f"interconnect-{a}-{b}".lower(),
                    effective_from="2026-10")
        # each member's own data folder: its exports, and an empty folder for the pair it helps
        for member in ("CMCC", "CUCC", "CTCC"):
            folder = tmp_path / f"data-{member}" / pair
            folder.mkdir(parents=True)
            shutil.copy(rules_path, folder / "rules.toml")
            if member in (a, b):
                side = shared / pair / ("a.csv" if member == a else "b.csv")
                shutil.copy(side, folder / f"{member}.csv")
    processes = {
        member: subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "period", "run", "--config", str(config),
             "--period", "2026-10", "--data-dir", str(tmp_path / f"data-{member}"),
             "--out", str(tmp_path / f"out-{member}"), "--as", member,
             "--connect-timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for member in ("CMCC", "CUCC", "CTCC")}
    outputs = {m: p.communicate(timeout=600)[0] for m, p in processes.items()}
    for member, process in processes.items():
        assert process.returncode == 0, f"{member}:\n{outputs[member]}"
    for member in ("CMCC", "CUCC", "CTCC"):
        summary = json.loads((tmp_path / f"out-{member}" / "period-summary.json").read_text())
        assert summary["member"] == member
        rows = {r["pair"]: r for r in summary["pairs"]}
        assert set(rows) == {f"{a}+{b}" for a, b in PAIRS}
        for (a, b) in PAIRS:
            row = rows[f"{a}+{b}"]
            assert row["H"] not in (a, b) and {row["A"], row["B"], row["H"]} == {"CMCC", "CUCC", "CTCC"}
            assert row["state"] == "settled", row
            if member in (a, b):
                assert row["counts"]["matched_exact"] > 0 and row["ledger_index"] is not None
                assert row["roles_here"] == ["A" if member == a else "B"]
            else:
                assert row["roles_here"] == ["H"] and "counts" not in row
        assert summary["totals"]["states"] == {"settled": 3}
    # the two operators of a pair anchored one statement, and its records match each side's file
    for a, b in PAIRS:
        index = {json.loads((tmp_path / f"out-{m}" / f"{a}+{b}" / r / "anchor.json").read_text())["index"]
                 for m, r in ((a, "A"), (b, "B"))}
        assert len(index) == 1
        rows = pl.read_parquet(tmp_path / f"out-{a}" / f"{a}+{b}" / "A" / "records.parquet")
        truth = pl.read_parquet(shared / f"{a}+{b}" / "truth.parquet").filter(pl.col("side") == "A")
        assert rows.height == truth.height
