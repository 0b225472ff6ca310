"""The plaintext computation against hand-worked cases of docs/matching.md."""

import numpy as np

from protocols.mpc.params import REASON_BITS, PairValues, ToleranceParams
from protocols.mpc.reference import plaintext_discrepancy


def values(*rows):
    cols = list(zip(*rows))
    return PairValues(*(np.array(c, dtype=np.int64) for c in cols))


def test_reason_codes_of_docs_matching() -> None:
    params = ToleranceParams(5, 2, 2, "flags")
    a = values((100, 60, 50, 50),   # all within tolerance
               (100, 60, 50, 50),   # start off by 6
               (100, 60, 50, 50),   # duration off by 3, charge within
               (100, 60, 60, 50),   # charge off, rated equal: rate mismatch
               (100, 61, 60, 60),   # charge off, rated off, duration within: rounding
               (100, 64, 60, 60))   # charge off, rated off, duration off: unexplained (+ duration)
    b = values((105, 58, 52, 48),
               (94, 60, 50, 50),
               (100, 63, 51, 50),
               (100, 60, 50, 50),
               (100, 60, 50, 50),
               (100, 60, 50, 50))
    r = plaintext_discrepancy(a, b, params)
    everything = plaintext_discrepancy(a, b, ToleranceParams(5, 2, 2, "flags", min_cell_pairs=1))
    bits = REASON_BITS
    assert list(r.reasons) == [0, bits["start_time"], bits["duration"], bits["charge_rate_mismatch"],
                               bits["charge_rounding"], bits["duration"] | bits["charge_unexplained"]]
    assert list(r.disputed) == [False, True, True, True, True, True]
    # duration counts pairs 3 and 6; the sixth pair's class is charge_unexplained (its last reason)
    assert r.reason_pairs == {"start_time": 1, "duration": 2, "charge_rate_mismatch": 1, "charge_rounding": 1,
                              "charge_unexplained": 1}
    assert {code: cell.pairs for code, cell in r.cells.by_reason.items()} == {
        "start_time": 1, "duration": 1, "charge_rate_mismatch": 1, "charge_rounding": 1, "charge_unexplained": 1}
    # with k = 1 every sum is given
    cells = everything.cells
    assert cells.matched_tolerance.charge == (50, 52)
    assert cells.disputed.charge == (50 + 50 + 60 + 60 + 60, 50 + 51 + 50 + 50 + 50)
    assert cells.candidates.charge == (50 + 280, 52 + 251)
    assert cells.by_reason["duration"].charge == (50, 51)
    assert cells.by_reason["charge_unexplained"].charge == (60, 50)
    # with the default k = 5 and one pair in the matched_tolerance cell, only counts remain
    assert r.cells.min_cell_pairs == 5
    assert r.cells.matched_tolerance.charge is None and r.cells.disputed.charge is None
    assert r.cells.candidates.charge == (330, 303)
    assert all(cell.charge is None for cell in r.cells.by_reason.values())
