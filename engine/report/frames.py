"""The report's one view of a party's frames: the only module that reads them.

Every access to the ingest frames (``records``, ``rows``), to the columns of
``records.parquet`` (``statuses``) and of ``quarantine.parquet`` is here.  The rest
of :mod:`engine.report` and :mod:`engine.export` works on what :class:`PartyFrames`
returns, in the report's own schema below, so that when ingest or the outputs change
shape only this module changes.

Inputs (docs/records.md):

- ``statuses``: records.parquet, one row per input row (``row``, ``record_id``,
  ``status``; optional ``pair_id``, ``reasons``, ``merged_into`` and the four
  ``diff_*`` columns);
- ``records``: the canonical records of ingest, one per complete record or merged
  chain (``unit``, ``row`` of its first input row, ``record_id``, ``service``,
  ``calling``, ``called``, ``start``, ``duration_s``, ``volume_kb``, ``charge``;
  optional ``rated_charge``, ``parts``).  ``calling``/``called`` may be strings of
  digits or unsigned integers;
- ``rows``: the ingest row frame (``row``, ``unit``);
- ``quarantine`` (optional): quarantine.parquet (``row``, ``message``).

The report's schema (what leaves this module):

``calls`` — one row per canonical record, in the order of ``records``:

| column | dtype | |
| --- | --- | --- |
| service | UInt8 | 0 voice, 1 sms, 2 data |
| calling, called | String | E.164 digits |
| start | Int64 | UTC epoch seconds |
| charge | Int64 | this party's charge, minor units |
| outcome | Enum(agreed, disputed, unmatched) | null: not considered (excluded) |

a *worklist* (:meth:`PartyFrames.worklist`) — one row per disputed or unmatched
call (a disputed call is this party's side of one disputed pair), largest charge
first, then by row:

| column | dtype | |
| --- | --- | --- |
| row | Int64 | first input row of the call |
| merged_rows | String | every input row of a merged call, ``;``-separated; null for a complete record |
| record_id | String | the call's (its first row's) record id |
| pair_id | String | disputed only: the id both parties share for the pair |
| service | UInt8 | |
| calling, called | String | |
| start | Int64 | UTC epoch seconds |
| duration_s, volume_kb | Int64 | |
| charge, rated_charge | Int64 | minor units; rated_charge null when ingest gives none |
| reasons | String | disputed only: comma-separated codes, or null (not disclosed) |
| diff_start_s, diff_duration_s, diff_charge, diff_rated_charge | Int64 | disputed only: local − remote, or null |

the invalid rows (:meth:`PartyFrames.invalid_rows`) — one row per input row with
status ``invalid``, by row:

| column | dtype | |
| --- | --- | --- |
| row | Int64 | |
| record_id | String | as read (may be null) |
| reason | String | ``<code>:<column>`` or ``<code>`` |
| code | String | |
| column | String | null for the codes without a column |
| message | String | from quarantine.parquet; null without it |
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import InputError
from engine.names import DIFF_COLUMNS, OUTPUT_STATUSES, ROW_STATUSES, SERVICES

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = OUTPUT_STATUSES
"""Every status of records.parquet, in the order the report shows them."""

OUTCOMES: tuple[str, ...] = ("agreed", "disputed", "unmatched")
"""What happened to a considered record: agreed = matched_exact or matched_tolerance.
The report's own grouping (charts, net position), not a status."""

_OUTCOME_OF_STATUS: dict[str, str] = {
    "matched_exact": "agreed", "matched_tolerance": "agreed",
    "disputed": "disputed", "unmatched": "unmatched",
}

WORKLIST_OUTCOMES: tuple[str, ...] = ("disputed", "unmatched")


class ReportInputError(InputError):
    """A frame or the summary given to the report does not have the documented shape."""


# ---------------------------------------------------------------------------
# input shape


_STATUS_COLUMNS: dict[str, pl.DataType] = {
    "row": pl.Int64(), "record_id": pl.String(), "status": pl.String(),
}
_STATUS_OPTIONAL: dict[str, pl.DataType] = {
    "pair_id": pl.String(), "reasons": pl.String(), "merged_into": pl.String(),
    **{name: pl.Int64() for name in DIFF_COLUMNS},
}
_RECORD_COLUMNS: dict[str, pl.DataType] = {
    "unit": pl.Int64(), "row": pl.Int64(), "record_id": pl.String(), "service": pl.UInt8(),
    "calling": pl.String(), "called": pl.String(), "start": pl.Int64(),
    "duration_s": pl.Int64(), "volume_kb": pl.Int64(), "charge": pl.Int64(),
}
_RECORD_OPTIONAL: dict[str, pl.DataType] = {"rated_charge": pl.Int64(), "parts": pl.Int64()}
_ROW_COLUMNS: dict[str, pl.DataType] = {"row": pl.Int64(), "unit": pl.Int64()}
_ROW_OPTIONAL: dict[str, pl.DataType] = {"record_id": pl.String(), "status": pl.String()}
_INGEST_STATUS: dict[str, str] = {
    status: (status if status in ROW_STATUSES else "ok") for status in OUTPUT_STATUSES}
"""records.parquet status -> the status ingest gave the row (docs/records.md)."""
_QUARANTINE_COLUMNS: dict[str, pl.DataType] = {"row": pl.Int64(), "message": pl.String()}
_NUMBER_COLUMNS = ("calling", "called")


def _conform(frame: Any, name: str, required: Mapping[str, pl.DataType],
             optional: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
    """``frame`` restricted to the columns the report reads, cast to their documented
    dtypes; optional columns that are absent come back as nulls."""
    if not isinstance(frame, pl.DataFrame):
        raise ReportInputError("not a polars DataFrame", file=name,
                               expected="polars.DataFrame", found=type(frame).__name__)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ReportInputError("missing column", file=name, column=missing[0],
                               expected=", ".join(required), found=", ".join(frame.columns))
    wanted = dict(required)
    for column, dtype in (optional or {}).items():
        if column in frame.columns:
            wanted[column] = dtype
    exprs = []
    for column, dtype in wanted.items():
        have = frame.schema[column]
        if column in _NUMBER_COLUMNS and have.is_unsigned_integer():
            exprs.append(pl.col(column).cast(pl.String))  # numbers held as integers
            continue
        if have != dtype and not (have == pl.Null or (dtype.is_integer() and have.is_integer())
                                  or (dtype == pl.String and have == pl.Categorical)):
            raise ReportInputError("wrong column type", file=name, column=column,
                                   expected=str(dtype), found=str(have))
        exprs.append(pl.col(column).cast(dtype))
    for column, dtype in (optional or {}).items():
        if column not in frame.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(column))
    try:
        return frame.select(exprs)
    except pl.exceptions.InvalidOperationError as exc:  # e.g. service 300 into UInt8
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReportInputError("value does not fit its column's documented dtype", file=name,
                               expected="values of the documented dtypes (docs/records.md)",
                               found=detail) from None


def _check_no_nulls(frame: pl.DataFrame, name: str, columns: tuple[str, ...]) -> None:
    """Canonical frames have no nulls in these columns; a null would silently drop a
    record from every total, so it is an error naming the row."""
    counts = frame.select(pl.col(c).null_count() for c in columns).row(0)
    for column, nulls in zip(columns, counts, strict=True):
        if nulls:
            first = frame.filter(pl.col(column).is_null()).row(0, named=True)
            raise ReportInputError("missing value", file=name, row=first.get("row"),
                                   column=column, expected="a value", found="null")


def _check_statuses(statuses: pl.DataFrame) -> None:
    bad = statuses.filter(~pl.col("status").is_in(STATUSES) | pl.col("status").is_null())
    if bad.height:
        first = bad.row(0, named=True)
        raise ReportInputError("unknown status", file="records.parquet", row=first["row"],
                               column="status", expected=" | ".join(STATUSES),
                               found=repr(first["status"]))


def _check_services(records: pl.DataFrame) -> None:
    bad = records.filter(pl.col("service") >= len(SERVICES))
    if bad.height:
        first = bad.row(0, named=True)
        raise ReportInputError("unknown service code", file="canonical records",
                               row=first["row"], column="service",
                               expected="0 voice, 1 sms, 2 data", found=str(first["service"]))


# ---------------------------------------------------------------------------
# the view


@dataclass(frozen=True)
class Disclosed:
    """What records.parquet holds about disputed pairs beyond counts (the page and the
    export show it only where the disclosure policy allows)."""

    rows_with_reasons: int
    """Disputed input rows whose ``reasons`` is set."""
    rows_with_differences: int
    """Input rows (of any status) with any ``diff_*`` column set."""


class PartyFrames:
    """One party's frames, conformed and checked once, and the report's views of them.

    Raises :class:`ReportInputError` when a frame lacks a documented column, has a
    column of another type, a null where none may be, an unknown status or service,
    or lists a row twice.
    """

    def __init__(self, statuses: pl.DataFrame, records: pl.DataFrame, rows: pl.DataFrame,
                 quarantine: pl.DataFrame | None = None) -> None:
        self._statuses = _conform(statuses, "records.parquet", _STATUS_COLUMNS,
                                  _STATUS_OPTIONAL)
        self._records = _conform(records, "canonical records", _RECORD_COLUMNS,
                                 _RECORD_OPTIONAL)
        self._rows = _conform(rows, "ingest rows", _ROW_COLUMNS, _ROW_OPTIONAL)
        self._quarantine = (None if quarantine is None else
                            _conform(quarantine, "quarantine.parquet", _QUARANTINE_COLUMNS))
        _check_no_nulls(self._statuses, "records.parquet", ("row",))
        _check_statuses(self._statuses)
        _check_no_nulls(self._records, "canonical records",
                        ("unit", "row", "service", "calling", "called", "start", "charge"))
        _check_services(self._records)
        self._in_order = self._rows_in_order()
        self._outcome = self._outcome_of_records()

    # -- row lookups -----------------------------------------------------------

    def _rows_in_order(self) -> bool:
        """Whether records.parquet lists rows 1..n in order, as the job writes it (then a
        row is found by position); otherwise rows are found by a join, and a row listed
        twice is an error."""
        n = self._statuses.height
        in_order = n > 0 and bool(
            (self._statuses["row"] == pl.int_range(1, n + 1, eager=True)).all())
        if not in_order:
            repeated = self._statuses.filter(pl.col("row").is_duplicated())
            if repeated.height:
                raise ReportInputError("row listed twice", file="records.parquet",
                                       row=repeated["row"][0], column="row",
                                       expected="one line per input row", found="two or more")
        return in_order

    def _status_of_rows(self, rows: pl.Series, columns: list[str]) -> pl.DataFrame:
        """The records.parquet ``columns`` of the given input rows, in the order given
        (nulls for a row records.parquet does not list)."""
        n = self._statuses.height
        lowest, highest = rows.min(), rows.max()
        if self._in_order and (rows.len() == 0 or (
                isinstance(lowest, int) and isinstance(highest, int)
                and lowest >= 1 and highest <= n)):
            return self._statuses.select(columns)[(rows - 1).to_numpy()]
        looked_up = pl.DataFrame({"row": rows}).with_row_index("_order")
        return (looked_up.join(self._statuses.select("row", *[c for c in columns if c != "row"]),
                               on="row", how="left")
                .sort("_order").select(columns))

    def _outcome_of_records(self) -> pl.Series:
        """Per canonical record, its first row's outcome (every row of a chain shares
        its status, docs/records.md); null where not considered.  An Enum: one byte
        per record, so that 10^7 records are grouped cheaply."""
        outcome = (pl.col("status").replace_strict(_OUTCOME_OF_STATUS, default=None,
                                                   return_dtype=pl.Enum(OUTCOMES))
                   .alias("outcome"))
        if self._in_order:
            of_row = self._statuses.select(outcome).to_series()
            rows = self._records["row"]
            lowest, highest = rows.min(), rows.max()
            if rows.len() == 0:
                return pl.Series("outcome", [], dtype=pl.Enum(OUTCOMES))
            if isinstance(lowest, int) and isinstance(highest, int) and lowest >= 1 \
                    and highest <= self._statuses.height:
                return of_row.gather(rows - 1).alias("outcome")
        joined = (self._records.select("row").with_row_index("_order")
                  .join(self._statuses.select("row", outcome), on="row", how="left")
                  .sort("_order"))
        return joined["outcome"]

    # -- views -------------------------------------------------------------------

    @property
    def status_rows(self) -> dict[str, int]:
        """status -> input rows (every status, zero where absent)."""
        counts = {s: 0 for s in STATUSES}
        for status, n in self._statuses.group_by("status").len().iter_rows():
            counts[status] = n
        return counts

    @property
    def calls(self) -> pl.DataFrame:
        """Every canonical record in the report's schema (see the module docstring).
        The string columns are shared with ``records``, never copied."""
        return self._records.select("service", "calling", "called", "start", "charge") \
            .with_columns(self._outcome)

    def outcome_count(self, outcome: str) -> int:
        """Canonical records with this outcome."""
        return int((self._outcome == outcome).sum())

    def disputed_pair_ids(self) -> int | None:
        """Distinct pair ids among disputed rows; None when some disputed row has none."""
        disputed = self._statuses.filter(pl.col("status") == "disputed")
        if disputed["pair_id"].null_count():
            return None
        return disputed["pair_id"].n_unique()

    def disclosed(self) -> Disclosed:
        disputed = self._statuses.filter(pl.col("status") == "disputed")
        any_diff = pl.any_horizontal(pl.col(c).is_not_null() for c in DIFF_COLUMNS)
        return Disclosed(
            rows_with_reasons=int(disputed["reasons"].is_not_null().sum()),
            rows_with_differences=int(self._statuses.select(any_diff.sum()).item() or 0),
        )

    def worklist(self, outcome: str, limit: int | None = None) -> pl.DataFrame:
        """The disputed or unmatched calls, largest charge first (then by row), at most
        ``limit`` of them; in the report's worklist schema (module docstring)."""
        if outcome not in WORKLIST_OUTCOMES:
            raise ValueError(f"worklist outcome: expected one of {WORKLIST_OUTCOMES}, "
                             f"found {outcome!r}")
        chosen = (self._records.select("row", "charge")
                  .with_row_index("_index").with_columns(self._outcome)
                  .filter(pl.col("outcome") == outcome)
                  .sort(["charge", "row"], descending=[True, False]))
        if limit is not None:
            chosen = chosen.head(max(0, limit))
        index = chosen["_index"]
        calls = self._records[index.to_numpy()].select(
            "unit", "row", "record_id", "service", "calling", "called", "start", "duration_s",
            "volume_kb", "charge", "rated_charge", "parts")
        status_columns = ["pair_id", "reasons", *DIFF_COLUMNS]
        first = self._status_of_rows(calls["row"], status_columns)
        if outcome != "disputed":
            # an unmatched record has no pair: nothing of records.parquet beyond its status
            first = first.with_columns(
                pl.lit(None, dtype=first.schema[c]).alias(c) for c in status_columns)
        merged = self._merged_rows(calls.filter(pl.col("parts") > 1)["unit"])
        return (pl.concat([calls, first], how="horizontal")
                .join(merged, on="unit", how="left", maintain_order="left")
                .select("row", "merged_rows", "record_id", "pair_id", "service", "calling",
                        "called", "start", "duration_s", "volume_kb", "charge", "rated_charge",
                        "reasons", *DIFF_COLUMNS))

    def record_ids(self, rows: pl.Series) -> pl.DataFrame:
        """``row``, ``record_id`` of the given input rows (records.parquet's ids)."""
        return self._status_of_rows(rows, ["row", "record_id"])

    def input_mismatch(self) -> tuple[int, str, str, str] | None:
        """Whether the ingest frames are of the file records.parquet was made from: the
        first row where they disagree, as (row, column, records.parquet's value, the
        ingest value), or None when the row count, every row's record id and every
        row's status (ingest's ``ok`` for a matched, disputed or unmatched row) agree."""
        ours, theirs = self._statuses.height, self._rows.height
        if ours != theirs:
            return (min(ours, theirs) + 1, "row", f"{ours:,} input rows",
                    f"{theirs:,} input rows")
        joined = (self._statuses.select(
                      "row", "record_id",
                      pl.col("status").replace_strict(_INGEST_STATUS, default=None)
                      .alias("expected_status"))
                  .join(self._rows.select("row", pl.col("record_id").alias("ingest_record_id"),
                                          pl.col("status").alias("ingest_status")),
                        on="row", how="full", coalesce=True)
                  .sort("row"))
        differs = joined.filter(
            pl.col("record_id").ne_missing(pl.col("ingest_record_id"))
            | pl.col("expected_status").ne_missing(pl.col("ingest_status")))
        if not differs.height:
            return None
        first = differs.row(0, named=True)
        if first["record_id"] != first["ingest_record_id"]:
            return (first["row"], "record_id", repr(first["record_id"]),
                    repr(first["ingest_record_id"]))
        return (first["row"], "status", f"ingest status {first['expected_status']!r}",
                repr(first["ingest_status"]))

    def _merged_rows(self, units: pl.Series) -> pl.DataFrame:
        """unit -> its input rows joined with ';', for the given (merged) units."""
        if units.len() == 0:
            return pl.DataFrame(schema={"unit": pl.Int64, "merged_rows": pl.String})
        return (self._rows.filter(pl.col("unit").is_in(units.implode()))
                .sort("row")
                .group_by("unit")
                .agg(pl.col("row").cast(pl.String).str.join(";").alias("merged_rows")))

    def invalid_rows(self, limit: int | None = None) -> pl.DataFrame:
        """The invalid input rows by row number, at most ``limit`` of them (module
        docstring)."""
        invalid = _first_invalid(self._statuses.lazy(), limit).collect()
        return _with_messages(invalid, self._quarantine)

    def invalid_by_reason(self, first_rows: int) -> pl.DataFrame:
        """Invalid rows per reason, most frequent first (then by reason): ``reason``,
        ``rows`` (the count) and ``first_rows`` (the lowest ``first_rows`` row numbers,
        a list)."""
        return _invalid_by_reason(self._statuses.lazy(), first_rows).collect()


def _first_invalid(statuses: pl.LazyFrame, limit: int | None) -> pl.LazyFrame:
    invalid = (statuses.filter(pl.col("status") == "invalid")
               .select("row", "record_id", pl.col("reasons").alias("reason"))
               .sort("row"))
    return invalid if limit is None else invalid.head(max(0, limit))


def _with_messages(invalid: pl.DataFrame, quarantine: pl.DataFrame | None) -> pl.DataFrame:
    """The invalid list's code and column (from the reason) and quarantine message."""
    parts = pl.col("reason").str.split_exact(":", 1)
    invalid = invalid.with_columns(
        parts.struct.field("field_0").alias("code"),
        parts.struct.field("field_1").alias("column"))
    if quarantine is None:
        return invalid.with_columns(pl.lit(None, dtype=pl.String).alias("message"))
    messages = quarantine.unique("row", keep="first", maintain_order=True)
    return invalid.join(messages, on="row", how="left", maintain_order="left")


def _invalid_by_reason(statuses: pl.LazyFrame, first_rows: int) -> pl.LazyFrame:
    return (statuses.filter(pl.col("status") == "invalid")
            .select("row", pl.col("reasons").fill_null("").alias("reason"))
            .group_by("reason")
            .agg(pl.len().alias("rows"), pl.col("row").sort().head(first_rows)
                 .alias("first_rows"))
            .sort(["rows", "reason"], descending=[True, False]))


class StatusFile:
    """The whole-file views of a party's records.parquet (and quarantine.parquet), read
    lazily with polars' streaming engine: memory bounded by what a view returns (its
    invalid rows, its disputed rows), never the whole file.  With :class:`PartyFrames`
    over each bucket for the views of the calls, the report of a job of any size
    (``engine.report.write_bucketed_report``)."""

    def __init__(self, records_path: str | Path, quarantine_path: str | Path | None = None):
        self._path = Path(records_path)
        self._quarantine_path = None if quarantine_path is None else Path(quarantine_path)
        try:
            schema = pl.read_parquet_schema(self._path)
        except (OSError, pl.exceptions.ComputeError) as exc:
            raise ReportInputError(f"cannot read the file: {exc}", file=str(self._path)) from None
        empty = pl.DataFrame(schema=schema)
        _conform(empty, "records.parquet", _STATUS_COLUMNS, _STATUS_OPTIONAL)  # names, dtypes
        self._columns = [c for c in (*_STATUS_COLUMNS, *_STATUS_OPTIONAL) if c in schema]

    def _scan(self) -> pl.LazyFrame:
        frame = pl.scan_parquet(self._path).select(self._columns)
        missing = [pl.lit(None, dtype=t).alias(c) for c, t in _STATUS_OPTIONAL.items()
                   if c not in self._columns]
        return frame.with_columns(missing) if missing else frame

    def _collect(self, query: pl.LazyFrame) -> pl.DataFrame:
        return query.collect(engine="streaming")

    @property
    def status_rows(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        found = self._collect(self._scan().group_by("status").agg(
            pl.len().alias("n"), pl.col("row").min().alias("first")))
        for status, n, first in found.iter_rows():
            if status not in counts:
                raise ReportInputError("unknown status", file="records.parquet", row=first,
                                       column="status", expected=" | ".join(STATUSES),
                                       found=repr(status))
            counts[status] = n
        return counts

    def disputed_pair_ids(self) -> int | None:
        disputed = self._collect(self._scan().filter(pl.col("status") == "disputed")
                                 .select("pair_id"))
        if disputed["pair_id"].null_count():
            return None
        return disputed["pair_id"].n_unique()

    def disclosed(self) -> Disclosed:
        any_diff = pl.any_horizontal(pl.col(c).is_not_null() for c in DIFF_COLUMNS)
        with_reasons = ((pl.col("status") == "disputed") & pl.col("reasons").is_not_null())
        counts = self._collect(self._scan().select(
            with_reasons.sum().alias("reasons"), any_diff.sum().alias("diffs"))).row(0)
        return Disclosed(rows_with_reasons=int(counts[0] or 0),
                         rows_with_differences=int(counts[1] or 0))

    def _invalid(self) -> pl.LazyFrame:
        """The invalid rows (a share of the file bounded by the circuit breaker), read
        with the streaming engine; what the views do with them runs in memory."""
        return self._collect(self._scan().filter(pl.col("status") == "invalid")
                             .select("row", "record_id", "status", "reasons")).lazy()

    def invalid_rows(self, limit: int | None = None) -> pl.DataFrame:
        invalid = _first_invalid(self._invalid(), limit).collect()
        quarantine = None
        if self._quarantine_path is not None and self._quarantine_path.exists():
            quarantine = self._collect(pl.scan_parquet(self._quarantine_path)
                                       .filter(pl.col("row").is_in(invalid["row"].implode()))
                                       .select("row", "message"))
        return _with_messages(invalid, quarantine)

    def invalid_by_reason(self, first_rows: int) -> pl.DataFrame:
        return _invalid_by_reason(self._invalid(), first_rows).collect()

    def record_ids(self, rows: pl.Series) -> pl.DataFrame:
        return self._collect(self._scan().filter(pl.col("row").is_in(rows.implode()))
                             .select("row", "record_id"))


__all__ = ["DIFF_COLUMNS", "OUTCOMES", "STATUSES", "WORKLIST_OUTCOMES", "Disclosed",
           "PartyFrames", "ReportInputError", "StatusFile"]
