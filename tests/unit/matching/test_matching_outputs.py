"""Output files: schemas, dtypes, documented keys, party-neutral statement."""

from __future__ import annotations

import json

import polars as pl
import pytest
import rfc8785
from matching_oracle import make_rules
from matching_fixed import fixed_sides

from engine.names import RECORDS_OUTPUT_SCHEMA
from engine.outputs import statement_signing_bytes
from engine.reference import reconcile_plain

SUMMARY_KEYS = ["job_id", "party", "member", "counterparty", "counterparty_member", "period",
                "period_window", "rules_sm3", "disclosure", "counts", "excluded_by_reason", "invalid_by_reason",
                "pairs", "reasons", "totals", "held", "review", "statement_sm3", "outputs",
                "partition", "stages"]
COUNT_KEYS = ["records", "invalid", "excluded", "duplicate", "matched_exact",
              "matched_tolerance", "disputed", "unmatched_local", "unmatched_remote"]
TOTAL_KEYS = ["local_charge", "remote_charge", "agreed_charge", "agreed_local_charge",
              "agreed_remote_charge", "disputed_local_charge", "disputed_remote_charge",
              "unmatched_local_charge", "unmatched_remote_charge"]
STAGE_KEYS = ["ingest", "agree", "commit", "psi_exact", "psi_key", "mpc", "report", "total",
              "peak_memory_mib"]
REASON_KEYS = ["start_time", "duration", "charge_rate_mismatch", "charge_rounding",
               "charge_unexplained", "other"]
STATEMENT_KEYS = ["kind", "job_id", "period", "rules_sm3", "disclosure", "operators",
                  "commitments", "outputs", "records", "pairs", "totals", "held", "classes",
                  "settlement", "settlement_reasons", "signatures"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    a, b = fixed_sides()
    rules = make_rules(5, 12, 2, 2, policy="differences")
    out = tmp_path_factory.mktemp("out")
    result = reconcile_plain(a.build(), b.build(), rules, job_id="job-1", period="2026-10",
                             operators=("CMCC", "CUCC"), out=out)
    return out, result


def test_records_parquet_schema(written) -> None:
    out, result = written
    for party, n_rows in (("A", 10), ("B", 6)):
        frame = pl.read_parquet(out / party / "records.parquet")
        assert dict(frame.schema) == RECORDS_OUTPUT_SCHEMA
        assert list(frame.columns) == list(RECORDS_OUTPUT_SCHEMA)
        assert frame.height == n_rows
        assert frame.get_column("row").to_list() == list(range(1, n_rows + 1))
        assert frame.equals(result.party(party).records)
        statuses = set(frame.get_column("status").to_list())
        assert statuses <= {"matched_exact", "matched_tolerance", "disputed", "unmatched",
                            "duplicate", "invalid", "excluded"}
        ids = frame.get_column("pair_id").drop_nulls()
        assert ids.str.contains(r"^[0-9a-f]{32}$").all()
    a = pl.read_parquet(out / "A" / "records.parquet")
    b = pl.read_parquet(out / "B" / "records.parquet")
    # the same pair ids on both sides, one per pair
    ids_a = set(a.get_column("pair_id").drop_nulls().to_list())
    ids_b = set(b.get_column("pair_id").drop_nulls().to_list())
    assert ids_a == ids_b and len(ids_a) == 5


def test_summary_json(written) -> None:
    out, _ = written
    for party, other in (("A", "B"), ("B", "A")):
        summary = json.loads((out / party / "summary.json").read_text("utf-8"))
        assert list(summary) == SUMMARY_KEYS
        assert summary["party"] == party and summary["counterparty"] == other
        assert (summary["member"], summary["counterparty_member"]) == (
            ("CMCC", "CUCC") if party == "A" else ("CUCC", "CMCC"))
        assert summary["job_id"] == "job-1" and summary["period"] == "2026-10"
        assert list(summary["counts"]) == COUNT_KEYS
        assert list(summary["totals"]) == TOTAL_KEYS
        assert list(summary["pairs"]) == ["matched_exact", "matched_tolerance", "disputed"]
        assert list(summary["reasons"]) == REASON_KEYS
        assert all(list(v) == ["pairs", "class_pairs", "local_charge", "remote_charge",
                               "in_other"] for v in summary["reasons"].values())
        assert list(summary["stages"]) == STAGE_KEYS
        for stage in STAGE_KEYS[:-1]:
            assert list(summary["stages"][stage])[:2] == ["seconds", "items"]
            assert isinstance(summary["stages"][stage]["items"], int)
        assert summary["stages"]["mpc"]["items"] == 3  # candidate pairs of S3
        assert summary["outputs"]["records"] == json.loads(
            (out / party / "statement.json").read_text())["outputs"][party]
        assert summary["review"]["settlement"] == "manual_review"
        for v in [*summary["counts"].values(), *summary["totals"].values()]:
            assert isinstance(v, int) and not isinstance(v, bool)


def test_statement_is_party_neutral_and_canonical(written) -> None:
    out, result = written
    raw_a = (out / "A" / "statement.json").read_bytes()
    raw_b = (out / "B" / "statement.json").read_bytes()
    assert raw_a == raw_b
    statement = json.loads(raw_a)
    assert rfc8785.dumps(statement) == raw_a
    assert list(statement) == sorted(STATEMENT_KEYS)  # RFC 8785 sorts keys
    assert set(statement) == set(STATEMENT_KEYS)
    assert statement["signatures"] == []
    assert statement["operators"] == {"A": "CMCC", "B": "CUCC"}
    assert set(statement["commitments"]) == {"A", "B"}
    assert all(len(v) == 64 for v in statement["commitments"].values())
    assert all(len(v) == 64 for v in statement["outputs"].values())
    assert statement["records"] == {"a_rows": 10, "b_rows": 6, "a_considered": 6,
                                    "b_considered": 6, "a_unmatched": 1, "b_unmatched": 1}
    t = statement["totals"]
    summary_a = result.a.summary["totals"]
    assert t["a_charge"] == summary_a["local_charge"] == 43
    assert t["b_charge"] == summary_a["remote_charge"] == 42
    assert t["a_disputed_charge"] == 16 and t["b_disputed_charge"] == 19
    assert t["agreed_charge"] == summary_a["agreed_charge"]
    assert statement["settlement"] == "manual_review"
    assert statement["settlement_reasons"] == [
        "disputed_share: 2 of 5 pairs > 0.05",
        "unmatched_share_A: 1 of 6 records > 0.05",
        "unmatched_share_B: 1 of 6 records > 0.05",
    ]
    signing = statement_signing_bytes(statement)
    assert b"signatures" not in signing
    assert signing == rfc8785.dumps({k: v for k, v in statement.items() if k != "signatures"})
    # what is signed does not change when signatures are added
    signed = dict(statement, signatures=[{"signer": "A", "sig": "00" * 64}])
    assert statement_signing_bytes(signed) == signing


def test_records_digest_is_sm3_of_the_rows_as_csv(written) -> None:
    from engine.side import RECORDS_DIGEST_FORMAT
    from ledger_anchor.sm3 import sm3

    out, result = written
    for party in ("A", "B"):
        frame = pl.read_parquet(out / party / "records.parquet")
        want = sm3((RECORDS_DIGEST_FORMAT + "\n").encode() + frame.write_csv().encode()).hex()
        assert result.party(party).summary["outputs"]["records"] == want


def test_period_label_from_the_records(tmp_path) -> None:
    a, b = fixed_sides()
    rules = make_rules(5, 12, 2, 2)
    result = reconcile_plain(a.build(), b.build(), rules, job_id="job-2")
    assert result.a.summary["period"] == "1970-01"
