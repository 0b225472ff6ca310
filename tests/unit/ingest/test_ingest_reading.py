"""Reading: CSV quirks and Parquet types, row by row."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from engine.errors import InputError
from engine.ingest import ingest
from tests.unit.ingest.ingest_helpers import COLUMNS, good_row, simple_rules, write_csv

HEADER = ",".join(COLUMNS)
T = 1_790_820_000  # 2026-10-01T10:00:00+08:00


def outcome(path: Path, **rules_kw: str | None) -> list[tuple]:
    result = ingest(path, simple_rules(**rules_kw))
    return result.rows.select("status", "reason").rows()


def test_bom_crlf_reordered_and_extra_columns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    columns = ["note", *reversed(COLUMNS), "note"]
    row = good_row()
    lines = [",".join(columns)] + [
        ",".join(['"a, quoted\nnote"'] + [row[c] or "" for c in reversed(COLUMNS)] + ["x"])]
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    with caplog.at_level(logging.WARNING, logger="engine.ingest"):
        result = ingest(path, simple_rules())
    assert result.rows.select("status").to_series().to_list() == ["ok"]
    assert result.extra_columns == ("note", "note")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{path}: ignoring 2 extra column(s): note, note"]
    record = result.records.row(0, named=True)
    assert (record["calling"], record["called"], record["start"], record["trunk_group"]) == \
        ("8613800000001", "8613100000002", T, "TG1")


def test_literal_replacement_character_in_valid_utf8_is_data(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [good_row(trunk_group="TG\ufffd")])
    assert outcome(path) == [("ok", None)]


def test_undecodable_bytes_in_an_extra_column_invalidate_the_row(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    good = ",".join(good_row()[c] or "" for c in COLUMNS)
    path.write_bytes(f"{HEADER},note\n{good},fine\n".encode()
                     + good.replace("r1", "r2").encode() + b",caf\xe9\n")
    assert outcome(path) == [("ok", None), ("invalid", "undecodable_bytes:note")]


@pytest.mark.parametrize("surplus", [1, 40])  # 40: beyond polars' spare columns
def test_long_rows_and_bad_bytes_together(tmp_path: Path, surplus: int,
                                          caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a.csv"
    good = ",".join(good_row()[c] or "" for c in COLUMNS)
    path.write_bytes(
        f"{HEADER}\n{good}\n".encode()
        + good.replace("r1", "r2").encode() + b"," * surplus + b"extra\n"
        + good.replace("r1", "r3").encode().replace(b"TG1", b"TG\xff") + b"\n"
        + good.replace("r1", "r4").replace("61", "62").encode() + b"," * surplus + b"\n")
    with caplog.at_level(logging.INFO, logger="engine.ingest"):
        result = ingest(path, simple_rules())
    used_splitter = any("with the csv splitter" in r.getMessage() for r in caplog.records)
    assert used_splitter == (surplus > 16)
    assert result.rows.select("status", "reason").rows() == [
        ("ok", None), ("invalid", "wrong_field_count"),
        ("invalid", "undecodable_bytes:trunk_group"), ("ok", None)]
    assert result.quarantine.get_column("message").to_list()[0] == (
        f"the row has values beyond the header's 10 columns (a non-empty field {10 + surplus});"
        " expected at most 10 fields")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        ingest(tmp_path / "nope.csv", simple_rules())
    assert str(caught.value) == f"{tmp_path / 'nope.csv'}: file not found"
    with pytest.raises(InputError) as caught:
        ingest(tmp_path, simple_rules())
    assert str(caught.value) == f"{tmp_path}: is a directory, not a file"


# ---------------------------------------------------------------------------
# Parquet


def parquet_frame(n: int = 1, **columns: pl.Series) -> pl.DataFrame:
    base = {
        "record_id": pl.Series([f"r{i}" for i in range(n)]),
        "service": pl.Series(["voice"] * n),
        "calling": pl.Series(["+8613800000001"] * n),
        "called": pl.Series(["8613100000002"] * n),
        "start_time": pl.Series([T * 1_000_000 + i * 1_000_000 for i in range(n)])
        .cast(pl.Datetime("us", "UTC")).dt.convert_time_zone("Asia/Shanghai"),
        "duration_s": pl.Series([61] * n),
        "volume_kb": pl.Series([0] * n),
        "trunk_group": pl.Series(["TG1"] * n),
        "part_seq": pl.Series([0] * n, dtype=pl.Int32),
        "charge": pl.Series([12] * n, dtype=pl.UInt16),
    }
    base.update(columns)
    return pl.DataFrame(base)


def write_parquet(tmp_path: Path, frame: pl.DataFrame, name: str = "a.parquet") -> Path:
    path = tmp_path / name
    frame.write_parquet(path)
    return path


def test_parquet_typed_columns(tmp_path: Path) -> None:
    path = write_parquet(tmp_path, parquet_frame(3), name="export.bin")  # content decides
    result = ingest(path, simple_rules())
    assert result.format == "parquet"
    assert result.rows.get_column("status").to_list() == ["ok"] * 3
    assert result.records.get_column("start").to_list() == [T, T + 1, T + 2]
    assert result.records.get_column("calling").to_list() == ["8613800000001"] * 3


def test_parquet_quarantine_messages_name_the_parquet_type(tmp_path: Path) -> None:
    frame = parquet_frame(
        5,
        charge=pl.Series([12.0, 12.5, None, 3.0, 1.0]),
        duration_s=pl.Series([61, 61, 61, 2**64 - 1, 61], dtype=pl.UInt64),
        start_time=pl.Series([dt.date(2026, 10, 1)] * 5),
    )
    result = ingest(write_parquet(tmp_path, frame), simple_rules())
    messages = result.quarantine.select("reason", "message").rows()
    assert messages == [
        ("malformed_timestamp:start_time",
         "start_time: expected a timestamp with a time zone between years 1 and 9999, found a "
         "Parquet value of type Date: '2026-10-01'"),
    ] * 5


def test_parquet_float_money_and_uint64_overflow(tmp_path: Path) -> None:
    frame = parquet_frame(
        4,
        charge=pl.Series([12.0, 12.5, None, 3.0]),
        duration_s=pl.Series([61, 61, 61, 2**64 - 1], dtype=pl.UInt64),
    )
    result = ingest(write_parquet(tmp_path, frame), simple_rules())
    assert result.quarantine.select("reason", "message").rows() == [
        ("wrong_type:charge",
         "charge: expected an integer >= 0 (minor units), found a Parquet value of type Float64: "
         "'12.0'"),
        ("wrong_type:charge",
         "charge: expected an integer >= 0 (minor units), found a Parquet value of type Float64: "
         "'12.5'"),
        ("missing_value:charge",
         "charge: a value is required; expected an integer >= 0 (minor units)"),
        ("oversize_field:duration_s",
         "duration_s: expected at most 1000000000000, found '18446744073709551615'"),
    ]


@pytest.mark.parametrize("default_offset,expected", [
    (None, [("invalid", "missing_utc_offset:start_time")]),
    ("+08:00", [("ok", None)]),
])
def test_parquet_naive_timestamps(tmp_path: Path, default_offset: str | None,
                                  expected: list[tuple]) -> None:
    frame = parquet_frame(1, start_time=pl.Series([dt.datetime(2026, 10, 1, 10, 0, 0, 999_999)]))
    path = write_parquet(tmp_path, frame)
    result = ingest(path, simple_rules(default_offset=default_offset))
    assert result.rows.select("status", "reason").rows() == expected
    if default_offset:
        assert result.records.get_column("start").to_list() == [T]


def test_parquet_text_columns_and_integer_numbers(tmp_path: Path) -> None:
    frame = parquet_frame(
        3,
        start_time=pl.Series(["2026-10-01T02:00:00Z", "2026-10-01T10:00:00", "bad"]),
        calling=pl.Series([8613800000001, 8613800000001, 8613800000001], dtype=pl.Int64),
        duration_s=pl.Series(["61", "61", "61"]),
        charge=pl.Series([Decimal("12"), Decimal("12"), Decimal("12")], dtype=pl.Decimal(10, 0)),
    )
    result = ingest(write_parquet(tmp_path, frame), simple_rules())
    assert result.rows.select("status", "reason").rows() == [
        ("ok", None), ("invalid", "missing_utc_offset:start_time"),
        ("invalid", "malformed_timestamp:start_time")]
    assert result.records.get_column("start").to_list() == [T]


def test_parquet_binary_column_with_bad_bytes(tmp_path: Path) -> None:
    frame = parquet_frame(2, trunk_group=pl.Series([b"TG1", b"TG\xff"], dtype=pl.Binary))
    result = ingest(write_parquet(tmp_path, frame), simple_rules())
    assert result.rows.select("status", "reason").rows() == [
        ("ok", None), ("invalid", "undecodable_bytes:trunk_group")]


def test_parquet_without_rows_or_columns(tmp_path: Path) -> None:
    # no rows: a valid export of a period without traffic
    empty = write_parquet(tmp_path, parquet_frame(0), name="empty.parquet")
    result = ingest(empty, simple_rules())
    assert result.rows.height == 0 and result.records.height == 0
    assert result.counts["rows"] == 0 and result.counts["considered"] == 0
    narrow = write_parquet(tmp_path, parquet_frame(1).drop("charge", "called"), name="n.parquet")
    with pytest.raises(InputError) as caught:
        ingest(narrow, simple_rules())
    assert str(caught.value).startswith(f"{narrow}: required columns missing: called, charge\n")


# ---------------------------------------------------------------------------
# reading in pieces


def _csv_bytes(lines: list[bytes]) -> bytes:
    return ",".join(COLUMNS).encode() + b"\n" + b"\n".join(lines)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_pieces_concatenate_to_the_whole_file(tmp_path: Path, chunk_rows: int) -> None:
    from engine.ingest.reading import open_input, read_chunks, read_input

    good = [",".join(good_row(record_id=f"r{i}")[c] or "" for c in COLUMNS).encode()
            for i in range(5)]
    lines = [good[0], b'"q, with\nnewline",x', good[1], b"", b'"a"b"c,d', good[2],
             good[3].replace(b"TG1", b"TG\xff"), good[4] + b",,,extra"]
    path = tmp_path / "a.csv"
    path.write_bytes(_csv_bytes(lines) + b"\r\n")
    whole = read_input(path)
    pieces = list(read_chunks(open_input(path), chunk_rows))
    assert [p.first_row for p in pieces] == list(range(1, whole.n_rows + 1, chunk_rows))
    assert pl.concat([p.frame for p in pieces]).equals(whole.frame)
    assert whole.n_rows == 8
    marks = pl.concat([p.undecodable if p.undecodable is not None
                       else pl.Series([None] * p.n_rows, dtype=pl.String) for p in pieces])
    assert marks.to_list() == [None] * 6 + ["trunk_group", None]
    counts = pl.concat([p.field_count if p.field_count is not None
                        else pl.Series([None] * p.n_rows, dtype=pl.Int64) for p in pieces])
    assert counts.to_list()[-1] == 13


def test_parquet_pieces(tmp_path: Path) -> None:
    from engine.ingest.reading import open_input, read_chunks

    path = write_parquet(tmp_path, parquet_frame(7))
    source = open_input(path)
    assert source.estimated_rows == 7
    pieces = list(read_chunks(source, 3))
    assert [(p.first_row, p.n_rows) for p in pieces] == [(1, 3), (4, 3), (7, 1)]


def test_unterminated_quote_names_the_line_where_it_opens(tmp_path: Path) -> None:
    good = ",".join(good_row()[c] or "" for c in COLUMNS).encode()
    path = tmp_path / "a.csv"
    path.write_bytes(_csv_bytes([good, good.replace(b"r1", b"r2"), b'r3,"voice'] + [good] * 3))
    with pytest.raises(InputError, match="malformed CSV at line 4: a quoted field opens there"):
        ingest(path, simple_rules())
