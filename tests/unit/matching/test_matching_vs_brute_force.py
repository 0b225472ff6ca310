"""The reference reconciler (engine.matching driven by engine.reference) against a
brute-force matcher written straight from docs/matching.md (matching_oracle)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matching_oracle import Side, brute_force, scenarios

import pytest

from engine.errors import JobError
from engine.outputs import statement_signing_bytes
from engine.reference import reconcile_plain

DIFFS = ("diff_start_s", "diff_duration_s", "diff_charge", "diff_rated_charge")


def check_identities(summary_a: dict[str, Any], summary_b: dict[str, Any]) -> None:
    """The identities of docs/records.md § summary.json."""
    for s in (summary_a, summary_b):
        t = s["totals"]
        assert t["local_charge"] == (t["agreed_local_charge"] + t["disputed_local_charge"]
                                     + t["unmatched_local_charge"])
        assert t["remote_charge"] == (t["agreed_remote_charge"] + t["disputed_remote_charge"]
                                      + t["unmatched_remote_charge"])
        c = s["counts"]
        assert c["records"] == sum(c[k] for k in ("invalid", "excluded", "duplicate",
                                                  "matched_exact", "matched_tolerance",
                                                  "disputed", "unmatched_local"))
    ta, tb = summary_a["totals"], summary_b["totals"]
    assert ta["agreed_charge"] == tb["agreed_charge"]
    for local, remote in (("local_charge", "remote_charge"),
                          ("agreed_local_charge", "agreed_remote_charge"),
                          ("disputed_local_charge", "disputed_remote_charge"),
                          ("unmatched_local_charge", "unmatched_remote_charge")):
        assert ta[local] == tb[remote] and ta[remote] == tb[local]
    assert summary_a["pairs"] == summary_b["pairs"]
    assert summary_a["counts"]["unmatched_remote"] == summary_b["counts"]["unmatched_local"]
    assert summary_b["counts"]["unmatched_remote"] == summary_a["counts"]["unmatched_local"]
    # the midpoint lies between the two sides' agreed sums
    low, high = sorted((ta["agreed_local_charge"], ta["agreed_remote_charge"]))
    assert low <= ta["agreed_charge"] <= high


def compare(side_a: Side, side_b: Side, rules: Any, n_buckets: int = 1) -> None:
    frames_a, frames_b = side_a.build(), side_b.build()
    if not any(not r.excluded for r in side_a.records + side_b.records):
        # the circuit breaker: nothing to settle is refused, not signed (engine.breaker)
        with pytest.raises(JobError, match="nothing to settle"):
            reconcile_plain(frames_a, frames_b, rules, job_id="property", n_buckets=n_buckets)
        return
    result = reconcile_plain(frames_a, frames_b, rules, job_id="property", n_buckets=n_buckets)
    expected = brute_force(side_a, side_b, rules)
    pair_of_id: dict[str, int] = {}
    for party, report in (("A", result.a), ("B", result.b)):
        exp = expected[party]
        frame = report.records
        assert frame.get_column("row").to_list() == [r["row"] for r in
                                                      (side_a if party == "A" else side_b).rows]
        for row in frame.iter_rows(named=True):
            e = exp["rows"][row["row"]]
            where = f"party {party} row {row['row']}"
            assert row["status"] == e["status"], where
            assert row["stage"] == e["stage"], where
            assert row["reasons"] == e["reasons"], where
            assert row["merged_into"] == e["merged_into"], where
            diffs = tuple(row[c] for c in DIFFS)
            assert diffs == (e["diffs"] or (None,) * 4), where
            if e["pair"] is None:
                assert row["pair_id"] is None, where
            else:
                assert len(row["pair_id"]) == 32 and int(row["pair_id"], 16) >= 0
                assert pair_of_id.setdefault(row["pair_id"], e["pair"]) == e["pair"], where
        summary = report.summary
        for key in ("counts", "pairs", "reasons", "totals", "review"):
            assert summary[key] == exp[key], key
    # pair ids and pairs correspond one to one, and every pair has its id
    assert len(set(pair_of_id.values())) == len(pair_of_id) == len(expected["pairs_list"])
    check_identities(result.a.summary, result.b.summary)
    assert statement_signing_bytes(result.a.statement) == \
        statement_signing_bytes(result.b.statement)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_reference_equals_brute_force(scenario: tuple[Side, Side, Any]) -> None:
    compare(*scenario)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(bursty=True))
def test_reference_equals_brute_force_in_bursts(scenario: tuple[Side, Side, Any]) -> None:
    compare(*scenario)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(2, 5))
def test_buckets_change_nothing(scenario: tuple[Side, Side, Any], n_buckets: int) -> None:
    """Matching bucket by bucket equals matching the whole export: a line (service,
    calling, called) never spans buckets (engine.partition)."""
    compare(*scenario, n_buckets=n_buckets)
