"""ISO-8601 start times to UTC epoch seconds, as vectorised polars expressions.

The accepted form (docs/records.md) is exactly

    YYYY-MM-DDTHH:MM:SS[.f…](+HH:MM | -HH:MM | Z)

with 1–9 fraction digits, which are truncated (so the result is the floor of the
instant in epoch seconds, also before 1970).  Fields are read at fixed positions
and combined with integer civil-calendar arithmetic (days from 1970-01-01 by
Hinnant's ``days_from_civil``), so the result does not depend on any time-zone
database or on how a library treats mixed offsets.  The calendar rules are those
of Python's :class:`datetime.datetime` (years 0001–9999, hour ≤ 23, second ≤ 59,
offsets strictly inside ±24 h), which the property tests use as the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

ISO_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?$"
)
#: Epoch seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range of a
#: four-digit year (an offset can move an instant up to a day beyond either end).
MIN_EPOCH_S = -62_135_596_800
MAX_EPOCH_S = 253_402_300_799


@dataclass(frozen=True)
class ParsedTimestamps:
    """Expressions over one string column (all evaluated in the same frame)."""

    epoch_s: pl.Expr
    """UTC epoch seconds (Int64); null where malformed or without a usable offset."""
    malformed: pl.Expr
    """Present but not the accepted form, or an impossible date/time/offset."""
    missing_offset: pl.Expr
    """Well formed, no offset, and no default offset given."""


def _int(text: pl.Expr, start: int, length: int) -> pl.Expr:
    return text.str.slice(start, length).cast(pl.Int64, strict=False)


def days_from_civil(year: pl.Expr, month: pl.Expr, day: pl.Expr) -> pl.Expr:
    """Days since 1970-01-01 of a proleptic Gregorian date (year ≥ 0)."""
    y = year - (month <= 2).cast(pl.Int64)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12                       # March = 0 … February = 11
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def days_in_month(year: pl.Expr, month: pl.Expr) -> pl.Expr:
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    return (
        pl.when(month == 2).then(pl.when(leap).then(29).otherwise(28))
        .when(month.is_in([4, 6, 9, 11])).then(30)
        .otherwise(31)
        .cast(pl.Int64)
    )


def parse_iso_timestamps(text: pl.Expr, default_offset_s: int | None) -> ParsedTimestamps:
    """Expressions parsing ``text`` (a String expression; null = missing, not malformed)."""
    well_formed = text.str.contains(ISO_PATTERN).fill_null(False)
    year, month, day = _int(text, 0, 4), _int(text, 5, 2), _int(text, 8, 2)
    hour, minute, second = _int(text, 11, 2), _int(text, 14, 2), _int(text, 17, 2)
    zulu = text.str.ends_with("Z")
    sign_char = text.str.slice(-6, 1)
    numeric = sign_char.is_in(["+", "-"])  # position −6 is ':' or a digit without an offset
    off_h, off_m = _int(text.str.slice(-5, 5), 0, 2), _int(text.str.slice(-5, 5), 3, 2)
    valid_fields = (
        (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
        & (day <= days_in_month(year, month))
        & (hour <= 23) & (minute <= 59) & (second <= 59)
        & (~numeric | ((off_h <= 23) & (off_m <= 59)))
    )
    ok = well_formed & valid_fields.fill_null(False)
    stated_offset = (
        pl.when(zulu).then(pl.lit(0, pl.Int64))
        .when(numeric)
        .then(pl.when(sign_char == "-").then(-1).otherwise(1) * (off_h * 3600 + off_m * 60))
    )
    has_offset = zulu | numeric
    offset = stated_offset if default_offset_s is None else (
        pl.when(has_offset).then(stated_offset).otherwise(pl.lit(default_offset_s, pl.Int64))
    )
    local_s = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    epoch = pl.when(ok).then(local_s - offset).cast(pl.Int64)
    missing_offset = ok & ~has_offset if default_offset_s is None else pl.lit(False)
    return ParsedTimestamps(
        epoch_s=epoch,
        malformed=text.is_not_null() & ~ok,
        missing_offset=missing_offset.fill_null(False),
    )
