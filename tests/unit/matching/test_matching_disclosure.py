"""What each disclosure policy puts into the outputs (docs/matching.md § Disclosure)."""

from __future__ import annotations

import pytest
from matching_oracle import make_rules
from matching_fixed import fixed_sides

from engine.reference import reconcile_plain

POLICIES = ("aggregate", "flags", "differences")
DIFFS = ("diff_start_s", "diff_duration_s", "diff_charge", "diff_rated_charge")


def _run(policy: str):
    a, b = fixed_sides()
    rules = make_rules(5, 12, 2, 2, policy=policy)
    return reconcile_plain(a.build(), b.build(), rules, job_id="disclosure"), rules


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_outputs(policy: str) -> None:
    result, rules = _run(policy)
    a = {r["row"]: r for r in result.a.records.iter_rows(named=True)}
    b = {r["row"]: r for r in result.b.records.iter_rows(named=True)}
    # A's rows (row_order of fixed_sides): 1 exact, 2 invalid, 3 S2, 4 start, 5 rate,
    # 6 S3 tolerance, 7+9 the merged unmatched call, 8 duplicate, 10 excluded
    assert [a[i]["status"] for i in range(1, 11)] == [
        "matched_exact", "invalid", "matched_tolerance", "disputed", "disputed",
        "matched_tolerance", "unmatched", "duplicate", "unmatched", "excluded"]
    assert [a[i]["stage"] for i in range(1, 11)] == [
        "exact", None, "tolerant_values", "key", "key", "key", None, None, None, None]
    # own rows' reasons: every policy
    assert a[2]["reasons"] == "malformed_number:calling"
    assert a[8]["reasons"] == "duplicate_of:1"
    assert a[10]["reasons"] == "zero_duration_voice"
    # merged call: both rows point at the call's record_id (its first row's)
    assert a[7]["merged_into"] == a[9]["merged_into"] == "id7"
    assert all(a[i]["merged_into"] is None for i in (1, 2, 3, 4, 5, 6, 8, 10))

    disputed_a, disputed_b = (a[4], a[5]), (b[3], b[4])
    if policy == "aggregate":
        assert all(r["reasons"] is None for r in disputed_a + disputed_b)
    else:
        assert [r["reasons"] for r in disputed_a] == ["start_time", "charge_rate_mismatch"]
        assert [r["reasons"] for r in disputed_b] == ["start_time", "charge_rate_mismatch"]
    if policy == "differences":
        assert [a[4][c] for c in DIFFS] == [-7, 0, 0, 0]
        assert [b[3][c] for c in DIFFS] == [7, 0, 0, 0]
        assert [a[5][c] for c in DIFFS] == [0, 0, -3, 0]
        assert [b[4][c] for c in DIFFS] == [0, 0, 3, 0]
    else:
        assert all(r[c] is None for r in disputed_a + disputed_b for c in DIFFS)
    # never a difference or a reason on a pair that is not disputed
    for rows in (a, b):
        for r in rows.values():
            if r["status"] != "disputed":
                assert all(r[c] is None for c in DIFFS)
            if r["status"] in ("matched_exact", "matched_tolerance", "unmatched"):
                assert r["reasons"] is None

    # per-reason aggregates and sums are there under every policy
    s = result.a.summary
    assert s["disclosure"] == policy and s["rules_sm3"] == rules.sm3_hash()
    assert s["reasons"]["start_time"] == {"pairs": 1, "class_pairs": 1, "local_charge": 6,
                                          "remote_charge": 6, "in_other": False}
    assert s["reasons"]["charge_rate_mismatch"] == {"pairs": 1, "class_pairs": 1,
                                                   "local_charge": 10, "remote_charge": 13,
                                                   "in_other": False}
    assert s["pairs"] == {"matched_exact": 1, "matched_tolerance": 2, "disputed": 2}
    assert s["totals"] == {
        "local_charge": 6 + 6 + 6 + 10 + 6 + 9, "remote_charge": 6 + 6 + 6 + 13 + 7 + 4,
        "agreed_charge": 6 + 6 + (6 + 7) // 2,
        "agreed_local_charge": 18, "agreed_remote_charge": 19,
        "disputed_local_charge": 16, "disputed_remote_charge": 19,
        "unmatched_local_charge": 9, "unmatched_remote_charge": 4,
    }
    assert s["counts"] == {"records": 10, "invalid": 1, "excluded": 1, "duplicate": 1,
                           "matched_exact": 1, "matched_tolerance": 2, "disputed": 2,
                           "unmatched_local": 2, "unmatched_remote": 1}


def test_policy_changes_only_what_it_discloses() -> None:
    results = {p: _run(p)[0] for p in POLICIES}
    keys = ("counts", "pairs", "reasons", "totals", "review")
    for p in POLICIES:
        for k in keys:
            assert results[p].a.summary[k] == results["flags"].a.summary[k]
        for frame_p, frame_f in ((results[p].a.records, results["flags"].a.records),
                                 (results[p].b.records, results["flags"].b.records)):
            assert frame_p.select("row", "status", "pair_id", "stage").equals(
                frame_f.select("row", "status", "pair_id", "stage"))
    hashes = {results[p].a.summary["rules_sm3"] for p in POLICIES}
    assert len(hashes) == 3  # the policy is part of the rules hash
