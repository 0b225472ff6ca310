"""One operator's side of a reconciliation, on disk: ingest, buckets, passes, outputs.

The private job (``engine.job``) and the reference reconciler (``engine.reference``) both
drive an :class:`OperatorSide` through the same steps; they differ only in how a pass
finds the counterparty's elements (PSI, or a plaintext join) and how the candidate pairs
are evaluated (MPC, or in the clear)::

    side = OperatorSide(plan, open_input(path))
    side.scan()                          # pass 1: pieces -> bucket spills (engine.ingest.stream)
    side.local()                         # pass 2 per bucket -> records, rows, bucket roots
    side.commitment()                    # dataset root over the bucket roots
    for b in range(n_buckets):
        matcher = side.matcher(b)        # one bucket's records in memory, no more
        ... passes ...
        side.save_psi(matcher)           # what the bucket keeps: pairs, candidates
    values, counts = side.candidates()   # every bucket's candidate values, in bucket order
    ... evaluation (MPC) ...
    tally = side.finish(evaluation)      # per bucket: statuses of its rows, the sums
    side.write_records(path)             # records.parquet in input order, from the pieces

Memory is bounded by a bucket (and a piece of the file), whatever the export's size; the
work folder holds everything in between, and a bucket whose passes are saved is not run
again when the job resumes (:meth:`psi_done`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from engine.commitment import BucketRoot, Commitment, bucket_root, dataset_commitment
from engine.durable import durable_write
from engine.ingest import schema as S
from engine.ingest.reading import CHUNK_ROWS, InputFile
from engine.ingest.stream import (
    IngestWork, write_work, ScanResult, complete_quarantine, process_bucket, repeated_entries, scan,
)
from engine.matching.bucket import (
    ROW_OUTCOME_SCHEMA, BucketMatcher, CandidateValues, PsiState, check_pair_ids_unique,
    finish_bucket,
)
from engine.matching.errors import MatchingError
from engine.matching.evaluation import checked_evaluation, slices
from engine.matching.outcome import JobTally
from engine.names import RECORDS_OUTPUT_SCHEMA, conform
from engine.partition import Partition
from engine.period import PeriodWindow
from engine.rules import Rules
from ledger_anchor.sm3 import sm3_hasher
from protocols.mpc.params import DiscrepancyResult

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""``progress(done, total)`` in the step's own items (rows, buckets)."""

RECORDS_DIGEST_FORMAT = "settlechain/records-digest/v1"


@dataclass(frozen=True)
class SidePlan:
    """How one operator's side runs: its rules, period, partition and work folder."""

    party: str
    rules: Rules
    period: PeriodWindow | None
    partition: Partition
    work: Path
    chunk_rows: int = CHUNK_ROWS


class OperatorSide:
    """See the module docstring."""

    def __init__(self, plan: SidePlan, source: InputFile) -> None:
        self.plan = plan
        self.source = source
        self.work = IngestWork(plan.work)
        self.scanned: ScanResult | None = None
        self.roots: list[BucketRoot] = []
        self.bucket_units: list[int] = []
        self.considered = 0
        self.late_entries: list[pl.DataFrame] = []
        self._candidate_counts: list[int] | None = None

    @classmethod
    def from_frames(cls, plan: SidePlan, rows: pl.DataFrame, records: pl.DataFrame) -> OperatorSide:
        """A side from canonical frames already in memory (the frames of
        :func:`engine.ingest.ingest`, numbers as digit strings): the tests and the in-memory
        reference.  The frames are put into buckets as a job would; nothing is read."""
        from engine.ingest.reading import CSV
        from engine.ingest.stream import BUCKET_RECORDS_SCHEMA, BUCKET_ROWS_SCHEMA, ROW_STATUS_CODES

        side = cls(plan, InputFile(path=Path("<frames>"), format=CSV, columns=(),
                                   extra_columns=(), estimated_rows=rows.height))
        work = side.work
        n_buckets = plan.partition.n_buckets
        work.prepare(n_buckets)
        for name in ("calling", "called"):
            bad = records.filter(~pl.col(name).str.contains(r"^[1-9][0-9]{0,14}$"))
            if bad.height:
                raise MatchingError(f"party {plan.party} canonical records: number must be "
                                    "1-15 digits, the first not 0", column=name,
                                    row=int(bad.get_column("row")[0]),
                                    found=repr(bad.get_column(name)[0]))
        numeric = records.with_columns(pl.col("calling").cast(pl.Int64),
                                       pl.col("called").cast(pl.Int64))
        bucket = plan.partition.buckets(numeric.get_column("service").to_numpy(),
                                        numeric.get_column("calling").to_numpy(),
                                        numeric.get_column("called").to_numpy())
        numeric = numeric.with_columns(pl.Series("_bucket", bucket, dtype=pl.Int32)) \
            .sort("unit")
        numeric = numeric.with_columns(
            pl.int_range(0, pl.len(), dtype=pl.Int64).over("_bucket").alias("_unit"))
        unit_map = numeric.select(pl.col("unit").cast(pl.Int64), "_bucket", "_unit",
                                  pl.col("row").cast(pl.Int64), "parts")
        rows = rows.with_columns(pl.col("unit").cast(pl.Int64), pl.col("row").cast(pl.Int64))
        codes = {name: 0 for name in ("payer", "payee", "call_type", "band")}
        status_code = pl.col("status").replace_strict(ROW_STATUS_CODES, return_dtype=pl.UInt8)
        placed = rows.filter(pl.col("status") != "invalid").join(
            unit_map, on="unit", how="left").with_columns(
            pl.col("_bucket").fill_null(0),
            pl.when(pl.col("parts") > 1).then(pl.col("row_right")).alias("head_row"))
        side.roots, side.bucket_units, side.considered = [], [], 0
        for b in range(n_buckets):
            recs = numeric.filter(pl.col("_bucket") == b).with_columns(
                pl.col("_unit").alias("unit"), (pl.col("trunk_group").hash() % (1 << 32)).cast(pl.UInt32)
                .alias("trunk"), pl.lit(-1, pl.Int32).alias("tariff"),
                *(pl.lit(v, pl.UInt8).alias(k) for k, v in codes.items()))
            recs = recs.select([pl.col(c).cast(t) for c, t in BUCKET_RECORDS_SCHEMA.items()])
            bucket_rows = placed.filter(pl.col("_bucket") == b).select(
                "row", status_code.alias("status"), "reason", pl.col("_unit").alias("unit"),
                "head_row").select([pl.col(c).cast(t) for c, t in BUCKET_ROWS_SCHEMA.items()])
            write_work(recs, work.bucket_file(b, "records.parquet"))
            write_work(bucket_rows.sort("row"), work.bucket_file(b, "rows.parquet"))
            side.roots.append(bucket_root(b, recs))
            side.bucket_units.append(recs.height)
            side.considered += int(recs.height - recs.get_column("excluded").sum())
        invalid = rows.filter(pl.col("status") == "invalid")
        quarantine = invalid.select(
            "row", "record_id", pl.col("reason").str.split(":").list.first().alias("code"),
            pl.lit(None, pl.String).alias("column"), "reason",
            pl.col("reason").alias("message"),
            *(pl.lit(None, pl.String).alias(c) for c in S.QUARANTINE_SCHEMA
              if c not in ("row", "record_id", "code", "column", "reason", "message")))
        quarantine.select([pl.col(c).cast(t) for c, t in S.QUARANTINE_SCHEMA.items()]) \
            .write_parquet(work.piece_file(0, "quarantine.parquet"))
        rows.select("row", "record_id", pl.lit(None, pl.UInt8).alias("failed")) \
            .write_parquet(work.piece_file(0, "ids.parquet"))
        side.scanned = ScanResult(
            source="<frames>", format=CSV, extra_columns=(), rows=rows.height,
            pieces=[(1, rows.height)],
            invalid_by_reason=dict(invalid.group_by("reason").len().iter_rows()),
            bucket_rows=[0] * n_buckets, trunk_groups=[])
        side.late_entries = []
        return side

    @property
    def n_buckets(self) -> int:
        return self.plan.partition.n_buckets

    # -- ingest -------------------------------------------------------------

    def scan(self, progress: Progress | None = None) -> ScanResult:
        """Pass 1 (engine.ingest.stream.scan)."""
        if self.plan.work.exists():
            for stale in ("pieces", "buckets", "quarantine", "records"):
                shutil.rmtree(self.plan.work / stale, ignore_errors=True)
        self.scanned = scan(self.source, self.plan.rules, self.work, self.plan.partition,
                            chunk_rows=self.plan.chunk_rows, progress=progress)
        return self.scanned

    def local(self, progress: Progress | None = None) -> list[BucketRoot]:
        """Pass 2 for every bucket: its records and rows on disk, and its root."""
        scanned = self._scanned()
        skip = scanned.repeated.get_column("row")
        self.roots, self.bucket_units, self.considered = [], [], 0
        self.late_entries = [repeated_entries(self.work, scanned)]
        for b in range(self.n_buckets):
            bucket = process_bucket(self.work, b, self.plan.rules, self.plan.period,
                                    skip_rows=skip)
            write_work(bucket.records, self.work.bucket_file(b, "records.parquet"))
            write_work(bucket.rows, self.work.bucket_file(b, "rows.parquet"))
            if bucket.late_entries.height:
                self.late_entries.append(bucket.late_entries)
            self.roots.append(bucket_root(b, bucket.records))
            self.bucket_units.append(bucket.records.height)
            self.considered += bucket.considered
            for spill in self.work.spill_files(b):
                spill.unlink()
            if progress is not None:
                progress(b + 1, self.n_buckets)
        return self.roots

    def _scanned(self) -> ScanResult:
        if self.scanned is None:
            raise RuntimeError("scan() first")
        return self.scanned

    @property
    def input_rows(self) -> int:
        return self._scanned().rows

    @property
    def invalid_rows(self) -> int:
        """Invalid rows so far (pass 1 and the repeated ids; no-tariff rows come later)."""
        return self._scanned().invalid

    def commitment(self) -> Commitment:
        return dataset_commitment(self.roots)

    def bucket_sizes(self) -> list[int]:
        return [r.records for r in self.roots]

    # -- matching -------------------------------------------------------------

    def matcher(self, bucket: int) -> BucketMatcher:
        records = pl.read_parquet(self.work.bucket_file(bucket, "records.parquet"))
        return BucketMatcher(self.plan.party, bucket, records, self.plan.rules)

    def psi_file(self, bucket: int) -> Path:
        return self.work.bucket_file(bucket, "psi.npz")

    def values_file(self, bucket: int) -> Path:
        return self.work.bucket_file(bucket, "candidates.npz")

    def save_psi(self, matcher: BucketMatcher) -> None:
        """Keep what the bucket's passes found (also the resume checkpoint of the bucket)."""
        values = matcher.candidate_values()
        b = matcher.bucket
        tmp = self.values_file(b).with_name("candidates.tmp.npz")
        np.savez(tmp, start=values.start, duration_s=values.duration_s, charge=values.charge,
                 rated_charge=values.rated_charge)
        tmp.replace(self.values_file(b))
        matcher.psi_state().save(self.psi_file(b))

    def psi_done(self, bucket: int) -> bool:
        return self.psi_file(bucket).exists() and self.values_file(bucket).exists()

    def forget_psi(self) -> None:
        for b in range(self.n_buckets):
            for path in (self.psi_file(b), self.values_file(b)):
                path.unlink(missing_ok=True)

    def candidates(self) -> tuple[CandidateValues, list[int]]:
        """Every bucket's candidate values, in bucket order, and the count per bucket."""
        parts = []
        for b in range(self.n_buckets):
            with np.load(self.values_file(b)) as data:
                parts.append(CandidateValues(start=data["start"], duration_s=data["duration_s"],
                                             charge=data["charge"],
                                             rated_charge=data["rated_charge"]))
        self._candidate_counts = [len(p) for p in parts]
        return CandidateValues.concat(parts), self._candidate_counts

    # -- results --------------------------------------------------------------

    def finish(self, evaluation: DiscrepancyResult) -> JobTally:
        """Every bucket's row outcomes (on disk, cut by the file's pieces) and the sums."""
        values, counts = self.candidates()
        evaluation = checked_evaluation(evaluation, self.plan.party, self.plan.rules.disclosure,
                                        values.charge)
        self.evaluation = evaluation
        scanned = self._scanned()
        tally = JobTally(party=self.plan.party, input_rows=scanned.rows)
        piece_starts = np.array([p[0] for p in scanned.pieces], dtype=np.int64)
        for b, part in enumerate(slices(evaluation, counts)):
            state = PsiState.load(self.psi_file(b))
            check_pair_ids_unique(state)
            rows = pl.read_parquet(self.work.bucket_file(b, "rows.parquet"))
            frame, bucket_tally = finish_bucket(self.plan.party, self.plan.rules.disclosure,
                                                state, rows, self.bucket_units[b], part)
            tally.add(bucket_tally)
            piece_of = np.searchsorted(piece_starts, frame.get_column("row").to_numpy(),
                                       side="right") - 1
            frame = frame.with_columns(pl.Series("_piece", piece_of, dtype=pl.Int32))
            for (piece,), group in frame.partition_by("_piece", as_dict=True).items():
                write_work(group.drop("_piece"),
                           self.work.bucket_file(b, f"outcome.p{int(piece):05d}.parquet"))
        # rows invalid before the buckets: pass 1's and the repeated ids
        tally.invalid_rows = scanned.rows - sum(tally.rows.values())
        tally.invalid_by_reason.update(scanned.invalid_by_reason)
        if sum(scanned.invalid_by_reason.values()) != tally.invalid_rows:
            raise AssertionError(f"party {self.plan.party}: {tally.invalid_rows} rows outside "
                                 f"the buckets but {scanned.invalid} invalid in pass 1 (a bug)")
        return tally

    def write_quarantine(self, path: Path) -> int:
        """quarantine.parquet of the whole export (durably); returns the entries written."""
        pieces = self._quarantine_pieces()
        return write_parquet_pieces(path, (pl.read_parquet(p) for p in pieces),
                                    S.QUARANTINE_SCHEMA)

    def _quarantine_pieces(self) -> list[Path]:
        return complete_quarantine(self.source, self.work, self._scanned(), self.late_entries,
                                   chunk_rows=self.plan.chunk_rows)

    def write_records(self, path: Path, quarantine_pieces: list[Path] | None = None) -> str:
        """records.parquet (docs/records.md), every input row in input order, written durably
        piece by piece; returns the SM3 digest of its content (:data:`RECORDS_DIGEST_FORMAT`:
        SM3 over the CSV text of the rows in order), which the statement binds."""
        scanned = self._scanned()
        quarantine = quarantine_pieces or self._quarantine_pieces()
        heads = self._head_ids()
        digest = sm3_hasher()
        digest.update((RECORDS_DIGEST_FORMAT + "\n").encode())

        def frames():
            for i, (first, n) in enumerate(scanned.pieces):
                frame = self._records_piece(i, first, n, quarantine[i], heads)
                digest.update(frame.write_csv(include_header=(i == 0)).encode("utf-8"))
                yield frame

        write_parquet_pieces(path, frames(), RECORDS_OUTPUT_SCHEMA)
        return digest.digest().hex()

    def _head_ids(self) -> pl.DataFrame:
        """record_id of every chain's first row (for ``merged_into``)."""
        heads = []
        for b in range(self.n_buckets):
            rows = pl.scan_parquet(self.work.bucket_file(b, "rows.parquet")).filter(
                pl.col("head_row").is_not_null()).select("head_row").unique().collect()
            heads.append(rows)
        wanted = pl.concat(heads).unique() if heads else pl.DataFrame(schema={"head_row": pl.Int64})
        if not wanted.height:
            return pl.DataFrame(schema={"head_row": pl.Int64, "merged_into": pl.String})
        ids = pl.scan_parquet([self.work.piece_file(i, "ids.parquet")
                               for i in range(len(self._scanned().pieces))]).filter(
            pl.col("row").is_in(wanted.get_column("head_row").implode())).collect()
        return ids.select(pl.col("row").alias("head_row"), pl.col("record_id").alias("merged_into"))

    def _records_piece(self, index: int, first: int, n: int, quarantine: Path,
                       heads: pl.DataFrame) -> pl.DataFrame:
        outcomes = [self.work.bucket_file(b, f"outcome.p{index:05d}.parquet")
                    for b in range(self.n_buckets)]
        outcomes = [p for p in outcomes if p.exists()]
        placed = pl.concat([pl.read_parquet(p) for p in outcomes]) if outcomes \
            else pl.DataFrame(schema=ROW_OUTCOME_SCHEMA)
        invalid = pl.read_parquet(quarantine).select(
            "row", pl.lit("invalid").alias("status"), pl.lit(None, pl.String).alias("pair_id"),
            pl.lit(None, pl.String).alias("stage"), pl.col("reason").alias("reasons"),
            pl.lit(None, pl.Int64).alias("head_row"),
            *(pl.lit(None, pl.Int64).alias(c) for c in ROW_OUTCOME_SCHEMA if c.startswith("diff")))
        invalid = invalid.join(placed.select("row"), on="row", how="anti")
        ids = pl.read_parquet(self.work.piece_file(index, "ids.parquet")).select("row",
                                                                                "record_id")
        frame = pl.concat([placed, invalid]).sort("row")
        if frame.height != n or (n and (frame.get_column("row")[0] != first
                                        or frame.get_column("row")[-1] != first + n - 1)):
            raise AssertionError(f"records.parquet rows {first}..{first + n - 1}: "
                                 f"{frame.height} rows accounted for (a bug)")
        frame = frame.join(ids, on="row", how="left").join(heads, on="head_row", how="left")
        return conform(frame, RECORDS_OUTPUT_SCHEMA, "records.parquet")

    # -- resume -----------------------------------------------------------------

    def manifest(self) -> dict:
        return {"source": str(self.source.path), "party": self.plan.party,
                "partition": self.plan.partition.fingerprint(),
                "buckets": self.n_buckets, "commitment": self.commitment().root.hex()}

    def save_manifest(self, extra: dict) -> None:
        path = self.plan.work / "side.json"
        path.write_text(json.dumps({**self.manifest(), **extra}), encoding="utf-8")


def report_parts(side: OperatorSide):
    """The report's view of each bucket, one after the other (engine.report.PartyFrames:
    the bucket's canonical records and rows, and its rows' outcomes as written by
    :meth:`OperatorSide.finish`), so that the report holds one bucket at a time."""
    from engine.report import PartyFrames

    for b in range(side.n_buckets):
        records = pl.read_parquet(side.work.bucket_file(b, "records.parquet")).select(
            "unit", "row", pl.lit(None, pl.String).alias("record_id"), "service",
            pl.col("calling").cast(pl.String), pl.col("called").cast(pl.String),
            "start", "duration_s", "volume_kb", "charge", "rated_charge", "parts")
        rows = pl.read_parquet(side.work.bucket_file(b, "rows.parquet")).select("row", "unit")
        pieces = sorted(side.work.bucket_dir(b).glob("outcome.p*.parquet"))
        outcomes = (pl.concat([pl.read_parquet(p) for p in pieces]) if pieces
                    else pl.DataFrame(schema={"row": pl.Int64, "status": pl.String}))
        statuses = outcomes.with_columns(pl.lit(None, pl.String).alias("record_id"))
        yield PartyFrames(statuses, records, rows)


def recompute_commitment(data: str | Path, rules: Rules, period: PeriodWindow | None,
                         partition: Partition, *, chunk_rows: int = CHUNK_ROWS) -> Commitment:
    """A party's dataset commitment computed again from its export (the same ingest, period
    and buckets as the job), in a temporary folder: for checks after a job."""
    import tempfile

    from engine.ingest.reading import open_input

    with tempfile.TemporaryDirectory(prefix="settlechain-commitment-") as folder:
        side = OperatorSide(SidePlan("A", rules, period, partition, Path(folder), chunk_rows),
                            open_input(data))
        side.scan()
        side.local()
        return side.commitment()


PARTITION_FILE = "partition.json"
"""In a party's work folder: the job's bucket key and count (secret to the party, like its
data), so that a later check can recompute the commitment."""


def save_partition(work: Path, partition: Partition) -> None:
    work.mkdir(parents=True, exist_ok=True)
    path = work / PARTITION_FILE
    path.write_text(json.dumps({"key": partition.key.hex(), "buckets": partition.n_buckets}),
                    encoding="utf-8")
    os.chmod(path, 0o600)


def load_partition(work: Path) -> Partition | None:
    try:
        saved = json.loads((work / PARTITION_FILE).read_text(encoding="utf-8"))
        return Partition(key=bytes.fromhex(saved["key"]), n_buckets=int(saved["buckets"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_parquet_pieces(path: Path, frames, schema) -> int:
    """An output Parquet file from frames given one after the other (each becomes a row
    group: memory is bounded by a piece), written durably; returns the rows written."""
    import pyarrow.parquet as pq

    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        target = pl.DataFrame(schema=schema).to_arrow().schema
        # zstd level 1: as small as the default level here, a quarter faster
        with pq.ParquetWriter(tmp, target, compression="zstd", compression_level=1) as writer:
            for frame in frames:
                if frame.height:
                    writer.write_table(frame.to_arrow().cast(target))
                    written += frame.height

    durable_write(path, write)
    return written
