"""Aggregation for the report: polars over the party's frames, small results out.

Everything heavy happens here, vectorised, so that rendering a report over 10^6
input rows costs a few joins and group-bys; the page and its charts are then built
from a :class:`ReportData` of at most a few hundred numbers (plus the first N
disputed rows).

Inputs (docs/records.md):

- ``statuses``: the frame written as ``records.parquet`` (one row per input row);
- ``records``: the canonical records from ingest (one per complete record or merged
  chain, with ``unit`` and the ``row`` of its first input row);
- ``rows``: the ingest row frame (input row -> ``unit``);
- ``rules``: for the rate classes (service x call type x time band) and the
  payer / payee operators, classified here with the same precedence as
  :meth:`engine.rules.Rules.operator_of`, ``call_type_of`` and ``time_band_of``
  but over whole columns.

Money stays in integer minor units (fen) throughout.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.errors import InputError
from engine.rules import SERVICES, Rules

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = (
    "matched_exact", "matched_tolerance", "disputed", "unmatched",
    "duplicate", "invalid", "excluded",
)
"""Every status of records.parquet, in the order the report shows them."""

REASON_CODES: tuple[str, ...] = (
    "start_time", "duration", "charge_rate_mismatch", "charge_rounding", "charge_unexplained",
)
"""Reason codes of a disputed pair (docs/matching.md), in their documented order."""

OUTCOMES: tuple[str, ...] = ("agreed", "disputed", "unmatched")
"""What happened to a considered record: agreed = matched_exact or matched_tolerance."""

_OUTCOME_OF_STATUS: dict[str, str] = {
    "matched_exact": "agreed", "matched_tolerance": "agreed",
    "disputed": "disputed", "unmatched": "unmatched",
}

DIFF_COLUMNS: tuple[str, ...] = ("diff_start_s", "diff_duration_s", "diff_charge",
                                 "diff_rated_charge")

_SECONDS_PER_DAY = 86_400
MAX_DAYS = 100
"""At most this many day bars; records outside the shown days go to 'before' / 'after'."""


class ReportInputError(InputError):
    """A frame or the summary given to the report does not have the documented shape."""


# ---------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class ClassAmounts:
    """Local charges and record counts of one group (a rate class or an operator pair)."""

    key: tuple[Any, ...]
    charge: Mapping[str, int]
    """outcome (agreed / disputed / unmatched) -> Σ local charge, minor units."""
    records: Mapping[str, int]
    """outcome -> number of canonical records."""


@dataclass(frozen=True)
class DayVolume:
    label: str
    """ISO date of the local day, or 'before' / 'after' for records outside the shown days."""
    day: dt.date | None
    in_period: bool
    records: Mapping[str, int]
    """outcome -> canonical records whose local start falls on this day."""
    charge: Mapping[str, int]
    """outcome -> Σ local charge of those records."""


@dataclass(frozen=True)
class ReasonAmounts:
    code: str
    pairs: int
    local_charge: int
    remote_charge: int


@dataclass(frozen=True)
class Check:
    """One consistency check between the frames and summary.json."""

    what: str
    expected: int
    """The value in summary.json."""
    found: int
    """The value computed from the frames."""

    @property
    def ok(self) -> bool:
        return self.expected == self.found


@dataclass(frozen=True)
class ReportData:
    status_rows: Mapping[str, int]
    """status -> input rows (every status, zero where absent)."""
    reasons: tuple[ReasonAmounts, ...]
    """per reason code, from summary.json (disclosed under every policy)."""
    rate_classes: tuple[ClassAmounts, ...]
    """key = (service, call type, time band)."""
    operator_pairs: tuple[ClassAmounts, ...]
    """key = (payer, payee)."""
    days: tuple[DayVolume, ...]
    period_days: tuple[dt.date, dt.date] | None
    """First and last local day of the job's period, when the period could be read."""
    disputed_total_rows: int
    disputed_rows: pl.DataFrame
    """The first disputed input rows (by row number) with their canonical record's values."""
    checks: tuple[Check, ...]


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
_ROW_COLUMNS: dict[str, pl.DataType] = {"row": pl.Int64(), "unit": pl.Int64()}


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
# classification (vectorised Rules.operator_of / call_type_of / time_band_of)


def longest_prefix(column: str, table: Iterable[tuple[str, str]], default: str) -> pl.Expr:
    """The label of the longest item of ``table`` (prefix, label) that ``column``
    starts with, else ``default``.  Among equal prefixes the first in ``table`` wins,
    as in :meth:`Rules.operator_of`.  One hash lookup per distinct prefix length."""
    by_length: dict[int, dict[str, str]] = {}
    for prefix, label in table:
        by_length.setdefault(len(prefix), {}).setdefault(prefix, label)
    lookups = [
        pl.col(column).str.slice(0, length).replace_strict(
            mapping, default=None, return_dtype=pl.String)
        for length, mapping in sorted(by_length.items(), reverse=True)
    ]
    return pl.coalesce(*lookups, pl.lit(default, dtype=pl.String))


def classify(records: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """``records`` with the string columns ``payer``, ``payee``,
    ``call_type``, ``time_band`` added (the rate class of each record)."""
    operators = [(p, op.id) for op in rules.operators for p in op.prefixes]
    call_types = [(p, ct.name) for ct in rules.call_types for p in ct.called_prefixes]
    minute = ((pl.col("start") + rules.timezone_offset_s) // 60) % 1440
    band: Any = None  # when/then chain: the first band containing the minute
    for tb in rules.time_bands:
        if tb.start_minute < tb.end_minute:
            inside = (minute >= tb.start_minute) & (minute < tb.end_minute)
        else:
            inside = (minute >= tb.start_minute) | (minute < tb.end_minute)
        band = (pl.when(inside) if band is None else band.when(inside)).then(
            pl.lit(tb.name, dtype=pl.String))
    return records.with_columns(
        longest_prefix("calling", operators, rules.unknown_operator).alias("payer"),
        longest_prefix("called", operators, rules.unknown_operator).alias("payee"),
        longest_prefix("called", call_types, rules.default_call_type).alias("call_type"),
        band.otherwise(pl.lit(None, dtype=pl.String)).alias("time_band"),
    )


# ---------------------------------------------------------------------------
# period and days


_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
_DAY_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})$")
_RANGE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*(?:/|\.\.)\s*(\d{4}-\d{2}-\d{2})$")


def period_days(period: Any) -> tuple[dt.date, dt.date] | None:
    """First and last day of a period written ``YYYY-MM``, ``YYYY-MM-DD`` or
    ``YYYY-MM-DD/YYYY-MM-DD`` (also ``..``); None for anything else."""
    if not isinstance(period, str):
        return None
    text = period.strip()
    try:
        if match := _MONTH_RE.match(text):
            year, month = int(match.group(1)), int(match.group(2))
            days_in_month = calendar.monthrange(year, month)[1]
            return dt.date(year, month, 1), dt.date(year, month, days_in_month)
        if match := _DAY_RE.match(text):
            day = dt.date.fromisoformat(match.group(1))
            return day, day
        if match := _RANGE_RE.match(text):
            first = dt.date.fromisoformat(match.group(1))
            last = dt.date.fromisoformat(match.group(2))
            return (first, last) if first <= last else None
    except ValueError:
        return None
    return None


_EPOCH = dt.date(1970, 1, 1)


def _day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def _days(considered: pl.DataFrame, rules: Rules,
          period: tuple[dt.date, dt.date] | None) -> tuple[DayVolume, ...]:
    per_day = (
        considered
        .group_by(((pl.col("start") + rules.timezone_offset_s) // _SECONDS_PER_DAY).alias("day"),
                  "outcome")
        .agg(pl.len().alias("records"), pl.col("charge").sum().alias("charge"))
        .filter(pl.col("outcome").is_not_null())
    )
    if period is not None:
        first, last = _day_number(period[0]), _day_number(period[1])
        if last - first + 1 > MAX_DAYS:
            first = last - MAX_DAYS + 1
    elif per_day.height:
        first, last = int(per_day["day"].min()), int(per_day["day"].max())  # type: ignore[arg-type]
        if last - first + 1 > MAX_DAYS:
            first = last - MAX_DAYS + 1
    else:
        return ()
    bucket = (pl.when(pl.col("day") < first).then(pl.lit(first - 1))
              .when(pl.col("day") > last).then(pl.lit(last + 1))
              .otherwise(pl.col("day")))
    totals = (per_day.group_by(bucket.alias("bucket"), "outcome")
              .agg(pl.col("records").sum(), pl.col("charge").sum()))
    table: dict[int, dict[str, tuple[int, int]]] = {}
    for bucket_day, outcome, n, charge in totals.iter_rows():
        table.setdefault(bucket_day, {})[outcome] = (n, charge)

    def volume(day_number: int, label: str | None, in_period: bool) -> DayVolume:
        cells = table.get(day_number, {})
        day = _EPOCH + dt.timedelta(days=day_number)
        return DayVolume(
            label=label or day.isoformat(), day=None if label else day, in_period=in_period,
            records={o: cells.get(o, (0, 0))[0] for o in OUTCOMES},
            charge={o: cells.get(o, (0, 0))[1] for o in OUTCOMES},
        )

    days = []
    if first - 1 in table:
        days.append(volume(first - 1, "before", False))
    for number in range(first, last + 1):
        in_period = period is None or (
            _day_number(period[0]) <= number <= _day_number(period[1]))
        days.append(volume(number, None, in_period))
    if last + 1 in table:
        days.append(volume(last + 1, "after", False))
    return tuple(days)


# ---------------------------------------------------------------------------
# the aggregation


def _considered(statuses: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """The canonical records with their ``outcome``: agreed, disputed, unmatched, or
    null for records that were not considered (excluded ones; the aggregations skip
    them).  Not filtered, so the big string columns are shared, never copied.

    A canonical record's status is its first row's (every row of a chain shares it,
    docs/records.md), found by position when records.parquet lists rows 1..n in
    order, as the job writes it, else by a join on ``row``."""
    n = statuses.height
    columns = records.select("row", "service", "calling", "called", "start", "charge")
    # an Enum (one byte per record, not a string): 10^7 records are grouped by it
    outcome = pl.col("status").replace_strict(_OUTCOME_OF_STATUS, default=None,
                                              return_dtype=pl.Enum(OUTCOMES)).alias("outcome")
    in_order = n > 0 and bool((statuses["row"] == pl.int_range(1, n + 1, eager=True)).all())
    lowest, highest = records["row"].min(), records["row"].max()
    if in_order and isinstance(lowest, int) and isinstance(highest, int) \
            and lowest >= 1 and highest <= n:
        of_row = statuses.select(outcome).to_series()
        return columns.with_columns(of_row.gather(columns["row"] - 1).alias("outcome"))
    repeated = statuses.filter(pl.col("row").is_duplicated())
    if repeated.height:
        raise ReportInputError("row listed twice", file="records.parquet",
                               row=repeated["row"][0], column="row",
                               expected="one line per input row", found="two or more")
    return columns.join(statuses.select("row", outcome), on="row", how="inner")


#: records classified at once: the four label columns and their prefix lookups of a
#: slice cost tens of megabytes, where the whole of 10^7 records would cost gigabytes
CLASSIFY_CHUNK_ROWS = 1 << 20
_CLASS_KEYS = ("service", "call_type", "time_band", "payer", "payee", "outcome")


def _by_class(considered: pl.DataFrame, rules: Rules, *,
              chunk_rows: int = CLASSIFY_CHUNK_ROWS) -> pl.DataFrame:
    """Records and charge per rate class, operator pair and outcome, classified and
    counted slice by slice (sums of per-slice sums)."""
    columns = considered.select("service", "calling", "called", "start", "charge", "outcome")
    partial = [
        classify(columns.slice(offset, chunk_rows).filter(pl.col("outcome").is_not_null()),
                 rules)
        .group_by(*_CLASS_KEYS)
        .agg(pl.len().cast(pl.Int64).alias("records"), pl.col("charge").sum().alias("charge"))
        for offset in range(0, max(columns.height, 1), chunk_rows)
    ]
    return (pl.concat(partial).group_by(*_CLASS_KEYS)
            .agg(pl.col("records").sum(), pl.col("charge").sum()))


def _group_amounts(frame: pl.DataFrame, keys: list[str]) -> tuple[ClassAmounts, ...]:
    grouped = (frame.group_by(*keys, "outcome")
               .agg(pl.col("records").sum(), pl.col("charge").sum())
               .sort(keys))
    table: dict[tuple[str, ...], tuple[dict[str, int], dict[str, int]]] = {}
    for row in grouped.iter_rows(named=True):
        key = tuple(row[k] for k in keys)
        charge, records = table.setdefault(key, ({o: 0 for o in OUTCOMES},
                                                 {o: 0 for o in OUTCOMES}))
        charge[row["outcome"]] = row["charge"]
        records[row["outcome"]] = row["records"]
    return tuple(ClassAmounts(key=k, charge=c, records=r) for k, (c, r) in table.items())


def _int(mapping: Any, key: str) -> int | None:
    if isinstance(mapping, Mapping):
        value = mapping.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _reasons(summary: Mapping[str, Any]) -> tuple[ReasonAmounts, ...]:
    given = summary.get("reasons") or {}
    if not isinstance(given, Mapping):
        raise ReportInputError("wrong type", file="summary.json", column="reasons",
                               expected="an object of reason code -> counts",
                               found=type(given).__name__)
    codes = list(REASON_CODES) + sorted(str(c) for c in given if c not in REASON_CODES)
    result = []
    for code in codes:
        entry = given.get(code, {})
        result.append(ReasonAmounts(
            code=code, pairs=_int(entry, "pairs") or 0,
            local_charge=_int(entry, "local_charge") or 0,
            remote_charge=_int(entry, "remote_charge") or 0,
        ))
    return tuple(result)


def aggregate(summary: Mapping[str, Any], statuses: pl.DataFrame, records: pl.DataFrame,
              rows: pl.DataFrame, rules: Rules, *, max_disputed_rows: int = 50) -> ReportData:
    """Everything the page shows, computed from the frames (and summary.json for what
    only the protocol knows: the counterparty's side and per-reason totals)."""
    statuses = _conform(statuses, "records.parquet", _STATUS_COLUMNS, _STATUS_OPTIONAL)
    records = _conform(records, "canonical records", _RECORD_COLUMNS)
    rows = _conform(rows, "ingest rows", _ROW_COLUMNS)
    _check_no_nulls(statuses, "records.parquet", ("row",))
    _check_statuses(statuses)
    _check_no_nulls(records, "canonical records",
                    ("unit", "row", "service", "calling", "called", "start", "charge"))
    _check_services(records)

    counted = statuses.group_by("status").len()
    status_rows = {s: 0 for s in STATUSES}
    for status, n in counted.iter_rows():
        status_rows[status] = n

    considered = _considered(statuses, records)
    by_class = _by_class(considered, rules)
    # sorted by service code: voice, sms, data, then call type and band by name
    rate_classes = tuple(
        ClassAmounts(key=(SERVICES[c.key[0]], c.key[1], c.key[2]), charge=c.charge,
                     records=c.records)
        for c in _group_amounts(by_class, ["service", "call_type", "time_band"]))
    operator_pairs = _group_amounts(by_class, ["payer", "payee"])

    period = period_days(summary.get("period"))
    days = _days(considered, rules, period)

    disputed = statuses.filter(pl.col("status") == "disputed")
    # filter the big frames down to the few rows needed before joining them
    first = disputed.sort("row").head(max(0, max_disputed_rows))
    units = rows.filter(pl.col("row").is_in(first["row"].implode())).select("row", "unit")
    details = records.filter(pl.col("unit").is_in(units["unit"].drop_nulls().implode())).select(
        "unit", "service", "start", "duration_s", "volume_kb", "charge")
    first_disputed = (first.join(units, on="row", how="left")
                      .join(details, on="unit", how="left").sort("row"))

    checks = _checks(summary, status_rows, by_class, disputed)
    for check in checks:
        if not check.ok:
            log.warning("report: %s: summary.json says %d, the frames give %d",
                        check.what, check.expected, check.found)
    return ReportData(
        status_rows=status_rows, reasons=_reasons(summary), rate_classes=rate_classes,
        operator_pairs=operator_pairs, days=days, period_days=period,
        disputed_total_rows=disputed.height, disputed_rows=first_disputed,
        checks=tuple(checks),
    )


def _checks(summary: Mapping[str, Any], status_rows: Mapping[str, int],
            by_class: pl.DataFrame, disputed: pl.DataFrame) -> list[Check]:
    """Compare summary.json with the frames wherever both say the same thing."""
    checks = []
    counts = summary.get("counts") or {}
    expected_rows = _int(counts, "records")
    if expected_rows is not None:
        checks.append(Check("input rows", expected_rows, sum(status_rows.values())))
    for status in STATUSES:
        key = "unmatched_local" if status == "unmatched" else status
        value = _int(counts, key)
        if value is not None:
            checks.append(Check(f"rows {status}", value, status_rows[status]))
    charge = dict(by_class.group_by("outcome").agg(pl.col("charge").sum()).iter_rows())
    totals = summary.get("totals") or {}
    for key, outcome in (("agreed_local_charge", "agreed"),
                         ("disputed_local_charge", "disputed"),
                         ("unmatched_local_charge", "unmatched")):
        value = _int(totals, key)
        if value is not None:
            checks.append(Check(f"{outcome} local charge", value, int(charge.get(outcome, 0))))
    value = _int(totals, "local_charge")
    if value is not None:
        checks.append(Check("local charge", value, int(sum(charge.values()))))
    pairs = summary.get("pairs") or {}
    value = _int(pairs, "disputed")
    if value is not None and disputed.height and disputed["pair_id"].null_count() == 0:
        checks.append(Check("disputed pairs", value, disputed["pair_id"].n_unique()))
    return checks
