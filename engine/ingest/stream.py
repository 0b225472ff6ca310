"""Ingest in bounded memory: an export of any size, read in pieces and spilled into buckets.

docs/records.md "Local processing order", split in two passes so that no step needs the
whole export in memory:

**Pass 1, per piece of the file** (:func:`scan`): read (about 2^20 rows), validate and
normalise every row (the piece's invalid rows get their quarantine entries at once),
classify the numbers into their rate class (payer, payee, call type: one byte each), and
spill each valid row's canonical numeric columns into its bucket
(:mod:`engine.partition`): numbers as integers, trunk groups as codes, no strings.  The
record ids go to a side file per piece, read back only when the outputs are written.
After the last piece, record ids repeated across pieces are found by hash ranges
(:func:`repeated_record_ids`), verified on the ids themselves.

**Pass 2, per bucket** (:func:`process_bucket`): exact duplicates, chains of partial
records, the period, the rules' exclusions and pricing.  Each of these looks only at
records of one (service, calling, called) line, and a line lies in one bucket, so the
result per bucket is the result over the whole export.

Everything a later stage needs is on disk in the work folder (:class:`IngestWork`); the
rows frame of the whole export is never built by the job.  :func:`engine.ingest.ingest`
runs both passes in one process for small exports and the tests.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from engine.errors import InputError
from engine.ingest import schema as S
from engine.ingest.quarantine import build_quarantine, raw_text, validation_entries
from engine.ingest.rating import RatedArrays, classify_numbers, price, rating_names
from engine.ingest.reading import CHUNK_ROWS, InputFile, RawInput, read_chunks
from engine.ingest.validation import CHECKS, validate
from engine.names import OUT_OF_PERIOD
from engine.partition import Partition
from engine.period import PeriodWindow
from engine.rules import Rules

log = logging.getLogger(__name__)

#: A valid row's canonical columns as spilled into its bucket (numbers as integers).
SPILL_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(), "service": pl.UInt8(), "calling": pl.Int64(), "called": pl.Int64(),
    "start": pl.Int64(), "duration_s": pl.Int64(), "volume_kb": pl.Int64(),
    "trunk": pl.UInt32(), "part_seq": pl.Int64(), "charge": pl.Int64(),
    "payer": pl.UInt8(), "payee": pl.UInt8(), "call_type": pl.UInt8(),
}

#: One bucket's canonical records (docs/records.md "Canonical records"), in row order;
#: ``unit`` numbers them 0..n-1 within the bucket.
BUCKET_RECORDS_SCHEMA: dict[str, pl.DataType] = {
    "unit": pl.Int64(), "row": pl.Int64(), "service": pl.UInt8(), "calling": pl.Int64(),
    "called": pl.Int64(), "start": pl.Int64(), "duration_s": pl.Int64(),
    "volume_kb": pl.Int64(), "charge": pl.Int64(), "rated_charge": pl.Int64(),
    "parts": pl.Int32(), "excluded": pl.Boolean(), "payer": pl.UInt8(), "payee": pl.UInt8(),
    "call_type": pl.UInt8(), "band": pl.UInt8(), "tariff": pl.Int32(), "trunk": pl.UInt32(),
}

#: One bucket's rows (every valid row spilled into it): status code (ROW_STATUS_CODES),
#: reason, the unit it belongs to, and the first row of its chain when it is part of one.
BUCKET_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(), "status": pl.UInt8(), "reason": pl.String(), "unit": pl.Int64(),
    "head_row": pl.Int64(),
}
ROW_STATUS_CODES: dict[str, int] = {S.OK: 0, S.INVALID: 1, S.DUPLICATE: 2, S.EXCLUDED: 3}
_OK, _INVALID, _DUPLICATE, _EXCLUDED = 0, 1, 2, 3

#: Late quarantine entries (found after validation): the message columns, no input text.
ENTRY_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(), "code": pl.String(), "column": pl.String(), "reason": pl.String(),
    "message": pl.String(),
}

_MERGED_COLUMNS = ("duration_s", "volume_kb", "charge")
_DUPLICATE_KEYS = ("service", "calling", "called", "start", "duration_s", "volume_kb",
                   "trunk", "part_seq", "charge")
_LATE_NO_TARIFF = "no_tariff"
_DUP_ID_INDEX = next(i for i, c in enumerate(CHECKS) if c.code == S.DUPLICATE_RECORD_ID)
_HASH_SEED = 0x5E771EC4A1
_HASH_RANGES = 16


def write_work(frame: pl.DataFrame, path: Path) -> None:
    """A work file (not an output): Parquet with fast LZ4 and no statistics, written to a
    temporary name and renamed (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    frame.write_parquet(tmp, compression="lz4", statistics=False)
    os.replace(tmp, path)


@dataclass(frozen=True)
class IngestWork:
    """The folder of one party's ingest: spills, side files, per-bucket results."""

    root: Path

    def piece_file(self, piece: int, what: str) -> Path:
        return self.root / "pieces" / f"p{piece:05d}.{what}"

    def bucket_dir(self, bucket: int) -> Path:
        return self.root / "buckets" / f"b{bucket:05d}"

    def bucket_file(self, bucket: int, what: str) -> Path:
        return self.bucket_dir(bucket) / what

    def prepare(self, n_buckets: int) -> None:
        (self.root / "pieces").mkdir(parents=True, exist_ok=True)
        for bucket in range(n_buckets):
            self.bucket_dir(bucket).mkdir(parents=True, exist_ok=True)

    def spill_files(self, bucket: int) -> list[Path]:
        return sorted(self.bucket_dir(bucket).glob("p*.spill.parquet"))


@dataclass
class ScanResult:
    """What pass 1 found: sizes and the early statuses (no data)."""

    source: str
    format: str
    extra_columns: tuple[str, ...]
    rows: int
    pieces: list[tuple[int, int]]
    """(first row, rows) of each piece, in file order."""
    invalid_by_reason: dict[str, int]
    """Rows found invalid in pass 1 by reason (repeated record ids included)."""
    bucket_rows: list[int]
    """Valid rows spilled into each bucket."""
    trunk_groups: list[str]
    """Trunk group of each trunk code."""
    repeated: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"row": pl.Int64, "first_row": pl.Int64, "was_valid": pl.Boolean}))
    """Rows whose record id appeared in an earlier piece (now invalid duplicate_record_id)."""

    @property
    def invalid(self) -> int:
        return sum(self.invalid_by_reason.values())

    def as_json(self) -> dict:
        return {"source": self.source, "format": self.format,
                "extra_columns": list(self.extra_columns), "rows": self.rows,
                "pieces": [list(p) for p in self.pieces],
                "invalid_by_reason": self.invalid_by_reason, "bucket_rows": self.bucket_rows,
                "trunk_groups": self.trunk_groups}


def scan(source: InputFile, rules: Rules, work: IngestWork, partition: Partition, *,
         chunk_rows: int = CHUNK_ROWS,
         progress: Callable[[int, int], None] | None = None) -> ScanResult:
    """Pass 1 over the whole file (see the module docstring).  ``progress(rows done, rows
    estimated)`` after each piece."""
    work.prepare(partition.n_buckets)
    trunk_codes: dict[str, int] = {}
    invalid_by_reason: Counter[str] = Counter()
    bucket_rows = [0] * partition.n_buckets
    pieces: list[tuple[int, int]] = []
    rows = 0
    for index, raw in enumerate(read_chunks(source, chunk_rows)):
        pieces.append((raw.first_row, raw.n_rows))
        _scan_piece(index, raw, rules, work, partition, trunk_codes, invalid_by_reason,
                    bucket_rows)
        rows += raw.n_rows
        if progress is not None:
            progress(rows, max(rows, source.estimated_rows))
    result = ScanResult(source=str(source.path), format=source.format,
                        extra_columns=source.extra_columns, rows=rows, pieces=pieces,
                        invalid_by_reason=dict(invalid_by_reason), bucket_rows=bucket_rows,
                        trunk_groups=sorted(trunk_codes, key=trunk_codes.__getitem__))
    result.repeated = repeated_record_ids(work, len(pieces))
    if result.repeated.height:
        newly = result.repeated.filter(pl.col("was_valid")).height
        changed = result.repeated.height - newly
        log.info("%s: %d rows repeat a record id of an earlier piece (%d were valid)",
                 source.path, result.repeated.height, newly)
        for reason, count in _previous_reasons(work, result.repeated).items():
            invalid_by_reason[reason] -= count
        invalid_by_reason[f"{S.DUPLICATE_RECORD_ID}:record_id"] += newly + changed
        result.invalid_by_reason = {k: v for k, v in invalid_by_reason.items() if v}
    (work.root / "scan.json").write_text(json.dumps(result.as_json()), encoding="utf-8")
    return result


def _scan_piece(index: int, raw: RawInput, rules: Rules, work: IngestWork,
                partition: Partition, trunk_codes: dict[str, int],
                invalid_by_reason: Counter[str], bucket_rows: list[int]) -> None:
    validated = validate(raw, rules).frame
    failed = validated.get_column("failed")
    entries = validation_entries(raw, validated)
    if entries.height:
        invalid_by_reason.update(dict(entries.group_by("reason").len().iter_rows()))
    write_work(build_quarantine(raw, entries), work.piece_file(index, "quarantine.parquet"))
    write_work(validated.select("row", "record_id", "failed"), work.piece_file(index, "ids.parquet"))
    # record ids for the check across pieces: (hash, row), sorted by hash
    named = validated.filter(pl.col("record_id").is_not_null() & (pl.col("record_id") != ""))
    hashes = named.select(pl.col("record_id").hash(_HASH_SEED).alias("h"), "row")
    h = hashes.get_column("h").to_numpy().view(np.int64)
    row = hashes.get_column("row").to_numpy()
    order = np.lexsort((row, h))
    np.save(work.piece_file(index, "rid.npy"), np.stack([h[order], row[order]]))

    valid = validated.filter(failed.is_null()) if failed.null_count() < validated.height \
        else validated
    if valid.height == 0:
        return
    new_trunks = valid.get_column("trunk_group").unique().to_list()
    for name in new_trunks:
        if name not in trunk_codes:
            trunk_codes[name] = len(trunk_codes)
    spill = valid.select(
        "row", "service",
        pl.col("calling").cast(pl.Int64).alias("calling"),
        pl.col("called").cast(pl.Int64).alias("called"),
        "start", "duration_s", "volume_kb",
        pl.col("trunk_group").replace_strict(trunk_codes, return_dtype=pl.UInt32).alias("trunk"),
        "part_seq", "charge",
        *classify_numbers(pl.col("calling"), pl.col("called"), rules),
    )
    buckets = partition.buckets(spill.get_column("service").to_numpy(),
                                spill.get_column("calling").to_numpy(),
                                spill.get_column("called").to_numpy())
    if partition.n_buckets == 1:
        write_work(spill, work.bucket_file(0, f"p{index:05d}.spill.parquet"))
        bucket_rows[0] += spill.height
        return
    order = np.argsort(buckets, kind="stable")
    sorted_buckets = buckets[order]
    spill = spill[order]
    bounds = np.searchsorted(sorted_buckets, np.arange(partition.n_buckets + 1))
    for bucket in np.unique(sorted_buckets).tolist():
        lo, hi = int(bounds[bucket]), int(bounds[bucket + 1])
        write_work(spill.slice(lo, hi - lo), work.bucket_file(bucket, f"p{index:05d}.spill.parquet"))
        bucket_rows[bucket] += hi - lo


def repeated_record_ids(work: IngestWork, n_pieces: int) -> pl.DataFrame:
    """Rows whose record id already appeared in an earlier piece: (row, first_row,
    was_valid), for the rows whose status this changes (valid rows, and invalid rows whose
    reason comes after ``duplicate_record_id`` in the order of checks).  Works one range of
    hash values at a time, so memory is a sixteenth of the ids' hashes."""
    arrays = [np.load(work.piece_file(i, "rid.npy"), mmap_mode="r") for i in range(n_pieces)]
    if n_pieces <= 1:
        return pl.DataFrame(schema={"row": pl.Int64, "first_row": pl.Int64,
                                    "was_valid": pl.Boolean})
    step = (1 << 64) // _HASH_RANGES
    bounds = [np.iinfo(np.int64).min + i * step for i in range(_HASH_RANGES)]
    candidates: list[tuple[np.ndarray, np.ndarray]] = []
    for r in range(_HASH_RANGES):
        lo = bounds[r]
        hi = bounds[r + 1] if r + 1 < _HASH_RANGES else None
        parts_h, parts_row, parts_piece = [], [], []
        for piece, array in enumerate(arrays):
            h = array[0]
            start = np.searchsorted(h, lo, side="left")
            stop = len(h) if hi is None else np.searchsorted(h, hi, side="left")
            if stop > start:
                parts_h.append(np.asarray(h[start:stop]))
                parts_row.append(np.asarray(array[1][start:stop]))
                parts_piece.append(np.full(stop - start, piece, dtype=np.int32))
        if not parts_h:
            continue
        h = np.concatenate(parts_h)
        piece_of = np.concatenate(parts_piece)
        row = np.concatenate(parts_row)
        order = np.lexsort((row, h))
        h, row, piece_of = h[order], row[order], piece_of[order]
        same = np.zeros(len(h), dtype=bool)
        same[1:] = h[1:] == h[:-1]
        # a group of equal hashes spanning more than one piece holds a candidate
        group_start = np.maximum.accumulate(np.where(~same, np.arange(len(h)), 0))
        spans = piece_of != piece_of[group_start]
        if not spans.any():
            continue
        groups = np.unique(group_start[spans])
        members = np.isin(group_start, groups)
        candidates.append((row[members], group_start[members]))
    if not candidates:
        return pl.DataFrame(schema={"row": pl.Int64, "first_row": pl.Int64,
                                    "was_valid": pl.Boolean})
    rows = np.concatenate([c[0] for c in candidates])
    # verify on the ids themselves (64-bit hashes may collide)
    ids = _read_ids(work, n_pieces, rows)
    ordered = ids.sort("row")
    ordered = ordered.with_columns(
        pl.col("row").min().over("record_id").alias("first_row"))
    later = ordered.filter(pl.col("row") != pl.col("first_row"))
    later = later.filter(pl.col("failed").is_null() | (pl.col("failed") > _DUP_ID_INDEX))
    # a repeat inside one piece was already found by validation (the first copy in the
    # piece is the one compared here); keep only what validation could not see
    return later.select("row", "first_row", pl.col("failed").is_null().alias("was_valid"))


def _read_ids(work: IngestWork, n_pieces: int, rows: np.ndarray) -> pl.DataFrame:
    wanted = pl.Series("row", np.unique(rows), dtype=pl.Int64)
    parts = [pl.scan_parquet(work.piece_file(i, "ids.parquet")).filter(
        pl.col("row").is_in(wanted.implode())).collect() for i in range(n_pieces)]
    return pl.concat(parts)


def _previous_reasons(work: IngestWork, repeated: pl.DataFrame) -> dict[str, int]:
    """The pass-1 reasons of the repeated rows that were invalid already."""
    was_invalid = repeated.filter(~pl.col("was_valid")).get_column("row")
    if not was_invalid.len():
        return {}
    found = pl.scan_parquet(str(work.root / "pieces" / "*.quarantine.parquet")).filter(
        pl.col("row").is_in(was_invalid.implode())).select("reason").collect()
    return dict(found.group_by("reason").len().iter_rows())


# ---------------------------------------------------------------------------
# pass 2: one bucket


@dataclass
class BucketIngest:
    """One bucket after local processing."""

    bucket: int
    records: pl.DataFrame
    """BUCKET_RECORDS_SCHEMA, units 0..n-1 in row order."""
    rows: pl.DataFrame
    """BUCKET_ROWS_SCHEMA, in row order: every row spilled into the bucket."""
    late_entries: pl.DataFrame
    """ENTRY_SCHEMA: rows found invalid here (no tariff, oversize merged sums)."""

    @property
    def considered(self) -> int:
        return int(self.records.height - self.records.get_column("excluded").sum())


def load_spill(work: IngestWork, bucket: int, skip_rows: pl.Series | None = None) -> pl.DataFrame:
    files = work.spill_files(bucket)
    if not files:
        return pl.DataFrame(schema=SPILL_SCHEMA)
    frame = pl.concat([pl.read_parquet(f) for f in files]).sort("row")
    if skip_rows is not None and skip_rows.len():
        frame = frame.filter(~pl.col("row").is_in(skip_rows.implode()))
    return frame


def process_bucket(work: IngestWork, bucket: int, rules: Rules, period: PeriodWindow | None,
                   *, skip_rows: pl.Series | None = None) -> BucketIngest:
    """Pass 2 for ``bucket``: duplicates, partial chains, period, exclusions, pricing."""
    spill = load_spill(work, bucket, skip_rows)
    return _BucketProcessing(bucket, spill, rules, period).run()


class _BucketProcessing:
    """Steps 2-5 of the local processing order over one bucket's valid rows.

    Arrays are indexed by position in the bucket's rows (sorted by row number)."""

    def __init__(self, bucket: int, spill: pl.DataFrame, rules: Rules,
                 period: PeriodWindow | None) -> None:
        self.bucket = bucket
        self.rules = rules
        self.period = period
        self.spill = spill
        self.rows = spill.get_column("row").to_numpy()
        n = spill.height
        self.status = np.zeros(n, dtype=np.uint8)
        self.reason = np.full(n, None, dtype=object)
        self.unit = np.full(n, -1, dtype=np.int64)
        self.head_row = np.full(n, -1, dtype=np.int64)
        self.late: list[pl.DataFrame] = []

    def _positions(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.rows, rows)

    def run(self) -> BucketIngest:
        considered = self._duplicates(self.spill)
        candidates, members = self._partials(considered)
        del considered
        candidates = self._exclusions(candidates)
        records = self._rating(candidates, members)
        status = pl.Series("status", self.status, dtype=pl.UInt8)
        rows = pl.DataFrame({
            "row": pl.Series(self.rows, dtype=pl.Int64),
            "status": status,
            "reason": pl.Series(self.reason.tolist(), dtype=pl.String),
            "unit": pl.Series(self.unit, dtype=pl.Int64),
            "head_row": pl.Series(self.head_row, dtype=pl.Int64),
        }).with_columns(
            pl.when(pl.col("unit") >= 0).then(pl.col("unit")).alias("unit"),
            pl.when(pl.col("head_row") >= 0).then(pl.col("head_row")).alias("head_row"),
        )
        late = pl.concat(self.late) if self.late else pl.DataFrame(schema=ENTRY_SCHEMA)
        return BucketIngest(self.bucket, records, rows, late.sort("row"))

    # -- step 2: exact local duplicates --------------------------------------

    def _duplicates(self, valid: pl.DataFrame) -> pl.DataFrame:
        keys = list(_DUPLICATE_KEYS)
        maybe = valid.select(keys).hash_rows().is_duplicated()
        if not maybe.any():
            return valid
        suspects = valid.filter(maybe)
        exact_first = suspects.select(pl.struct(keys).is_first_distinct()).to_series()
        if exact_first.all():
            return valid
        later = suspects.filter(~exact_first)
        originals = suspects.filter(exact_first).select(*keys, pl.col("row").alias("first_row"))
        later = later.join(originals, on=keys, how="left")
        index = self._positions(later.get_column("row").to_numpy())
        self.status[index] = _DUPLICATE
        self.reason[index] = [f"{S.DUPLICATE_OF}:{r}" for r in
                              later.get_column("first_row").to_list()]
        first = pl.Series("first", np.ones(valid.height, dtype=bool)).scatter(
            np.flatnonzero(maybe.to_numpy()), exact_first)
        return valid.filter(first)

    # -- step 3: partial records into chains ---------------------------------

    def _partials(self, considered: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Candidates (one per complete record or chain; ``cand`` 0..k-1, row order) and
        members (``row`` → ``cand``)."""
        group = ["service", "calling", "called", "trunk"]
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
        chains = parts.group_by("chain", maintain_order=True).agg(
            pl.col("row").first(),
            *(pl.col(c).cast(pl.Int128).sum() for c in _MERGED_COLUMNS),
            pl.len().cast(pl.Int32).alias("parts"),
        )
        too_big = pl.coalesce([
            pl.when(pl.col(c) > S.MAX_INTEGER).then(pl.lit(j, pl.Int8))
            for j, c in enumerate(_MERGED_COLUMNS)
        ])
        chains = chains.with_columns(too_big.alias("_too_big"))
        bad_chains = chains.filter(pl.col("_too_big").is_not_null())
        if bad_chains.height:
            bad = parts.join(bad_chains.select("chain", "_too_big",
                                               pl.col("row").alias("first_row"),
                                               pl.col("parts").alias("chain_parts"),
                                               *(pl.col(c).alias(f"sum_{c}")
                                                 for c in _MERGED_COLUMNS)),
                             on="chain", how="inner")
            index = self._positions(bad.get_column("row").to_numpy())
            self.status[index] = _INVALID
            column = pl.col("_too_big").replace_strict(dict(enumerate(_MERGED_COLUMNS)),
                                                       return_dtype=pl.String)
            total = pl.coalesce([pl.when(pl.col("_too_big") == j)
                                 .then(pl.col(f"sum_{c}").cast(pl.String))
                                 for j, c in enumerate(_MERGED_COLUMNS)])
            entries = bad.select(
                "row", pl.lit(S.OVERSIZE_FIELD).alias("code"), column.alias("column"),
                (pl.lit(S.OVERSIZE_FIELD + ":") + column).alias("reason"),
                pl.format("{}: the merged call of {} parts starting in row {} sums to {}; "
                          "expected at most {}", column, pl.col("chain_parts"),
                          pl.col("first_row"), total, pl.lit(S.MAX_INTEGER)).alias("message"),
            )
            self.reason[index] = entries.get_column("reason").to_list()
            self.late.append(entries)
            chains = chains.filter(pl.col("_too_big").is_null())
        chains = chains.drop("_too_big").with_columns(
            *(pl.col(c).cast(pl.Int64) for c in _MERGED_COLUMNS))

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
        )
        in_chains = candidates.filter(pl.col("chain") >= 0).select("chain", "cand",
                                                                   pl.col("row").alias("head"))
        members = pl.concat([
            candidates.filter(pl.col("chain") < 0).select("row", "cand",
                                                          pl.lit(None, pl.Int64).alias("head")),
            parts.join(in_chains, on="chain", how="inner").select("row", "cand", "head"),
        ])
        return candidates.drop("chain"), members

    # -- step 4: period and exclusions ------------------------------------------

    def _exclusions(self, candidates: pl.DataFrame) -> pl.DataFrame:
        """``exclusion``: null, or the reason the record is excluded (out_of_period first,
        then the rules' exclusions in their order)."""
        conditions = []
        if self.period is not None:
            outside = (pl.col("start") < self.period.start) | (pl.col("start") >= self.period.end)
            conditions.append(pl.when(outside).then(pl.lit(OUT_OF_PERIOD)))
        for exclusion in self.rules.exclusions:
            condition = pl.col(exclusion.field) == exclusion.equals
            if exclusion.service is not None:
                condition &= pl.col("service") == S.SERVICE_CODE[exclusion.service]
            conditions.append(pl.when(condition).then(pl.lit(exclusion.name)))
        exclusion = pl.coalesce(conditions) if conditions else pl.lit(None, pl.String)
        return candidates.with_columns(exclusion.cast(pl.String).alias("exclusion"))

    # -- step 5: pricing ---------------------------------------------------------

    def _rating(self, candidates: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
        to_rate = candidates.get_column("exclusion").is_null().to_numpy()
        rated_all = price(self.rules, *(candidates.get_column(c).to_numpy() for c in (
            "payer", "payee", "service", "call_type", "start", "duration_s", "volume_kb")))
        tariff = np.where(to_rate, rated_all.tariff, -1)
        unrated = to_rate & (tariff < 0)
        if unrated.any():
            self.late.append(self._no_tariff_entries(
                candidates.filter(pl.Series(unrated)), rated_all, unrated, members))
        kept = candidates.with_columns(
            pl.when(pl.Series(to_rate)).then(pl.Series(rated_all.rated_charge))
            .alias("rated_charge"),
            pl.Series("band", rated_all.time_band, dtype=pl.UInt8),
            pl.Series("tariff", tariff, dtype=pl.Int32),
        )
        if unrated.any():
            kept = kept.filter(pl.Series(~unrated))
        kept = kept.with_columns(pl.int_range(0, pl.len(), dtype=pl.Int64).alias("unit"))

        n_candidates = candidates.height
        unit_of = np.full(n_candidates, -1, dtype=np.int64)
        kept_cand = kept.get_column("cand").to_numpy()
        unit_of[kept_cand] = kept.get_column("unit").to_numpy()
        reason_of = np.full(n_candidates, None, dtype=object)
        reason_of[kept_cand] = kept.get_column("exclusion").to_numpy()
        member_cand = members.get_column("cand").to_numpy()
        is_kept = unit_of[member_cand] >= 0
        index = self._positions(members.get_column("row").to_numpy()[is_kept])
        reasons = reason_of[member_cand[is_kept]]
        self.unit[index] = unit_of[member_cand[is_kept]]
        excluded = np.array([r is not None for r in reasons], dtype=bool)
        self.status[index] = np.where(excluded, _EXCLUDED, _OK)
        self.reason[index] = reasons
        head = members.get_column("head").fill_null(-1).to_numpy()[is_kept]
        self.head_row[index] = head

        return kept.select(
            "unit", "row", pl.col("service").cast(pl.UInt8), "calling", "called", "start",
            "duration_s", "volume_kb", "charge",
            pl.col("rated_charge").cast(pl.Int64), pl.col("parts").cast(pl.Int32),
            pl.col("exclusion").is_not_null().alias("excluded"),
            pl.col("payer").cast(pl.UInt8), pl.col("payee").cast(pl.UInt8),
            pl.col("call_type").cast(pl.UInt8), "band", "tariff", "trunk",
        )

    def _no_tariff_entries(self, unrated: pl.DataFrame, rated: RatedArrays,
                           mask: np.ndarray, members: pl.DataFrame) -> pl.DataFrame:
        names = rating_names(self.rules)
        described = unrated.select(
            "cand", "start", "parts", "row",
            pl.Series("payer", np.array(names.parties, dtype=object)[rated.payer[mask]],
                      dtype=pl.String),
            pl.Series("payee", np.array(names.parties, dtype=object)[rated.payee[mask]],
                      dtype=pl.String),
            pl.Series("call_type",
                      np.array(names.call_types, dtype=object)[rated.call_type[mask]],
                      dtype=pl.String),
            pl.Series("time_band",
                      np.array(names.time_bands, dtype=object)[rated.time_band[mask]],
                      dtype=pl.String),
            pl.col("service").replace_strict(dict(enumerate(S.SERVICES)),
                                             return_dtype=pl.String).alias("service_name"),
        )
        rows = members.select("row", "cand").join(
            described.rename({"row": "first_row"}), on="cand", how="inner")
        index = self._positions(rows.get_column("row").to_numpy())
        self.status[index] = _INVALID
        self.reason[index] = S.NO_TARIFF
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


# ---------------------------------------------------------------------------
# the quarantine file, completed


def repeated_entries(work: IngestWork, scan_result: ScanResult) -> pl.DataFrame:
    """Late entries (ENTRY_SCHEMA) of the rows whose record id repeats an earlier piece's."""
    repeated = scan_result.repeated
    if not repeated.height:
        return pl.DataFrame(schema=ENTRY_SCHEMA)
    ids = _read_ids(work, len(scan_result.pieces), repeated.get_column("row").to_numpy())
    joined = repeated.join(ids.select("row", "record_id"), on="row", how="left")
    found = pl.col("record_id")
    cut = pl.when(found.str.len_chars() > 80).then(found.str.slice(0, 80) + "...") \
        .otherwise(found)
    return joined.select(
        "row",
        pl.lit(S.DUPLICATE_RECORD_ID).alias("code"),
        pl.lit("record_id").alias("column"),
        pl.lit(f"{S.DUPLICATE_RECORD_ID}:record_id").alias("reason"),
        pl.format("record_id: '{}' already appeared in row {}; expected a record_id unique "
                  "in the file", cut, pl.col("first_row")).alias("message"),
    )


def complete_quarantine(source: InputFile, work: IngestWork, scan_result: ScanResult,
                        late: Iterable[pl.DataFrame], *, chunk_rows: int = CHUNK_ROWS) -> list[Path]:
    """The quarantine of the whole export as one file per piece (QUARANTINE_SCHEMA, row
    order): pass 1's entries, with the late ones (found after validation) added or, for a
    row already invalid for a later reason, replacing its entry.  A late row that was
    valid in pass 1 has its input text read back from the export (one more read, only when
    there are such rows).  Memory is bounded by a piece."""
    late_frames = [f for f in late if f.height]
    late_entries = pl.concat(late_frames).sort("row") if late_frames else \
        pl.DataFrame(schema=ENTRY_SCHEMA)
    early_files = [work.piece_file(i, "quarantine.parquet")
                   for i in range(len(scan_result.pieces))]
    if not late_entries.height:
        return early_files
    known = pl.scan_parquet(early_files).filter(
        pl.col("row").is_in(late_entries.get_column("row").implode())).select("row").collect()
    need = late_entries.join(known, on="row", how="anti").get_column("row")
    text = read_back(source, need, chunk_rows) if need.len() else None
    folder = work.root / "quarantine"
    folder.mkdir(exist_ok=True)
    out = []
    for i, (first, n) in enumerate(scan_result.pieces):
        in_piece = pl.col("row").is_between(first, first + n - 1)
        late_p = late_entries.filter(in_piece)
        if not late_p.height:
            out.append(early_files[i])
            continue
        early = pl.read_parquet(early_files[i])
        texts = [early.join(late_p.select("row"), on="row", how="semi")
                 .drop("code", "column", "reason", "message")]
        if text is not None:
            texts.append(text.filter(in_piece))
        merged = late_p.join(pl.concat(texts).unique("row"), on="row", how="left").select(
            pl.col(name).cast(dtype) for name, dtype in S.QUARANTINE_SCHEMA.items())
        kept = early.join(late_p.select("row"), on="row", how="anti")
        path = folder / f"p{i:05d}.parquet"
        write_work(pl.concat([kept, merged]).sort("row"), path)
        out.append(path)
    return out


def read_back(source: InputFile, rows: pl.Series, chunk_rows: int = CHUNK_ROWS) -> pl.DataFrame:
    """The quarantine text columns (record_id and the input fields) of the given rows, read
    again from the export."""
    wanted = np.sort(rows.to_numpy())
    parts = []
    for raw in read_chunks(source, chunk_rows):
        lo = np.searchsorted(wanted, raw.first_row)
        hi = np.searchsorted(wanted, raw.first_row + raw.n_rows)
        if hi > lo:
            selected = pl.Series("row", wanted[lo:hi], dtype=pl.Int64)
            parts.append(pl.concat([pl.DataFrame({"row": selected}), raw_text(raw, selected)],
                                   how="horizontal"))
    if not parts or sum(p.height for p in parts) != len(wanted):
        raise InputError("the export changed while it was read: rows found invalid are no "
                         "longer in it", file=str(source.path))
    return pl.concat(parts)
