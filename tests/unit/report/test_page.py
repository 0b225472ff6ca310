"""The page: escaping of every value from data, empty inputs, bad inputs, formatting,
self-containment."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import polars as pl
import pytest

from engine.report import ReportInputError, render_report
from engine.report.aggregate import MAX_DAYS, period_days
from engine.report.page import MAX_CLASS_ROWS, percent, yuan
from engine.rules import Operator
from tests.unit.report.report_fixtures import Job, PageReader, build_job, example_rules

HOSTILE = '<script>alert("pwned")</script>&\'"<img src=x onerror=alert(1)>'


def _hostile_job() -> Job:
    base = build_job(600, seed=3, policy="differences")
    disputed_rows = base.statuses.filter(pl.col("status") == "disputed")["row"].to_list()
    job = build_job(600, seed=3, policy="differences",
                    record_ids={disputed_rows[0]: HOSTILE})
    summary = {
        **job.summary,
        "job_id": "<xss-job>", "party": "A<script>", "counterparty": "B&amp;<xss-party>",
        "period": "<xss-period>2026-10", "rules_sm3": "\"><svg onload=alert(1)>",
        "disclosure": "<xss-policy>",
        "reasons": {**job.summary["reasons"],
                    "<svg onload=alert(2)>": {"pairs": 1, "local_charge": 2,
                                              "remote_charge": 3}},
        "review": {"settlement": "manual_review", "reasons": ["<script>x</script>"]},
        "anchor": {"index": "<xss-index>", "leaf_hash": "<script>",
                   "checkpoint": "</pre><script>"},
        "stages": {**job.summary["stages"], "<xss-stage>": {"seconds": 1, "items": 2}},
    }
    rules = dataclasses.replace(job.rules, name="<script>rules</script>", version="<xss-v>")
    return dataclasses.replace(job, summary=summary, rules=rules)


def test_values_from_data_are_escaped() -> None:
    job = _hostile_job()
    html = render_report(*job.render_args())
    page = PageReader(html)
    # no element or attribute came from data: no script, no injected tag, no handler
    injected = [t for t, _ in page.tags if t in ("script", "img") or t.startswith("xss")]
    assert not injected
    assert not [(t, a) for t, a in page.tags for k in a if k.startswith("on")]
    assert sum(1 for t, _ in page.tags if t == "svg") == len(page.charts)
    # ...and the hostile values are shown as text, escaped
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;&amp;&#x27;&quot;" in html
    assert HOSTILE in page.texts["disputed"]
    assert "<svg onload=alert(2)>" in page.values("reasons", "pairs")
    assert "<xss-stage>" in page.values("stages", "wall seconds")
    assert "<script>x</script>" in page.texts["decision"]


def test_page_is_self_contained() -> None:
    job = build_job(500, seed=4)
    html = render_report(*job.render_args())
    page = PageReader(html)
    # no URL of any kind, no external resource element, no script at all
    assert not re.search(r"(?i)(https?:|//[a-z0-9]|url\(|@import|src=|href=)", html)
    assert not [t for t, _ in page.tags if t in ("script", "link", "img", "iframe", "object")]
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in csp[0]["content"]


@pytest.mark.parametrize("policy", ["flags", "aggregate"])
def test_empty_inputs_render(policy: str) -> None:
    """0 input rows: every chart is there, with zeros or an explicit 'nothing' note."""
    job = build_job(0, policy=policy)
    assert job.statuses.height == job.records.height == job.rows.height == 0
    page = PageReader(render_report(*job.render_args()))
    assert set(page.charts) == {"status", "reasons", "by-class", "by-operator", "daily",
                                "stages"}
    assert set(page.values("status").values()) == {0}
    assert set(page.values("reasons").values()) == {0}
    assert page.bars["by-class"] == [] and page.bars["by-operator"] == []
    # the period's 31 days are still drawn, all zero
    overview = [b for b in page.bars["daily"] if b["data-panel"] == "overview"]
    assert len(overview) == 31 and all(b["data-agreed"] == "0" for b in overview)
    assert "No disputed records" in page.texts["disputed"]


def test_frames_with_null_typed_columns_render() -> None:
    """Frames built from empty Python lists have Null dtypes: still accepted."""
    rules = example_rules()
    empty = {c: [] for c in ("row", "record_id", "status")}
    statuses = pl.DataFrame(empty)
    records = pl.DataFrame({c: [] for c in ("unit", "row", "record_id", "service", "calling",
                                             "called", "start", "duration_s", "volume_kb",
                                             "charge")})
    rows = pl.DataFrame({"row": [], "unit": []})
    page = PageReader(render_report({}, statuses, records, rows, rules))
    assert set(page.values("status").values()) == {0}
    assert page.bars["daily"] == [] and page.bars["stages"] == []


def test_no_disputes_and_missing_summary_parts() -> None:
    job = build_job(800, seed=5, disputed_share=0.0)
    summary = {k: v for k, v in job.summary.items() if k not in ("anchor", "stages", "review")}
    page = PageReader(render_report(summary, *job.render_args()[1:]))
    assert page.values("status")["Disputed"] == 0
    assert "No disputed records" in page.texts["disputed"]
    assert page.bars["stages"] == []
    assert "Settlement: unknown" in page.texts["decision"]


def test_manual_review_shows_reasons() -> None:
    job = build_job(800, seed=6, disputed_share=0.2)
    assert job.summary["review"]["settlement"] == "manual_review"
    page = PageReader(render_report(*job.render_args()))
    assert "manual review" in page.texts["decision"]
    assert job.summary["review"]["reasons"][0] in page.texts["decision"]


def test_missing_column_names_frame_and_column() -> None:
    job = build_job(50)
    with pytest.raises(ReportInputError) as info:
        render_report(job.summary, job.statuses.drop("status"), job.records, job.rows,
                      job.rules)
    assert "records.parquet" in str(info.value) and "'status'" in str(info.value)


def test_unknown_status_names_row() -> None:
    job = build_job(50)
    statuses = job.statuses.with_columns(
        pl.when(pl.col("row") == 17).then(pl.lit("maybe")).otherwise(pl.col("status"))
        .alias("status"))
    with pytest.raises(ReportInputError) as info:
        render_report(job.summary, statuses, job.records, job.rows, job.rules)
    assert "row 17" in str(info.value) and "'maybe'" in str(info.value)


def test_wrong_column_type_is_refused() -> None:
    job = build_job(50)
    records = job.records.with_columns(pl.col("charge").cast(pl.Float64))
    with pytest.raises(ReportInputError) as info:
        render_report(job.summary, job.statuses, records, job.rows, job.rules)
    assert "'charge'" in str(info.value) and "Float64" in str(info.value)


def test_yuan_and_percent_formatting() -> None:
    assert yuan(0) == "¥0.00"
    assert yuan(5) == "¥0.05"
    assert yuan(100) == "¥1.00"
    assert yuan(123_456_789) == "¥1,234,567.89"
    assert yuan(-1_234_500) == "−¥12,345.00"
    assert percent(0, 10) == "0 %"
    assert percent(1, 10_000) == "<0.1 %"
    assert percent(9_999, 10_000) == ">99.9 %"
    assert percent(98, 100) == "98.0 %"
    assert percent(5, 0) == "0 %"


def test_many_operator_pairs_are_capped_with_an_other_row() -> None:
    """30 operators make up to 31^2 payer -> payee pairs: the chart keeps the largest
    and sums the rest into one row, so the totals still add up."""
    job = build_job(3000, seed=8)
    prefixes = [p + d for p in ("86134", "86135", "86130") for d in "0123456789"]
    operators = tuple(Operator(id=f"OP{i:02d}", name="", prefixes=(p,))
                      for i, p in enumerate(prefixes))
    rules = dataclasses.replace(job.rules, operators=operators)
    page = PageReader(render_report(job.summary, job.statuses, job.records, job.rows, rules))
    rows = {b["data-row"] for b in page.bars["by-operator"]}
    assert len(rows) == MAX_CLASS_ROWS
    assert any(r.endswith(" others") for r in rows)
    assert sum(int(b["data-value"]) for b in page.bars["by-operator"]) == \
        job.summary["totals"]["local_charge"]


@pytest.mark.parametrize(("period", "expected"), [
    ("2026-10", (dt.date(2026, 10, 1), dt.date(2026, 10, 31))),
    ("2028-02", (dt.date(2028, 2, 1), dt.date(2028, 2, 29))),
    ("2026-10-05", (dt.date(2026, 10, 5), dt.date(2026, 10, 5))),
    ("2026-10-01/2026-10-15", (dt.date(2026, 10, 1), dt.date(2026, 10, 15))),
    ("2026-10-01..2026-10-15", (dt.date(2026, 10, 1), dt.date(2026, 10, 15))),
    ("2026-10-15/2026-10-01", None), ("2026-13", None), ("October", None), (None, None),
])
def test_period_days(period: object, expected: object) -> None:
    assert period_days(period) == expected


def test_days_without_a_readable_period_follow_the_data_and_are_capped() -> None:
    """No period: the days span the data, at most MAX_DAYS of them, older ones summed
    into 'before' (a stray record from 1970 must not make a 20,000-bar chart)."""
    job = build_job(1000, seed=9, period="Q4")
    considered_statuses = ("matched_exact", "matched_tolerance", "disputed", "unmatched")
    status_of_row = dict(job.statuses.select("row", "status").iter_rows())
    stray_unit = next(r["unit"] for r in job.records.iter_rows(named=True)
                      if status_of_row[r["row"]] in considered_statuses)
    stray = job.records.with_columns(
        pl.when(pl.col("unit") == stray_unit).then(pl.lit(86_400)).otherwise(pl.col("start"))
        .alias("start"))
    page = PageReader(render_report(job.summary, job.statuses, stray, job.rows, job.rules))
    days = [b["data-day"] for b in page.bars["daily"] if b["data-panel"] == "overview"]
    assert len(days) == MAX_DAYS + 1
    assert days[0] == "before" and days[-1] == "2026-11-01"  # the latest record's day
    assert days[1] == (dt.date(2026, 11, 1) - dt.timedelta(days=MAX_DAYS - 1)).isoformat()
    total = sum(int(b["data-agreed"]) + int(b["data-disputed"]) + int(b["data-unmatched"])
                for b in page.bars["daily"] if b["data-panel"] == "overview")
    considered = sum(1 for r in stray.iter_rows(named=True)
                     if status_of_row[r["row"]] in considered_statuses)
    assert total == considered


def test_null_in_a_canonical_column_names_row_and_column() -> None:
    job = build_job(50)
    target_row = job.records["row"][3]
    records = job.records.with_columns(
        pl.when(pl.col("row") == target_row).then(None).otherwise(pl.col("start"))
        .alias("start"))
    with pytest.raises(ReportInputError) as info:
        render_report(job.summary, job.statuses, records, job.rows, job.rules)
    assert f"row {target_row}" in str(info.value) and "'start'" in str(info.value)


def test_row_listed_twice_is_refused() -> None:
    job = build_job(50)
    statuses = pl.concat([job.statuses, job.statuses.slice(10, 1)])
    with pytest.raises(ReportInputError) as info:
        render_report(job.summary, statuses, job.records, job.rows, job.rules)
    assert f"row {job.statuses['row'][10]}" in str(info.value)


def test_out_of_range_service_is_refused() -> None:
    job = build_job(50)
    records = job.records.with_columns(pl.lit(300, dtype=pl.Int64).alias("service"))
    with pytest.raises(ReportInputError) as info:
        render_report(job.summary, job.statuses, records, job.rows, job.rules)
    assert "canonical records" in str(info.value)


def test_statuses_in_any_row_order_give_the_same_page() -> None:
    """records.parquet in input order takes a positional fast path; shuffled, a join."""
    job = build_job(1200, seed=10)
    shuffled = job.statuses.sample(fraction=1.0, shuffle=True, seed=1)
    assert shuffled["row"].to_list() != job.statuses["row"].to_list()
    assert render_report(job.summary, shuffled, *job.render_args()[2:]) == \
        render_report(*job.render_args())
