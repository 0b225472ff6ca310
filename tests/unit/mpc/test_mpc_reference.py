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
    bits = REASON_BITS
    assert list(r.reasons) == [0, bits["start_time"], bits["duration"], bits["charge_rate_mismatch"],
                               bits["charge_rounding"], bits["duration"] | bits["charge_unexplained"]]
    assert list(r.disputed) == [False, True, True, True, True, True]
    assert r.tolerance_charge == (50, 52)
    assert r.disputed_charge == (50 + 50 + 60 + 60 + 60, 50 + 51 + 50 + 50 + 50)
    assert r.per_reason["duration"] == (2, 50 + 60, 51 + 50)
