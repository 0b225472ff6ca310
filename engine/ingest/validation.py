"""Row validation and normalisation (docs/records.md "Input" and "Invalid rows").

Every check is a vectorised polars expression over the whole file.  The checks
form one ordered list (:data:`CHECKS`); a row's reason is the first check it fails,
which realises "the first failing column, left to right" (columns in the order of
docs/records.md, whatever the file's order), and inside a column: missing, then
type or form, then sign, then size, then consistency with other columns.  Two
row-level checks come before all columns: a CSV row with more fields than the
header, and bytes that are not UTF-8.

A Parquet file is held to the same rules as a CSV file, with its types mapped as
follows: integer columns may have any integer type or hold integer text; a float or
boolean is ``wrong_type`` (money is never a float); ``start_time`` should be a
timestamp with a time zone (a naive one is read like a CSV time without an offset;
text is parsed like CSV); string columns may hold strings or integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from engine.ingest import schema as S
from engine.ingest.reading import RawInput
from engine.ingest.timestamps import MAX_EPOCH_S, MIN_EPOCH_S, parse_iso_timestamps
from engine.rules import Rules

E164_PATTERN = r"^\+?[1-9][0-9]{5,14}$"
INTEGER_PATTERN = r"^-?[0-9]+$"


@dataclass(frozen=True)
class Check:
    code: str
    column: str | None
    """None for the row-level checks (the column is per row or there is none)."""

    @property
    def reason(self) -> str:
        return self.code if self.column is None else f"{self.code}:{self.column}"


def _column_checks(column: str) -> list[Check]:
    codes: list[str]
    if column == "record_id":
        codes = [S.MISSING_VALUE, S.WRONG_TYPE, S.OVERSIZE_FIELD, S.DUPLICATE_RECORD_ID]
    elif column == "service":
        codes = [S.MISSING_VALUE, S.WRONG_TYPE, S.UNKNOWN_SERVICE]
    elif column in S.NUMBER_COLUMNS:
        codes = [S.MISSING_VALUE, S.WRONG_TYPE, S.MALFORMED_NUMBER]
    elif column == "start_time":
        codes = [S.MISSING_VALUE, S.MALFORMED_TIMESTAMP, S.MISSING_UTC_OFFSET]
    elif column == "trunk_group":
        codes = [S.MISSING_VALUE, S.WRONG_TYPE, S.OVERSIZE_FIELD]
    elif column in ("duration_s", "volume_kb"):
        codes = [S.MISSING_VALUE, S.WRONG_TYPE, S.NEGATIVE_VALUE, S.OVERSIZE_FIELD,
                 S.INCONSISTENT_SERVICE]
    else:
        codes = [S.MISSING_VALUE, S.WRONG_TYPE, S.NEGATIVE_VALUE, S.OVERSIZE_FIELD]
    return [Check(code, column) for code in codes]


#: All checks in priority order; a row's failure is the index of its first failed check.
CHECKS: tuple[Check, ...] = (
    Check(S.WRONG_FIELD_COUNT, None),
    Check(S.UNDECODABLE_BYTES, None),
    *(check for column in S.INPUT_COLUMNS for check in _column_checks(column)),
)
CHECK_INDEX: dict[tuple[str, str | None], int] = {
    (c.code, c.column): i for i, c in enumerate(CHECKS)
}


@dataclass(frozen=True)
class Validation:
    frame: pl.DataFrame
    """One row per input row, in input order: ``row``, ``record_id`` (as read), the
    normalised values (``service`` UInt8, ``calling``/``called`` digits, ``start``
    epoch seconds, integers as Int64, ``trunk_group``), ``failed`` (UInt8 index into
    :data:`CHECKS`, null for a valid row) and ``undecodable_column``."""


# ---------------------------------------------------------------------------
# per-dtype views of a column


def _is_integer_dtype(dtype: pl.DataType) -> bool:
    return dtype.is_integer()


def _text_view(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """The column as String, or None if its Parquet type cannot hold text."""
    if dtype == pl.String:
        return pl.col(name)
    if isinstance(dtype, (pl.Categorical, pl.Enum)) or _is_integer_dtype(dtype):
        return pl.col(name).cast(pl.String)
    return None


@dataclass(frozen=True)
class _StringColumn:
    missing: pl.Expr
    wrong_type: pl.Expr
    text: pl.Expr


def _string_column(name: str, dtype: pl.DataType) -> _StringColumn:
    text = _text_view(name, dtype)
    if text is None:
        return _StringColumn(missing=pl.col(name).is_null(), wrong_type=pl.col(name).is_not_null(),
                             text=pl.lit(None, pl.String))
    return _StringColumn(missing=text.is_null() | (text == ""), wrong_type=pl.lit(False), text=text)


@dataclass(frozen=True)
class _IntegerColumn:
    missing: pl.Expr
    wrong_type: pl.Expr
    negative: pl.Expr
    oversize: pl.Expr
    value: pl.Expr
    """Int64 where the value is an integer in [0, MAX_INTEGER], else null."""


def _integer_column(name: str, dtype: pl.DataType) -> _IntegerColumn:
    col = pl.col(name)
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        text = col.cast(pl.String)
        missing = text.is_null() | (text == "")
        is_int = text.str.contains(INTEGER_PATTERN).fill_null(False)
        parsed = text.cast(pl.Int64, strict=False)
        minus = text.str.starts_with("-")
        negative = is_int & ((parsed < 0) | (parsed.is_null() & minus))
        oversize = is_int & ((parsed > S.MAX_INTEGER) | (parsed.is_null() & ~minus))
        wrong_type = ~missing & ~is_int
    elif _is_integer_dtype(dtype) or (isinstance(dtype, pl.Decimal) and dtype.scale == 0):
        missing = col.is_null()
        parsed = col.cast(pl.Int64, strict=False)  # null where beyond Int64 (large UInt64)
        negative = parsed < 0
        oversize = (parsed > S.MAX_INTEGER) | (col.is_not_null() & parsed.is_null())
        wrong_type = pl.lit(False)
    else:  # float, boolean, date, …: never an integer column
        missing = col.is_null()
        wrong_type = col.is_not_null()
        parsed = pl.lit(None, pl.Int64)
        negative = oversize = pl.lit(False)
    fail = missing | wrong_type | negative | oversize
    return _IntegerColumn(
        missing=missing, wrong_type=wrong_type, negative=negative.fill_null(False),
        oversize=oversize.fill_null(False),
        value=pl.when(~fail.fill_null(True)).then(parsed),
    )


@dataclass(frozen=True)
class _TimeColumn:
    missing: pl.Expr
    malformed: pl.Expr
    missing_offset: pl.Expr
    epoch_s: pl.Expr


def _time_column(name: str, dtype: pl.DataType, default_offset_s: int | None) -> _TimeColumn:
    col = pl.col(name)
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        text = col.cast(pl.String)
        parsed = parse_iso_timestamps(text, default_offset_s)
        return _TimeColumn(missing=text.is_null() | (text == ""), malformed=parsed.malformed,
                           missing_offset=parsed.missing_offset, epoch_s=parsed.epoch_s)
    if isinstance(dtype, pl.Datetime):
        seconds = col.dt.epoch("s")
        in_range = (seconds >= MIN_EPOCH_S) & (seconds <= MAX_EPOCH_S)
        if dtype.time_zone is not None:
            return _TimeColumn(missing=col.is_null(), malformed=col.is_not_null() & ~in_range,
                               missing_offset=pl.lit(False),
                               epoch_s=pl.when(in_range).then(seconds))
        # naive: a wall-clock time without an offset
        if default_offset_s is None:
            return _TimeColumn(missing=col.is_null(), malformed=col.is_not_null() & ~in_range,
                               missing_offset=col.is_not_null() & in_range,
                               epoch_s=pl.lit(None, pl.Int64))
        return _TimeColumn(missing=col.is_null(), malformed=col.is_not_null() & ~in_range,
                           missing_offset=pl.lit(False),
                           epoch_s=pl.when(in_range).then(seconds - default_offset_s))
    return _TimeColumn(missing=col.is_null(), malformed=col.is_not_null(),
                       missing_offset=pl.lit(False), epoch_s=pl.lit(None, pl.Int64))


# ---------------------------------------------------------------------------


def validate(raw: RawInput, rules: Rules) -> Validation:
    """Check and normalise every row of ``raw``; see the module docstring."""
    frame = raw.frame
    dtypes = frame.schema
    record_id = _string_column("record_id", dtypes["record_id"])
    service = _string_column("service", dtypes["service"])
    calling = _string_column("calling", dtypes["calling"])
    called = _string_column("called", dtypes["called"])
    trunk_group = _string_column("trunk_group", dtypes["trunk_group"])
    start = _time_column("start_time", dtypes["start_time"], rules.default_utc_offset_s)
    integers = {name: _integer_column(name, dtypes[name]) for name in S.INTEGER_COLUMNS}

    # Phase 1: typed values and the flags that need them.
    service_code = service.text.replace_strict(
        S.SERVICE_CODE, default=None, return_dtype=pl.UInt8)
    undecodable = (raw.undecodable if raw.undecodable is not None
                   else pl.Series("undecodable", [None] * frame.height, dtype=pl.String))
    extra_fields = (raw.field_count.is_not_null() if raw.field_count is not None
                    else pl.Series("extra", [False] * frame.height, dtype=pl.Boolean))
    work = frame.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("row"),
        record_id.text.alias("record_id"),
        service_code.alias("service"),
        calling.text.str.strip_prefix("+").alias("calling"),
        called.text.str.strip_prefix("+").alias("called"),
        start.epoch_s.alias("start"),
        *(integers[n].value.alias(n) for n in S.INTEGER_COLUMNS),
        trunk_group.text.alias("trunk_group"),
        pl.lit(undecodable).alias("undecodable_column"),
        pl.lit(extra_fields).alias("_extra_fields"),
        # flags
        record_id.missing.alias("_id_missing"),
        record_id.wrong_type.alias("_id_wrong_type"),
        (record_id.text.str.len_chars() > S.MAX_RECORD_ID_CHARS).fill_null(False)
        .alias("_id_oversize"),
        (record_id.text.is_not_null() & (record_id.text != "")
         & ~record_id.text.is_first_distinct()).alias("_id_repeat"),
        service.missing.alias("_svc_missing"),
        service.wrong_type.alias("_svc_wrong_type"),
        service_code.is_null().alias("_svc_unknown"),
        calling.missing.alias("_calling_missing"),
        calling.wrong_type.alias("_calling_wrong_type"),
        (~calling.text.str.contains(E164_PATTERN)).fill_null(True).alias("_calling_malformed"),
        called.missing.alias("_called_missing"),
        called.wrong_type.alias("_called_wrong_type"),
        (~called.text.str.contains(E164_PATTERN)).fill_null(True).alias("_called_malformed"),
        start.missing.alias("_start_missing"),
        start.malformed.fill_null(True).alias("_start_malformed"),
        start.missing_offset.fill_null(False).alias("_start_no_offset"),
        *(flag.fill_null(False).alias(f"_{n}_{what}")
          for n in S.INTEGER_COLUMNS
          for what, flag in (("missing", integers[n].missing),
                             ("wrong_type", integers[n].wrong_type),
                             ("negative", integers[n].negative),
                             ("oversize", integers[n].oversize))),
        trunk_group.missing.alias("_tg_missing"),
        trunk_group.wrong_type.alias("_tg_wrong_type"),
        (trunk_group.text.str.len_chars() > S.MAX_TRUNK_GROUP_CHARS).fill_null(False)
        .alias("_tg_oversize"),
    )

    # Phase 2: the ordered checks.
    c = pl.col
    flag_of: dict[tuple[str, str | None], pl.Expr] = {
        (S.WRONG_FIELD_COUNT, None): c("_extra_fields"),
        (S.UNDECODABLE_BYTES, None): c("undecodable_column").is_not_null(),
        (S.MISSING_VALUE, "record_id"): c("_id_missing"),
        (S.WRONG_TYPE, "record_id"): c("_id_wrong_type"),
        (S.OVERSIZE_FIELD, "record_id"): c("_id_oversize"),
        (S.DUPLICATE_RECORD_ID, "record_id"): c("_id_repeat"),
        (S.MISSING_VALUE, "service"): c("_svc_missing"),
        (S.WRONG_TYPE, "service"): c("_svc_wrong_type"),
        (S.UNKNOWN_SERVICE, "service"): c("_svc_unknown"),
        (S.MISSING_VALUE, "calling"): c("_calling_missing"),
        (S.WRONG_TYPE, "calling"): c("_calling_wrong_type"),
        (S.MALFORMED_NUMBER, "calling"): c("_calling_malformed"),
        (S.MISSING_VALUE, "called"): c("_called_missing"),
        (S.WRONG_TYPE, "called"): c("_called_wrong_type"),
        (S.MALFORMED_NUMBER, "called"): c("_called_malformed"),
        (S.MISSING_VALUE, "start_time"): c("_start_missing"),
        (S.MALFORMED_TIMESTAMP, "start_time"): c("_start_malformed"),
        (S.MISSING_UTC_OFFSET, "start_time"): c("_start_no_offset"),
        (S.MISSING_VALUE, "trunk_group"): c("_tg_missing"),
        (S.WRONG_TYPE, "trunk_group"): c("_tg_wrong_type"),
        (S.OVERSIZE_FIELD, "trunk_group"): c("_tg_oversize"),
        (S.INCONSISTENT_SERVICE, "duration_s"):
            ((c("service") == S.SMS) & (c("duration_s") != 0)).fill_null(False),
        (S.INCONSISTENT_SERVICE, "volume_kb"):
            ((c("service") != S.DATA) & (c("volume_kb") != 0)).fill_null(False),
    }
    for n in S.INTEGER_COLUMNS:
        flag_of[(S.MISSING_VALUE, n)] = c(f"_{n}_missing")
        flag_of[(S.WRONG_TYPE, n)] = c(f"_{n}_wrong_type")
        flag_of[(S.NEGATIVE_VALUE, n)] = c(f"_{n}_negative")
        flag_of[(S.OVERSIZE_FIELD, n)] = c(f"_{n}_oversize")
    failed = pl.coalesce([
        pl.when(flag_of[(check.code, check.column)]).then(pl.lit(index, pl.UInt8))
        for index, check in enumerate(CHECKS)
    ])
    out = work.select(
        "row", "record_id", "service", "calling", "called", "start",
        *S.INTEGER_COLUMNS, "trunk_group", "undecodable_column",
        failed.alias("failed"),
    )
    return Validation(frame=out)
