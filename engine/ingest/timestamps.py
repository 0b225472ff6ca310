"""ISO-8601 start times to UTC epoch seconds, as vectorised polars expressions.

The accepted form (docs/records.md) is exactly

    YYYY-MM-DDTHH:MM:SS[.f…](+HH:MM | -HH:MM | Z)

with 1–9 fraction digits, which are truncated (so the result is the floor of the
instant in epoch seconds, also before 1970).  The calendar rules are those of
Python's :class:`datetime.datetime` (years 0001–9999, hour ≤ 23, second ≤ 59,
offsets strictly inside ±24 h), which the property tests use as the oracle.

How, fast: one regular expression checks the form and the range of every field but
the day of the month; the first 19 characters are parsed as a naive date-time by
polars' fixed-format ``strptime`` (which refuses impossible days such as 02-30);
the offset is read from the last six characters.  Epoch = local time − offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

_YEAR = r"[0-9]{4}"
_MONTH = r"(?:0[1-9]|1[0-2])"
_DAY = r"(?:0[1-9]|[12][0-9]|3[01])"
_HOUR = r"(?:[01][0-9]|2[0-3])"
_MINUTE = r"[0-5][0-9]"
ISO_PATTERN = (
    rf"^{_YEAR}-{_MONTH}-{_DAY}T{_HOUR}:{_MINUTE}:{_MINUTE}(?:\.[0-9]{{1,9}})?"
    rf"(?:Z|[+-]{_HOUR}:{_MINUTE})?$"
)
#: Epoch seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range of a
#: four-digit year (an offset can move an instant up to a day beyond either end).
MIN_EPOCH_S = -62_135_596_800
MAX_EPOCH_S = 253_402_300_799
_LOCAL_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class ParsedTimestamps:
    """Expressions over one string column.

    Evaluate them in two steps: :attr:`parts` (a list of named columns) with
    ``with_columns``, then the others, which refer to those columns by name — so
    that nothing is parsed twice."""

    parts: list[pl.Expr]
    epoch_s: pl.Expr
    """UTC epoch seconds (Int64); null where malformed or without a usable offset."""
    malformed: pl.Expr
    """Present but not the accepted form, or an impossible date/time/offset."""
    missing_offset: pl.Expr
    """Well formed, no offset, and no default offset given."""


def parse_iso_timestamps(text: pl.Expr, default_offset_s: int | None,
                         prefix: str = "_ts") -> ParsedTimestamps:
    """Expressions parsing ``text`` (a String expression; null = missing, not malformed).

    The helper columns are named ``<prefix>_…``."""
    form, local, tail = f"{prefix}_form", f"{prefix}_local", f"{prefix}_tail"
    parts = [
        text.str.contains(ISO_PATTERN).fill_null(False).alias(form),
        text.str.slice(0, 19).str.strptime(pl.Datetime("us"), _LOCAL_FORMAT, strict=False)
        .dt.epoch("s").alias(local),
        text.str.slice(-6).alias(tail),
    ]
    form_ok = pl.col(form)
    local_s = pl.col(local)
    tail_text = pl.col(tail)
    zulu = tail_text.str.ends_with("Z")
    numeric = tail_text.str.starts_with("+") | tail_text.str.starts_with("-")
    hhmm = tail_text.str.replace(":", "", literal=True).cast(pl.Int64, strict=False)
    magnitude = hhmm.abs()
    stated = (
        pl.when(zulu).then(pl.lit(0, pl.Int64))
        .when(numeric).then(hhmm.sign() * ((magnitude // 100) * 3600 + (magnitude % 100) * 60))
    )
    has_offset = zulu | numeric
    offset = stated if default_offset_s is None else (
        pl.when(has_offset).then(stated).otherwise(pl.lit(default_offset_s, pl.Int64)))
    ok = form_ok & (local_s >= MIN_EPOCH_S).fill_null(False)
    missing_offset = (ok & ~has_offset) if default_offset_s is None else pl.lit(False)
    return ParsedTimestamps(
        parts=parts,
        epoch_s=pl.when(ok).then(local_s - offset).cast(pl.Int64),
        malformed=text.is_not_null() & ~ok,
        missing_offset=missing_offset.fill_null(False),
    )
