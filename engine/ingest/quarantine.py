"""Quarantine entries: one per invalid row, with a human message, and writing them.

Messages are built only for the rows that failed, one vectorised expression per
kind of failure, so a file where every row is bad still costs no per-row Python.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from engine.errors import InputError
from engine.ingest import schema as S
from engine.ingest.reading import RawInput
from engine.ingest.validation import CHECKS

_FOUND_CHARS = 80

_EXPECTED: dict[str, str] = {
    "record_id": f"a string of 1-{S.MAX_RECORD_ID_CHARS} characters",
    "service": "voice | sms | data",
    "calling": "E.164 digits: an optional '+', then 6-15 digits, the first not 0",
    "called": "E.164 digits: an optional '+', then 6-15 digits, the first not 0",
    "start_time": "ISO-8601 YYYY-MM-DDTHH:MM:SS[.fff](+HH:MM|-HH:MM|Z)",
    "trunk_group": f"a string of 1-{S.MAX_TRUNK_GROUP_CHARS} characters",
    "duration_s": "an integer >= 0 (seconds)",
    "volume_kb": "an integer >= 0 (KB)",
    "part_seq": "an integer >= 0",
    "charge": "an integer >= 0 (minor units)",
}


def raw_text(raw: RawInput, rows: pl.Series | None = None) -> pl.DataFrame:
    """The input columns as text, as read (for messages and the quarantine file), of all
    rows or of the given 1-based ``rows``."""
    frame = raw.frame if rows is None else raw.frame[rows.to_numpy() - raw.first_row]
    return frame.select(
        pl.col(name).cast(pl.String) if frame.schema[name] != pl.String else pl.col(name)
        for name in S.INPUT_COLUMNS
    )


def _quoted(expr: pl.Expr) -> pl.Expr:
    """'value' (cut at 80 characters), or 'nothing' for a null."""
    cut = pl.when(expr.str.len_chars() > _FOUND_CHARS) \
        .then(expr.str.slice(0, _FOUND_CHARS) + "...").otherwise(expr)
    return pl.when(expr.is_null()).then(pl.lit("nothing")).otherwise(
        pl.concat_str([pl.lit("'"), cut, pl.lit("'")]))


def _message(code: str, column: str | None, raw: RawInput, n_fields: int) -> pl.Expr:
    """The message of one failure kind, over the frame built in :func:`validation_entries`."""
    if code == S.WRONG_FIELD_COUNT:
        return pl.format("the row has values beyond the header's {} columns (a non-empty "
                         "field {}); expected at most {} fields", pl.lit(n_fields),
                         pl.col("_field_count"), pl.lit(n_fields))
    if code == S.UNDECODABLE_BYTES:
        return pl.format("the row is not valid UTF-8: undecodable bytes in column '{}' "
                         "(read as {})", pl.col("_undecodable"), pl.col("_undecodable_value"))
    if column is None:  # pragma: no cover  (CHECKS gives every other code a column)
        raise ValueError(f"check {code} has no column")
    found = _quoted(pl.col(f"_raw_{column}"))
    dtype = raw.frame.schema[column]
    parquet_type = raw.format == "parquet" and dtype != pl.String
    expected = _EXPECTED[column]
    if code == S.MISSING_VALUE:
        return pl.lit(f"{column}: a value is required; expected {expected}")
    if code == S.WRONG_TYPE:
        if parquet_type:
            return pl.format(f"{column}: expected {expected}, found a Parquet value of "
                             f"type {dtype}: {{}}", found)
        return pl.format(f"{column}: expected {expected}, found {{}}", found)
    if code == S.NEGATIVE_VALUE:
        return pl.format(f"{column}: expected {expected}, found a negative value {{}}", found)
    if code == S.OVERSIZE_FIELD:
        if column in S.INTEGER_COLUMNS:
            return pl.format(f"{column}: expected at most {S.MAX_INTEGER}, found {{}}", found)
        return pl.format(f"{column}: expected {expected}, found {{}} characters",
                         pl.col(f"_raw_{column}").str.len_chars())
    if code == S.DUPLICATE_RECORD_ID:
        return pl.format("record_id: {} already appeared in row {}; expected a record_id "
                         "unique in the file", found, pl.col("_first_row"))
    if code == S.UNKNOWN_SERVICE:
        return pl.format(f"service: expected {expected}, found {{}}", found)
    if code == S.MALFORMED_NUMBER:
        return pl.format(f"{column}: expected {expected}, found {{}}", found)
    if code == S.MALFORMED_TIMESTAMP:
        if parquet_type:
            return pl.format(f"start_time: expected a timestamp with a time zone between "
                             f"years 1 and 9999, found a Parquet value of type {dtype}: {{}}",
                             found)
        return pl.format(f"start_time: expected {expected} with a real date and time of day, "
                         "found {}", found)
    if code == S.MISSING_UTC_OFFSET:
        return pl.format("start_time: the time has no UTC offset and the rules give no "
                         "meta.default_utc_offset; expected an offset (+HH:MM, -HH:MM or Z), "
                         "found {}", found)
    if code == S.INCONSISTENT_SERVICE:
        if column == "duration_s":
            return pl.format("duration_s: sms records must have duration_s 0, found {}", found)
        return pl.format("volume_kb: {} records must have volume_kb 0 (only data has a "
                         "volume), found {}", pl.col("_raw_service"), found)
    raise ValueError(f"no message for {code}:{column}")  # pragma: no cover


def validation_entries(raw: RawInput, validated: pl.DataFrame) -> pl.DataFrame:
    """Quarantine entries of the rows that failed validation (columns: row, code, column,
    reason, message), in row order."""
    failed = validated.select("row", "record_id", "failed", "undecodable_column") \
        .filter(pl.col("failed").is_not_null())
    failed = failed.with_columns(
        raw_text(raw, failed.get_column("row")).select(pl.all().name.prefix("_raw_")))
    if raw.field_count is not None:
        counts = raw.field_count.gather(failed.get_column("row").to_numpy() - raw.first_row)
        failed = failed.with_columns(counts.alias("_field_count"))
    else:
        failed = failed.with_columns(pl.lit(None, pl.Int64).alias("_field_count"))
    if failed.height == 0:
        return pl.DataFrame(schema={"row": pl.Int64, "code": pl.String, "column": pl.String,
                                    "reason": pl.String, "message": pl.String})
    # the first row of each repeated record_id (for duplicate_record_id messages)
    dup_index = CHECKS.index(next(c for c in CHECKS if c.code == S.DUPLICATE_RECORD_ID))
    repeated = failed.filter(pl.col("failed") == dup_index).select("record_id").unique()
    firsts = validated.select("row", "record_id").join(repeated, on="record_id", how="semi") \
        .group_by("record_id").agg(pl.col("row").min().alias("_first_row"))
    failed = failed.join(firsts, on="record_id", how="left", nulls_equal=False)
    # the undecodable value as read (first undecodable column, which may be an extra one)
    undecodable_cols = failed.get_column("undecodable_column").drop_nulls().unique().to_list()
    display_to_frame = dict(zip(raw.columns, raw.frame.columns, strict=True))
    value = pl.lit(None, pl.String)
    for name in undecodable_cols:
        frame_name = display_to_frame[name]
        values = raw.frame.get_column(frame_name).gather(
            failed.get_column("row").to_numpy() - raw.first_row).cast(pl.String)
        failed = failed.with_columns(values.alias(f"_u_{name}"))
        value = pl.when(pl.col("undecodable_column") == name) \
            .then(pl.col(f"_u_{name}")).otherwise(value)
    failed = failed.with_columns(
        pl.col("undecodable_column").alias("_undecodable"),
        _quoted(value).alias("_undecodable_value"),
    )
    width = len(raw.columns)
    parts = []
    for index in failed.get_column("failed").unique().sort().to_list():
        check = CHECKS[index]
        group = failed.filter(pl.col("failed") == index)
        column = pl.col("undecodable_column") if check.code == S.UNDECODABLE_BYTES \
            else pl.lit(check.column, pl.String)
        parts.append(group.select(
            "row",
            pl.lit(check.code).alias("code"),
            column.alias("column"),
            (pl.lit(check.code + ":") + column).alias("reason")
            if check.column is not None or check.code == S.UNDECODABLE_BYTES
            else pl.lit(check.code).alias("reason"),
            _message(check.code, check.column, raw, width).alias("message"),
        ))
    return pl.concat(parts).sort("row")


def build_quarantine(raw: RawInput, entries: pl.DataFrame) -> pl.DataFrame:
    """The quarantine frame: entries joined with the row's record_id and input text."""
    entries = entries.sort("row")
    text = raw_text(raw, entries.get_column("row"))
    out = pl.concat([entries, text], how="horizontal")
    return out.select(
        pl.col(name).cast(dtype) for name, dtype in S.QUARANTINE_SCHEMA.items()
    )


def write_quarantine(frame: pl.DataFrame, path: str | Path) -> None:
    """Write CSV, or Parquet when the name ends in .parquet / .pq."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.write_parquet(path)
        else:
            frame.write_csv(path)
    except OSError as exc:
        raise InputError(f"cannot write the quarantine file: {exc.strerror or exc}",
                         file=str(path)) from None
