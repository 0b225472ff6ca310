"""The guarantees of docs/matching.md for an isolated pair (no other record of the
line within W on either side), checked on the reference over all skews."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from matching_oracle import Record, Side, make_rules

from engine.reference import reconcile_plain


@st.composite
def isolated_pairs(draw):
    delta = draw(st.integers(0, 6))
    window = draw(st.integers(max(2 * delta, 2), 2 * delta + 6))
    start = draw(st.integers(-3 * window, 3 * window)) + draw(st.sampled_from((0, 1_790_000_000)))
    skew = draw(st.one_of(st.integers(-window - 2, window + 2),
                          st.sampled_from((0, delta, -delta, window, -window))))
    same_values = draw(st.booleans())
    return delta, window, start, skew, same_values


@settings(max_examples=250, deadline=None)
@given(isolated_pairs())
def test_isolated_pair_guarantees(case) -> None:
    delta, window, start, skew, same_values = case
    rules = make_rules(delta, window, duration_tol=0, charge_tol=0)
    a = Record(0, "8613800138000", "8613900139000", start, 61, 7, 7)
    b = Record(0, "8613800138000", "8613900139000", start + skew,
               61 if same_values else 70, 7 if same_values else 9, 7)
    result = reconcile_plain(Side([a]).build(), Side([b]).build(), rules, job_id="g")
    row_a = result.a.records.row(0, named=True)
    row_b = result.b.records.row(0, named=True)
    paired = row_a["pair_id"] is not None
    assert paired == (row_b["pair_id"] is not None)
    if paired:
        assert row_a["pair_id"] == row_b["pair_id"]
        assert row_a["status"] == row_b["status"] and row_a["stage"] == row_b["stage"]
    else:
        assert row_a["status"] == row_b["status"] == "unmatched"

    if skew == 0 and same_values:
        assert row_a["status"] == "matched_exact" and row_a["stage"] == "exact"
    if abs(skew) <= delta:
        assert paired
    if abs(skew) >= window:
        assert not paired
    if delta < abs(skew) < window:
        half = window // 2
        shares_window = (start // window == (start + skew) // window
                         or (start + half) // window == (start + skew + half) // window)
        assert paired == shares_window
        if paired:
            assert row_a["status"] == "disputed"
            assert row_a["reasons"].split(",")[0] == "start_time"
    if row_a["stage"] == "tolerant_values":
        assert abs(skew) <= delta and same_values and row_a["status"] == "matched_tolerance"
    if same_values and abs(skew) <= (delta + 1) // 2:
        # the two S2 grids (width V = δ+1, offset ⌊V/2⌋) have boundaries ≥ ⌊V/2⌋ apart
        assert row_a["stage"] in ("exact", "tolerant_values")
    if same_values and abs(skew) <= delta:
        # if S2 missed it (⌊V/2⌋ < |Δt| ≤ δ), S3 pairs it and the evaluation accepts it
        assert row_a["status"] in ("matched_exact", "matched_tolerance")
