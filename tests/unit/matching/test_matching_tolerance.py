"""The plaintext evaluation (protocols.mpc.reference, the one definition the engine's
reference uses): reason codes and sums on hand-computed pairs (docs/matching.md)."""

from __future__ import annotations

import numpy as np
import pytest

from matching_oracle import make_rules

from engine.matching import CandidateValues, MatchingError, plaintext_evaluation
from engine.names import REASON_BITS


def evaluate_pairs(a, b, _tol, policy):
    return plaintext_evaluation(a, b, make_rules(5, 12, 2, 2, policy=policy))


TOL = None

# (A: start, duration, charge, rated), (B: ...), expected reason codes
CASES = [
    ((100, 60, 10, 10), (100, 60, 10, 10), []),                                  # equal
    ((100, 60, 10, 10), (95, 58, 12, 12), []),                                   # all at the bound
    ((100, 60, 10, 10), (94, 60, 10, 10), ["start_time"]),                       # |d_t| = 6
    ((100, 60, 10, 10), (100, 63, 10, 10), ["duration"]),                        # |d_d| = 3
    ((100, 60, 10, 10), (100, 60, 13, 10), ["charge_rate_mismatch"]),            # rated alike
    ((100, 60, 10, 10), (100, 61, 13, 13), ["charge_rounding"]),                 # ok_d, rated differ
    ((100, 60, 10, 10), (100, 64, 13, 13), ["duration", "charge_unexplained"]),  # ¬ok_d
    ((100, 60, 20, 10), (90, 70, 10, 13), ["start_time", "duration", "charge_unexplained"]),
    ((100, 60, 20, 10), (90, 70, 10, 12), ["start_time", "duration", "charge_rate_mismatch"]),
]


def _values(rows: list[tuple[int, int, int, int]]) -> CandidateValues:
    cols = list(zip(*rows)) if rows else [(), (), (), ()]
    return CandidateValues(*(np.array(c, dtype=np.int64) for c in cols))


@pytest.mark.parametrize("policy", ["aggregate", "flags", "differences"])
def test_reason_codes_and_sums(policy: str) -> None:
    a = _values([c[0] for c in CASES])
    b = _values([c[1] for c in CASES])
    result = evaluate_pairs(a, b, TOL, policy)
    expected_masks = [sum(REASON_BITS[r] for r in c[2]) for c in CASES]
    disputed = np.array([bool(m) for m in expected_masks])
    assert result.disputed.tolist() == disputed.tolist()
    if policy == "aggregate":
        assert result.reasons is None
    else:
        assert result.reasons.dtype == np.uint8
        assert result.reasons.tolist() == expected_masks
    if policy == "differences":
        assert result.differences is not None
        for i, name in enumerate(("start", "duration_s", "charge", "rated_charge")):
            want = [(c[0][i] - c[1][i]) if m else 0 for c, m in zip(CASES, expected_masks)]
            assert result.differences[name].tolist() == want
    else:
        assert result.differences is None
    for code, bit in REASON_BITS.items():
        has = [bool(m & bit) for m in expected_masks]
        assert result.reason_pairs[code] == sum(has)
    cells = result.cells  # k = 1 (matching_oracle.make_rules): every sum is given
    assert cells.matched_tolerance.charge == (sum(c[0][2] for c in CASES if not c[2]),
                                              sum(c[1][2] for c in CASES if not c[2]))
    assert cells.disputed.charge == (sum(c[0][2] for c in CASES if c[2]),
                                     sum(c[1][2] for c in CASES if c[2]))


def test_no_pairs() -> None:
    result = evaluate_pairs(_values([]), _values([]), TOL, "flags")
    assert result.disputed.shape == (0,) and result.cells.matched_tolerance.charge == (0, 0)
    assert all(v == 0 for v in result.reason_pairs.values())


def test_sides_of_different_length_are_refused() -> None:
    with pytest.raises(MatchingError, match="same number of candidate pairs"):
        evaluate_pairs(_values([CASES[0][0]]), _values([]), TOL, "flags")
