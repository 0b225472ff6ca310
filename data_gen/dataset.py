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
from data_gen.views import INVALID_KINDS, SideRows, Views, build_views

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("csv", "parquet")
COLUMNS: tuple[str, ...] = ("record_id", "service", "calling", "called", "start_time",
                            "duration_s", "volume_kb", "trunk_group", "part_seq", "charge")
PARQUET_TIME_ZONE = "Asia/Shanghai"
GENERATOR_VERSION = "1"
#: Multiplier and offset of the record_id sequence: row r gets (r·M + O) mod 10^10, a
#: bijection of 0..10^10-1 (M is coprime to 10), so ids are unique per side and do not
#: read as row numbers.  r·M stays below 2^63 for every allowed size.
_ID_MULTIPLIER, _ID_OFFSET = 2_654_435_761, 104_729


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

    def record_ids(self, side: str) -> pl.Series:
        """The record_id of every row of one side's file."""
        rows = self.rows(side)
        prefix = f"{self.operator(side)}{self.config.period.replace('-', '')}"
        seq = (np.arange(1, len(rows) + 1, dtype=np.int64) * _ID_MULTIPLIER + _ID_OFFSET) % 10**10
        ids = pl.select((pl.lit(prefix) + pl.lit(pl.Series(seq)).cast(pl.String).str.zfill(10))
                        .alias("record_id")).to_series()
        if rows.id_from:
            targets = sorted(rows.id_from)
            ids = ids.scatter(targets, ids.gather([rows.id_from[t] for t in targets]))
        return ids

    def side_frame(self, side: str, record_ids: pl.Series | None = None
                   ) -> tuple[pl.DataFrame, dict[int, bytes]]:
        """One side's file as a typed frame in the canonical schema, plus the raw CSV lines
        of the rows only a CSV file can carry (kinds such as ``undecodable_bytes``), by row
        index.  The frame holds those rows with valid values; the writer replaces them."""
        rows = self.rows(side)
        ev = rows.event
        events = self.events
        ids = self.record_ids(side) if record_ids is None else record_ids
        plus = "+" if side == "B" else ""
        own, peer = ((self.config.operator_a, self.config.operator_b) if side == "A"
                     else (self.config.operator_b, self.config.operator_a))
        trunk_names = pl.Series([f"{own}-{peer}-TG{k + 1:02d}" for k in range(256)])
        service = pl.Series(list(SERVICES)).gather(events.service[ev])
        calling = pl.Series(events.calling[ev]).cast(pl.String)
        called = pl.Series(events.called[ev]).cast(pl.String)
        if plus:
            calling = pl.select(pl.lit(plus) + pl.lit(calling)).to_series()
            called = pl.select(pl.lit(plus) + pl.lit(called)).to_series()
        trunk = trunk_names.gather(events.trunk[ev])
        if self.file_format == "csv":
            start_time = _iso_local(rows.clock, rows.utc_error, self.config.wrong_utc_offset)
        else:
            start_time = (pl.Series(rows.start * 1_000_000).cast(pl.Datetime("us", "UTC"))
                          .dt.convert_time_zone(PARQUET_TIME_ZONE))
        columns = {
            "record_id": ids, "service": service, "calling": calling, "called": called,
            "start_time": start_time, "duration_s": pl.Series(rows.duration),
            "volume_kb": pl.Series(rows.volume), "trunk_group": trunk,
            "part_seq": pl.Series(rows.part_seq), "charge": pl.Series(rows.charge),
        }
        raw: dict[int, bytes] = {}
        for index in np.flatnonzero(rows.invalid >= 0).tolist():
            kind = INVALID_KINDS[rows.invalid[index]]
            if kind.code == "missing_value":
                columns["calling"] = columns["calling"].scatter(index, None)
            elif kind.code == "malformed_number":
                text = columns["called"][index]
                columns["called"] = columns["called"].scatter(index, text[:-8] + "AB" + text[-6:])
            elif kind.code == "unknown_service":
                columns["service"] = columns["service"].scatter(index, "video")
            elif kind.code == "oversize_field":
                text = columns["trunk_group"][index]
                columns["trunk_group"] = columns["trunk_group"].scatter(
                    index, (text + "-" + "X" * 40)[:40])
        frame = pl.DataFrame({name: columns[name] for name in COLUMNS})
        frame = frame.with_columns(pl.col(c).cast(pl.Int64) for c in
                                   ("duration_s", "volume_kb", "part_seq", "charge"))
        for index in np.flatnonzero(rows.invalid >= 0).tolist():
            kind = INVALID_KINDS[rows.invalid[index]]
            if kind.csv_only:
                raw[index] = _corrupt_csv_line(frame.row(index, named=True), kind.code)
        return frame, raw

    def truth(self, record_ids: dict[str, pl.Series] | None = None) -> pl.DataFrame:
        ids = record_ids or {s: self.record_ids(s) for s in ("A", "B")}
        return pl.concat([
            truth_frame(self.rules, self.views, side, self.outcome, self.row_truth(side),
                        ids[side], ids["B" if side == "A" else "A"])
            for side in ("A", "B")
        ])

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
    """Write every file of the dataset into ``out_dir`` (created if needed).

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
    ids = {}
    try:
        for side in ("A", "B"):
            t0 = time.perf_counter()
            ids[side] = dataset.record_ids(side)
            frame, raw = dataset.side_frame(side, ids[side])
            path = out / f"{side.lower()}.{fmt}"
            if fmt == "csv":
                _write_csv(frame, raw, path)
            else:
                frame.write_parquet(path, compression="zstd", compression_level=1)
            del frame, raw
            seconds[f"{side.lower()}.{fmt}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        (out / "rules.toml").write_text(dataset.rules_toml(), encoding="utf-8")
        dataset.truth(ids).write_parquet(out / "truth.parquet", compression="zstd",
                                         compression_level=1)
        seconds["truth.parquet"] = time.perf_counter() - t0
        (out / "manifest.json").write_text(json.dumps(dataset.manifest(), indent=2,
                                                      sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DataGenError(f"{exc.filename or out}: cannot write: {exc.strerror}") from None
    log.info("wrote %s in %.2f s", out, sum(seconds.values()))
    return seconds


# ---------------------------------------------------------------------------
# text of the CSV files


def _iso_local(clock: np.ndarray, wrong: np.ndarray, wrong_offset: str) -> pl.Series:
    """``YYYY-MM-DDTHH:MM:SS+08:00`` of each instant in local time; rows flagged ``wrong``
    carry ``wrong_offset`` instead of +08:00 (their wall-clock text is unchanged)."""
    local = clock + LOCAL_OFFSET_S
    day = local // 86_400
    first_day = int(day.min()) if day.size else 0
    last_day = int(day.max()) if day.size else 0
    day_text = pl.Series([
        time.strftime("%Y-%m-%dT", time.gmtime(d * 86_400))
        for d in range(first_day, last_day + 1)
    ])
    clock_text = pl.Series([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
                            for s in range(86_400)])
    offsets = pl.Series(["+08:00", wrong_offset])
    frame = pl.DataFrame({"d": day - first_day, "s": local - day * 86_400,
                          "o": wrong.astype(np.uint8)})
    return frame.select(pl.concat_str([
        pl.lit(day_text).gather(pl.col("d")), pl.lit(clock_text).gather(pl.col("s")),
        pl.lit(offsets).gather(pl.col("o")),
    ]).alias("start_time")).to_series()


def _corrupt_csv_line(values: dict[str, Any], code: str) -> bytes:
    text = {k: "" if v is None else str(v) for k, v in values.items()}
    if code == "wrong_type":
        text["duration_s"] = f"{values['duration_s']}.5"
    elif code == "malformed_timestamp":
        text["start_time"] = text["start_time"][:5] + "13" + text["start_time"][7:]
    elif code == "missing_utc_offset":
        text["start_time"] = text["start_time"][:19]
    parts = [text[c].encode("utf-8") for c in COLUMNS]
    if code == "undecodable_bytes":
        trunk = parts[COLUMNS.index("trunk_group")]
        parts[COLUMNS.index("trunk_group")] = trunk[:4] + b"\xff\xfe" + trunk[4:]
    return b",".join(parts) + b"\n"


def _write_csv(frame: pl.DataFrame, raw: dict[int, bytes], path: Path) -> None:
    with open(path, "wb") as fh:
        fh.write((",".join(COLUMNS) + "\n").encode())
        position = 0
        for index in sorted(raw):
            if index > position:
                frame.slice(position, index - position).write_csv(fh, include_header=False)
            fh.write(raw[index])
            position = index + 1
        if position < frame.height:
            frame.slice(position).write_csv(fh, include_header=False)


__all__ = ["COLUMNS", "FORMATS", "Dataset", "generate", "write_dataset"]
