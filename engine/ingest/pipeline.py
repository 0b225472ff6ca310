"""The ingest stage of one export in one process: :func:`ingest` (docs/records.md "Local
processing order").

It runs the two passes of :mod:`engine.ingest.stream` with a single bucket in a
temporary folder and assembles the whole export's ``rows`` and ``records`` frames: for
``settlechain validate``, the tests, and anything small enough to hold in memory.  The
private job and the reference reconciler use the passes directly, bucket by bucket, and
never build these frames.  At the end an internal invariant checks that every input row
is accounted for exactly once.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from engine.errors import InputError
from engine.ingest import schema as S
from engine.ingest.quarantine import write_quarantine
from engine.ingest.reading import CHUNK_ROWS, open_input
from engine.ingest.stream import (
    ROW_STATUS_CODES, BucketIngest, IngestWork, ScanResult, complete_quarantine,
    process_bucket, repeated_entries, scan,
)
from engine.partition import local_partition
from engine.period import PeriodWindow
from engine.rules import Rules

log = logging.getLogger(__name__)

#: ``progress(stage, step, steps)`` is called after each stage with its 1-based number.
ProgressCallback = Callable[[str, int, int], None]
STAGES: tuple[str, ...] = ("read", "local", "quarantine")


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
    """One row per canonical record (complete record or merged chain), unit 0..n-1, with the
    numbers and ids as text (S.RECORDS_SCHEMA) and the rate-class codes."""
    quarantine: pl.DataFrame
    """One entry per invalid row (see ``schema.QUARANTINE_SCHEMA``)."""
    quarantine_path: str | None
    extra_columns: tuple[str, ...]
    counts: dict[str, int]
    """``rows`` (input rows), per status ``ok``/``invalid``/``duplicate``/``excluded``
    (rows; they add up to ``rows``), ``records`` (canonical records, excluded
    included), ``considered`` (records to be matched), ``merged_rows`` (rows in
    chains of partial records), ``chains`` and ``out_of_period`` (records)."""
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
           progress: ProgressCallback | None = None, period: PeriodWindow | None = None,
           chunk_rows: int = CHUNK_ROWS) -> IngestResult:
    """Load, validate, normalise and rate one billing export.

    Raises :class:`~engine.errors.InputError` when the file cannot be read as a whole;
    bad rows never raise: they end up ``invalid`` with a reason and a quarantine
    entry.  With ``quarantine_path`` the quarantine entries are written there (CSV,
    or Parquet for ``.parquet``/``.pq``), also when there are none.  With ``period``,
    records whose start lies outside it are ``excluded`` (``out_of_period``).
    """
    clock = _Clock(progress)
    if quarantine_path is not None and _same_file(path, quarantine_path):
        raise InputError("the quarantine file would overwrite the data file",
                         file=str(quarantine_path), expected="another path for the quarantine",
                         found=str(path))
    source = open_input(path)
    with tempfile.TemporaryDirectory(prefix="settlechain-ingest-") as folder:
        work = IngestWork(Path(folder))
        scanned = scan(source, rules, work, local_partition(1), chunk_rows=chunk_rows)
        clock.tick("read")
        bucket = process_bucket(work, 0, rules, period,
                                skip_rows=scanned.repeated.get_column("row"))
        clock.tick("local")
        quarantine = pl.concat([pl.read_parquet(p) for p in complete_quarantine(
            source, work, scanned, [repeated_entries(work, scanned), bucket.late_entries],
            chunk_rows=chunk_rows)])
        ids = pl.concat([pl.read_parquet(work.piece_file(i, "ids.parquet"))
                         for i in range(len(scanned.pieces))]).select("row", "record_id")
    rows = _rows_frame(scanned, bucket, quarantine, ids)
    records = _records_frame(bucket, ids, scanned.trunk_groups)
    counts = _counts(rows, records, bucket)
    _check_accounting(scanned.rows, rows, records, quarantine, counts)
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
        source=str(path), format=source.format, rows=rows, records=records,
        quarantine=quarantine,
        quarantine_path=None if quarantine_path is None else str(quarantine_path),
        extra_columns=source.extra_columns, counts=counts, invalid_by_reason=invalid_by_reason,
        seconds=seconds,
    )


_STATUS_NAMES = {code: name for name, code in ROW_STATUS_CODES.items()}


def _rows_frame(scanned: ScanResult, bucket: BucketIngest, quarantine: pl.DataFrame,
                ids: pl.DataFrame) -> pl.DataFrame:
    """One row per input row: the bucket's rows, and the rows invalid before it."""
    placed = bucket.rows.select(
        "row",
        pl.col("status").replace_strict(_STATUS_NAMES, return_dtype=pl.String),
        "reason", "unit")
    invalid = quarantine.select("row", pl.lit(S.INVALID).alias("status"), "reason",
                                pl.lit(None, pl.Int64).alias("unit"))
    invalid = invalid.join(placed.select("row"), on="row", how="anti")
    placed = placed.join(invalid.select("row"), on="row", how="anti")
    return pl.concat([placed, invalid]).sort("row").join(ids, on="row", how="left").select(
        "row", "record_id", "status", "reason", "unit")


def _records_frame(bucket: BucketIngest, ids: pl.DataFrame,
                   trunk_groups: list[str]) -> pl.DataFrame:
    """The canonical records with numbers, ids and trunk groups as text again."""
    records = bucket.records.join(ids, on="row", how="left")
    return records.select(
        "unit", "record_id", "row", "service",
        pl.col("calling").cast(pl.String), pl.col("called").cast(pl.String),
        "start", "duration_s", "volume_kb",
        (pl.col("trunk").replace_strict(dict(enumerate(trunk_groups)), return_dtype=pl.String)
         if trunk_groups else pl.col("trunk").cast(pl.String)).alias("trunk_group"),
        "charge", "rated_charge", "parts", "excluded", "payer", "payee", "call_type", "band",
        "tariff",
    )


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _empty_entries() -> pl.DataFrame:
    return pl.DataFrame(schema={"row": pl.Int64, "code": pl.String, "column": pl.String,
                                "reason": pl.String, "message": pl.String})


def _counts(rows: pl.DataFrame, records: pl.DataFrame, bucket: BucketIngest) -> dict[str, int]:
    by_status = dict(rows.group_by("status").len().iter_rows())
    excluded_records = int(records.get_column("excluded").sum())
    merged = records.filter(pl.col("parts") > 1)
    out_of_period = rows.filter(pl.col("reason") == "out_of_period").height
    return {
        "out_of_period": out_of_period,
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
