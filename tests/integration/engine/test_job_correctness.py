"""A private job's outputs equal the generator's true answer and the plaintext reference.

Every status, pairing, reason and total of both parties' records.parquet and
summary.json, for several seeds, knob settings, formats, disclosure policies and
sizes, with invalid rows mixed in (data_gen writes some of each kind by default).
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from engine.errors import JobError
from engine.reference import reconcile_files
from ledger_anchor import open_ledger
from engine.rules import load_rules

from tests.integration.engine.jobs import describe, generate, run_job

HIGH_PERTURBATION = dict(missing_share_a=0.05, missing_share_b=0.04, duplicate_share=0.01,
                         skew_share=0.3, skew_beyond_share=0.05, duration_diff_share=0.1,
                         duration_beyond_share=0.03, increment_quirk_share=0.1,
                         utc_offset_error_share=0.02, split_share=0.3)

CASES = [
    pytest.param(dict(records=3000, seed=11, file_format="csv"), "flags", id="csv-flags"),
    pytest.param(dict(records=3000, seed=12, file_format="parquet"), "differences",
                 id="parquet-differences"),
    pytest.param(dict(records=3000, seed=13, file_format="csv", **HIGH_PERTURBATION),
                 "aggregate", id="csv-aggregate-high-perturbation"),
    pytest.param(dict(records=100_000, seed=14, file_format="parquet"), "flags",
                 id="parquet-flags-1e5"),
]


def _set_policy(rules_path, policy):
    text = rules_path.read_text(encoding="utf-8")
    rules_path.write_text(text.replace('policy = "flags"', f'policy = "{policy}"'),
                          encoding="utf-8")
    assert load_rules(rules_path).disclosure == policy


@pytest.mark.slow
@pytest.mark.parametrize(("gen", "policy"), CASES)
def test_private_job_equals_truth_and_reference(tmp_path, gen, policy):
    generated = generate(tmp_path / "data", **gen)
    _set_policy(generated.rules, policy)
    job, codes = run_job(tmp_path / "job", generated.data, generated.rules)
    assert codes == {"A": 0, "B": 0, "H": 0}, describe(job)

    out = {role: job.parties[role].out for role in "AB"}
    got = {role: pl.read_parquet(out[role] / "records.parquet") for role in "AB"}
    summaries = {role: json.loads((out[role] / "summary.json").read_text()) for role in "AB"}

    # 1. every row's status equals the generator's truth
    for role in "AB":
        truth = generated.truth.filter(pl.col("side") == role).sort("row")
        mine = got[role].sort("row")
        assert mine.height == truth.height
        mismatch = mine.join(truth, on="row").filter(pl.col("status") != pl.col("expected_status"))
        assert mismatch.height == 0, mismatch.select("row", "record_id", "status",
                                                     "expected_status", "perturbations").head(10)

    # 2. pairing: A's and B's pair ids join into exactly the true pairs
    pairs_a = got["A"].filter(pl.col("pair_id").is_not_null()).select(
        "pair_id", pl.col("record_id").alias("a"), pl.col("merged_into").alias("a_call"))
    pairs_b = got["B"].filter(pl.col("pair_id").is_not_null()).select(
        "pair_id", pl.col("record_id").alias("b"), pl.col("merged_into").alias("b_call"))
    joined = pairs_a.join(pairs_b, on="pair_id", how="full", coalesce=True)
    assert joined.filter(pl.col("a").is_null() | pl.col("b").is_null()).height == 0
    truth_a = generated.truth.filter((pl.col("side") == "A")
                                     & pl.col("expected_pair_record_id").is_not_null())
    expected = set(zip(truth_a["record_id"], truth_a["expected_pair_record_id"]))
    found = {(a, b_call or b) for a, b, b_call in
             zip(joined["a"], joined["b"], joined["b_call"])}
    assert found == expected

    # 3. reasons per policy
    disputed_a = got["A"].filter(pl.col("status") == "disputed")
    if policy == "aggregate":
        assert disputed_a["reasons"].null_count() == disputed_a.height
    else:
        truth = generated.truth.filter(pl.col("side") == "A").select("row", "expected_reasons")
        check = disputed_a.join(truth, on="row")
        assert (check["reasons"] == check["expected_reasons"]).all()
    diff_cols = ["diff_start_s", "diff_duration_s", "diff_charge", "diff_rated_charge"]
    if policy == "differences":
        truth = generated.truth.filter(pl.col("side") == "A").select("row", *diff_cols)
        check = disputed_a.select("row", *diff_cols).join(truth, on="row", suffix="_true")
        for col in diff_cols:
            assert (check[col] == check[f"{col}_true"]).all(), col
    else:
        assert all(got["A"][c].null_count() == got["A"].height for c in diff_cols)

    # 4. the plaintext reference gives the same statuses and summary numbers
    rules = load_rules(generated.rules)
    reference = reconcile_files(generated.data["A"], generated.data["B"], rules,
                                out=tmp_path / "reference", job_id="job-1", period="2026-10",
                                operators=("CMCC", "CUCC"))
    for role in "AB":
        ref = reference.party(role)
        ref_rows = ref.records.sort("row")
        assert (ref_rows["status"] == got[role].sort("row")["status"]).all()
        assert summaries[role]["counts"] == ref.summary["counts"]
        assert summaries[role]["totals"] == ref.summary["totals"]
        assert summaries[role]["pairs"] == ref.summary["pairs"]
        assert summaries[role]["reasons"] == ref.summary["reasons"]
        # the same items per stage as the reference (which passes count where)
        stages, ref_stages = summaries[role]["stages"], ref.summary["stages"]
        for name in ("ingest", "psi_exact", "psi_key", "mpc", "report"):
            assert stages[name]["items"] == ref_stages[name]["items"], (role, name)
        # each stage's own peak memory, none above the process's
        peaks = [stages[name]["peak_memory_mib"] for name in ("ingest", "psi_exact", "psi_key",
                                                              "mpc", "report")]
        assert all(0 < peak <= stages["peak_memory_mib"] for peak in peaks), stages

    # 5. both sides signed the same statement; the ledger anchored it
    statements = {role: json.loads((out[role] / "statement.json").read_text()) for role in "AB"}
    assert statements["A"] == statements["B"]
    assert [s["signer"] for s in statements["A"]["signatures"]] == ["CMCC", "CUCC"]
    anchors = {role: json.loads((out[role] / "anchor.json").read_text()) for role in "AB"}
    assert anchors["A"]["index"] == anchors["B"]["index"] == statements["A"]["ledger"]["index"]
    # the reference's statement is the job's, but for the pair ids' digests and signatures
    ref_statement = reference.party("A").statement
    for key in ("records", "pairs", "totals", "held", "classes", "settlement"):
        assert ref_statement[key] == statements["A"][key], key
    assert (out["A"] / "report.html").stat().st_size > 10_000


@pytest.mark.slow
def test_periods_without_traffic_are_refused_not_signed(tmp_path):
    """Both operators export a header and no rows: nothing to settle.  The job stops on
    every party with that reason (engine.breaker), anchors nothing and leaves the job id
    free; the reference reconciler refuses the same input with the same reason."""
    generated = generate(tmp_path / "data", records=10, seed=3)
    header = generated.data["A"].read_bytes().split(b"\n", 1)[0] + b"\n"
    empty = {}
    for role in "AB":
        empty[role] = tmp_path / f"{role.lower()}-empty.csv"
        empty[role].write_bytes(header)
    job, codes = run_job(tmp_path / "job", empty, generated.rules)
    assert codes == {"A": 3, "B": 3, "H": 3}, describe(job)
    for role, party in job.parties.items():
        assert "nothing to settle" in party.console_text(), role
    with open_ledger(job.config, readonly=True) as ledger:
        assert not [e for e in ledger.entries(0, ledger.size()) if e.get("job_id") == "job-1"]
    with pytest.raises(JobError, match="nothing to settle"):
        reconcile_files(empty["A"], empty["B"], load_rules(generated.rules),
                        out=tmp_path / "reference", job_id="job-1", period="2026-10")
