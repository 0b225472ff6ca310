"""The settlement period of a job: which calls it settles.

A job names its period as a calendar month, ``YYYY-MM``.  The period is the half-open
interval [first day 00:00, first day of the next month 00:00) in the rules' time zone
(``meta.timezone``).  A canonical record belongs to the period when its start does; the
start of a call whose partial records were merged is its first part's start, so a call
that crosses the period's last midnight is settled, whole, in the period where it began
(the grace docs/records.md describes): its later parts are merged before the check.  A
record whose start lies outside is ``excluded`` with reason ``out_of_period`` and
settled by no one in this job.

Two records of one call whose start times straddle a boundary by less than the time
tolerance (one operator's clock at 23:59:59, the other's at 00:00:01) fall into
different periods; each then shows as unmatched in its own period's job.  That happens
only for calls answered within ``time_tolerance_s`` of midnight at a month's end, and
is visible in both reports.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from engine.errors import InputError

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class PeriodWindow:
    label: str
    """``YYYY-MM``."""
    start: int
    """UTC epoch seconds of the first instant of the period, inclusive."""
    end: int
    """UTC epoch seconds of the first instant after the period, exclusive."""

    def describe(self, offset_s: int) -> str:
        def local(epoch: int) -> str:
            tz = dt.timezone(dt.timedelta(seconds=offset_s))
            return dt.datetime.fromtimestamp(epoch, tz).isoformat()
        return f"{self.label}: [{local(self.start)}, {local(self.end)})"


def parse_period(text: object, *, source: str | None = None, column: str = "period") -> tuple[int, int]:
    """(year, month) of ``YYYY-MM``; raises :class:`InputError` naming the source and key."""
    match = _PERIOD_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise InputError("a period is a calendar month", file=source, column=column,
                         expected="YYYY-MM, e.g. 2026-10", found=repr(text))
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or year < 1970:
        raise InputError("no such month", file=source, column=column,
                         expected="YYYY-MM with a month 01..12 and a year from 1970",
                         found=repr(text))
    return year, month


def period_window(period: str, timezone_offset_s: int, *, source: str | None = None) -> PeriodWindow:
    """The window of ``period`` (``YYYY-MM``) in the time zone ``timezone_offset_s`` east of UTC."""
    year, month = parse_period(period, source=source)
    tz = dt.timezone(dt.timedelta(seconds=timezone_offset_s))
    first = dt.datetime(year, month, 1, tzinfo=tz)
    following = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return PeriodWindow(label=period, start=int(first.timestamp()), end=int(following.timestamp()))
