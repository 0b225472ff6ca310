"""The circuit breaker: the one definition of when a job must not settle.

The private job (at its agree and commit steps, on every party) and the reference
reconciler call these same functions, so the oracle cannot accept what the product
refuses.  Each returns None when the job may go on, else the reason every party prints.

Bounds (docs/rules.md ``[circuit_breaker]``):

- ``max_records``: rows of either export;
- ``max_size_ratio``: larger over smaller export; when the smaller side has fewer than
  ``min_records_for_ratio`` rows, the larger may have at most ``max_size_ratio ×
  min_records_for_ratio`` rows (a tiny side against a large one is still refused);
- ``max_invalid_share``: invalid rows over input rows of either side (an export written
  in the wrong units is refused, not settled as "manual review");
- nothing to settle: when neither side has a single record to match after ingest
  (every row invalid, excluded, out of the period or a duplicate), no statement is
  signed and the job id stays free.

The shares of disputed and unmatched records after matching do not stop a job: they mark
the statement for manual review (:func:`review_reasons`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.rules import CircuitBreaker


@dataclass(frozen=True)
class SideSizes:
    """What each side announces at the agree step."""

    rows: int
    """Data rows of the export."""
    invalid: int
    """Rows found invalid while reading (before any record is matched)."""


def check_sizes(sizes: Mapping[str, SideSizes], breaker: CircuitBreaker) -> str | None:
    """The size and validity bounds over both sides' announced sizes (roles ``A``, ``B``)."""
    for role in ("A", "B"):
        size = sizes[role].rows
        if size > breaker.max_records:
            return (f"circuit breaker: {role} has {size:,} input rows, more than "
                    f"max_records = {breaker.max_records:,}")
    for role in ("A", "B"):
        side = sizes[role]
        if side.rows and side.invalid > breaker.max_invalid_share * side.rows:
            return (f"circuit breaker: {role} has {side.invalid:,} invalid rows of "
                    f"{side.rows:,} ({side.invalid / side.rows:.1%}), more than "
                    f"max_invalid_share = {breaker.max_invalid_share!r}; correct the export "
                    "(see that party's quarantine file) and run the job again")
    rows_a, rows_b = sizes["A"].rows, sizes["B"].rows
    small, large = sorted((rows_a, rows_b))
    if small >= breaker.min_records_for_ratio and large > breaker.max_size_ratio * small:
        return (f"circuit breaker: input sizes A={rows_a:,} and B={rows_b:,} differ by a "
                f"factor {large / small:.2f}, more than max_size_ratio = "
                f"{breaker.max_size_ratio}")
    if small < breaker.min_records_for_ratio and large > breaker.max_size_ratio * max(
            small, breaker.min_records_for_ratio):
        return (f"circuit breaker: input sizes A={rows_a:,} and B={rows_b:,} differ by "
                f"more than max_size_ratio = {breaker.max_size_ratio} "
                f"(the smaller side has fewer than {breaker.min_records_for_ratio:,} rows)")
    return None


def check_considered(considered: Mapping[str, int]) -> str | None:
    """Nothing to settle when neither side has a record to match."""
    if considered["A"] == 0 and considered["B"] == 0:
        return ("nothing to settle: neither A nor B has a record to match after ingest "
                "(every row invalid, excluded, out of the period or a duplicate); no "
                "statement is signed and the job id stays free")
    return None


def review_reasons(disputed_pairs: int, total_pairs: int,
                   unmatched: Mapping[str, tuple[int, int]],
                   breaker: CircuitBreaker) -> tuple[str, ...]:
    """Why a valid settlement must be looked at by people (party-neutral reasons).
    ``unmatched``: per role, (unmatched records, considered records)."""
    reasons = []
    if total_pairs and disputed_pairs > breaker.max_disputed_share * total_pairs:
        reasons.append(f"disputed_share: {disputed_pairs} of {total_pairs} pairs "
                       f"> {breaker.max_disputed_share!r}")
    for role in ("A", "B"):
        records, considered = unmatched[role]
        if considered and records > breaker.max_unmatched_share * considered:
            reasons.append(f"unmatched_share_{role}: {records} of {considered} records "
                           f"> {breaker.max_unmatched_share!r}")
    return tuple(reasons)
