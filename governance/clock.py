"""Times and settlement periods as governance entries write them.

Times are UTC with second precision, ``YYYY-MM-DDTHH:MM:SSZ`` (RFC 3339), written by
an entry's author into ``created_at`` and signed with it.  The ledger orders entries;
replay refuses an entry whose ``created_at`` is earlier than the latest one seen by
more than :data:`MAX_SKEW_S`, so an author cannot backdate a vote or an approval
past a deadline.  Periods are calendar months ``YYYY-MM``; they compare as text.
"""

from __future__ import annotations

import datetime as dt
import re

from governance.errors import GovernanceError

MAX_SKEW_S = 300
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def now_text() -> str:
    return format_time(now())


def parse_time(text: object, *, field: str = "time", index: int | None = None) -> dt.datetime:
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise GovernanceError(f"expected a UTC time YYYY-MM-DDTHH:MM:SSZ, found {text!r}", index=index, field=field)
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise GovernanceError(f"expected a valid UTC time, found {text!r}", index=index, field=field) from None


def parse_period(text: object, *, field: str = "period", index: int | None = None) -> str:
    if not isinstance(text, str) or not _PERIOD.fullmatch(text):
        raise GovernanceError(f"expected a period YYYY-MM (month 01..12), found {text!r}", index=index, field=field)
    return text


def parse_duration(text: str) -> dt.timedelta:
    """``30m``, ``12h``, ``7d``: for the CLI's ``--expires-in`` and ``--deadline-in``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise GovernanceError(f"expected a duration such as 30m, 12h or 7d, found {text!r}")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def time_in(duration: str, *, start: dt.datetime | None = None) -> str:
    return format_time((start or now()) + parse_duration(duration))
