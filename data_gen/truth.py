"""The true answer: the status each row of A and of B must get.

Computed from the generator's own knowledge of which rows belong to which event,
not by re-running a matcher over the files.  It follows docs/records.md (local
processing order: invalid, duplicate, partial merge, exclusions, rating) and
docs/matching.md (passes, guarantees, tolerance evaluation, reason codes):

- a row that is invalid, a later duplicate copy, or part of an excluded record
  gets that status and reason;
- every other row belongs to its event's canonical record on its side; when the
  event has a considered record on both sides, the pair of them is (isolation is
  guaranteed by ``views._isolate``):

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

from dataclasses import dataclass

import numpy as np
import polars as pl

from data_gen.blocks import spans
from data_gen.config import GenConfig
from data_gen.record_ids import id_expr
from data_gen.tariff import ScenarioRules
from data_gen.views import BIT, INVALID_KINDS, PERTURBATIONS, SideEvents, SideRows, Views

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


@dataclass
class PairOutcome:
    """Per event: the outcome of its pair (meaningful where ``both``)."""

    both: np.ndarray      # bool: considered on both sides
    status: np.ndarray    # uint8: status of each side's record if considered (same for both)
    stage: np.ndarray     # uint8
    reasons: np.ndarray   # uint8 bitmask (disputed only)
    d_start: np.ndarray   # int64 A − B
    d_duration: np.ndarray
    d_charge: np.ndarray
    d_rated: np.ndarray


def expected_pairs(config: GenConfig, ea: SideEvents, eb: SideEvents) -> PairOutcome:
    n = ea.present.shape[0]
    outcome = PairOutcome(
        both=np.empty(n, dtype=bool), status=np.empty(n, dtype=np.uint8),
        stage=np.empty(n, dtype=np.uint8), reasons=np.empty(n, dtype=np.uint8),
        d_start=np.empty(n, dtype=np.int64), d_duration=np.empty(n, dtype=np.int32),
        d_charge=np.empty(n, dtype=np.int32), d_rated=np.empty(n, dtype=np.int32),
    )
    for _, lo, hi in spans(n):
        _pairs_block(config, ea, eb, outcome, slice(lo, hi))
    return outcome


def _pairs_block(config: GenConfig, ea: SideEvents, eb: SideEvents, out: PairOutcome,
                 part: slice) -> None:
    both = ea.considered[part] & eb.considered[part]
    d_start = np.where(both, ea.start[part] - eb.start[part], 0)
    d_duration = np.where(both, ea.duration[part] - eb.duration[part].astype(np.int64), 0)
    d_charge = np.where(both, ea.charge[part] - eb.charge[part].astype(np.int64), 0)
    d_rated = np.where(both, ea.rated[part] - eb.rated[part].astype(np.int64), 0)
    exact = both & (d_start == 0) & (d_duration == 0) & (d_charge == 0)
    status = np.where(exact, MATCHED_EXACT, UNMATCHED).astype(np.uint8)
    stage = np.where(exact, STAGE_EXACT, NO_STAGE).astype(np.uint8)
    reasons = np.zeros(status.shape[0], dtype=np.uint8)

    # the few pairs that differ: which pass pairs them, and the tolerance evaluation
    at = np.flatnonzero(both & ~exact)
    sa, sb = ea.start[part][at], eb.start[part][at]
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
    out.both[part] = both
    out.status[part] = status
    out.stage[part] = stage
    out.reasons[part] = reasons
    out.d_start[part] = d_start
    out.d_duration[part] = d_duration
    out.d_charge[part] = d_charge
    out.d_rated[part] = d_rated


@dataclass
class RowTruth:
    """Per row of one side, in file order."""

    status: np.ndarray       # uint8 index into STATUSES
    stage: np.ndarray        # uint8 index into STAGES
    reasons: np.ndarray      # uint8 bitmask of disputed rows
    pair_row: np.ndarray     # int64 index of the counterparty's canonical first row, -1
    merged_into: np.ndarray  # int64 index of the chain's first row for parts, -1
    unit: np.ndarray         # bool: the row belongs to a considered canonical record
    exclusion: np.ndarray    # int64 exclusion index of excluded rows, -1
    flags: np.ndarray        # uint32 perturbation bits


def expected_rows(rows: SideRows, local: SideEvents, remote: SideEvents, outcome: PairOutcome,
                  flags: np.ndarray) -> RowTruth:
    m = len(rows)
    truth = RowTruth(
        status=np.empty(m, dtype=np.uint8), stage=np.empty(m, dtype=np.uint8),
        reasons=np.empty(m, dtype=np.uint8), pair_row=np.empty(m, dtype=np.int64),
        merged_into=np.empty(m, dtype=np.int64), unit=np.empty(m, dtype=bool),
        exclusion=np.empty(m, dtype=np.int8), flags=np.empty(m, dtype=np.uint32),
    )
    for _, lo, hi in spans(m):
        part = slice(lo, hi)
        ev = rows.event[part]
        is_copy = rows.copy_of[part] >= 0
        is_invalid = rows.invalid[part] >= 0
        normal = ~is_copy & ~is_invalid
        is_excluded = normal & local.excluded[ev]
        unit = normal & ~is_excluded
        status = np.where(is_invalid, INVALID, np.where(is_copy, DUPLICATE,
                          np.where(is_excluded, EXCLUDED, outcome.status[ev])))
        truth.status[part] = status
        truth.stage[part] = np.where(unit, outcome.stage[ev], NO_STAGE)
        truth.reasons[part] = np.where(unit, outcome.reasons[ev], 0)
        truth.pair_row[part] = np.where(unit & (status <= DISPUTED), remote.first_row[ev], -1)
        truth.merged_into[part] = np.where(normal & (local.parts[ev] > 1), local.first_row[ev], -1)
        truth.unit[part] = unit
        truth.exclusion[part] = np.where(is_excluded, local.exclusion[ev], -1)
        truth.flags[part] = flags[ev] | np.where(is_copy, BIT["duplicate_copy"], 0)
    return truth


def truth_frame(rules: ScenarioRules, views: Views, side: str, outcome: PairOutcome,
                truth: RowTruth, local_prefix: str, remote_prefix: str) -> pl.LazyFrame:
    """The truth.parquet rows of one side (schema :data:`TRUTH_SCHEMA`), as a lazy frame
    over compact numeric columns: its strings are made while it is written."""
    rows, local = (views.a, views.ea) if side == "A" else (views.b, views.eb)
    sign = 1 if side == "A" else -1
    ev = rows.event
    n = len(rows)
    id_row = np.arange(1, n + 1, dtype=np.int64)
    for index, source in rows.id_from.items():
        id_row[index] = source + 1
    reason_text = [",".join(code for bit, code in enumerate(REASON_CODES) if mask >> bit & 1)
                   or None for mask in range(32)]
    # perturbation masks: a dense index over the few distinct masks, then a text lookup
    masks = np.sort(pl.Series(truth.flags).unique().to_numpy())
    mask_index = np.searchsorted(masks, truth.flags).astype(np.uint32)
    mask_text = [",".join(name for bit, name in enumerate(PERTURBATIONS) if int(v) >> bit & 1)
                 or None for v in masks.tolist()]
    frame = pl.DataFrame({
        "row": np.arange(1, n + 1, dtype=np.int64),
        "event_id": ev,
        "part_seq": rows.part_seq,
        "_id_row": id_row,
        "_status": truth.status,
        "_stage": truth.stage,
        "_reasons": truth.reasons,
        "_pair": truth.pair_row,
        "_merged": truth.merged_into,
        "_invalid": rows.invalid,
        "_copy_of": rows.copy_of,
        "_exclusion": truth.exclusion,
        "_flags": mask_index,
        "_unit": truth.unit,
        "_charge": local.charge[ev],
        "_rated": local.rated[ev],
        "_d_start": sign * outcome.d_start[ev],
        "_d_duration": sign * outcome.d_duration[ev],
        "_d_charge": sign * outcome.d_charge[ev],
        "_d_rated": sign * outcome.d_rated[ev],
    })
    status = pl.col("_status")
    paired = pl.col("_pair") >= 0
    # "invalid" texts are looked up at kind + 1 (index 0: a valid row)
    invalid_code = [None] + [k.code for k in INVALID_KINDS]
    invalid_column = [None] + [k.column for k in INVALID_KINDS]
    invalid_reason = [None] + [k.reason for k in INVALID_KINDS]
    exclusion_names = [None] + [e.name for e in rules.exclusions]

    def text(values: list[str | None], index: pl.Expr) -> pl.Expr:
        """values[index]: a lookup that the streaming engine runs batch by batch."""
        return pl.lit(pl.Series(values, dtype=pl.String)).gather(index)

    return frame.lazy().select(
        side=pl.lit(side),
        row=pl.col("row"),
        record_id=id_expr(local_prefix, pl.col("_id_row")),
        event_id=pl.col("event_id"),
        part_seq=pl.col("part_seq"),
        expected_status=text(list(STATUSES), pl.col("_status")),
        expected_pair_record_id=pl.when(paired).then(id_expr(remote_prefix, pl.col("_pair") + 1)),
        expected_reasons=(
            pl.when(status == DISPUTED).then(text(reason_text, pl.col("_reasons")))
            .when(status == INVALID).then(text(invalid_reason, pl.col("_invalid") + 1))
            .when(status == DUPLICATE).then(pl.format("duplicate_of:{}", pl.col("_copy_of") + 1))
            .when(status == EXCLUDED).then(text(exclusion_names, pl.col("_exclusion") + 1))
        ),
        expected_stage=text([None, *STAGES[1:]], pl.col("_stage")),
        expected_merged_into=pl.when(pl.col("_merged") >= 0).then(
            id_expr(local_prefix, pl.col("_merged") + 1)),
        expected_invalid_code=text(invalid_code, pl.col("_invalid") + 1),
        expected_invalid_column=text(invalid_column, pl.col("_invalid") + 1),
        canonical_charge=pl.when(pl.col("_unit")).then(pl.col("_charge")),
        expected_rated_charge=pl.when(pl.col("_unit")).then(pl.col("_rated")),
        diff_start_s=pl.when(paired).then(pl.col("_d_start")),
        diff_duration_s=pl.when(paired).then(pl.col("_d_duration")),
        diff_charge=pl.when(paired).then(pl.col("_d_charge")),
        diff_rated_charge=pl.when(paired).then(pl.col("_d_rated")),
        perturbations=text(mask_text, pl.col("_flags")),
    ).cast(TRUTH_SCHEMA)  # type: ignore[arg-type]


def status_counts(truth: RowTruth) -> dict[str, int]:
    counts = np.bincount(truth.status, minlength=len(STATUSES))
    return {name: int(c) for name, c in zip(STATUSES, counts, strict=True)}
