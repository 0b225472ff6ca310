"""The report's aggregation over slices: the same numbers as at once, excluded records
never counted (they carry a charge here, so a miscount would show in the sums)."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from engine.report.aggregate import OUTCOMES, _by_class, aggregate
from engine.report.frames import PartyFrames
from engine.report.parties import read_parties
from tests.unit.report.report_fixtures import build_job

OUTCOME = {"matched_exact": "agreed", "matched_tolerance": "agreed", "disputed": "disputed",
           "unmatched": "unmatched"}


@pytest.fixture(scope="module")
def job():
    job = build_job(3000, seed=11, excluded_share=0.05)
    # give excluded records a charge, so that counting one would change a total
    excluded_rows = job.statuses.filter(pl.col("status") == "excluded")["row"]
    assert excluded_rows.len() > 10
    return dataclasses.replace(job, records=job.records.with_columns(
        pl.when(pl.col("row").is_in(excluded_rows.implode())).then(pl.lit(977, pl.Int64))
        .otherwise(pl.col("charge")).alias("charge")))


def _expected(job) -> tuple[dict[str, int], dict[str, int]]:
    status_of = dict(zip(job.statuses["row"], job.statuses["status"], strict=True))
    records = {o: 0 for o in OUTCOMES}
    charge = {o: 0 for o in OUTCOMES}
    for row, amount in zip(job.records["row"], job.records["charge"], strict=True):
        outcome = OUTCOME.get(status_of[row])
        if outcome is not None:
            records[outcome] += 1
            charge[outcome] += amount
    return records, charge


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000, 1 << 20])
def test_by_class_in_slices(job, chunk_rows):
    considered = PartyFrames(job.statuses, job.records, job.rows).calls
    got = _by_class(considered, job.rules, chunk_rows=chunk_rows)
    assert got["outcome"].null_count() == 0
    totals = got.group_by("outcome").agg(pl.col("records").sum(), pl.col("charge").sum())
    records, charge = _expected(job)
    assert {o: (r, c) for o, r, c in totals.iter_rows()} == \
        {o: (records[o], charge[o]) for o in OUTCOMES if records[o]}
    whole = _by_class(considered, job.rules, chunk_rows=1 << 30)
    keys = ["service", "call_type", "time_band", "payer", "payee", "outcome"]
    assert got.sort(keys).equals(whole.sort(keys))


def test_days_skip_excluded_records(job):
    data = aggregate(job.summary, PartyFrames(job.statuses, job.records, job.rows), job.rules,
                     read_parties(job.summary, job.statement, job.rules))
    records, charge = _expected(job)
    for outcome in OUTCOMES:
        assert sum(day.records[outcome] for day in data.days) == records[outcome]
        assert sum(day.charge[outcome] for day in data.days) == charge[outcome]
