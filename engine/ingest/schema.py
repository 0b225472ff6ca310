"""Names shared by the ingest stage: input columns, services, statuses, reason codes.

Everything here is specified in ``docs/records.md``; this module only gives the
specification's names one place in the code.
"""

from __future__ import annotations

from typing import Final

import polars as pl

#: The input columns, in the order of docs/records.md.  Validation reports the first
#: failing column in this order ("left to right"), whatever the file's own order.
INPUT_COLUMNS: Final[tuple[str, ...]] = (
    "record_id", "service", "calling", "called", "start_time",
    "duration_s", "volume_kb", "trunk_group", "part_seq", "charge",
)
INTEGER_COLUMNS: Final[tuple[str, ...]] = ("duration_s", "volume_kb", "part_seq", "charge")
NUMBER_COLUMNS: Final[tuple[str, ...]] = ("calling", "called")

#: Service names and their codes in the canonical ``records.service`` column (UInt8).
SERVICES: Final[tuple[str, ...]] = ("voice", "sms", "data")
SERVICE_CODE: Final[dict[str, int]] = {name: code for code, name in enumerate(SERVICES)}
VOICE, SMS, DATA = 0, 1, 2

MAX_RECORD_ID_CHARS: Final = 64
MAX_TRUNK_GROUP_CHARS: Final = 32
#: Upper bound of every integer field (and of the sums of a merged call).  Not in the
#: original contract: it keeps sums and rated amounts exact in 64-bit arithmetic
#: (10^12 s is 31,000 years; 10^12 fen is ten billion yuan).  Above it: ``oversize_field``.
MAX_INTEGER: Final = 10**12

# -- row statuses (the rows frame) -------------------------------------------
OK, INVALID, DUPLICATE, EXCLUDED = "ok", "invalid", "duplicate", "excluded"
STATUSES: Final[tuple[str, ...]] = (OK, INVALID, DUPLICATE, EXCLUDED)

# -- invalid reason codes (docs/records.md "Invalid rows") -------------------
MISSING_VALUE = "missing_value"
WRONG_TYPE = "wrong_type"
NEGATIVE_VALUE = "negative_value"
MALFORMED_NUMBER = "malformed_number"
MALFORMED_TIMESTAMP = "malformed_timestamp"
MISSING_UTC_OFFSET = "missing_utc_offset"
UNKNOWN_SERVICE = "unknown_service"
OVERSIZE_FIELD = "oversize_field"
UNDECODABLE_BYTES = "undecodable_bytes"
DUPLICATE_RECORD_ID = "duplicate_record_id"
INCONSISTENT_SERVICE = "inconsistent_service"
NO_TARIFF = "no_tariff"
#: A CSV row with more fields than the header (an addition to docs/records.md: such a
#: row would otherwise fail the whole file).  A row with fewer fields has its missing
#: trailing fields empty, so it is ``missing_value`` of the first absent column.
WRONG_FIELD_COUNT = "wrong_field_count"

INVALID_CODES: Final[tuple[str, ...]] = (
    MISSING_VALUE, WRONG_TYPE, NEGATIVE_VALUE, MALFORMED_NUMBER, MALFORMED_TIMESTAMP,
    MISSING_UTC_OFFSET, UNKNOWN_SERVICE, OVERSIZE_FIELD, UNDECODABLE_BYTES,
    DUPLICATE_RECORD_ID, INCONSISTENT_SERVICE, NO_TARIFF, WRONG_FIELD_COUNT,
)
#: Reason prefix of a later exact copy: ``duplicate_of:<row of the first copy>``.
DUPLICATE_OF = "duplicate_of"

# -- canonical frames (docs/records.md "Canonical frames") --------------------
ROWS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "row": pl.Int64(),
    "record_id": pl.String(),
    "status": pl.String(),
    "reason": pl.String(),
    "unit": pl.Int64(),
}
RECORDS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "unit": pl.Int64(),
    "record_id": pl.String(),
    "row": pl.Int64(),
    "service": pl.UInt8(),
    "calling": pl.String(),
    "called": pl.String(),
    "start": pl.Int64(),
    "duration_s": pl.Int64(),
    "volume_kb": pl.Int64(),
    "trunk_group": pl.String(),
    "charge": pl.Int64(),
    "rated_charge": pl.Int64(),
    "parts": pl.Int32(),
    "excluded": pl.Boolean(),
}
#: Columns the records frame carries after those: the rate class, found once at ingest
#: (engine.ingest.rating; indices into rating_names(rules)), and the tariff row that
#: priced the record (-1: excluded).
RATE_CLASS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "payer": pl.UInt8(),
    "payee": pl.UInt8(),
    "call_type": pl.UInt8(),
    "band": pl.UInt8(),
    "tariff": pl.Int32(),
}
#: The quarantine file: one entry per invalid row, then the row's input fields as text.
QUARANTINE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "row": pl.Int64(),
    "record_id": pl.String(),
    "code": pl.String(),
    "column": pl.String(),
    "reason": pl.String(),
    "message": pl.String(),
    **{name: pl.String() for name in INPUT_COLUMNS if name != "record_id"},
}
