"""Property: the vectorised ingest equals the plain per-row reference on random files.

Random CSV tables mix valid rows, every kind of bad value, exact duplicates (also
the same instant written with another offset), chains of partial records (and
near-misses), excluded and unrateable records.  The whole rows frame (status,
reason, unit) and records frame must equal :mod:`ingest_reference`'s, and every
input row must be accounted for.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.ingest import ingest
from engine.ingest import schema as S
from tests.unit.ingest.ingest_helpers import simple_rules, write_csv
from tests.unit.ingest.ingest_reference import reference_ingest

# 2026-01-01T00:00:00+08:00 (tariffs start here) minus 200 s: some rows are unrateable
T0 = 1767196800 - 200
OFFSETS = ["+08:00", "Z", "-05:30", "+00:00", ""]
NUMBERS = ["8613800000001", "+8613800000001", "8613100000002", "8613105550000", "4420000000",
           "12025550123", "0123456", "12345", "+86-138000", "861380000000111111", "١٢٣٤٥٦٧",
           "+", ""]
BAD_TIMES = ["2026-02-30T10:00:00Z", "2026-10-01 10:00:00Z", "2026-10-01T10:00:60Z",
             "2026-10-01T24:00:00+08:00", "2026-13-01T10:00:00Z", "nonsense", "",
             "2026-10-01T10:00:00+24:00", "2026-10-01T10:00:00.1234567890Z", "0000-01-01T00:00:00Z"]


def time_text(epoch: int, offset: str, fraction: str) -> str:
    if offset in ("", "Z"):
        seconds = 8 * 3600 if offset == "" else 0  # naive times are local +08:00 in these tests
        tz = dt.timezone(dt.timedelta(seconds=seconds))
    else:
        sign = -1 if offset[0] == "-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    local = dt.datetime.fromtimestamp(epoch, tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset


@st.composite
def start_times(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(BAD_TIMES))
    epoch = T0 + draw(st.integers(0, 400))
    fraction = draw(st.sampled_from(["", "", ".5", ".999999999"]))
    return time_text(epoch, draw(st.sampled_from(OFFSETS)), fraction)


def weighted(common: list[str], rare: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(common), st.sampled_from(common), st.sampled_from(common),
                     st.sampled_from(rare))


@st.composite
def single_row(draw: st.DrawFn, index: int) -> dict[str, str | None]:
    return {
        "record_id": draw(st.one_of(st.just(f"id{index}"), st.just(f"id{index}"),
                                    st.sampled_from(["id0", "id1", "", "x" * 65, "é" * 64]))),
        "service": draw(weighted(["voice", "sms", "data"], ["video", "", "Voice"])),
        "calling": draw(weighted(NUMBERS[:6], NUMBERS[6:])),
        "called": draw(weighted(NUMBERS[:6], NUMBERS[6:])),
        "start_time": draw(start_times()),
        "duration_s": draw(weighted(["0", "5", "60", "61", "119"],
                                    ["-1", "1.5", "abc", "", "10000000000000", "007", "-0"])),
        "volume_kb": draw(weighted(["0", "0", "100", "2048"], ["-3", "", "99999999999999999999"])),
        "trunk_group": draw(weighted(["TG1", "TG1", "TG2"], ["", "t" * 33, "t" * 32])),
        "part_seq": draw(weighted(["0", "0", "0", "1", "2"], ["3", "-1", ""])),
        "charge": draw(weighted(["0", "1", "12", "99"], ["x", "-5", "600000000000"])),
    }


@st.composite
def chain_rows(draw: st.DrawFn, index: int) -> list[dict[str, str | None]]:
    """Parts 1..k of one call, with a small chance of breaking the chain."""
    k = draw(st.integers(2, 4))
    epoch = T0 + draw(st.integers(100, 300))
    service = draw(st.sampled_from(["voice", "voice", "data"]))
    calling, called = draw(st.sampled_from(NUMBERS[:6])), draw(st.sampled_from(NUMBERS[:6]))
    rows = []
    for part in range(1, k + 1):
        duration = draw(st.sampled_from([5, 60, 120]))
        rows.append({
            "record_id": f"id{index}p{part}", "service": service, "calling": calling,
            "called": called, "start_time": time_text(epoch, draw(st.sampled_from(
                ["+08:00", "Z"])), ""),
            "duration_s": str(duration), "volume_kb": "0" if service != "data" else "10",
            "trunk_group": "TG1",
            "part_seq": str(part if draw(st.integers(0, 9)) else part + 1),
            "charge": draw(st.sampled_from(["1", "6", "600000000000"])),
        })
        epoch += duration + draw(st.sampled_from([0, 1, 2, 2, 3, -1, -3]))
    return rows


@st.composite
def tables(draw: st.DrawFn) -> list[dict[str, str | None]]:
    table: list[dict[str, str | None]] = []
    for index in range(draw(st.integers(1, 25))):
        kind = draw(st.integers(0, 9))
        if kind == 0 and table:   # an exact copy of an earlier row under a new id
            copy = dict(draw(st.sampled_from(table)))
            copy["record_id"] = f"dup{index}"
            table.append(copy)
        elif kind == 1:
            table.extend(draw(chain_rows(index)))
        else:
            table.append(draw(single_row(index)))
    if draw(st.booleans()):
        table = draw(st.permutations(table))
    return table


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), default_offset=st.sampled_from([None, "+08:00"]),
       exclusions=st.booleans())
def test_ingest_equals_reference(table: list[dict[str, str | None]], default_offset: str | None,
                                 exclusions: bool) -> None:
    rules = simple_rules(default_offset=default_offset, **({} if exclusions else
                                                           {"exclusions": ""}))
    with tempfile.TemporaryDirectory() as directory:
        path = write_csv(Path(directory) / "a.csv", table)
        result = ingest(path, rules)
    want_rows, want_records = reference_ingest(table, rules)
    for row in want_rows:
        event(row.status if row.reason is None or row.status != "invalid"
              else row.reason.split(":")[0])
    if any(r["parts"] > 1 for r in want_records):
        event("merged chain")

    got_rows = result.rows.select("status", "reason", "unit").rows()
    assert got_rows == [(r.status, r.reason, r.unit) for r in want_rows]
    columns = [c for c in S.RECORDS_SCHEMA]
    got_records = result.records.select(columns).to_dicts()
    assert got_records == [{c: r[c] for c in columns} for r in want_records]

    # rows in = rows accounted for, and one quarantine entry per invalid row
    assert result.rows.height == len(table)
    assert sum(result.counts[s] for s in S.STATUSES) == len(table)
    invalid = result.rows.filter(pl.col("status") == S.INVALID)
    assert result.quarantine.get_column("row").to_list() == invalid.get_column("row").to_list()
    assert result.quarantine.get_column("reason").to_list() == \
        invalid.get_column("reason").to_list()
    assert dict(result.rows.schema) == S.ROWS_SCHEMA
    assert dict(result.records.schema) == {**S.RECORDS_SCHEMA, **S.RATE_CLASS_SCHEMA}
