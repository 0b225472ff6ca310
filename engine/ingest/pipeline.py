"""The ingest stage: read, validate, normalise, find duplicates, merge partials, apply
exclusions, rate — docs/records.md "Local processing order", step by step.

Every step is vectorised (polars expressions, joins, numpy); Python loops run only
over things the rules define (tariff rows, exclusions), never over rows.  At the end
an internal invariant checks that every input row is accounted for exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from engine.errors import InputError
from engine.ingest import schema as S
from engine.ingest.quarantine import build_quarantine, validation_entries, write_quarantine
from engine.ingest.rating import RatedArrays, rate_arrays, rating_names
from engine.ingest.reading import read_input
from engine.ingest.validation import CHECKS, validate
from engine.rules import Rules

log = logging.getLogger(__name__)

#: ``progress(stage, step, steps)`` is called after each stage with its 1-based number.
ProgressCallback = Callable[[str, int, int], None]
STAGES: tuple[str, ...] = (
    "read", "validate", "duplicates", "partials", "exclusions", "rating", "quarantine",
)

_STATUS_CODES = {S.OK: 0, S.INVALID: 1, S.DUPLICATE: 2, S.EXCLUDED: 3}
_OK, _INVALID, _DUPLICATE, _EXCLUDED = 0, 1, 2, 3
#: Failures found after validation (on canonical records), by code in the late arrays.
_LATE_REASONS = ("", S.NO_TARIFF, f"{S.OVERSIZE_FIELD}:duration_s",
                 f"{S.OVERSIZE_FIELD}:volume_kb", f"{S.OVERSIZE_FIELD}:charge")
_LATE_NO_TARIFF = 1
_MERGED_COLUMNS = ("duration_s", "volume_kb", "charge")
_DUPLICATE_KEYS = ("service", "calling", "called", "start", "duration_s", "volume_kb",
                   "trunk_group", "part_seq", "charge")


class RowAccountingError(AssertionError):
    """Internal invariant broken: some input row has no status, or more than one.

    This is a bug in the ingest stage, never a problem of the input."""


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest` produced for one file (docs/records.md "Canonical frames")."""

    source: str
    """The input path, as given."""
    format: str
    """``"csv"`` or ``"parquet"``."""
    rows: pl.DataFrame
    """One row per input row: row, record_id, status, reason, unit."""
    records: pl.DataFrame
    """One row per canonical record (complete record or merged chain), unit 0..n-1."""
    quarantine: pl.DataFrame
    """One entry per invalid row (see ``schema.QUARANTINE_SCHEMA``)."""
    quarantine_path: str | None
    extra_columns: tuple[str, ...]
    counts: dict[str, int]
    """``rows`` (input rows), per status ``ok``/``invalid``/``duplicate``/``excluded``
    (rows; they add up to ``rows``), ``records`` (canonical records, excluded
    included), ``considered`` (records to be matched), ``merged_rows`` (rows in
    chains of partial records) and ``chains``."""
    invalid_by_reason: dict[str, int]
    """Invalid rows per reason, most frequent first."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per stage, and ``total``."""

    @property
    def n_rows(self) -> int:
        return self.counts["rows"]

    @property
    def n_valid(self) -> int:
        return self.counts["rows"] - self.counts["invalid"]


class _Clock:
    def __init__(self, progress: ProgressCallback | None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self._start = self._last = time.perf_counter()

    def tick(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self._last
        self._last = now
        if self.progress is not None:
            self.progress(stage, STAGES.index(stage) + 1, len(STAGES))

    def total(self) -> float:
        return time.perf_counter() - self._start


def ingest(path: str | Path, rules: Rules, *, quarantine_path: str | Path | None = None,
           progress: ProgressCallback | None = None) -> IngestResult:
    """Load, validate, normalise and rate one billing export.

    Raises :class:`~engine.errors.InputError` when the file cannot be read as a whole;
    bad rows never raise: they end up ``invalid`` with a reason and a quarantine
    entry.  With ``quarantine_path`` the quarantine entries are written there (CSV,
    or Parquet for ``.parquet``/``.pq``), also when there are none.
    """
    clock = _Clock(progress)
    if quarantine_path is not None and _same_file(path, quarantine_path):
        raise InputError("the quarantine file would overwrite the data file",
                         file=str(quarantine_path), expected="another path for the quarantine",
                         found=str(path))
    raw = read_input(path)
    clock.tick("read")
    validated = validate(raw, rules).frame
    entries = validation_entries(raw, validated)
    clock.tick("validate")
    local = _LocalProcessing(validated, rules, clock)
    del validated  # the local steps keep only what they need (memory at 10^7 rows)
    rows, records, late_entries = local.run()
    if late_entries.height:
        entries = pl.concat([entries, late_entries]).sort("row")
    quarantine = build_quarantine(raw, entries)
    counts = _counts(rows, records)
    _check_accounting(raw.n_rows, rows, records, quarantine, counts)
    if quarantine_path is not None:
        write_quarantine(quarantine, quarantine_path)
    clock.tick("quarantine")

    invalid_by_reason = dict(
        rows.filter(pl.col("status") == S.INVALID).group_by("reason").len()
        .sort(["len", "reason"], descending=[True, False]).iter_rows()
    )
    seconds = dict(clock.seconds, total=clock.total())
    log.info("%s: %d rows, %d valid, %d invalid, %d records in %.2f s", path, counts["rows"],
             counts["rows"] - counts["invalid"], counts["invalid"], counts["records"],
             seconds["total"])
    return IngestResult(
        source=str(path), format=raw.format, rows=rows, records=records, quarantine=quarantine,
        quarantine_path=None if quarantine_path is None else str(quarantine_path),
        extra_columns=raw.extra_columns, counts=counts, invalid_by_reason=invalid_by_reason,
        seconds=seconds,
    )


# ---------------------------------------------------------------------------


class _LocalProcessing:
    """Steps 2-5 of the local processing order over the validated frame."""

    def __init__(self, validated: pl.DataFrame, rules: Rules, clock: _Clock) -> None:
        self._validated: pl.DataFrame | None = validated
        #: what the rows frame needs of the validated frame, kept after the values are gone
        self.validated = validated.select("row", "record_id", "failed", "undecodable_column")
        self.rules = rules
        self.clock = clock
        n = validated.height
        failed = validated.get_column("failed").is_not_null().to_numpy()
        self.status = np.where(failed, _INVALID, _OK).astype(np.uint8)
        self.unit = np.full(n, -1, dtype=np.int64)
        self.duplicate_of = np.full(n, -1, dtype=np.int64)
        self.late = np.zeros(n, dtype=np.int8)
        self.exclusion = np.full(n, -1, dtype=np.int64)
        self._oversize_chains: pl.DataFrame | None = None
        self._oversize_members: pl.DataFrame | None = None

    def run(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        # Each step drops its input as soon as it has its output: at 10^7 rows the
        # frames are gigabytes.
        validated, self._validated = self._validated, None
        if validated is None:
            raise RuntimeError("_LocalProcessing.run() called twice")
        considered = self._duplicates(validated)
        del validated
        self.clock.tick("duplicates")
        candidates, members = self._partials(considered)
        del considered
        self.clock.tick("partials")
        candidates = self._exclusions(candidates)
        self.clock.tick("exclusions")
        records, late_entries = self._rating(candidates, members)
        del candidates, members
        self.clock.tick("rating")
        return self._rows_frame(), records, late_entries

    # -- step 2: exact local duplicates --------------------------------------

    def _duplicates(self, validated: pl.DataFrame) -> pl.DataFrame:
        keys = list(_DUPLICATE_KEYS)
        # (no copy of the whole frame when every row is valid)
        if validated.get_column("failed").null_count() < validated.height:
            validated = validated.filter(pl.col("failed").is_null())
        valid = validated.drop("failed", "undecodable_column")
        # A 64-bit hash of the fields finds the few rows that may repeat an earlier one;
        # the exact comparison then runs on those rows only.
        maybe = valid.select(keys).hash_rows().is_duplicated()
        if not maybe.any():
            return valid
        suspects = valid.filter(maybe)  # every copy and its original are among them
        exact_first = suspects.select(pl.struct(keys).is_first_distinct()).to_series()
        if exact_first.all():
            return valid
        later = suspects.filter(~exact_first)
        originals = suspects.filter(exact_first).select(*keys, pl.col("row").alias("first_row"))
        later = later.join(originals, on=keys, how="left")
        index = later.get_column("row").to_numpy() - 1
        self.status[index] = _DUPLICATE
        self.duplicate_of[index] = later.get_column("first_row").to_numpy()
        first = pl.Series("first", np.ones(valid.height, dtype=bool)).scatter(
            np.flatnonzero(maybe.to_numpy()), exact_first)
        return valid.filter(first)

    # -- step 3: partial records into chains ---------------------------------

    def _partials(self, considered: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Candidates (one per complete record or chain; ``cand`` 0..k-1) and members
        (``row`` → ``cand``)."""
        group = ["service", "calling", "called", "trunk_group"]
        parts = considered.filter(pl.col("part_seq") >= 1) \
            .sort([*group, "start", "part_seq", "row"])
        prev = {c: pl.col(c).shift(1) for c in (*group, "start", "part_seq", "duration_s")}
        same_call = pl.all_horizontal([pl.col(c) == prev[c] for c in group])
        continues = (
            same_call
            & (pl.col("part_seq") == prev["part_seq"] + 1)
            & ((pl.col("start") - (prev["start"] + prev["duration_s"])).abs()
               <= self.rules.partial_max_gap_s)
        ).fill_null(False)
        parts = parts.with_columns(((~continues).cum_sum() - 1).cast(pl.Int64).alias("chain"))
        # A chain's record is its first part's row, with the sums of the merged columns.
        chains = parts.group_by("chain", maintain_order=True).agg(
            pl.col("row").first(),
            *(pl.col(c).cast(pl.Int128).sum() for c in _MERGED_COLUMNS),
            pl.len().cast(pl.Int32).alias("parts"),
        )
        # oversize merged sums: every row of the chain is invalid
        too_big = pl.coalesce([
            pl.when(pl.col(c) > S.MAX_INTEGER).then(pl.lit(2 + j, pl.Int8))
            for j, c in enumerate(_MERGED_COLUMNS)
        ])
        chains = chains.with_columns(too_big.alias("_too_big"))
        bad_chains = chains.filter(pl.col("_too_big").is_not_null())
        if bad_chains.height:
            bad = parts.join(bad_chains.select("chain", "_too_big"), on="chain", how="inner")
            index = bad.get_column("row").to_numpy() - 1
            self.status[index] = _INVALID
            self.late[index] = bad.get_column("_too_big").to_numpy()
            self._oversize_chains = bad_chains
            self._oversize_members = bad.select("row", "chain")
            chains = chains.filter(pl.col("_too_big").is_null())
        chains = chains.drop("_too_big").with_columns(
            *(pl.col(c).cast(pl.Int64) for c in _MERGED_COLUMNS))

        # Candidates in row order, so that units are positions (``cand`` = position): the
        # complete records and each chain's first row, which carries the chain's record id,
        # numbers, service, start and trunk group; only the merged sums and ``parts`` are
        # the chain's own.  One filter of ``considered``, no concatenation and no sort:
        # at 10^7 rows each copy of the frame is a gigabyte.
        chain_rows = chains.get_column("row")
        candidates = considered.filter(
            (pl.col("part_seq") == 0) | pl.col("row").is_in(chain_rows.implode())
        ).drop("part_seq")
        position = np.searchsorted(candidates.get_column("row").to_numpy(), chain_rows.to_numpy())
        n = candidates.height
        parts_of = np.ones(n, dtype=np.int32)
        parts_of[position] = chains.get_column("parts").to_numpy()
        chain_of = np.full(n, -1, dtype=np.int64)
        chain_of[position] = chains.get_column("chain").to_numpy()
        merged = []
        for column in _MERGED_COLUMNS:
            values = candidates.get_column(column).to_numpy().astype(np.int64, copy=True)
            values[position] = chains.get_column(column).to_numpy()
            merged.append(pl.Series(column, values, dtype=pl.Int64))
        candidates = candidates.with_columns(
            *merged, pl.Series("parts", parts_of, dtype=pl.Int32),
            pl.Series("chain", chain_of, dtype=pl.Int64),
            pl.int_range(0, n, dtype=pl.Int64).alias("cand"),
        ).select("row", "record_id", "service", "calling", "called", "start", "duration_s",
                 "volume_kb", "trunk_group", "charge", "parts", "chain", "cand")
        in_chains = candidates.filter(pl.col("chain") >= 0).select("chain", "cand")
        members = pl.concat([
            candidates.filter(pl.col("chain") < 0).select("row", "cand"),
            parts.join(in_chains, on="chain", how="inner").select("row", "cand"),
        ])
        return candidates.drop("chain"), members

    # -- step 4: exclusions ------------------------------------------------------

    def _exclusions(self, candidates: pl.DataFrame) -> pl.DataFrame:
        conditions = []
        for index, exclusion in enumerate(self.rules.exclusions):
            condition = pl.col(exclusion.field) == exclusion.equals
            if exclusion.service is not None:
                condition &= pl.col("service") == S.SERVICE_CODE[exclusion.service]
            conditions.append(pl.when(condition).then(pl.lit(index, pl.Int64)))
        exclusion = pl.coalesce(conditions) if conditions else pl.lit(None, pl.Int64)
        return candidates.with_columns(exclusion.alias("exclusion"))

    # -- step 5: rating ---------------------------------------------------------

    def _rating(self, candidates: pl.DataFrame,
                members: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        to_rate = candidates.get_column("exclusion").is_null().to_numpy()
        # only the columns rating reads, and no copy when every record is rated
        inputs = candidates.select("service", "calling", "called", "start", "duration_s",
                                   "volume_kb")
        rated = rate_arrays(inputs if to_rate.all() else inputs.filter(pl.Series(to_rate)),
                            self.rules)
        del inputs
        rated_charge = np.zeros(candidates.height, dtype=np.int64)
        tariff = np.full(candidates.height, -1, dtype=np.int64)
        rated_charge[to_rate] = rated.rated_charge
        tariff[to_rate] = rated.tariff
        unrated = to_rate & (tariff < 0)
        late_entries = [self._oversize_entries()]
        if unrated.any():
            late_entries.append(self._no_tariff_entries(
                candidates.filter(pl.Series(unrated)), rated, members))
        # still in row order: units are positions
        kept = candidates.with_columns(
            pl.when(pl.Series(to_rate)).then(pl.Series(rated_charge)).alias("rated_charge"),
        )
        if unrated.any():
            kept = kept.filter(pl.Series(~unrated))
        kept = kept.with_columns(pl.int_range(0, pl.len(), dtype=pl.Int64).alias("unit"))

        # rows of kept records: status ok / excluded and their unit (candidate ids are
        # small integers, so plain array lookups do what a join would)
        n_candidates = int(candidates.get_column("cand").max() or 0) + 1
        unit_of = np.full(n_candidates, -1, dtype=np.int64)
        exclusion_of = np.full(n_candidates, -1, dtype=np.int64)
        kept_cand = kept.get_column("cand").to_numpy()
        unit_of[kept_cand] = kept.get_column("unit").to_numpy()
        exclusion_of[kept_cand] = kept.get_column("exclusion").fill_null(-1).to_numpy()
        member_cand = members.get_column("cand").to_numpy()
        member_row = members.get_column("row").to_numpy()
        is_kept = unit_of[member_cand] >= 0
        index = member_row[is_kept] - 1
        exclusion = exclusion_of[member_cand[is_kept]]
        self.unit[index] = unit_of[member_cand[is_kept]]
        self.status[index] = np.where(exclusion >= 0, _EXCLUDED, _OK)
        self.exclusion[index] = exclusion

        records = kept.select(
            pl.col("unit"), pl.col("record_id"), pl.col("row"),
            pl.col("service").cast(pl.UInt8), pl.col("calling"), pl.col("called"),
            pl.col("start"), pl.col("duration_s"), pl.col("volume_kb"), pl.col("trunk_group"),
            pl.col("charge"), pl.col("rated_charge"), pl.col("parts").cast(pl.Int32),
            pl.col("exclusion").is_not_null().alias("excluded"),
        )
        late = pl.concat([e for e in late_entries if e.height]) if any(
            e.height for e in late_entries) else _empty_entries()
        return records, late

    def _no_tariff_entries(self, unrated: pl.DataFrame, rated: RatedArrays,
                           members: pl.DataFrame) -> pl.DataFrame:
        names = rating_names(self.rules)
        no_tariff = (rated.tariff < 0)
        described = unrated.select(
            "cand", "start", "parts", "row",
            pl.Series("payer", np.array(names.parties, dtype=object)[rated.payer[no_tariff]],
                      dtype=pl.String),
            pl.Series("payee", np.array(names.parties, dtype=object)[rated.payee[no_tariff]],
                      dtype=pl.String),
            pl.Series("call_type",
                      np.array(names.call_types, dtype=object)[rated.call_type[no_tariff]],
                      dtype=pl.String),
            pl.Series("time_band",
                      np.array(names.time_bands, dtype=object)[rated.time_band[no_tariff]],
                      dtype=pl.String),
            pl.col("service").replace_strict(dict(enumerate(S.SERVICES)),
                                             return_dtype=pl.String).alias("service_name"),
        )
        rows = members.join(described.rename({"row": "first_row"}), on="cand", how="inner")
        index = rows.get_column("row").to_numpy() - 1
        self.status[index] = _INVALID
        self.late[index] = _LATE_NO_TARIFF
        when = pl.from_epoch(pl.col("start"), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        merged = pl.when(pl.col("parts") > 1).then(
            pl.format(" (the merged call of {} parts starting in row {})",
                      pl.col("parts"), pl.col("first_row"))).otherwise(pl.lit(""))
        return rows.select(
            "row",
            pl.lit(S.NO_TARIFF).alias("code"),
            pl.lit(None, pl.String).alias("column"),
            pl.lit(S.NO_TARIFF).alias("reason"),
            pl.format("no tariff row applies to service {}, payer {}, payee {}, call type {}, "
                      "time band {} at {}{}; expected a [[tariffs]] row for it in the rules",
                      "service_name", "payer", "payee", "call_type", "time_band", when, merged)
            .alias("message"),
        )

    def _oversize_entries(self) -> pl.DataFrame:
        chains = self._oversize_chains
        if chains is None or self._oversize_members is None:
            return _empty_entries()
        members = self._oversize_members.join(chains, on="chain", how="inner")
        column = pl.col("_too_big").replace_strict(
            {2 + j: c for j, c in enumerate(_MERGED_COLUMNS)}, return_dtype=pl.String)
        total = pl.coalesce([pl.when(pl.col("_too_big") == 2 + j).then(pl.col(c).cast(pl.String))
                             for j, c in enumerate(_MERGED_COLUMNS)])
        return members.select(
            pl.col("row"),
            pl.lit(S.OVERSIZE_FIELD).alias("code"),
            column.alias("column"),
            (pl.lit(S.OVERSIZE_FIELD + ":") + column).alias("reason"),
            pl.format("{}: the merged call of {} parts starting in row {} sums to {}; expected "
                      "at most {}", column, pl.col("parts"), pl.col("row_right"), total,
                      pl.lit(S.MAX_INTEGER)).alias("message"),
        )

    # -- the rows frame ----------------------------------------------------------

    def _rows_frame(self) -> pl.DataFrame:
        failed_reason = {i: c.reason for i, c in enumerate(CHECKS)}
        undecodable_index = next(i for i, c in enumerate(CHECKS)
                                 if c.code == S.UNDECODABLE_BYTES)
        exclusion_names = {i: e.name for i, e in enumerate(self.rules.exclusions)}
        status_names = {code: name for name, code in _STATUS_CODES.items()}
        state = pl.DataFrame({
            "status": pl.Series(self.status, dtype=pl.UInt8),
            "unit": pl.Series(self.unit, dtype=pl.Int64),
            "duplicate_of": pl.Series(self.duplicate_of, dtype=pl.Int64),
            "late": pl.Series(self.late, dtype=pl.Int8),
            "exclusion": pl.Series(self.exclusion, dtype=pl.Int64),
        })
        frame = pl.concat(
            [self.validated.select("row", "record_id", "failed", "undecodable_column"), state],
            how="horizontal")
        status = pl.col("status")
        reason = (
            pl.when(status == _INVALID, pl.col("failed") == undecodable_index)
            .then(pl.lit(S.UNDECODABLE_BYTES + ":") + pl.col("undecodable_column"))
            .when(status == _INVALID, pl.col("failed").is_not_null())
            .then(pl.col("failed").replace_strict(failed_reason, return_dtype=pl.String))
            .when(status == _INVALID)
            .then(pl.col("late").replace_strict(dict(enumerate(_LATE_REASONS)),
                                                return_dtype=pl.String))
            .when(status == _DUPLICATE)
            .then(pl.lit(S.DUPLICATE_OF + ":") + pl.col("duplicate_of").cast(pl.String))
            .when(status == _EXCLUDED)
            .then(pl.col("exclusion").replace_strict(exclusion_names, default=None,
                                                     return_dtype=pl.String))
        )
        return frame.select(
            pl.col("row"),
            pl.col("record_id"),
            status.replace_strict(status_names, return_dtype=pl.String).alias("status"),
            reason.alias("reason"),
            pl.when(pl.col("unit") >= 0).then(pl.col("unit")).alias("unit"),
        )


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _empty_entries() -> pl.DataFrame:
    return pl.DataFrame(schema={"row": pl.Int64, "code": pl.String, "column": pl.String,
                                "reason": pl.String, "message": pl.String})


def _counts(rows: pl.DataFrame, records: pl.DataFrame) -> dict[str, int]:
    by_status = dict(rows.group_by("status").len().iter_rows())
    excluded_records = int(records.get_column("excluded").sum())
    merged = records.filter(pl.col("parts") > 1)
    return {
        "rows": rows.height,
        **{status: int(by_status.get(status, 0)) for status in S.STATUSES},
        "records": records.height,
        "considered": records.height - excluded_records,
        "chains": records.filter(pl.col("parts") > 1).height,
        "merged_rows": int(merged.get_column("parts").sum() or 0),
    }


def _check_accounting(n_input: int, rows: pl.DataFrame, records: pl.DataFrame,
                      quarantine: pl.DataFrame, counts: dict[str, int]) -> None:
    """Rows in = rows accounted for: every input row has exactly one status, rows with a
    unit point at a record, every record is pointed at by exactly ``parts`` rows."""
    problems = []
    if rows.height != n_input:
        problems.append(f"{n_input} rows read but {rows.height} in the rows frame")
    if sum(counts[s] for s in S.STATUSES) != rows.height:
        problems.append(f"status counts {[counts[s] for s in S.STATUSES]} do not add up to "
                        f"{rows.height} rows")
    if not np.array_equal(rows.get_column("row").to_numpy(), np.arange(1, rows.height + 1)):
        problems.append("row numbers are not 1..n in input order")
    placed = pl.col("status").is_in([S.OK, S.EXCLUDED])
    bad_unit = rows.filter(placed != pl.col("unit").is_not_null()).height
    if bad_unit:
        problems.append(f"{bad_unit} rows whose unit does not match their status")
    bad_reason = rows.filter((pl.col("status") == S.OK) == pl.col("reason").is_not_null()).height
    if bad_reason:
        problems.append(f"{bad_reason} rows whose reason does not match their status")
    # every record is pointed at by exactly its parts' rows, all excluded or none
    units = rows.get_column("unit").to_numpy(allow_copy=True)
    excluded_row = (rows.get_column("status") == S.EXCLUDED).to_numpy()
    has_unit = rows.get_column("unit").is_not_null().to_numpy()
    if has_unit.any() and records.height:
        pointed = units[has_unit].astype(np.int64)
        if pointed.min() < 0 or pointed.max() >= records.height:
            problems.append("rows point at units outside 0..n-1")
        else:
            per_unit = np.bincount(pointed, minlength=records.height)
            excluded_per_unit = np.bincount(pointed, weights=excluded_row[has_unit],
                                            minlength=records.height)
            parts = records.get_column("parts").to_numpy()
            excluded = records.get_column("excluded").to_numpy()
            mismatch = int(np.count_nonzero(
                (per_unit != parts) | (excluded_per_unit != np.where(excluded, parts, 0))))
            if mismatch:
                problems.append(f"{mismatch} records not pointed at by exactly their parts' rows")
    elif has_unit.any() or records.height:
        problems.append(f"{int(has_unit.sum())} rows with a unit but {records.height} records")
    if not np.array_equal(records.get_column("unit").to_numpy(), np.arange(records.height)):
        problems.append("record units are not 0..n-1")
    if quarantine.height != counts[S.INVALID]:
        problems.append(f"{quarantine.height} quarantine entries for {counts[S.INVALID]} "
                        "invalid rows")
    if problems:
        raise RowAccountingError("ingest lost track of rows (a bug, not an input problem): "
                                 + "; ".join(problems))
