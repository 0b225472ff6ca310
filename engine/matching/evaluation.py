"""The evaluation of the candidate pairs: the MPC's result, checked, and cut per bucket.

The private job evaluates every bucket's candidate pairs in one three-party computation
(``protocols.mpc.run_discrepancy``); the reference reconciler evaluates them in the
clear with ``protocols.mpc.reference.plaintext_discrepancy``, the one plaintext
definition of the tolerance rules.  Both return ``DiscrepancyResult``.  Each party checks
the result against what it knows (its own charge sums, the reasons against the flags)
before it uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.matching.bucket import CandidateValues, EvaluationSlice
from engine.matching.errors import MatchingError
from engine.names import OPERATOR_ROLES, REASON_CODES, VALUE_NAMES
from engine.rules import Rules
from protocols.mpc.params import DiscrepancyResult, PairValues, ToleranceParams


def tolerance_params(rules: Rules) -> ToleranceParams:
    tol = rules.tolerances
    return ToleranceParams(time_tolerance_s=tol.time_tolerance_s,
                           duration_tolerance_s=tol.duration_tolerance_s,
                           charge_tolerance=tol.charge_tolerance, policy=rules.disclosure,
                           min_cell_pairs=rules.min_cell_pairs)


def pair_values(values: CandidateValues) -> PairValues:
    return PairValues(start=values.start, duration_s=values.duration_s, charge=values.charge,
                      rated_charge=values.rated_charge)


def plaintext_evaluation(a: CandidateValues, b: CandidateValues, rules: Rules) -> DiscrepancyResult:
    """Both sides' values in one process (NO PRIVACY): the reference's stand-in for the MPC."""
    from protocols.mpc.reference import plaintext_discrepancy

    if len(a) != len(b):
        raise MatchingError("both sides must give the same number of candidate pairs",
                            expected=f"{len(a)} pairs of B", found=str(len(b)))
    return plaintext_discrepancy(pair_values(a), pair_values(b), tolerance_params(rules))


def empty_evaluation(rules: Rules) -> DiscrepancyResult:
    """The evaluation of no pairs."""
    empty = CandidateValues.concat([])
    return plaintext_evaluation(empty, empty, rules)


def checked_evaluation(result: DiscrepancyResult, party: str, policy: str,
                       charge: np.ndarray) -> DiscrepancyResult:
    """``result`` checked against what ``party`` knows (its own charges of the candidate
    pairs, in the common order; the per-pair reasons where the policy gives them), as
    arrays of the documented dtypes.  A cell's sum is checked wherever it is given."""
    from protocols.mpc.cells import own_sums, plan_from_reasons, reason_pairs

    k = len(charge)
    li = OPERATOR_ROLES.index(party)

    def fail(message: str, expected: Any, found: Any) -> MatchingError:
        return MatchingError(f"evaluation result: {message}", expected=str(expected),
                             found=str(found))

    disputed = np.asarray(result.disputed)
    if disputed.shape != (k,):
        raise fail("one disputed flag per candidate pair", f"({k},)", disputed.shape)
    disputed = disputed.astype(bool)
    cells = result.cells
    own = {"matched_tolerance": (int((~disputed).sum()), int(charge[~disputed].sum())),
           "disputed": (int(disputed.sum()), int(charge[disputed].sum())),
           "candidates": (k, int(charge.sum()))}
    for name, (pairs, total) in own.items():
        cell = getattr(cells, name)
        if cell.pairs != pairs:
            raise fail(f"{name} pairs", pairs, cell.pairs)
        if cell.charge is not None and int(cell.charge[li]) != total:
            raise fail(f"party {party}'s charge over the {name} pairs", total, cell.charge[li])
    unknown = set(result.reason_pairs) - set(REASON_CODES)
    if unknown:
        raise fail("unknown reason code", " | ".join(REASON_CODES), sorted(unknown)[0])

    reasons = None
    if policy in ("flags", "differences"):
        if result.reasons is None:
            raise fail(f"reasons are required under policy {policy!r}", "a bitmask per pair",
                       None)
        reasons = np.asarray(result.reasons)
        if reasons.shape != (k,):
            raise fail("one reasons bitmask per candidate pair", f"({k},)", reasons.shape)
        reasons = reasons.astype(np.uint8)
        if ((reasons != 0) != disputed).any():
            raise fail("reasons must be non-empty exactly for disputed pairs",
                       "agreement with the disputed flags", "a pair that disagrees")
        if (reasons >> len(REASON_CODES)).any():
            raise fail("unknown reason bit", f"< {1 << len(REASON_CODES)}", int(reasons.max()))
        counted = reason_pairs(reasons)
        if {c: int(result.reason_pairs.get(c, 0)) for c in REASON_CODES} != counted:
            raise fail("reason_pairs disagrees with the per-pair reasons", counted,
                       dict(result.reason_pairs))
        plan = plan_from_reasons(reasons, cells.min_cell_pairs)
        sums = own_sums(plan, reasons, charge)
        for code in REASON_CODES:
            cell = cells.by_reason[code]
            if cell.pairs != plan.pairs[code] or (cell.charge is None) != (code not in plan.disclosed):
                raise fail(f"the {code} cell does not follow the small-cell rule",
                           (plan.pairs[code], code in plan.disclosed),
                           (cell.pairs, cell.charge is not None))
            if cell.charge is not None and int(cell.charge[li]) != sums[code]:
                raise fail(f"party {party}'s charge in the {code} cell", sums[code],
                           cell.charge[li])

    differences = None
    if policy == "differences":
        if result.differences is None:
            raise fail("differences are required under policy 'differences'",
                       "a difference per value", None)
        differences = {}
        for name in VALUE_NAMES:
            if name not in result.differences:
                raise fail("missing difference", name, sorted(result.differences))
            d = np.asarray(result.differences[name])
            if d.shape != (k,):
                raise fail(f"one {name} difference per candidate pair", f"({k},)", d.shape)
            differences[name] = d.astype(np.int64)
    return DiscrepancyResult(disputed=disputed, reasons=reasons, differences=differences,
                             reason_pairs={c: int(result.reason_pairs.get(c, 0))
                                           for c in REASON_CODES},
                             cells=cells, stats=dict(result.stats))


def slices(result: DiscrepancyResult, counts: Sequence[int]) -> list[EvaluationSlice]:
    """The per-pair parts of ``result`` for consecutive groups of ``counts`` pairs (the
    buckets, in order)."""
    if sum(counts) != len(result.disputed):
        raise MatchingError("the evaluation covers another number of pairs than the buckets",
                            expected=str(sum(counts)), found=str(len(result.disputed)))
    out = []
    lo = 0
    for n in counts:
        hi = lo + n
        out.append(EvaluationSlice(
            disputed=result.disputed[lo:hi],
            reasons=None if result.reasons is None else result.reasons[lo:hi],
            differences=None if result.differences is None else
            {k: v[lo:hi] for k, v in result.differences.items()}))
        lo = hi
    return out
