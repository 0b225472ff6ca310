"""The three roles in one event loop (in-memory messages) against the plaintext computation."""

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.mpc import field as F
from protocols.mpc.params import MAX_ABS_VALUE, POLICIES, REASON_BITS, REASON_CODES, PairValues, ToleranceParams
from protocols.mpc.protocol import run_local
from protocols.mpc.reference import plaintext_discrepancy
from protocols.mpc.runtime import local_sources


def run(params, a, b, *, chunk_size=None, log=None):
    return asyncio.run(run_local(params, a, b, local_sources(), chunk_size=chunk_size, log=log))


def assert_matches_reference(params, a, b, results) -> None:
    ra, rb, rh = results
    assert rh is None
    expected = plaintext_discrepancy(a, b, params)
    for result in (ra, rb):
        assert np.array_equal(result.disputed, expected.disputed)
        assert result.reason_pairs == expected.reason_pairs
        assert result.cells == expected.cells
        if params.policy == "aggregate":
            assert result.reasons is None and result.differences is None
        else:
            assert np.array_equal(result.reasons, expected.reasons)
    if params.policy == "differences":
        for key, diff in expected.differences.items():
            assert np.array_equal(ra.differences[key], diff)
            assert np.array_equal(rb.differences[key], -diff)
    else:
        assert ra.differences is None and rb.differences is None


def offsets_pairs(base, offsets):
    """A's values = base, B's = base - offsets (so d = A - B = offsets)."""
    a = PairValues(*(np.asarray(c, dtype=np.int64) for c in base))
    b = PairValues(*(np.asarray(c, dtype=np.int64) - np.asarray(o, dtype=np.int64) for c, o in zip(base, offsets)))
    return a, b


pair_strategy = st.tuples(
    st.integers(-60, 60), st.integers(-6, 6), st.integers(-6, 6), st.integers(-6, 6),
    st.integers(0, 10**9), st.integers(0, 10**5), st.integers(0, 10**7))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(POLICIES), st.integers(0, 6), st.integers(0, 3), st.integers(0, 3),
       st.lists(pair_strategy, min_size=1, max_size=40), st.integers(3, 17), st.integers(1, 6))
def test_random_pairs_equal_plaintext(policy, dt, dd, dc, rows, chunk, k) -> None:
    params = ToleranceParams(dt, dd, dc, policy, k)
    offsets = [[r[i] for r in rows] for i in range(4)]
    base = [[1_700_000_000 + r[4] for r in rows], [r[5] for r in rows], [r[6] for r in rows], [r[6] for r in rows]]
    a, b = offsets_pairs(base, offsets)
    assert_matches_reference(params, a, b, run(params, a, b, chunk_size=chunk))


@pytest.mark.parametrize("policy", POLICIES)
def test_boundaries_negative_and_huge_differences(policy) -> None:
    params = ToleranceParams(5, 2, 3, policy)
    t, d, c = 5, 2, 3
    big = MAX_ABS_VALUE
    # each row: offsets (start, duration, charge, rated) and A's base values
    cases = [
        (t, d, c, c), (-t, -d, -c, -c), (t + 1, 0, 0, 0), (-t - 1, 0, 0, 0),
        (0, d + 1, 0, 0), (0, -d - 1, 0, 0), (0, 0, c + 1, c), (0, 0, -c - 1, -c - 1),
        (0, 0, c + 1, c + 1), (0, d + 1, -c - 1, c + 1), (0, 0, 0, 0), (-1, -1, -1, -1),
    ]
    rows = len(cases)
    base = [np.full(rows, 1_767_225_600), np.full(rows, 300), np.full(rows, 5_000), np.full(rows, 5_000)]
    a, b = offsets_pairs(base, list(zip(*cases)))
    assert_matches_reference(params, a, b, run(params, a, b, chunk_size=5))
    # differences far beyond any bit length of the values: |d| up to 2^63 - 2
    huge_a = PairValues(np.array([big, -big, big, 0]), np.array([big, 0, -big, 7]),
                        np.array([-big, big, 3, 0]), np.array([0, -big, big, big]))
    huge_b = PairValues(np.array([-big, big, big - 5, 0]), np.array([-big, 1, -big, 7 - (1 << 40)]),
                        np.array([big, -big, 3, 1 << 61]), np.array([big, big, -big, 0]))
    assert_matches_reference(params, huge_a, huge_b, run(params, huge_a, huge_b))


@pytest.mark.parametrize("policy", POLICIES)
def test_one_pair(policy) -> None:
    params = ToleranceParams(5, 2, 2, policy)
    a = PairValues(np.array([100]), np.array([60]), np.array([70]), np.array([50]))
    b = PairValues(np.array([100]), np.array([60]), np.array([50]), np.array([50]))
    assert_matches_reference(params, a, b, run(params, a, b))


@pytest.mark.parametrize("policy", POLICIES)
def test_ten_thousand_pairs(policy) -> None:
    from protocols.mpc.cli import generate_pairs
    params = ToleranceParams(5, 2, 2, policy)
    a, b = generate_pairs(10_000, seed=11)
    assert_matches_reference(params, a, b, run(params, a, b, chunk_size=3000))


@pytest.mark.parametrize("policy", POLICIES)
def test_helper_receives_no_operator_value(policy) -> None:
    """Canary at the protocol level: nothing H receives contains a planted value in any
    encoding (int64, field element, decimal), and H gets no result."""
    params = ToleranceParams(5, 2, 2, policy)
    canary = [0x5EC7E7C4A9A1, 0x7A11ED5EC7E7, 0x1DEADBEEF01, 0x2BADC0FFEE2]
    n = 64
    a = PairValues(*(np.full(n, v) for v in canary))
    b = PairValues(*(np.full(n, v + 9) for v in canary))
    log = []
    ra, rb, rh = run(params, a, b, log=log)
    assert rh is None
    assert ra.disputed.all() and rb.disputed.all()
    to_h = [(what, payload) for _, dst, what, payload in log if dst == 2]
    if policy != "aggregate":
        # H receives nothing but the two 32-byte job digests
        assert [what for what, _ in to_h] == ["job parameters", "job parameters"]
        assert all(len(payload) == 32 for _, payload in to_h)
    received = b"".join(payload for _, payload in to_h)
    for value in canary + [v + 9 for v in canary] + [9, -9]:
        encodings = [value.to_bytes(8, "little", signed=True), value.to_bytes(8, "big", signed=True),
                     str(value).encode(), F.encode(F.from_ints([value]))]
        if abs(value) > 255:
            for encoding in encodings:
                assert encoding not in received
        else:  # a small difference: look for it as a whole field element only
            assert encodings[3] not in received


def pairs_with_reasons(masks):
    """A's and B's values such that pair i has exactly the reasons bitmask masks[i]."""
    n = len(masks)
    base = [np.full(n, 1_767_225_600), np.full(n, 300), np.arange(5_000, 5_000 + n), np.arange(5_000, 5_000 + n)]
    offsets = [np.zeros(n, np.int64) for _ in range(4)]
    for i, mask in enumerate(masks):
        if mask & REASON_BITS["start_time"]:
            offsets[0][i] = 100
        if mask & (REASON_BITS["duration"] | REASON_BITS["charge_unexplained"]):
            offsets[1][i] = 10
        if mask & REASON_BITS["charge_rate_mismatch"]:
            offsets[2][i] = 10
        if mask & (REASON_BITS["charge_rounding"] | REASON_BITS["charge_unexplained"]):
            offsets[2][i] = offsets[3][i] = 10
    return offsets_pairs(base, offsets)


T, D, R, G, U = (REASON_BITS[c] for c in ("start_time", "duration", "charge_rate_mismatch", "charge_rounding",
                                          "charge_unexplained"))
SCENARIOS = {
    # name: (reason masks, classes expected in "other", cells whose sums are withheld)
    "one disputed pair in the job": ([0] * 30 + [R], (), {"matched_tolerance", "disputed", *REASON_CODES}),
    "one pair in a reason class": ([0] * 30 + [T] * 10 + [D] * 8 + [R], ("duration", "charge_rate_mismatch"),
                                   set()),
    "k - 1 pairs": ([0] * 30 + [T] * 20 + [D] * 4 + [G] * 6, ("duration", "charge_rounding"), set()),
    "k pairs": ([0] * 30 + [T] * 20 + [D] * 5 + [G] * 6, (), set()),
    "other merge": ([0] * 30 + [T] * 20 + [D] * 3 + [U | D] * 3, ("duration", "charge_unexplained"), set()),
    "count only": ([0] * 100 + [D] * 2 + [G], (), {"matched_tolerance", "disputed", *REASON_CODES}),
    "few matched_tolerance": ([0] * 2 + [T | R] * 12 + [D] * 9, (), {"matched_tolerance", "disputed",
                                                                      *REASON_CODES}),
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_small_cells_through_the_protocol(policy, scenario) -> None:
    masks, merged, withheld = SCENARIOS[scenario]
    a, b = pairs_with_reasons(masks)
    params = ToleranceParams(5, 2, 2, policy)
    results = run(params, a, b, chunk_size=16)
    assert_matches_reference(params, a, b, results)
    cells = results[0].cells
    assert list(results[0].disputed) == [m != 0 for m in masks]
    assert tuple(code for code, cell in cells.by_reason.items() if cell.in_other) == merged
    named = {"matched_tolerance": cells.matched_tolerance, "disputed": cells.disputed, **cells.by_reason}
    assert {name for name, cell in named.items() if cell.charge is None and not cell.in_other} == withheld
    assert cells.candidates.charge == (int(a.charge.sum()), int(b.charge.sum()))
    if merged:
        members = [i for i, m in enumerate(masks) if m and REASON_CODES[m.bit_length() - 1] in merged]
        assert cells.other.pairs == len(members) >= 5
        assert cells.other.charge == (int(a.charge[members].sum()), int(b.charge[members].sum()))
