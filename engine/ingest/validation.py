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
    parts: list[pl.Expr]
    """Helper columns to add first; the expressions below refer to them by name."""
    missing: pl.Expr
    wrong_type: pl.Expr
    negative: pl.Expr
    oversize: pl.Expr
    value: pl.Expr
    """Int64 where the value is an integer in [0, MAX_INTEGER], else null."""


def _integer_column(name: str, dtype: pl.DataType) -> _IntegerColumn:
    col = pl.col(name)
    parsed_name, is_int_name = f"_{name}_parsed", f"_{name}_is_int"
    parsed, is_int = pl.col(parsed_name), pl.col(is_int_name)
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        text = col.cast(pl.String)
        parts = [text.str.contains(INTEGER_PATTERN).fill_null(False).alias(is_int_name),
                 text.cast(pl.Int64, strict=False).alias(parsed_name)]
        missing = text.is_null() | (text == "")
        minus = text.str.starts_with("-")
        negative = is_int & ((parsed < 0) | (parsed.is_null() & minus))
        oversize = is_int & ((parsed > S.MAX_INTEGER) | (parsed.is_null() & ~minus))
        wrong_type = ~missing & ~is_int
    elif _is_integer_dtype(dtype) or (isinstance(dtype, pl.Decimal) and dtype.scale == 0):
        # null where beyond Int64 (a large UInt64)
        parts = [col.cast(pl.Int64, strict=False).alias(parsed_name)]
        missing = col.is_null()
        negative = parsed < 0
        oversize = (parsed > S.MAX_INTEGER) | (col.is_not_null() & parsed.is_null())
        wrong_type = pl.lit(False)
    else:  # float, boolean, date, …: never an integer column
        parts = [pl.lit(None, pl.Int64).alias(parsed_name)]
        missing = col.is_null()
        wrong_type = col.is_not_null()
        negative = oversize = pl.lit(False)
    fail = missing | wrong_type | negative | oversize
    return _IntegerColumn(
        parts=parts, missing=missing, wrong_type=wrong_type, negative=negative.fill_null(False),
        oversize=oversize.fill_null(False),
        value=pl.when(~fail.fill_null(True)).then(parsed),
    )


@dataclass(frozen=True)
class _TimeColumn:
    parts: list[pl.Expr]
    """Helper columns to add first (see :class:`ParsedTimestamps`)."""
    missing: pl.Expr
    malformed: pl.Expr
    missing_offset: pl.Expr
    epoch_s: pl.Expr


def _time_column(name: str, dtype: pl.DataType, default_offset_s: int | None) -> _TimeColumn:
    col = pl.col(name)
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        text = col.cast(pl.String)
        parsed = parse_iso_timestamps(text, default_offset_s)
        return _TimeColumn(parts=parsed.parts, missing=text.is_null() | (text == ""),
                           malformed=parsed.malformed, missing_offset=parsed.missing_offset,
                           epoch_s=parsed.epoch_s)
    if isinstance(dtype, pl.Datetime):
        seconds = col.dt.epoch("s")
        in_range = (seconds >= MIN_EPOCH_S) & (seconds <= MAX_EPOCH_S)
        if dtype.time_zone is not None:
            return _TimeColumn(parts=[], missing=col.is_null(),
                               malformed=col.is_not_null() & ~in_range,
                               missing_offset=pl.lit(False),
                               epoch_s=pl.when(in_range).then(seconds))
        # naive: a wall-clock time without an offset
        if default_offset_s is None:
            return _TimeColumn(parts=[], missing=col.is_null(),
                               malformed=col.is_not_null() & ~in_range,
                               missing_offset=col.is_not_null() & in_range,
                               epoch_s=pl.lit(None, pl.Int64))
        return _TimeColumn(parts=[], missing=col.is_null(),
                           malformed=col.is_not_null() & ~in_range,
                           missing_offset=pl.lit(False),
                           epoch_s=pl.when(in_range).then(seconds - default_offset_s))
    return _TimeColumn(parts=[], missing=col.is_null(), malformed=col.is_not_null(),
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
    n = frame.height

    # Phase 1: parse each column once (regular expressions, casts, strptime).
    undecodable = (raw.undecodable if raw.undecodable is not None
                   else pl.Series("undecodable", [None] * n, dtype=pl.String))
    extra_fields = (raw.field_count.is_not_null() if raw.field_count is not None
                    else pl.Series("extra", [False] * n, dtype=pl.Boolean))
    work = frame.with_columns(
        *start.parts,
        *(part for name in S.INTEGER_COLUMNS for part in integers[name].parts),
        record_id.text.alias("_record_id"),
        service.text.replace_strict(S.SERVICE_CODE, default=None, return_dtype=pl.UInt8)
        .alias("_service"),
        calling.text.str.contains(E164_PATTERN).fill_null(False).alias("_calling_ok"),
        called.text.str.contains(E164_PATTERN).fill_null(False).alias("_called_ok"),
        calling.text.str.strip_prefix("+").alias("_calling"),
        called.text.str.strip_prefix("+").alias("_called"),
        trunk_group.text.alias("_trunk_group"),
        undecodable.alias("_undecodable"),
        extra_fields.alias("_extra_fields"),
    )

    # Phase 2: normalised values and one flag per check.
    c = pl.col
    flag_of: dict[tuple[str, str | None], pl.Expr] = {
        (S.WRONG_FIELD_COUNT, None): c("_extra_fields"),
        (S.UNDECODABLE_BYTES, None): c("_undecodable").is_not_null(),
        (S.MISSING_VALUE, "record_id"): record_id.missing,
        (S.WRONG_TYPE, "record_id"): record_id.wrong_type,
        (S.OVERSIZE_FIELD, "record_id"): c("_record_id").str.len_chars() > S.MAX_RECORD_ID_CHARS,
        (S.DUPLICATE_RECORD_ID, "record_id"):
            ~record_id.missing & ~c("_record_id").is_first_distinct(),
        (S.MISSING_VALUE, "service"): service.missing,
        (S.WRONG_TYPE, "service"): service.wrong_type,
        (S.UNKNOWN_SERVICE, "service"): c("_service").is_null(),
        (S.MISSING_VALUE, "calling"): calling.missing,
        (S.WRONG_TYPE, "calling"): calling.wrong_type,
        (S.MALFORMED_NUMBER, "calling"): ~c("_calling_ok"),
        (S.MISSING_VALUE, "called"): called.missing,
        (S.WRONG_TYPE, "called"): called.wrong_type,
        (S.MALFORMED_NUMBER, "called"): ~c("_called_ok"),
        (S.MISSING_VALUE, "start_time"): start.missing,
        (S.MALFORMED_TIMESTAMP, "start_time"): start.malformed,
        (S.MISSING_UTC_OFFSET, "start_time"): start.missing_offset,
        (S.MISSING_VALUE, "trunk_group"): trunk_group.missing,
        (S.WRONG_TYPE, "trunk_group"): trunk_group.wrong_type,
        (S.OVERSIZE_FIELD, "trunk_group"):
            c("_trunk_group").str.len_chars() > S.MAX_TRUNK_GROUP_CHARS,
        (S.INCONSISTENT_SERVICE, "duration_s"):
            (c("_service") == S.SMS) & (integers["duration_s"].value != 0),
        (S.INCONSISTENT_SERVICE, "volume_kb"):
            (c("_service") != S.DATA) & (integers["volume_kb"].value != 0),
    }
    for name in S.INTEGER_COLUMNS:
        flag_of[(S.MISSING_VALUE, name)] = integers[name].missing
        flag_of[(S.WRONG_TYPE, name)] = integers[name].wrong_type
        flag_of[(S.NEGATIVE_VALUE, name)] = integers[name].negative
        flag_of[(S.OVERSIZE_FIELD, name)] = integers[name].oversize
    # One small integer per column: the index of its first failed check (checks are
    # ordered column by column), then the smallest over the columns is the row's.
    per_column: dict[str, list[int]] = {}
    for index, check in enumerate(CHECKS):
        per_column.setdefault(check.column if check.column is not None else f"#{index}",
                              []).append(index)
    firsts = []
    for indices in per_column.values():
        chain = None
        for index in indices:
            check = CHECKS[index]
            condition = flag_of[(check.code, check.column)].fill_null(False)
            value = pl.lit(index, pl.UInt8)
            chain = pl.when(condition).then(value) if chain is None \
                else chain.when(condition).then(value)
        firsts.append(chain)
    out = work.select(
        pl.int_range(raw.first_row, raw.first_row + n, dtype=pl.Int64).alias("row"),
        c("_record_id").alias("record_id"),
        c("_service").alias("service"),
        c("_calling").alias("calling"),
        c("_called").alias("called"),
        start.epoch_s.alias("start"),
        *(integers[name].value.alias(name) for name in S.INTEGER_COLUMNS),
        c("_trunk_group").alias("trunk_group"),
        c("_undecodable").alias("undecodable_column"),
        pl.min_horizontal(firsts).alias("failed"),
    )
    return Validation(frame=out)
