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
from engine.names import OPERATOR_ROLES, REASON_BITS, REASON_CODES, VALUE_NAMES
from engine.rules import Rules
from protocols.mpc.params import DiscrepancyResult, PairValues, ToleranceParams


def tolerance_params(rules: Rules) -> ToleranceParams:
    tol = rules.tolerances
    return ToleranceParams(time_tolerance_s=tol.time_tolerance_s,
                           duration_tolerance_s=tol.duration_tolerance_s,
                           charge_tolerance=tol.charge_tolerance, policy=rules.disclosure)


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


def empty_evaluation() -> DiscrepancyResult:
    return DiscrepancyResult(disputed=np.zeros(0, dtype=bool), reasons=np.zeros(0, dtype=np.uint8),
                             differences={n: np.zeros(0, dtype=np.int64) for n in VALUE_NAMES},
                             per_reason={c: (0, 0, 0) for c in REASON_CODES},
                             tolerance_charge=(0, 0), disputed_charge=(0, 0))


def checked_evaluation(result: DiscrepancyResult, party: str, policy: str,
                       charge: np.ndarray) -> DiscrepancyResult:
    """``result`` checked against what ``party`` knows (its own charges of the candidate
    pairs, in the common order), as arrays of the documented dtypes."""
    k = len(charge)
    li = OPERATOR_ROLES.index(party)

    def fail(message: str, expected: Any, found: Any) -> MatchingError:
        return MatchingError(f"evaluation result: {message}", expected=str(expected),
                             found=str(found))

    disputed = np.asarray(result.disputed)
    if disputed.shape != (k,):
        raise fail("one disputed flag per candidate pair", f"({k},)", disputed.shape)
    disputed = disputed.astype(bool)

    def pair_of_ints(value: Any, name: str) -> tuple[int, int]:
        try:
            a, b = value
            return int(a), int(b)
        except (TypeError, ValueError):
            raise fail(f"{name} must be (sum A, sum B)", "two integers", value) from None

    tolerance_charge = pair_of_ints(result.tolerance_charge, "tolerance_charge")
    disputed_charge = pair_of_ints(result.disputed_charge, "disputed_charge")
    own_tolerance = int(charge[~disputed].sum())
    own_disputed = int(charge[disputed].sum())
    if tolerance_charge[li] != own_tolerance:
        raise fail(f"party {party}'s charge over matched_tolerance pairs", own_tolerance,
                   tolerance_charge[li])
    if disputed_charge[li] != own_disputed:
        raise fail(f"party {party}'s charge over disputed pairs", own_disputed,
                   disputed_charge[li])

    per_reason: dict[str, tuple[int, int, int]] = {}
    unknown = set(result.per_reason) - set(REASON_CODES)
    if unknown:
        raise fail("unknown reason code", " | ".join(REASON_CODES), sorted(unknown)[0])
    for code in REASON_CODES:
        entry = result.per_reason.get(code, (0, 0, 0))
        try:
            pairs, a, b = (int(x) for x in entry)
        except (TypeError, ValueError):
            raise fail(f"per_reason[{code!r}] must be (pairs, sum A, sum B)",
                       "three integers", entry) from None
        per_reason[code] = (pairs, a, b)

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
        for code in REASON_CODES:
            has = (reasons & REASON_BITS[code]) != 0
            own = (int(has.sum()), int(charge[has].sum()))
            if (per_reason[code][0], per_reason[code][1 + li]) != own:
                raise fail(f"per_reason[{code!r}] disagrees with the per-pair reasons",
                           own, (per_reason[code][0], per_reason[code][1 + li]))

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
                             per_reason=per_reason, tolerance_charge=tolerance_charge,
                             disputed_charge=disputed_charge, stats=dict(result.stats))


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
