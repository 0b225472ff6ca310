"""A generated scenario: both operators' files *and* the true answer.

``generate(config, file_format)`` does all the random work (vectorised numpy) and
returns a :class:`Dataset`; ``write_dataset(dataset, out_dir)`` turns it into
files with polars:

- ``a.<fmt>``, ``b.<fmt>``: the canonical input schema of docs/records.md, exactly
  those columns.  CSV: ``start_time`` as ISO-8601 local time with offset
  (``2026-10-03T14:22:05+08:00``); Parquet: ``start_time`` a timestamp with time
  zone (``Asia/Shanghai``), integers Int64, strings String.  A writes numbers as
  bare digits, B with a leading ``+``;
- ``rules.toml``: the agreed rules the truth refers to (docs/rules.md);
- ``truth.parquet``: one row per row of A and of B (:data:`~data_gen.truth.TRUTH_SCHEMA`);
- ``manifest.json``: knobs, seed, counts, versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from data_gen import record_ids
from data_gen.config import LOCAL_OFFSET_S, GenConfig
from data_gen.errors import DataGenError
from data_gen.events import Events, generate_events
from data_gen.tariff import SERVICES, ScenarioRules, build_rules
from data_gen.truth import (
    DISPUTED,
    MATCHED_EXACT,
    MATCHED_TOLERANCE,
    REASON_CODES,
    STAGE_KEY,
    STAGES,
    PairOutcome,
    RowTruth,
    expected_pairs,
    expected_rows,
    status_counts,
    truth_frame,
)
from data_gen.views import KIND_INDEX, SideRows, Views, build_views

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("csv", "parquet")
COLUMNS: tuple[str, ...] = ("record_id", "service", "calling", "called", "start_time",
                            "duration_s", "volume_kb", "trunk_group", "part_seq", "charge")
PARQUET_TIME_ZONE = "Asia/Shanghai"
GENERATOR_VERSION = "1"


@dataclass
class Dataset:
    config: GenConfig
    file_format: str
    rules: ScenarioRules
    events: Events
    views: Views
    outcome: PairOutcome
    seconds: dict[str, float] = field(default_factory=dict)
    _row_truth: dict[str, RowTruth] = field(default_factory=dict, repr=False)

    # -- the data ---------------------------------------------------------------------

    def rules_toml(self) -> str:
        return self.rules.to_toml()

    def rows(self, side: str) -> SideRows:
        return self.views.a if side == "A" else self.views.b

    def operator(self, side: str) -> str:
        return self.config.operator_a if side == "A" else self.config.operator_b

    def row_truth(self, side: str) -> RowTruth:
        """The expected outcome of every row of one side (computed once)."""
        if side not in self._row_truth:
            rows, local, remote = ((self.views.a, self.views.ea, self.views.eb) if side == "A"
                                   else (self.views.b, self.views.eb, self.views.ea))
            self._row_truth[side] = expected_rows(rows, local, remote, self.outcome,
                                                  self.views.flags)
        return self._row_truth[side]

    def id_prefix(self, side: str) -> str:
        return record_ids.prefix(self.operator(side), self.config.period)

    def record_ids(self, side: str) -> pl.Series:
        """The record_id of every row of one side's file."""
        return self.side_lazy(side)[0].select("record_id").collect().to_series()

    def side_lazy(self, side: str) -> tuple[pl.LazyFrame, dict[int, str]]:
        """One side's file in the canonical schema, as a lazy frame over compact numeric
        columns (strings are made while it is written), plus the rows whose text only a
        CSV file can carry with raw bytes (``undecodable_bytes``): row index -> kind."""
        rows = self.rows(side)
        ev = rows.event
        events = self.events
        csv = self.file_format == "csv"
        own, peer = ((self.config.operator_a, self.config.operator_b) if side == "A"
                     else (self.config.operator_b, self.config.operator_a))
        id_row = np.arange(1, len(rows) + 1, dtype=np.int64)
        for index, source in rows.id_from.items():
            id_row[index] = source + 1
        frame = pl.DataFrame({
            "_id_row": id_row, "_service": events.service[ev], "_calling": events.calling[ev],
            "_called": events.called[ev], "_start": rows.clock if csv else rows.start,
            "_utc": rows.utc_error, "_duration": rows.duration, "_volume": rows.volume,
            "_trunk": events.trunk[ev], "_part_seq": rows.part_seq, "_charge": rows.charge,
            "_invalid": rows.invalid,
        })
        kind = pl.col("_invalid")

        def when_kind(code: str, value: pl.Expr, otherwise: pl.Expr) -> pl.Expr:
            return pl.when(kind == KIND_INDEX[code]).then(value).otherwise(otherwise)

        plus = "+" if side == "B" else ""
        calling = pl.lit(plus) + pl.col("_calling").cast(pl.String)
        called = pl.lit(plus) + pl.col("_called").cast(pl.String)
        # code -> text lookups that the streaming engine runs batch by batch
        trunk = pl.lit(pl.Series([f"{own}-{peer}-TG{k + 1:02d}" for k in range(256)])).gather(
            pl.col("_trunk"))
        service = pl.lit(pl.Series(list(SERVICES))).gather(pl.col("_service"))
        duration: pl.Expr = pl.col("_duration").cast(pl.Int64)
        if csv:
            # local wall-clock time with its offset; rows with a wrong offset keep the text
            # of their local time and carry wrong_utc_offset
            start = (pl.from_epoch(pl.col("_start") + LOCAL_OFFSET_S, "s")
                     .dt.strftime("%Y-%m-%dT%H:%M:%S")
                     + pl.lit(pl.Series(["+08:00", self.config.wrong_utc_offset])).gather(
                         pl.col("_utc").cast(pl.UInt8)))
            start = when_kind("malformed_timestamp",
                              start.str.head(5) + "13" + start.str.slice(7), start)
            start = when_kind("missing_utc_offset", start.str.head(19), start)
            text = duration.cast(pl.String)
            duration = when_kind("wrong_type", text + ".5", text)
        else:
            start = (pl.from_epoch(pl.col("_start"), "s").dt.replace_time_zone("UTC")
                     .dt.convert_time_zone(PARQUET_TIME_ZONE))
        lazy = frame.lazy().select(
            record_id=record_ids.id_expr(self.id_prefix(side), pl.col("_id_row")),
            service=when_kind("unknown_service", pl.lit("video"), service),
            calling=when_kind("missing_value", pl.lit(None, dtype=pl.String), calling),
            called=when_kind("malformed_number",
                             called.str.head(-8) + "AB" + called.str.tail(6), called),
            start_time=start,
            duration_s=duration,
            volume_kb=pl.col("_volume").cast(pl.Int64),
            trunk_group=when_kind("oversize_field", (trunk + "-" + "X" * 40).str.head(40), trunk),
            part_seq=pl.col("_part_seq").cast(pl.Int64),
            charge=pl.col("_charge").cast(pl.Int64),
        )
        raw = {int(i): "undecodable_bytes"
               for i in np.flatnonzero(rows.invalid == KIND_INDEX["undecodable_bytes"])}
        return lazy, raw

    def side_frame(self, side: str) -> pl.DataFrame:
        """One side's file as a DataFrame (in memory; rows that only raw CSV bytes can
        express hold their valid-UTF-8 counterpart here, see :meth:`side_lazy`)."""
        return self.side_lazy(side)[0].collect()

    def truth_lazy(self) -> pl.LazyFrame:
        prefixes = {s: self.id_prefix(s) for s in ("A", "B")}
        return pl.concat([
            truth_frame(self.rules, self.views, side, self.outcome, self.row_truth(side),
                        prefixes[side], prefixes["B" if side == "A" else "A"])
            for side in ("A", "B")
        ])

    def truth(self) -> pl.DataFrame:
        """truth.parquet as a DataFrame (in memory)."""
        return self.truth_lazy().collect()

    # -- the summary ------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        views, outcome = self.views, self.outcome
        counts = {}
        rows_total = 0
        key_rows = 0
        for side in ("A", "B"):
            truth = self.row_truth(side)
            counts[side] = status_counts(truth)
            rows_total += len(self.rows(side))
            key_rows += int(np.count_nonzero(truth.stage == STAGE_KEY))
        both = outcome.both
        pairs = {name: int(np.count_nonzero(both & (outcome.status == code)))
                 for name, code in (("matched_exact", MATCHED_EXACT),
                                    ("matched_tolerance", MATCHED_TOLERANCE),
                                    ("disputed", DISPUTED))}
        stages = {STAGES[code]: int(np.count_nonzero(both & (outcome.stage == code)))
                  for code in range(1, len(STAGES))}
        reasons: dict[str, int] = {}
        disputed = both & (outcome.status == DISPUTED)
        for bit, code in enumerate(REASON_CODES):
            reasons[code] = int(np.count_nonzero(disputed & ((outcome.reasons >> bit) & 1 == 1)))
        return {
            "generator": "settlechain data_gen",
            "generator_version": GENERATOR_VERSION,
            "seed": self.config.seed,
            "format": self.file_format,
            "knobs": self.config.knobs(),
            "files": {"a": f"a.{self.file_format}", "b": f"b.{self.file_format}",
                      "rules": "rules.toml", "truth": "truth.parquet"},
            "rules_file_sha256": hashlib.sha256(self.rules_toml().encode()).hexdigest(),
            "events": len(self.events),
            "rows": {"A": len(views.a), "B": len(views.b)},
            "counts": counts,
            "pairs": pairs,
            "pairs_by_stage": stages,
            "disputed_reasons": reasons,
            "rows_in_key_pass_share": round(key_rows / rows_total, 6) if rows_total else 0.0,
            "invalid_rows_placed": views.invalid_placed,
            "renumbered_events": views.renumbered,
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "polars": pl.__version__},
        }


def generate(config: GenConfig, file_format: str = "csv") -> Dataset:
    """Generate a scenario: true events, both views and the true answer (no files)."""
    if file_format not in FORMATS:
        raise DataGenError(f"bad format: expected {' | '.join(FORMATS)}, found {file_format!r}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    rules = build_rules(config)
    events = generate_events(config)
    seconds["events"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    views = build_views(config, events, rules, file_format)
    seconds["views"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    outcome = expected_pairs(config, views.ea, views.eb)
    seconds["truth"] = time.perf_counter() - t1
    seconds["generate"] = time.perf_counter() - t0
    log.info("generated %d events, %d + %d rows in %.2f s", len(events), len(views.a),
             len(views.b), seconds["generate"])
    return Dataset(config=config, file_format=file_format, rules=rules, events=events,
                   views=views, outcome=outcome, seconds=seconds)


def write_dataset(dataset: Dataset, out_dir: str | Path) -> dict[str, float]:
    """Write every file of the dataset into ``out_dir`` (created if needed), streaming.

    Returns the seconds spent per file.  Raises :class:`DataGenError` if the folder
    cannot be written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataGenError(f"{out}: cannot create the output folder: {exc.strerror}") from None
    seconds: dict[str, float] = {}
    fmt = dataset.file_format
    try:
        for side in ("A", "B"):
            t0 = time.perf_counter()
            lazy, raw = dataset.side_lazy(side)
            path = out / f"{side.lower()}.{fmt}"
            if fmt == "csv":
                _sink_csv(lazy, raw, path)
            else:
                lazy.sink_parquet(path, compression="zstd", compression_level=1)
            del lazy
            seconds[path.name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        (out / "rules.toml").write_text(dataset.rules_toml(), encoding="utf-8")
        dataset.truth_lazy().sink_parquet(out / "truth.parquet", compression="zstd",
                                          compression_level=1)
        seconds["truth.parquet"] = time.perf_counter() - t0
        (out / "manifest.json").write_text(json.dumps(dataset.manifest(), indent=2,
                                                      sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DataGenError(f"{exc.filename or out}: cannot write: {exc.strerror}") from None
    log.info("wrote %s in %.2f s", out, sum(seconds.values()))
    return seconds


def _sink_csv(lazy: pl.LazyFrame, raw: dict[int, str], path: Path) -> None:
    """Stream the frame to CSV; the rows in ``raw`` are written as raw bytes instead."""
    with open(path, "wb") as fh:
        fh.write((",".join(COLUMNS) + "\n").encode())
        position = 0
        for index in sorted(raw):
            if index > position:
                lazy.slice(position, index - position).sink_csv(fh, include_header=False)
            values = lazy.slice(index, 1).collect().row(0, named=True)
            fh.write(_raw_csv_line(values, raw[index]))
            position = index + 1
        lazy.slice(position).sink_csv(fh, include_header=False)


def _raw_csv_line(values: dict[str, Any], code: str) -> bytes:
    """The CSV line of a row whose text is not valid UTF-8 (``undecodable_bytes``)."""
    encoded = [("" if values[c] is None else str(values[c])).encode("utf-8") for c in COLUMNS]
    if code == "undecodable_bytes":
        trunk = encoded[COLUMNS.index("trunk_group")]
        encoded[COLUMNS.index("trunk_group")] = trunk[:4] + b"\xff\xfe" + trunk[4:]
    return b",".join(encoded) + b"\n"


__all__ = ["COLUMNS", "FORMATS", "Dataset", "generate", "write_dataset"]
