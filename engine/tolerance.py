"""Plaintext tolerance evaluation of candidate pairs (docs/matching.md § Tolerance
evaluation).

Both sides' values in one process: this is the reference for what the MPC
(``protocols.mpc.run_discrepancy``) computes in secret-shared form, and it returns
the same shape, :class:`DiscrepancyResult` (docs/interfaces.md "MPC"), with the
same per-policy ``None`` fields, so that :meth:`engine.matching.PartyMatcher.
record_evaluation` takes either.  It offers no privacy.
"""

from __future__ import annotations

import time

import numpy as np

from engine.matching import (
    DISCLOSURE_POLICIES,
    REASON_BITS,
    REASON_CODES,
    VALUE_NAMES,
    CandidateValues,
    MatchingError,
)
from engine.rules import Tolerances
from protocols.mpc.params import DiscrepancyResult  # the MPC's result type, reused as is


def reason_masks(a: CandidateValues, b: CandidateValues, tolerances: Tolerances) -> np.ndarray:
    """The reasons bitmask of every pair (0 = matched_tolerance)."""
    d_t = a.start - b.start
    d_d = a.duration_s - b.duration_s
    d_c = a.charge - b.charge
    d_r = a.rated_charge - b.rated_charge
    ok_t = np.abs(d_t) <= tolerances.time_tolerance_s
    ok_d = np.abs(d_d) <= tolerances.duration_tolerance_s
    ok_c = np.abs(d_c) <= tolerances.charge_tolerance
    rated_alike = np.abs(d_r) <= tolerances.charge_tolerance
    mask = np.zeros(len(a), dtype=np.uint8)
    mask |= np.where(~ok_t, REASON_BITS["start_time"], 0).astype(np.uint8)
    mask |= np.where(~ok_d, REASON_BITS["duration"], 0).astype(np.uint8)
    charge_reason = np.where(
        rated_alike, REASON_BITS["charge_rate_mismatch"],
        np.where(ok_d, REASON_BITS["charge_rounding"], REASON_BITS["charge_unexplained"]))
    mask |= np.where(~ok_c, charge_reason, 0).astype(np.uint8)
    return mask


def evaluate_pairs(a: CandidateValues, b: CandidateValues, tolerances: Tolerances,
                   policy: str) -> DiscrepancyResult:
    """Evaluate candidate pairs given both sides' values in the common pair order."""
    began = time.perf_counter()
    if policy not in DISCLOSURE_POLICIES:
        raise MatchingError("unknown disclosure policy", expected=" | ".join(DISCLOSURE_POLICIES),
                            found=repr(policy))
    if len(a) != len(b):
        raise MatchingError("both sides must give the same number of candidate pairs",
                            expected=f"{len(a)} pairs of B", found=str(len(b)))
    mask = reason_masks(a, b, tolerances)
    disputed = mask != 0
    per_reason = {}
    for code in REASON_CODES:
        has = (mask & REASON_BITS[code]) != 0
        per_reason[code] = (int(has.sum()), int(a.charge[has].sum()), int(b.charge[has].sum()))
    differences = None
    if policy == "differences":
        differences = {
            name: np.where(disputed, getattr(a, name) - getattr(b, name), 0).astype(np.int64)
            for name in VALUE_NAMES
        }
    return DiscrepancyResult(
        disputed=disputed,
        reasons=None if policy == "aggregate" else mask,
        differences=differences,
        per_reason=per_reason,
        tolerance_charge=(int(a.charge[~disputed].sum()), int(b.charge[~disputed].sum())),
        disputed_charge=(int(a.charge[disputed].sum()), int(b.charge[disputed].sum())),
        stats={"seconds": time.perf_counter() - began, "pairs": len(a)},
    )
