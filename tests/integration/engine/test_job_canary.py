"""Canaries planted in B's unmatched records never reach A's outputs, logs, the ledger or
H's outputs (DESIGN.md, "What each party learns"): only their count and total charge do."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.integration.engine.jobs import describe, generate, run_job

CANARY_CALLING = "8613987650001"
CANARY_CALLED = "8613087650002"


@pytest.mark.slow
def test_unmatched_canaries_stay_with_b(tmp_path):
    generated = generate(tmp_path / "data", records=2000, seed=51)
    b_file = generated.data["B"]
    canary_rows = [
        f"CANARY-RECORD-{i},voice,+{CANARY_CALLING},+{CANARY_CALLED},"
        f"2026-10-1{i}T09:1{i}:0{i}+08:00,{1234 + i},0,TG-CANARY,0,{777000 + i}\n"
        for i in range(5)
    ]
    with open(b_file, "ab") as handle:
        handle.write("".join(canary_rows).encode())
    job, codes = run_job(tmp_path / "job", generated.data, generated.rules)
    assert codes == {"A": 0, "B": 0, "H": 0}, describe(job)

    canaries = [CANARY_CALLING.encode(), CANARY_CALLED.encode(), b"CANARY-RECORD", b"TG-CANARY"]
    # B's own outputs do name them: they are its records, unmatched
    b_records = pl.read_parquet(job.parties["B"].out / "records.parquet")
    planted = b_records.filter(pl.col("record_id").str.starts_with("CANARY-RECORD"))
    assert planted["status"].to_list() == ["unmatched"] * 5
    # nothing of A's or H's, nor the ledger, does
    places = [p for role in "AH" for p in job.parties[role].out.rglob("*") if p.is_file()]
    places += [p for p in job.config.parent.rglob("ledger*") if p.is_file()]
    assert places
    for path in places:
        data = path.read_bytes()
        for canary in canaries:
            assert canary not in data, f"{canary!r} reached {path}"
    # A learns their number and total charge only, as part of B's unmatched totals
    summary_a = json.loads((job.parties["A"].out / "summary.json").read_text())
    summary_b = json.loads((job.parties["B"].out / "summary.json").read_text())
    assert summary_a["counts"]["unmatched_remote"] == summary_b["counts"]["unmatched_local"]
    assert (summary_a["totals"]["unmatched_remote_charge"]
            == summary_b["totals"]["unmatched_local_charge"])
    assert summary_b["totals"]["unmatched_local_charge"] >= sum(777000 + i for i in range(5))
