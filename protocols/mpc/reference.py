"""The plaintext computation the MPC must reproduce (docs/matching.md, "Tolerance
evaluation of candidate pairs", "Disclosure", "Totals").

Both sides' values in one process, no privacy: used by the tests, by ``settlechain mpc
--check`` and as the written-out meaning of every output field.  It returns the same
:class:`~protocols.mpc.params.DiscrepancyResult` as the protocol, small-cell rule
included (protocols.mpc.cells).
"""

from __future__ import annotations

import numpy as np

from protocols.mpc.cells import own_sums, plan_from_reasons, reason_pairs
from protocols.mpc.params import (
    DIFFERENCE_KEYS,
    REASON_BITS,
    ChargeCells,
    DiscrepancyResult,
    PairValues,
    ToleranceParams,
)


def within_tolerance(a: np.ndarray, b: np.ndarray, tolerance: int) -> np.ndarray:
    """|a - b| <= tolerance, exactly (Python integers: no int64 wrap-around)."""
    diff = a.astype(object) - b.astype(object)
    return np.array([abs(int(x)) <= tolerance for x in diff], dtype=bool)


def reasons_from_flags(ok_t: np.ndarray, ok_d: np.ndarray, ok_c: np.ndarray, ok_r: np.ndarray) -> np.ndarray:
    """The reasons bitmask of docs/matching.md from the four within-tolerance flags."""
    reasons = np.zeros(ok_t.shape, dtype=np.uint8)
    reasons |= np.where(~ok_t, REASON_BITS["start_time"], 0).astype(np.uint8)
    reasons |= np.where(~ok_d, REASON_BITS["duration"], 0).astype(np.uint8)
    charge_off = ~ok_c
    reasons |= np.where(charge_off & ok_r, REASON_BITS["charge_rate_mismatch"], 0).astype(np.uint8)
    reasons |= np.where(charge_off & ~ok_r & ok_d, REASON_BITS["charge_rounding"], 0).astype(np.uint8)
    reasons |= np.where(charge_off & ~ok_r & ~ok_d, REASON_BITS["charge_unexplained"], 0).astype(np.uint8)
    return reasons


def summarize(reasons: np.ndarray, charge_a: np.ndarray, charge_b: np.ndarray,
              min_cell_pairs: int) -> tuple[dict[str, int], ChargeCells]:
    """``reason_pairs`` and the cells after the small-cell rule, from the per-pair reasons
    and both sides' charges."""
    plan = plan_from_reasons(reasons, min_cell_pairs)
    sums_a = own_sums(plan, reasons, charge_a)
    sums_b = own_sums(plan, reasons, charge_b)
    return reason_pairs(reasons), plan.cells({name: (sums_a[name], sums_b[name]) for name in sums_a})


def plaintext_discrepancy(a: PairValues, b: PairValues, params: ToleranceParams) -> DiscrepancyResult:
    """A's view of the result (B's is the same with differences negated), computed in the clear."""
    if len(a) != len(b):
        raise ValueError(f"A has {len(a)} pairs, B has {len(b)}")
    ok = {check: within_tolerance(a.column(check), b.column(check), params.tolerance(check))
          for check in ("t", "d", "c", "r")}
    reasons = reasons_from_flags(ok["t"], ok["d"], ok["c"], ok["r"])
    disputed = reasons != 0
    counts, cells = summarize(reasons, a.charge, b.charge, params.min_cell_pairs)
    differences = None
    if params.policy == "differences":
        differences = {}
        for key, check in zip(DIFFERENCE_KEYS, ("t", "d", "c", "r")):
            diff = a.column(check) - b.column(check)  # |x| < 2^62: no overflow
            differences[key] = np.where(disputed, diff, 0).astype(np.int64)
    return DiscrepancyResult(
        disputed=disputed,
        reasons=reasons if params.policy in ("flags", "differences") else None,
        differences=differences,
        reason_pairs=counts,
        cells=cells,
        stats={},
    )
