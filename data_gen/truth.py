"""The true answer: the status each row of A and of B must get.

Computed from the generator's own knowledge of which rows belong to which event,
not by re-running a matcher over the files.  It follows docs/records.md (local
processing order: invalid, duplicate, partial merge, exclusions, rating) and
docs/matching.md (passes, guarantees, tolerance evaluation, reason codes):

- a row that is invalid, a later duplicate copy, or part of an excluded record
  gets that status and reason.  A record is excluded when its start (the first
  part's, as read) falls outside the period, reason ``out_of_period`` (this comes
  before the rules' exclusions), or by an exclusion of the rules;
- every other row belongs to its event's canonical record on its side; when the
  event has a considered record on both sides, the pair of them is (isolation is
  guaranteed by ``isolation.py``):

  * ``matched_exact`` (pass S1) when start, duration and charge are equal;
  * ``matched_tolerance`` by pass S2 (``tolerant_values``) when duration and
    charge are equal and the two starts share a window of width V = δ+1 on
    either grid ⌊s/V⌋, ⌊(s+⌊V/2⌋)/V⌋;
  * otherwise paired by pass S3 (``key``) when the starts share a window of width
    W on either grid ⌊s/W⌋, ⌊(s+⌊W/2⌋)/W⌋ (always so when |Δt| ≤ δ, never when
    |Δt| ≥ W), and then ``matched_tolerance`` or ``disputed`` by the tolerance
    evaluation, with its reason codes;
  * else both records are ``unmatched``;

- a considered record whose counterpart is missing, invalid or excluded is
  ``unmatched``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from data_gen.config import GenConfig
from data_gen.errors import DataGenError
from data_gen.tariff import ScenarioRules
from data_gen.views import ALL_INVALID, PERTURBATIONS, SideBlock, SideEvents

STATUSES: tuple[str, ...] = ("matched_exact", "matched_tolerance", "disputed", "unmatched",
                             "duplicate", "invalid", "excluded")
MATCHED_EXACT, MATCHED_TOLERANCE, DISPUTED, UNMATCHED, DUPLICATE, INVALID, EXCLUDED = range(7)
STAGES: tuple[str, ...] = ("", "exact", "tolerant_values", "key")
NO_STAGE, STAGE_EXACT, STAGE_VALUES, STAGE_KEY = range(4)
#: Reason codes of a disputed pair, in bit order (docs/matching.md bitmask encoding).
REASON_CODES: tuple[str, ...] = ("start_time", "duration", "charge_rate_mismatch",
                                 "charge_rounding", "charge_unexplained")

TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "side": pl.String(),
    "row": pl.Int64(),
    "record_id": pl.String(),
    "event_id": pl.Int64(),
    "part_seq": pl.Int64(),
    "expected_status": pl.String(),
    "expected_pair_record_id": pl.String(),
    "expected_reasons": pl.String(),
    "expected_stage": pl.String(),
    "expected_merged_into": pl.String(),
    "expected_invalid_code": pl.String(),
    "expected_invalid_column": pl.String(),
    "canonical_charge": pl.Int64(),
    "expected_rated_charge": pl.Int64(),
    "diff_start_s": pl.Int64(),
    "diff_duration_s": pl.Int64(),
    "diff_charge": pl.Int64(),
    "diff_rated_charge": pl.Int64(),
    "perturbations": pl.String(),
}


#: The reason of an excluded record whose start falls outside the job's period.
OUT_OF_PERIOD = "out_of_period"


@dataclass
class PairOutcome:
    """Per event of a block: the outcome of its pair (meaningful where ``both``)."""

    both: np.ndarray      # bool: considered on both sides
    status: np.ndarray    # uint8: status of each side's record if considered (same for both)
    stage: np.ndarray     # uint8
    reasons: np.ndarray   # uint8 bitmask (disputed only)
    d_start: np.ndarray   # int64 A − B
    d_duration: np.ndarray
    d_charge: np.ndarray
    d_rated: np.ndarray


def expected_pairs(config: GenConfig, ea: SideEvents, eb: SideEvents) -> PairOutcome:
    """The outcome of every event's pair of canonical records (a block's events)."""
    both = ea.considered & eb.considered
    d_start = np.where(both, ea.start - eb.start, 0)
    d_duration = np.where(both, ea.duration - eb.duration.astype(np.int64), 0)
    d_charge = np.where(both, ea.charge - eb.charge.astype(np.int64), 0)
    d_rated = np.where(both, ea.rated - eb.rated.astype(np.int64), 0)
    exact = both & (d_start == 0) & (d_duration == 0) & (d_charge == 0)
    status = np.where(exact, MATCHED_EXACT, UNMATCHED).astype(np.uint8)
    stage = np.where(exact, STAGE_EXACT, NO_STAGE).astype(np.uint8)
    reasons = np.zeros(status.shape[0], dtype=np.uint8)

    # the few pairs that differ: which pass pairs them, and the tolerance evaluation
    at = np.flatnonzero(both & ~exact)
    sa, sb = ea.start[at], eb.start[at]
    d_t, d_d, d_c, d_r = d_start[at], d_duration[at], d_charge[at], d_rated[at]
    delta, window = config.time_tolerance_s, config.time_window_s
    value_window = delta + 1
    half_v, half_w = value_window // 2, window // 2
    s2 = ((d_d == 0) & (d_c == 0)
          & ((sa // value_window == sb // value_window)
             | ((sa + half_v) // value_window == (sb + half_v) // value_window)))
    s3 = ~s2 & ((sa // window == sb // window)
                | ((sa + half_w) // window == (sb + half_w) // window))
    ok_t = np.abs(d_t) <= delta
    ok_d = np.abs(d_d) <= config.duration_tolerance_s
    ok_c = np.abs(d_c) <= config.charge_tolerance
    ok_r = np.abs(d_r) <= config.charge_tolerance
    agree = ok_t & ok_d & ok_c
    codes = (np.where(~ok_t, 1, 0) | np.where(~ok_d, 2, 0)
             | np.where(~ok_c & ok_r, 4, 0) | np.where(~ok_c & ~ok_r & ok_d, 8, 0)
             | np.where(~ok_c & ~ok_r & ~ok_d, 16, 0))
    status[at] = np.where(s2 | (s3 & agree), MATCHED_TOLERANCE,
                          np.where(s3, DISPUTED, UNMATCHED))
    stage[at] = np.where(s2, STAGE_VALUES, np.where(s3, STAGE_KEY, NO_STAGE))
    reasons[at] = np.where(s3 & ~agree, codes, 0)
    return PairOutcome(both=both, status=status, stage=stage, reasons=reasons, d_start=d_start,
                       d_duration=d_duration, d_charge=d_charge, d_rated=d_rated)


@dataclass
class RowTruth:
    """Per row of a :class:`~data_gen.views.SideBlock`, in file order."""

    status: np.ndarray       # uint8 index into STATUSES
    stage: np.ndarray        # uint8 index into STAGES
    reasons: np.ndarray      # uint8 bitmask of disputed rows
    pair_row: np.ndarray     # int64 row (0-based) of the counterparty's canonical record, -1
    merged_into: np.ndarray  # int64 row (0-based) of the chain's first row for parts, -1
    unit: np.ndarray         # bool: the row belongs to a considered canonical record
    exclusion: np.ndarray    # int8 exclusion index of excluded rows, -1
    flags: np.ndarray        # uint32 perturbation bits
    charge: np.ndarray       # int64 canonical own charge (meaningful where unit)
    rated: np.ndarray        # int64 canonical rated charge
    d_start: np.ndarray      # int64 this side minus the other (meaningful where paired)
    d_duration: np.ndarray
    d_charge: np.ndarray
    d_rated: np.ndarray


def expected_rows(rows: SideBlock, lo: int, local: SideEvents, remote: SideEvents,
                  outcome: PairOutcome | None, flags: np.ndarray | None) -> RowTruth:
    """The expected outcome of every row of a side block (``lo``: the block's first
    event; ``outcome``/``flags`` None for a block of copies only)."""
    n = len(rows)
    truth = RowTruth(
        status=np.full(n, DUPLICATE, dtype=np.uint8), stage=np.zeros(n, dtype=np.uint8),
        reasons=np.zeros(n, dtype=np.uint8), pair_row=np.full(n, -1, dtype=np.int64),
        merged_into=np.full(n, -1, dtype=np.int64), unit=np.zeros(n, dtype=bool),
        exclusion=np.full(n, -1, dtype=np.int8), flags=np.zeros(n, dtype=np.uint32),
        charge=np.zeros(n, dtype=np.int64), rated=np.zeros(n, dtype=np.int64),
        d_start=np.zeros(n, dtype=np.int64), d_duration=np.zeros(n, dtype=np.int64),
        d_charge=np.zeros(n, dtype=np.int64), d_rated=np.zeros(n, dtype=np.int64),
    )
    truth.flags[rows.copy_position] = rows.copy_flags
    pre = rows.pre_position
    if pre.size == 0 or outcome is None or flags is None:
        return truth
    ev = rows.columns["event"][pre] - lo
    is_invalid = rows.columns["invalid"][pre] >= 0
    is_excluded = ~is_invalid & local.excluded[ev]
    unit = ~is_invalid & ~is_excluded
    status = np.where(is_invalid, INVALID, np.where(is_excluded, EXCLUDED, outcome.status[ev]))
    sign = 1 if rows.side == "A" else -1
    truth.status[pre] = status
    truth.stage[pre] = np.where(unit, outcome.stage[ev], NO_STAGE)
    truth.reasons[pre] = np.where(unit, outcome.reasons[ev], 0)
    truth.pair_row[pre] = np.where(unit & (status <= DISPUTED), remote.first_row[ev], -1)
    truth.merged_into[pre] = np.where(~is_invalid & (local.parts[ev] > 1), local.first_row[ev],
                                      -1)
    truth.unit[pre] = unit
    truth.exclusion[pre] = np.where(is_excluded, local.exclusion[ev], -1)
    truth.flags[pre] = flags[ev]
    truth.charge[pre] = local.charge[ev]
    truth.rated[pre] = local.rated[ev]
    truth.d_start[pre] = sign * outcome.d_start[ev]
    truth.d_duration[pre] = sign * outcome.d_duration[ev]
    truth.d_charge[pre] = sign * outcome.d_charge[ev]
    truth.d_rated[pre] = sign * outcome.d_rated[ev]
    return truth


@dataclass
class RowPart:
    """Consecutive rows of one side (file rows ``first + 1 ..``): their values, their
    truth and their record ids as written (what a chunk's frames are made of)."""

    side: str
    first: int
    columns: dict[str, np.ndarray]
    truth: RowTruth
    ids: pl.Series

    def __len__(self) -> int:
        return int(self.columns["event"].shape[0])


def slice_truth(truth: RowTruth, lo: int, hi: int) -> RowTruth:
    return RowTruth(**{name: getattr(truth, name)[lo:hi] for name in truth.__dataclass_fields__})


def truth_frame(rules: ScenarioRules, part_a: RowPart, part_b: RowPart) -> pl.DataFrame:
    """The truth.parquet rows of A's part, then B's (schema :data:`TRUTH_SCHEMA`).

    The file is written one chunk of events at a time (A's rows of the chunk, then B's),
    so its order does not depend on the block size; a row's pair and merged_into are
    first rows of canonical records of events of the same chunk, so their ids are looked
    up in the parts' ids, not made again."""
    parts = (part_a, part_b)
    base = {"A": 0, "B": len(part_a)}
    first = {"A": part_a.first, "B": part_b.first}
    other = {"A": "B", "B": "A"}
    size = {"A": len(part_a), "B": len(part_b)}

    def cat(get: Callable[[RowPart], np.ndarray]) -> np.ndarray:
        return np.concatenate([get(part) for part in parts])

    def lookup(part: RowPart, row: np.ndarray, side: str) -> np.ndarray:
        """Index into the parts' ids of file row ``row`` of ``side`` (-1 stays -1)."""
        local = row - first[side]
        if ((row >= 0) & ((local < 0) | (local >= size[side]))).any():
            raise DataGenError("internal error: a pair or chain outside its chunk")
        return np.where(row >= 0, local + base[side], -1)

    flags = cat(lambda p: p.truth.flags)
    # perturbation masks: a dense index over the few distinct masks, then a text lookup
    masks = np.unique(flags)
    mask_text = [",".join(name for bit, name in enumerate(PERTURBATIONS) if int(v) >> bit & 1)
                 or None for v in masks.tolist()]
    status = cat(lambda p: p.truth.status)
    # one lookup for every reason but duplicate_of:N (few rows, made apart)
    reason_text: list[str | None] = [
        ",".join(code for bit, code in enumerate(REASON_CODES) if mask >> bit & 1) or None
        for mask in range(32)]
    invalid_at, exclusion_at = len(reason_text), len(reason_text) + len(ALL_INVALID)
    reason_text += [k.reason for k in ALL_INVALID]
    reason_text += [e.name for e in rules.exclusions] + [OUT_OF_PERIOD]
    invalid = cat(lambda p: p.columns["invalid"])
    exclusion = cat(lambda p: p.truth.exclusion)
    reason = np.select(
        [status == DISPUTED, status == INVALID, status == EXCLUDED],
        [cat(lambda p: p.truth.reasons).astype(np.int64), invalid_at + invalid.astype(np.int64),
         exclusion_at + exclusion.astype(np.int64)], 0)
    frame = pl.DataFrame({
        "_side": cat(lambda p: np.full(len(p), 0 if p.side == "A" else 1, dtype=np.uint8)),
        "row": cat(lambda p: p.first + 1 + np.arange(len(p), dtype=np.int64)),
        "event_id": cat(lambda p: p.columns["event"]),
        "part_seq": cat(lambda p: p.columns["part_seq"]),
        "_status": status,
        "_stage": cat(lambda p: p.truth.stage),
        "_reason": reason,
        "_pair": cat(lambda p: lookup(p, p.truth.pair_row, other[p.side])),
        "_merged": cat(lambda p: lookup(p, p.truth.merged_into, p.side)),
        "_invalid": invalid,
        "_flags": np.searchsorted(masks, flags).astype(np.uint32),
        "_unit": cat(lambda p: p.truth.unit),
        "_charge": cat(lambda p: p.truth.charge),
        "_rated": cat(lambda p: p.truth.rated),
        "_d_start": cat(lambda p: p.truth.d_start),
        "_d_duration": cat(lambda p: p.truth.d_duration),
        "_d_charge": cat(lambda p: p.truth.d_charge),
        "_d_rated": cat(lambda p: p.truth.d_rated),
    })
    ids = pl.concat([part_a.ids, part_b.ids])
    paired = pl.col("_pair") >= 0
    invalid_code = [None] + [k.code for k in ALL_INVALID]
    invalid_column = [None] + [k.column for k in ALL_INVALID]

    def text(values: list[str | None], index: pl.Expr) -> pl.Expr:
        """values[index]: a lookup, one gather."""
        return pl.lit(pl.Series(values, dtype=pl.String)).gather(index)

    def id_at(index: pl.Expr) -> pl.Expr:
        return pl.lit(ids).gather(index)

    out = frame.select(
        side=text(["A", "B"], pl.col("_side")),
        row=pl.col("row"),
        record_id=pl.lit(ids),
        event_id=pl.col("event_id"),
        part_seq=pl.col("part_seq"),
        expected_status=text(list(STATUSES), pl.col("_status")),
        expected_pair_record_id=id_at(pl.when(paired).then(pl.col("_pair"))),
        expected_reasons=text(reason_text, pl.col("_reason")),
        expected_stage=text([None, *STAGES[1:]], pl.col("_stage")),
        expected_merged_into=id_at(pl.when(pl.col("_merged") >= 0).then(pl.col("_merged"))),
        expected_invalid_code=text(invalid_code, pl.col("_invalid") + 1),
        expected_invalid_column=text(invalid_column, pl.col("_invalid") + 1),
        canonical_charge=pl.when(pl.col("_unit")).then(pl.col("_charge")),
        expected_rated_charge=pl.when(pl.col("_unit")).then(pl.col("_rated")),
        diff_start_s=pl.when(paired).then(pl.col("_d_start")),
        diff_duration_s=pl.when(paired).then(pl.col("_d_duration")),
        diff_charge=pl.when(paired).then(pl.col("_d_charge")),
        diff_rated_charge=pl.when(paired).then(pl.col("_d_rated")),
        perturbations=text(mask_text, pl.col("_flags")),
    )
    duplicates = np.flatnonzero(status == DUPLICATE)
    if duplicates.size:
        copy_of = cat(lambda p: p.columns["copy_of"])[duplicates]
        reasons = out.get_column("expected_reasons").scatter(
            duplicates, pl.Series([f"duplicate_of:{row + 1}" for row in copy_of.tolist()],
                                  dtype=pl.String))
        out = out.with_columns(reasons)
    return out.cast(TRUTH_SCHEMA)  # type: ignore[arg-type]


def status_counts(status: np.ndarray) -> np.ndarray:
    """Rows per status (index into STATUSES)."""
    return np.bincount(status, minlength=len(STATUSES))
