"""One fixture per bad-input kind (tests/fixtures/ingest), each with the exact outcome.

Row-level kinds: the status, reason and quarantine message of every row.  File-level
kinds: the exact text of the one InputError, which names the file.
"""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.ingest import ingest
from tests.unit.ingest.ingest_helpers import FIXTURES, simple_rules

E164 = "E.164 digits: an optional '+', then 6-15 digits, the first not 0"
ISO = "ISO-8601 YYYY-MM-DDTHH:MM:SS[.fff](+HH:MM|-HH:MM|Z)"
OK = ("ok", None, None)

# file -> per row: (status, reason, message); row 1 is valid everywhere
ROW_FIXTURES: dict[str, list[tuple[str, str | None, str | None]]] = {
    "rows_missing_value.csv": [
        OK,
        ("invalid", "missing_value:record_id",
         "record_id: a value is required; expected a string of 1-64 characters"),
        ("invalid", "missing_value:called", f"called: a value is required; expected {E164}"),
        ("invalid", "missing_value:charge",  # a quoted empty field
         "charge: a value is required; expected an integer >= 0 (minor units)"),
        ("invalid", "missing_value:start_time",  # a row with fewer fields than the header
         f"start_time: a value is required; expected {ISO}"),
        ("invalid", "missing_value:record_id",  # a blank line is a row, not skipped
         "record_id: a value is required; expected a string of 1-64 characters"),
    ],
    "rows_wrong_type.csv": [
        OK,
        ("invalid", "wrong_type:duration_s",
         "duration_s: expected an integer >= 0 (seconds), found '12.5'"),
        ("invalid", "wrong_type:charge", "charge: expected an integer >= 0 (minor units), found '1e3'"),
        ("invalid", "wrong_type:part_seq", "part_seq: expected an integer >= 0, found 'first'"),
        ("invalid", "wrong_type:duration_s",
         "duration_s: expected an integer >= 0 (seconds), found ' 61'"),
    ],
    "rows_negative_value.csv": [
        OK,
        ("invalid", "negative_value:duration_s",
         "duration_s: expected an integer >= 0 (seconds), found a negative value '-61'"),
        ("invalid", "negative_value:charge",
         "charge: expected an integer >= 0 (minor units), found a negative value '-1'"),
        OK,  # part_seq "-0" is 0
    ],
    "rows_malformed_number.csv": [
        OK,
        ("invalid", "malformed_number:calling", f"calling: expected {E164}, found '08613800000001'"),
        ("invalid", "malformed_number:called", f"called: expected {E164}, found '86-131-0000-0002'"),
        ("invalid", "malformed_number:calling", f"calling: expected {E164}, found '12345'"),
        ("invalid", "malformed_number:called", f"called: expected {E164}, found '1234567890123456'"),
        ("invalid", "malformed_number:calling", f"calling: expected {E164}, found '++8613800000001'"),
    ],
    "rows_malformed_timestamp.csv": [OK] + [
        ("invalid", "malformed_timestamp:start_time",
         f"start_time: expected {ISO} with a real date and time of day, found '{found}'")
        for found in ("2026-02-30T10:00:00+08:00", "2026-10-01 10:00:00+08:00",
                      "2026-10-01T10:00:00+0800", "1790820000", "2026-10-01T10:00:60Z")
    ],
    "rows_missing_utc_offset.csv": [OK] + [
        ("invalid", "missing_utc_offset:start_time",
         "start_time: the time has no UTC offset and the rules give no meta.default_utc_offset; "
         f"expected an offset (+HH:MM, -HH:MM or Z), found '{found}'")
        for found in ("2026-10-01T10:00:00", "2026-10-01T10:00:00.250")
    ],
    "rows_unknown_service.csv": [
        OK,
        ("invalid", "unknown_service:service", "service: expected voice | sms | data, found 'video'"),
        ("invalid", "unknown_service:service", "service: expected voice | sms | data, found 'Voice'"),
    ],
    "rows_oversize_field.csv": [
        OK,
        ("invalid", "oversize_field:record_id",
         "record_id: expected a string of 1-64 characters, found 65 characters"),
        ("invalid", "oversize_field:trunk_group",
         "trunk_group: expected a string of 1-32 characters, found 33 characters"),
        ("invalid", "oversize_field:charge",
         "charge: expected at most 1000000000000, found '1000000000001'"),
        ("invalid", "oversize_field:charge",
         "charge: expected at most 1000000000000, found '99999999999999999999'"),
    ],
    "rows_undecodable_bytes.csv": [
        OK,
        ("invalid", "undecodable_bytes:trunk_group",
         "the row is not valid UTF-8: undecodable bytes in column 'trunk_group' (read as 'TG\ufffd1')"),
        ("invalid", "undecodable_bytes:record_id",
         "the row is not valid UTF-8: undecodable bytes in column 'record_id' (read as 'r\ufffd')"),
        OK,  # 'é' correctly encoded
    ],
    "rows_duplicate_record_id.csv": [
        OK,
        ("invalid", "duplicate_record_id:record_id",
         "record_id: 'ok1' already appeared in row 1; expected a record_id unique in the file"),
        OK,
        ("invalid", "duplicate_record_id:record_id",
         "record_id: 'r2' already appeared in row 3; expected a record_id unique in the file"),
    ],
    "rows_inconsistent_service.csv": [
        OK,
        ("invalid", "inconsistent_service:duration_s",
         "duration_s: sms records must have duration_s 0, found '5'"),
        ("invalid", "inconsistent_service:volume_kb",
         "volume_kb: voice records must have volume_kb 0 (only data has a volume), found '100'"),
        ("invalid", "inconsistent_service:volume_kb",
         "volume_kb: sms records must have volume_kb 0 (only data has a volume), found '1'"),
    ],
    "rows_no_tariff.csv": [
        OK,
        ("invalid", "no_tariff",
         "no tariff row applies to service voice, payer X, payee Y, call type domestic, time band "
         "night at 2025-12-31T15:59:59Z; expected a [[tariffs]] row for it in the rules"),
    ] + [
        ("invalid", "no_tariff",
         "no tariff row applies to service voice, payer X, payee Y, call type domestic, time band "
         "night at 2025-12-31T15:58:00Z (the merged call of 2 parts starting in row 3); "
         "expected a [[tariffs]] row for it in the rules"),
    ] * 2,
    "rows_wrong_field_count.csv": [
        OK,
        ("invalid", "wrong_field_count", "the row has values beyond the header's 10 columns "
                                         "(a non-empty field 11); expected at most 10 fields"),
        OK,  # empty surplus fields (trailing commas) hold nothing
        ("invalid", "wrong_field_count", "the row has values beyond the header's 10 columns "
                                         "(a non-empty field 12); expected at most 10 fields"),
    ],
    "file_header_only.csv": [],  # a period without traffic: a valid export of 0 rows
    "rows_merged_oversize.csv": [OK] + [
        ("invalid", "oversize_field:charge",
         "charge: the merged call of 2 parts starting in row 2 sums to 1200000000000; "
         "expected at most 1000000000000"),
    ] * 2,
}

FILE_FIXTURES: dict[str, str] = {
    "file_empty.csv": "empty file: expected a CSV header row or a Parquet file",
    "file_missing_columns.csv":
        "required columns missing: called, volume_kb, trunk_group, part_seq\n"
        "  expected: columns record_id, service, calling, called, start_time, duration_s, "
        "volume_kb, trunk_group, part_seq, charge\n"
        "  found:    columns record_id, service, calling, start_time, duration_s, charge",
    "file_repeated_column.csv":
        "column 'charge' appears 2 times in the header\n  expected: each column once",
    "file_png.csv": "not a CSV or Parquet file: the content looks like a PNG image",
    "file_gzip.csv": "not a CSV or Parquet file: the content looks like gzip-compressed data",
    "file_utf16.csv": "not a CSV or Parquet file: the content looks like UTF-16 text (expected UTF-8)",
    "file_binary.dat": "not a CSV or Parquet file: binary content (a NUL byte at offset 9)",
    "file_header_not_utf8.csv": "the CSV header row is not valid UTF-8 (byte 0xe9 at offset 96)",
    "file_broken_quote.csv": "malformed CSV at line 3: a quoted field opens there and never closes; "
                             "the rows cannot be told apart from there on",
    "file_not_parquet.parquet": "not a Parquet file: it does not start with the PAR1 magic bytes",
    "file_truncated.parquet": "unreadable Parquet file: parquet: File out of specification: "
                              "The file must end with PAR1 or PARE",
}


def test_every_fixture_is_listed() -> None:
    on_disk = {p.name for p in FIXTURES.iterdir() if p.name != "README.md"}
    assert on_disk == set(ROW_FIXTURES) | set(FILE_FIXTURES)


@pytest.mark.parametrize("name", sorted(ROW_FIXTURES))
def test_row_fixture(name: str) -> None:
    result = ingest(FIXTURES / name, simple_rules())
    quarantine = dict(zip(result.quarantine.get_column("row").to_list(),
                          result.quarantine.get_column("message").to_list(), strict=True))
    got = [(status, reason, quarantine.get(row)) for row, status, reason in
           result.rows.select("row", "status", "reason").iter_rows()]
    assert got == ROW_FIXTURES[name]
    # quarantine entries carry code and column consistent with the reason
    for reason, code, column in result.quarantine.select("reason", "code", "column").iter_rows():
        assert reason == (code if column is None else f"{code}:{column}")


@pytest.mark.parametrize("name", sorted(FILE_FIXTURES))
def test_file_fixture(name: str) -> None:
    path = FIXTURES / name
    with pytest.raises(InputError) as caught:
        ingest(path, simple_rules())
    assert str(caught.value) == f"{path}: {FILE_FIXTURES[name]}"
    assert caught.value.file == str(path)
