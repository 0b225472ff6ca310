"""The lists' columns per disclosure policy, the CSV format (quoting, formula
neutralisation), local times, and the adapter's views of the frames."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io

import polars as pl
import pytest

from engine.report import ReportInputError, render_report
from engine.report.frames import PartyFrames
from engine.report.lists import (
    DISPUTES, INVALID, POLICIES, SPECS, UNMATCHED, csv_safe, csv_text, disclosed, export_frame,
    label_calls, offset_text,
)
from tests.unit.report.expected import list_rows
from tests.unit.report.report_fixtures import Job, PageReader, build_job

DIFFS = ["diff_start_s", "diff_duration_s", "diff_charge", "diff_rated_charge"]


@pytest.fixture(scope="module")
def job() -> Job:
    return build_job(2500, seed=41, policy="differences")


@pytest.mark.parametrize("policy", POLICIES)
def test_columns_per_policy(policy: str) -> None:
    names = DISPUTES.visible(policy).names
    assert ("reasons" in names) == (policy != "aggregate")
    assert all((d in names) == (policy == "differences") for d in DIFFS)
    keys = [d.key for d in DISPUTES.visible(policy).display]
    assert ("reasons" in keys) == (policy != "aggregate")
    assert ("diff_charge" in keys) == (policy == "differences")
    filters = [f.key for f in DISPUTES.visible(policy).filters]
    assert ("reason" in filters) == (policy != "aggregate")
    # the other lists hold nothing about the counterparty under any policy
    assert UNMATCHED.visible(policy).names == UNMATCHED.names
    assert INVALID.visible(policy).names == INVALID.names
    assert not {"pair_id", "reasons", *DIFFS} & set(UNMATCHED.names)


def test_an_unknown_policy_discloses_what_aggregate_does() -> None:
    assert DISPUTES.visible("<unknown>").names == DISPUTES.visible("aggregate").names
    assert disclosed(None, "nonsense") and not disclosed("flags", "nonsense")


def test_every_display_and_filter_column_is_a_list_column() -> None:
    for spec in SPECS.values():
        names = set(spec.names)
        for item in (*spec.display, *spec.filters):
            assert set(item.columns) <= names, (spec.kind, item.key)
            assert item.disclosure == max(
                (c.disclosure for c in spec.columns if c.name in item.columns),
                key=lambda d: -1 if d is None else POLICIES.index(d), default=None), item.key


def test_csv_quotes_and_neutralises_formulas() -> None:
    frame = pl.DataFrame({
        "text": ["plain", "=1+1", "+86", "-5", "@SUM(A1)", "\tx", "\rx", 'a,"b"', "l\nm",
                 "", None, " =not at start"],
        "number": [1, -2, 3, None, 5, 6, 7, 8, 9, 10, 11, 12],
    }, schema={"text": pl.String, "number": pl.Int64})
    text = csv_text(frame)
    assert text.startswith("text,number\nplain,1\n'=1+1,-2\n'+86,3\n'-5,\n'@SUM(A1),5\n")
    assert '\n"\'\rx",7\n' in text  # a carriage return is quoted as well as neutralised
    assert '\n"a,""b""",8\n"l\nm",9\n"",10\n,11\n =not at start,12\n' in text
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert [r[0] for r in parsed[1:]] == ["plain", "'=1+1", "'+86", "'-5", "'@SUM(A1)", "'\tx",
                                          "'\rx", 'a,"b"', "l\nm", "", "", " =not at start"]
    # numbers are never touched, even negative ones
    assert [r[1] for r in parsed[1:]][:2] == ["1", "-2"]
    assert csv_safe(frame)["number"].to_list() == frame["number"].to_list()


@pytest.mark.parametrize("offset_s", [8 * 3600, -(5 * 3600 + 30 * 60), 0])
def test_export_times_are_local_with_offset(job: Job, offset_s: int) -> None:
    rules = dataclasses.replace(job.rules, timezone_offset_s=offset_s)
    frames = PartyFrames(job.statuses, job.records, job.rows)
    labelled = label_calls(frames.worklist("unmatched"), rules)
    frame = export_frame(UNMATCHED, labelled, "flags", offset_s)
    tz = dt.timezone(dt.timedelta(seconds=offset_s))
    for epoch, start, day in zip(labelled["start"], frame["start"], frame["day"], strict=True):
        moment = dt.datetime.fromtimestamp(epoch, tz)
        assert start == moment.isoformat() and day == moment.date().isoformat()
    assert offset_text(offset_s) == frame["start"][0][-6:]


def test_worklists_equal_the_record_by_record_lists(job: Job) -> None:
    frames = PartyFrames(job.statuses, job.records, job.rows)
    for outcome in ("disputed", "unmatched"):
        spec = DISPUTES if outcome == "disputed" else UNMATCHED
        got = label_calls(frames.worklist(outcome), job.rules).select(spec.names).to_dicts()
        assert got == list_rows(job, outcome, "differences")
        assert frames.worklist(outcome, 5).to_dicts() == frames.worklist(outcome).head(5).to_dicts()
        assert frames.worklist(outcome, 0).height == 0


def test_unmatched_list_carries_nothing_of_records_parquet_beyond_status(job: Job) -> None:
    """Even if records.parquet gave an unmatched row a pair id, reasons or differences,
    the unmatched list does not carry them."""
    statuses = job.statuses.with_columns(
        pl.when(pl.col("status") == "unmatched").then(pl.lit("f" * 32))
        .otherwise(pl.col("pair_id")).alias("pair_id"),
        pl.when(pl.col("status") == "unmatched").then(pl.lit(99))
        .otherwise(pl.col("diff_charge")).alias("diff_charge"))
    worklist = PartyFrames(statuses, job.records, job.rows).worklist("unmatched")
    assert worklist["pair_id"].null_count() == worklist.height
    assert worklist["diff_charge"].null_count() == worklist.height


def test_numbers_held_as_integers_are_read(job: Job) -> None:
    """Ingest may hold calling/called as unsigned integers: the same lists."""
    numeric = job.records.with_columns(pl.col("calling").cast(pl.UInt64),
                                       pl.col("called").cast(pl.UInt64))
    for outcome in ("disputed", "unmatched"):
        assert PartyFrames(job.statuses, numeric, job.rows).worklist(outcome).equals(
            PartyFrames(job.statuses, job.records, job.rows).worklist(outcome))


def test_invalid_rows_and_reasons(job: Job) -> None:
    statuses = job.statuses.with_columns(
        pl.when(pl.col("row") == job.statuses.filter(pl.col("status") == "invalid")["row"][0])
        .then(pl.lit("no_tariff")).otherwise(pl.col("reasons")).alias("reasons"))
    frames = PartyFrames(statuses, job.records, job.rows, job.quarantine)
    invalid = frames.invalid_rows()
    expected = statuses.filter(pl.col("status") == "invalid").sort("row")
    assert invalid["row"].to_list() == expected["row"].to_list()
    first = invalid.row(0, named=True)
    assert (first["reason"], first["code"], first["column"]) == ("no_tariff", "no_tariff", None)
    assert invalid["message"].null_count() == 0
    by_reason = {r: (n, first) for r, n, first in frames.invalid_by_reason(3).iter_rows()}
    assert by_reason["no_tariff"] == (1, [first["row"]])
    rest = expected["row"].to_list()[1:]
    assert by_reason["wrong_type:duration_s"] == (len(rest), rest[:3])
    page = PageReader(render_report(job.summary, statuses, job.records, job.rows, job.rules,
                                    quarantine=job.quarantine))
    summary = page.texts["invalid"]
    assert f"{rest[0]:,}, {rest[1]:,}" in summary and "no_tariff" in summary
    assert f"and {len(rest) - 20:,} more" in summary


@pytest.mark.parametrize(("change", "column"), [
    ("record_id", "record_id"), ("status", "status"), ("drop", "row")])
def test_input_mismatch_names_the_first_differing_row(job: Job, change: str, column: str) -> None:
    frames = PartyFrames(job.statuses, job.records, job.rows)
    assert frames.input_mismatch() is None
    rows = job.rows
    target = 1234
    if change == "record_id":
        rows = rows.with_columns(pl.when(pl.col("row") == target).then(pl.lit("other"))
                                 .otherwise(pl.col("record_id")).alias("record_id"))
    elif change == "status":
        flip = {"ok": "duplicate", "duplicate": "ok", "invalid": "ok", "excluded": "ok"}
        rows = rows.with_columns(pl.when(pl.col("row") == target)
                                 .then(pl.col("status").replace(flip))
                                 .otherwise(pl.col("status")).alias("status"))
    else:
        rows = rows.filter(pl.col("row") != rows["row"].max())
        target = job.rows.height
    mismatch = PartyFrames(job.statuses, job.records, rows).input_mismatch()
    assert mismatch is not None and mismatch[:2] == (target, column)


def test_max_list_rows_must_not_be_negative(job: Job) -> None:
    with pytest.raises(ValueError):
        render_report(*job.render_args(), max_list_rows=-1)


def test_quarantine_without_message_column_is_refused(job: Job) -> None:
    with pytest.raises(ReportInputError) as info:
        render_report(*job.render_args(), quarantine=job.quarantine.drop("message"))
    assert "quarantine.parquet" in str(info.value) and "'message'" in str(info.value)
