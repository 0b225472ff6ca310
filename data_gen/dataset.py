"""A generated scenario: both operators' files *and* the true answer, block by block.

``generate(config, file_format)`` returns a :class:`Dataset` (the knobs and the
rules; no data yet).  ``write_dataset(dataset, out_dir)`` generates it block by
block (:meth:`Dataset.blocks`) and appends every block to the files as it goes, so
that peak memory is bounded by the block size, not by the scenario:

- ``a.<fmt>``, ``b.<fmt>``: the canonical input schema of docs/records.md, exactly
  those columns.  CSV: ``start_time`` as ISO-8601 local time with offset
  (``2026-10-03T14:22:05+08:00``); Parquet: ``start_time`` a timestamp with time
  zone (``Asia/Shanghai``), integers Int64, strings String, in row groups of
  :data:`ROW_GROUP_ROWS` rows.  A writes numbers as bare digits, B with a leading ``+``;
- ``rules.toml``: the agreed rules the truth refers to (docs/rules.md);
- ``truth.parquet``: one row per row of A and of B (:data:`~data_gen.truth.TRUTH_SCHEMA`),
  grouped by chunk of events, A's rows before B's within a chunk, each side's rows
  in file order;
- ``manifest.json``: knobs, seed, counts, versions.

The same seed and knobs give byte-identical files whatever the block size: the
data does not depend on it (``blocks.py``) and the Parquet row groups have a fixed
size.  :meth:`Dataset.collect` keeps a small scenario's arrays in memory instead (for
tests and statistics).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl

from data_gen import blocks, record_ids
from data_gen.config import LOCAL_OFFSET_S, GenConfig
from data_gen.errors import DataGenError
from data_gen.events import OUTSIDE_KINDS, Events, EventSource
from data_gen.isolation import Isolation, Records
from data_gen.tariff import NO_TARIFF_PREFIX, SERVICES, ScenarioRules, build_rules
from data_gen.truth import (
    DISPUTED,
    MATCHED_EXACT,
    MATCHED_TOLERANCE,
    REASON_CODES,
    STAGE_KEY,
    STAGES,
    STATUSES,
    TRUTH_SCHEMA,
    PairOutcome,
    RowTruth,
    RowPart,
    expected_pairs,
    expected_rows,
    slice_truth,
    status_counts,
    truth_frame,
)
from data_gen.views import (
    BIT,
    KIND_INDEX,
    Setting,
    SideBlock,
    SideEvents,
    SideStream,
    classes_of,
    draw,
    kinds_for,
    rows_a,
    rows_b,
)

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("csv", "parquet")
COLUMNS: tuple[str, ...] = ("record_id", "service", "calling", "called", "start_time",
                            "duration_s", "volume_kb", "trunk_group", "part_seq", "charge")
PARQUET_TIME_ZONE = "Asia/Shanghai"
#: Rows per Parquet row group of every file (fixed: the files do not depend on the block).
ROW_GROUP_ROWS = 1 << 18
PARQUET_COMPRESSION = {"compression": "zstd", "compression_level": 1}
#: Columns worth a Parquet dictionary (a few distinct values); trying one on the others
#: (record ids, numbers, times) costs more time than it saves space.
DICTIONARY_COLUMNS = ["service", "trunk_group", "side", "expected_status", "expected_reasons",
                      "expected_stage", "expected_invalid_code", "expected_invalid_column",
                      "perturbations"]
GENERATOR_VERSION = "2"


@dataclass
class Block:
    """One block of a scenario: its events (None for the closing block, which holds only
    the duplicate copies placed after the last rows), the canonical records and pair
    outcomes of its events, and each side's rows emitted with it and their truth."""

    lo: int
    events: Events | None
    flags: np.ndarray | None
    canonical: dict[str, SideEvents]
    outcome: PairOutcome | None
    rows: dict[str, SideBlock]
    truth: dict[str, RowTruth]
    renumbered: np.ndarray


@dataclass
class Dataset:
    config: GenConfig
    file_format: str
    rules: ScenarioRules
    invalid_placed: dict[str, dict[str, int]] = field(default_factory=dict)

    def rules_toml(self) -> str:
        return self.rules.to_toml()

    def operator(self, side: str) -> str:
        return self.config.operator_a if side == "A" else self.config.operator_b

    def id_prefix(self, side: str) -> str:
        return record_ids.prefix(self.operator(side), self.config.period)

    # -- the data, block by block -------------------------------------------------------

    def blocks(self, block_events: int | None = None) -> Iterator[Block]:
        """Generate the scenario block by block (``block_events`` rounded up to whole
        chunks; the default keeps peak memory around 1 GiB).  Every block is yielded
        once; the data does not depend on the block size."""
        size = blocks.block_events(block_events)
        config, rules = self.config, self.rules
        setting = Setting.make(config, rules)
        source = EventSource(config, size)
        isolation = Isolation(config, source.window, size)
        kinds = kinds_for(self.file_format)
        sides = {side: SideStream(setting, side, kinds, config.records) for side in ("A", "B")}
        for lo, hi in blocks.block_ranges(config.records, size):
            events = source.block(lo, hi)
            draws = draw(config, events)
            classes = classes_of(rules, events)
            rows = {}
            canonical = {}
            rows["A"], canonical["A"] = rows_a(setting, events, classes, draws)
            rows["B"], canonical["B"] = rows_b(setting, events, classes, draws)
            flags = draws.flags
            victims = isolation.block(
                events, *(Records(present=c.present, start=c.start, end=c.start + c.duration)
                          for c in (canonical["A"], canonical["B"])), source.numbers)
            if victims.size:
                flags[victims] |= BIT["renumbered"]
                for side_rows in rows.values():
                    side_rows["called"] = events.called[side_rows["event"] - lo]
            for side in ("A", "B"):
                sides[side].prepare(events, rows[side], canonical[side], flags)
            outcome = expected_pairs(config, canonical["A"], canonical["B"])
            emitted = {side: sides[side].emit(events, rows[side], canonical[side], flags)
                       for side in ("A", "B")}
            truth = {side: expected_rows(emitted[side], lo, canonical[side],
                                         canonical["B" if side == "A" else "A"], outcome, flags)
                     for side in ("A", "B")}
            del rows, draws, classes     # not held while the block is written
            yield Block(lo=lo, events=events, flags=flags, canonical=canonical, outcome=outcome,
                        rows=emitted, truth=truth, renumbered=lo + victims)
        emitted = {side: sides[side].finish() for side in ("A", "B")}
        empty = {side: SideEvents(*(np.zeros(0, dtype=bool),) * 11) for side in ("A", "B")}
        truth = {side: expected_rows(emitted[side], config.records, empty[side], empty[side],
                                     None, None) for side in ("A", "B")}
        self.invalid_placed = {side: dict(stream.placed) for side, stream in sides.items()}
        for side, stream in sides.items():
            for code in stream.unplaced():
                log.warning("side %s: no row left to make %s", side, code)
        yield Block(lo=config.records, events=None, flags=None, canonical=empty, outcome=None,
                    rows=emitted, truth=truth, renumbered=np.zeros(0, dtype=np.int64))

    def collect(self, block_events: int | None = None) -> Collected:
        """The whole scenario's arrays in memory (small scenarios: tests, statistics)."""
        return Collected.of(self, list(self.blocks(block_events)))

    # -- frames of one block ----------------------------------------------------------

    def side_frame(self, rows: RowPart) -> tuple[pl.DataFrame, np.ndarray]:
        """One side's rows in the canonical schema, plus the rows whose text only a CSV
        file can carry, with raw bytes (``undecodable_bytes``).  Every row is made valid
        first; the few invalid rows then get their corrupted text."""
        side = rows.side
        c = rows.columns
        csv = self.file_format == "csv"
        own, peer = self.operator(side), self.operator("B" if side == "A" else "A")
        plus = "+" if side == "B" else ""
        frame = pl.DataFrame({
            "_id_row": c["id_row"], "_service": c["service"], "_calling": c["calling"],
            "_called": c["called"], "_start": c["clock"] if csv else c["start"],
            "_utc": c["utc_error"], "_duration": c["duration"], "_volume": c["volume"],
            "_trunk": c["trunk"], "_part_seq": c["part_seq"], "_charge": c["charge"],
        })
        trunk = pl.lit(pl.Series([f"{own}-{peer}-TG{k + 1:02d}" for k in range(256)])).gather(
            pl.col("_trunk"))
        service = pl.lit(pl.Series(list(SERVICES))).gather(pl.col("_service"))
        duration: pl.Expr = pl.col("_duration").cast(pl.Int64)
        charge: pl.Expr = pl.col("_charge").cast(pl.Int64)
        yuan = self.config.yuan_side(side)
        if csv:
            # local wall-clock time with its offset; rows with a wrong offset keep the text
            # of their local time and carry wrong_utc_offset
            start = (pl.from_epoch(pl.col("_start") + LOCAL_OFFSET_S, "s")
                     .dt.strftime("%Y-%m-%dT%H:%M:%S")
                     + pl.lit(pl.Series(["+08:00", self.config.wrong_utc_offset])).gather(
                         pl.col("_utc").cast(pl.UInt8)))
            duration = duration.cast(pl.String)
            if yuan:   # 6 fen -> "0.06"
                charge = ((charge // 100).cast(pl.String) + "."
                          + (charge % 100).cast(pl.String).str.zfill(2))
        else:
            start = (pl.from_epoch(pl.col("_start"), "s").dt.replace_time_zone("UTC")
                     .dt.convert_time_zone(PARQUET_TIME_ZONE))
            if yuan:
                charge = charge / 100
        frame = frame.select(
            record_id=record_ids.id_expr(self.id_prefix(side), pl.col("_id_row")),
            service=service,
            calling=pl.lit(plus) + pl.col("_calling").cast(pl.String),
            called=pl.lit(plus) + pl.col("_called").cast(pl.String),
            start_time=start,
            duration_s=duration,
            volume_kb=pl.col("_volume").cast(pl.Int64),
            trunk_group=trunk,
            part_seq=pl.col("_part_seq").cast(pl.Int64),
            charge=charge,
        )
        invalid = c["invalid"]
        raw = np.zeros(0, dtype=np.int64)
        if (invalid >= 0).any() and not yuan:
            frame = _corrupt(frame, invalid, plus)
            if csv:
                raw = np.flatnonzero(invalid == KIND_INDEX["undecodable_bytes"])
        return frame, raw

    def side_schema(self, side: str) -> pl.Schema:
        """The Parquet schema of a side's file."""
        text = pl.String()
        charge = pl.Float64() if self.config.yuan_side(side) else pl.Int64()
        return pl.Schema({"record_id": text, "service": text, "calling": text, "called": text,
                          "start_time": pl.Datetime("us", PARQUET_TIME_ZONE),
                          "duration_s": pl.Int64(), "volume_kb": pl.Int64(),
                          "trunk_group": text, "part_seq": pl.Int64(), "charge": charge})

    def parts(self, block: Block) -> Iterator[tuple[RowPart, RowPart]]:
        """A block's rows chunk by chunk (the unit the files are written in): A's rows
        of the chunk and B's (their ``ids`` are filled in once their file frames are
        made).  Rows are in file order and their chunks never decrease, so each chunk's
        rows are consecutive."""
        chunk = {s: block.rows[s].columns["chunk"] for s in ("A", "B")}
        for value in np.union1d(np.unique(chunk["A"]), np.unique(chunk["B"])).tolist():
            pair = []
            for side in ("A", "B"):
                rows = block.rows[side]
                lo = int(np.searchsorted(chunk[side], value, side="left"))
                hi = int(np.searchsorted(chunk[side], value, side="right"))
                pair.append(RowPart(side=side, first=rows.first + lo,
                                      columns={k: v[lo:hi] for k, v in rows.columns.items()},
                                      truth=slice_truth(block.truth[side], lo, hi),
                                      ids=pl.Series(dtype=pl.String)))
            yield pair[0], pair[1]

    def truth_frame(self, part_a: RowPart, part_b: RowPart) -> pl.DataFrame:
        """truth.parquet's rows of A's part, then B's."""
        return truth_frame(self.rules, part_a, part_b)


@dataclass
class Collected:
    """A whole scenario in memory: events, each side's rows and their truth, concatenated
    over the blocks (for small scenarios)."""

    dataset: Dataset
    events: Events
    flags: np.ndarray
    canonical: dict[str, SideEvents]
    outcome: PairOutcome
    rows: dict[str, dict[str, np.ndarray]]
    truth: dict[str, RowTruth]
    renumbered: np.ndarray
    invalid_placed: dict[str, dict[str, int]]

    @classmethod
    def of(cls, dataset: Dataset, parts: list[Block]) -> Collected:
        def cat(items: list[Any]) -> Any:
            first = items[0]
            kind = type(first)
            return kind(**{name: (np.concatenate([getattr(i, name) for i in items])
                                  if isinstance(getattr(first, name), np.ndarray)
                                  else getattr(first, name))
                           for name in first.__dataclass_fields__})

        full = [b for b in parts if b.events is not None]
        return cls(
            dataset=dataset, events=cat([b.events for b in full]),
            flags=np.concatenate([b.flags for b in full]),
            canonical={s: cat([b.canonical[s] for b in full]) for s in ("A", "B")},
            outcome=cat([b.outcome for b in full]),
            rows={s: {name: np.concatenate([b.rows[s].columns[name] for b in parts])
                      for name in parts[0].rows[s].columns} for s in ("A", "B")},
            truth={s: cat([b.truth[s] for b in parts]) for s in ("A", "B")},
            renumbered=np.concatenate([b.renumbered for b in parts]),
            invalid_placed=dataset.invalid_placed,
        )


class _Tally:
    """manifest.json's counts, block by block."""

    def __init__(self) -> None:
        self.events = 0
        self.rows = {"A": 0, "B": 0}
        self.status = {"A": np.zeros(len(STATUSES), dtype=np.int64),
                       "B": np.zeros(len(STATUSES), dtype=np.int64)}
        self.key_rows = 0
        self.pairs = np.zeros(3, dtype=np.int64)
        self.stages = np.zeros(len(STAGES), dtype=np.int64)
        self.reasons = np.zeros(len(REASON_CODES), dtype=np.int64)
        self.renumbered = 0
        self.outside = np.zeros(len(OUTSIDE_KINDS) + 1, dtype=np.int64)

    def add(self, block: Block) -> None:
        for side in ("A", "B"):
            truth = block.truth[side]
            self.rows[side] += truth.status.shape[0]
            self.status[side] += status_counts(truth.status)
            self.key_rows += int(np.count_nonzero(truth.stage == STAGE_KEY))
        self.renumbered += int(block.renumbered.shape[0])
        if block.events is None or block.outcome is None:
            return
        self.events += len(block.events)
        self.outside += np.bincount(block.events.outside, minlength=len(OUTSIDE_KINDS) + 1)
        outcome = block.outcome
        both = outcome.both
        for i, code in enumerate((MATCHED_EXACT, MATCHED_TOLERANCE, DISPUTED)):
            self.pairs[i] += int(np.count_nonzero(both & (outcome.status == code)))
        self.stages += np.bincount(outcome.stage[both], minlength=len(STAGES))
        disputed = outcome.reasons[both & (outcome.status == DISPUTED)]
        for bit in range(len(REASON_CODES)):
            self.reasons[bit] += int(np.count_nonzero((disputed >> bit) & 1))

    def manifest(self, dataset: Dataset) -> dict[str, Any]:
        import pyarrow

        fmt = dataset.file_format
        rows_total = self.rows["A"] + self.rows["B"]
        return {
            "generator": "settlechain data_gen",
            "generator_version": GENERATOR_VERSION,
            "seed": dataset.config.seed,
            "format": fmt,
            "knobs": dataset.config.knobs(),
            "files": {"a": f"a.{fmt}", "b": f"b.{fmt}", "rules": "rules.toml",
                      "truth": "truth.parquet"},
            "rules_file_sha256": hashlib.sha256(dataset.rules_toml().encode()).hexdigest(),
            "events": self.events,
            "rows": dict(self.rows),
            "counts": {side: {name: int(c) for name, c in zip(STATUSES, self.status[side],
                                                              strict=True)}
                       for side in ("A", "B")},
            "pairs": {name: int(c) for name, c in zip(
                ("matched_exact", "matched_tolerance", "disputed"), self.pairs, strict=True)},
            "pairs_by_stage": {STAGES[code]: int(self.stages[code])
                               for code in range(1, len(STAGES))},
            "disputed_reasons": {code: int(c) for code, c in zip(REASON_CODES, self.reasons,
                                                                  strict=True)},
            "rows_in_key_pass_share": round(self.key_rows / rows_total, 6) if rows_total else 0.0,
            "out_of_period_events": {kind: int(c) for kind, c in zip(
                OUTSIDE_KINDS, self.outside[1:], strict=True)},
            "invalid_rows_placed": dataset.invalid_placed,
            "renumbered_events": self.renumbered,
            "row_group_rows": ROW_GROUP_ROWS if fmt == "parquet" else None,
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "polars": pl.__version__, "pyarrow": pyarrow.__version__},
        }


def generate(config: GenConfig, file_format: str = "csv") -> Dataset:
    """A scenario: its knobs and rules.  The data is made while it is written
    (:func:`write_dataset`) or collected (:meth:`Dataset.collect`)."""
    if file_format not in FORMATS:
        raise DataGenError(f"bad format: expected {' | '.join(FORMATS)}, found {file_format!r}")
    return Dataset(config=config, file_format=file_format, rules=build_rules(config))


@dataclass
class Written:
    """What :func:`write_dataset` did: manifest.json's content and seconds per step."""

    manifest: dict[str, Any]
    seconds: dict[str, float]


def write_dataset(dataset: Dataset, out_dir: str | Path, *, block_events: int | None = None,
                  on_block: Callable[[int, int], None] | None = None) -> Written:
    """Generate the dataset and write every file into ``out_dir`` (created if needed),
    block by block (``block_events``: see :meth:`Dataset.blocks`).  ``on_block(done,
    total)`` is called after each block with the events written so far.

    Raises :class:`DataGenError` if the folder cannot be written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataGenError(f"{out}: cannot create the output folder: {exc.strerror}") from None
    fmt = dataset.file_format
    seconds = {"generate": 0.0, f"a.{fmt}": 0.0, f"b.{fmt}": 0.0, "truth.parquet": 0.0}
    tally = _Tally()
    t_start = time.perf_counter()
    try:
        (out / "rules.toml").write_text(dataset.rules_toml(), encoding="utf-8")
        side_writers: dict[str, _CsvWriter | _ParquetWriter] = {
            side: (_CsvWriter(out / f"{side.lower()}.csv") if fmt == "csv"
                   else _ParquetWriter(out / f"{side.lower()}.parquet",
                                       dataset.side_schema(side)))
            for side in ("A", "B")}
        truth_writer = _ParquetWriter(out / "truth.parquet", pl.Schema(TRUTH_SCHEMA))
        try:
            made = time.perf_counter()
            for block in dataset.blocks(block_events):
                t0 = time.perf_counter()
                seconds["generate"] += t0 - made
                tally.add(block)
                for part_a, part_b in dataset.parts(block):
                    for part in (part_a, part_b):
                        frame, raw = dataset.side_frame(part)
                        part.ids = frame.get_column("record_id")
                        side_writers[part.side].write(frame, raw)
                        del frame
                        t1 = time.perf_counter()
                        seconds[f"{part.side.lower()}.{fmt}"] += t1 - t0
                        t0 = t1
                    truth_writer.write(dataset.truth_frame(part_a, part_b))
                    t1 = time.perf_counter()
                    seconds["truth.parquet"] += t1 - t0
                    t0 = t1
                if on_block is not None and block.events is not None:
                    on_block(block.lo + len(block.events), dataset.config.records)
                del block
                made = time.perf_counter()
        finally:
            for writer in (*side_writers.values(), truth_writer):
                writer.close()
        manifest = tally.manifest(dataset)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                           encoding="utf-8")
    except OSError as exc:
        raise DataGenError(f"{exc.filename or out}: cannot write: {exc.strerror}") from None
    seconds["total"] = time.perf_counter() - t_start
    log.info("wrote %s in %.2f s", out, seconds["total"])
    return Written(manifest=manifest, seconds=seconds)


class _CsvWriter:
    """A side's CSV file, appended block by block; rows in ``raw`` are written as raw bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.fh.write((",".join(COLUMNS) + "\n").encode())

    def write(self, frame: pl.DataFrame, raw: np.ndarray) -> None:
        position = 0
        for index in raw.tolist():
            if index > position:
                frame.slice(position, index - position).write_csv(self.fh, include_header=False)
            self.fh.write(_raw_csv_line(frame.row(index, named=True), "undecodable_bytes"))
            position = index + 1
        if position < frame.height:
            frame.slice(position).write_csv(self.fh, include_header=False)

    def close(self) -> None:
        self.fh.close()


class _ParquetWriter:
    """A Parquet file appended block by block, in row groups of exactly ROW_GROUP_ROWS rows
    (the last one shorter), whatever the size of the frames written."""

    def __init__(self, path: Path, schema: pl.Schema) -> None:
        import pyarrow.parquet as pq

        self.schema = schema
        arrow_schema = _to_arrow(pl.DataFrame(schema=schema)).schema
        self.writer = pq.ParquetWriter(
            path, arrow_schema, use_dictionary=[c for c in schema if c in DICTIONARY_COLUMNS],
            **PARQUET_COMPRESSION)
        self.buffer: list[pl.DataFrame] = []
        self.buffered = 0

    def write(self, frame: pl.DataFrame, raw: np.ndarray | None = None) -> None:
        self.buffer.append(frame.cast(self.schema))  # type: ignore[arg-type]
        self.buffered += frame.height
        if self.buffered >= ROW_GROUP_ROWS:
            whole = pl.concat(self.buffer, rechunk=False)
            full = (whole.height // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
            for lo in range(0, full, ROW_GROUP_ROWS):
                self._group(whole.slice(lo, ROW_GROUP_ROWS))
            rest = whole.slice(full)
            self.buffer = [rest] if rest.height else []
            self.buffered = rest.height

    def _group(self, frame: pl.DataFrame) -> None:
        self.writer.write_table(_to_arrow(frame.rechunk()), row_group_size=ROW_GROUP_ROWS)

    def close(self) -> None:
        if self.buffered:
            self._group(pl.concat(self.buffer))
        self.buffer = []
        self.buffered = 0
        self.writer.close()


#: How each placed invalid kind corrupts the text of its column (``plus``: B's "+").
_CORRUPTIONS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "missing_value": ("calling", lambda text, plus: None),
    "wrong_type": ("duration_s", lambda text, plus: text + ".5"),
    "malformed_number": ("called", lambda text, plus: text[:-8] + "AB" + text[-6:]),
    "malformed_timestamp": ("start_time", lambda text, plus: text[:5] + "13" + text[7:]),
    "missing_utc_offset": ("start_time", lambda text, plus: text[:19]),
    "unknown_service": ("service", lambda text, plus: "video"),
    "oversize_field": ("trunk_group", lambda text, plus: (text + "-" + "X" * 40)[:40]),
    "no_tariff": ("called", lambda text, plus: plus + NO_TARIFF_PREFIX + text[-7:]),
}


def _corrupt(frame: pl.DataFrame, invalid: np.ndarray, plus: str) -> pl.DataFrame:
    """The text of the invalid rows (numeric corruptions are already in the values)."""
    for code, (column, change) in _CORRUPTIONS.items():
        at = np.flatnonzero(invalid == KIND_INDEX[code])
        if at.size == 0:
            continue
        series = frame.get_column(column)
        values = [change(text, plus) for text in series.gather(at).to_list()]
        frame = frame.with_columns(series.scatter(at, pl.Series(values, dtype=series.dtype)))
    return frame


def _to_arrow(frame: pl.DataFrame) -> Any:
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest())


def _raw_csv_line(values: dict[str, Any], code: str) -> bytes:
    """The CSV line of a row whose text is not valid UTF-8 (``undecodable_bytes``)."""
    encoded = [("" if values[c] is None else str(values[c])).encode("utf-8") for c in COLUMNS]
    if code == "undecodable_bytes":
        trunk = encoded[COLUMNS.index("trunk_group")]
        encoded[COLUMNS.index("trunk_group")] = trunk[:4] + b"\xff\xfe" + trunk[4:]
    return b",".join(encoded) + b"\n"


__all__ = ["COLUMNS", "FORMATS", "Block", "Collected", "Dataset", "Written", "generate",
           "write_dataset"]
