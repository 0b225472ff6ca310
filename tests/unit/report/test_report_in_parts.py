"""The report of a job's buckets (records.parquet streamed, the calls one part at a time)
is the page of the whole frames at once: same numbers, lists, order and text.

This is how a job writes its report (engine.job.context.write_report), so that the
report of 10^8 rows needs the memory of a bucket."""

from __future__ import annotations


import polars as pl
import pytest

from engine.report import StatusFile, render_report, write_bucketed_report
from engine.report.frames import PartyFrames, ReportInputError
from tests.unit.report.report_fixtures import build_job


def _parts(job, n_parts: int):
    """The job split the way buckets split it: by unit (a chain's rows stay together),
    each part with its own unit numbering and no record ids in its frames."""
    unit_part = job.rows.select("unit", (pl.col("unit").hash(7) % n_parts).alias("part")).unique()
    for part in range(n_parts):
        units = unit_part.filter(pl.col("part") == part)["unit"]
        rows = job.rows.filter(pl.col("unit").is_in(units.implode()))
        records = job.records.filter(pl.col("unit").is_in(units.implode()))
        renumber = {u: i for i, u in enumerate(sorted(records["unit"].to_list()))}
        remap = pl.col("unit").replace_strict(renumber, return_dtype=pl.Int64)
        statuses = job.statuses.filter(pl.col("row").is_in(rows["row"].implode()))
        yield PartyFrames(statuses.with_columns(pl.lit(None, pl.String).alias("record_id")),
                          records.with_columns(remap, pl.lit(None, pl.String).alias("record_id")),
                          rows.with_columns(remap).drop("record_id", strict=False))


@pytest.mark.parametrize(("policy", "n_parts", "max_list_rows"),
                         [("flags", 1, 20_000), ("flags", 5, 20_000), ("aggregate", 3, 20_000),
                          ("differences", 4, 20_000), ("flags", 7, 15)])
def test_parts_give_the_same_page(tmp_path, policy, n_parts, max_list_rows):
    job = build_job(2500, seed=3, policy=policy)
    assert job.statuses["status"].is_in(["invalid"]).any()  # rows outside every part
    records_path, quarantine_path = tmp_path / "records.parquet", tmp_path / "quarantine.parquet"
    job.statuses.write_parquet(records_path)
    if job.quarantine is not None:
        job.quarantine.write_parquet(quarantine_path)
    whole_page = render_report(*job.render_args(), **job.render_kwargs(),
                               max_list_rows=max_list_rows)
    path = write_bucketed_report(tmp_path / "out", job.summary,
                                 StatusFile(records_path, quarantine_path),
                                 _parts(job, n_parts), job.rules, statement=job.statement,
                                 max_list_rows=max_list_rows)
    assert path.read_text(encoding="utf-8") == whole_page


def test_worklists_name_the_record_ids_of_records_parquet(tmp_path):
    """A job's bucket frames carry no record id: the worklists take them from
    records.parquet (before, the job's disputes list showed none)."""
    job = build_job(1500, seed=5)
    job.statuses.write_parquet(tmp_path / "records.parquet")
    page = write_bucketed_report(tmp_path / "out", job.summary,
                                 StatusFile(tmp_path / "records.parquet"), _parts(job, 3),
                                 job.rules).read_text(encoding="utf-8")
    disputed = job.statuses.filter(pl.col("status") == "disputed")["record_id"].to_list()
    assert disputed and all(record_id in page for record_id in disputed[:50])


def test_status_file_refuses_what_the_frames_refuse(tmp_path):
    job = build_job(500, seed=2)
    bad = job.statuses.with_columns(
        pl.when(pl.col("row") == 7).then(pl.lit("settled")).otherwise(pl.col("status"))
        .alias("status"))
    bad.write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ReportInputError, match="unknown status"):
        _ = StatusFile(tmp_path / "bad.parquet").status_rows
    job.statuses.drop("status").write_parquet(tmp_path / "no-status.parquet")
    with pytest.raises(ReportInputError, match="missing column"):
        StatusFile(tmp_path / "no-status.parquet")
    with pytest.raises(ReportInputError, match="cannot read"):
        StatusFile(tmp_path / "absent.parquet")
