"""The page: escaping of every value from data, empty inputs, bad inputs, formatting,
self-containment."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import re
from importlib import resources

import polars as pl
import pytest

from engine.report import ReportInputError, render_report
from engine.report.aggregate import MAX_DAYS, period_days
from engine.report.page import MAX_CLASS_ROWS, percent, yuan
from engine.rules import Operator
from tests.unit.report.report_fixtures import Job, PageReader, build_job, example_rules

WORKLIST_JS = resources.files("engine.report").joinpath("worklist.js").read_text(encoding="utf-8")
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
    statement = {**job.statement, "job_id": "<xss-job>",
                 "signatures": [{"signer": "<xss-signer>", "sig": "00",
                                 "key_id": "<xss-key>"}]}
    return dataclasses.replace(job, summary=summary, rules=rules, statement=statement)


def test_values_from_data_are_escaped() -> None:
    job = _hostile_job()
    html = render_report(*job.render_args(), **job.render_kwargs())
    page = PageReader(html)
    # no element or attribute came from data: no injected tag, no handler; the only
    # scripts are the page's own and its JSON data blocks
    injected = [t for t, _ in page.tags if t == "img" or t.startswith("xss")]
    assert not injected
    assert not [(t, a) for t, a in page.tags for k in a if k.startswith("on")]
    assert sum(1 for t, _ in page.tags if t == "svg") == len(page.charts)
    assert [a for a, _ in page.scripts] == [
        {"type": "application/json", "class": "list-data"}] * 3 + [{}]
    assert page.scripts[-1][1] == WORKLIST_JS
    # ...and the hostile values are shown as text, escaped
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;&amp;&#x27;&quot;" in html
    assert HOSTILE in page.texts["disputes"]
    # in the data block the record id is intact once decoded, and cannot close the block
    assert HOSTILE in page.lists["disputes"]["data"]["record_id"]
    for _, text in page.scripts[:-1]:
        assert "<" not in text and ">" not in text and "&" not in text
    assert "<svg onload=alert(2)>" in page.values("reasons", "pairs")
    assert "<xss-stage>" in page.values("stages", "wall seconds")
    assert "<script>x</script>" in page.texts["decision"]
    assert "<xss-signer>" in page.texts["signers"] and "<xss-key>" in page.texts["signers"]
    # the unknown policy named in summary.json is flagged, and the page discloses no more
    # than the rules' policy allows
    assert "<xss-policy>" in page.texts["checks"]
    assert "diff_charge" in page.lists["disputes"]["data"]


def test_page_is_self_contained() -> None:
    job = build_job(500, seed=4)
    html = render_report(*job.render_args(), **job.render_kwargs())
    page = PageReader(html)
    # no URL of any kind: no external resource element, no src, links only within the page
    assert not re.search(r"(?i)(https?:|ftp:|//[a-z0-9]|src=|@import)", html)
    # the script reaches no network and writes no markup from data
    script = page.scripts[-1][1]
    for token in ("fetch", "XMLHttpRequest", "WebSocket", "EventSource", "sendBeacon",
                  "import(", "eval(", "Function(", "innerHTML", "outerHTML",
                  "insertAdjacentHTML", "document.write", ".src", "setAttribute(\"on",
                  "location"):
        assert token not in script, token
    assert "url(" not in html.split("<style>")[1].split("</style>")[0]
    assert not [t for t, _ in page.tags if t in ("link", "img", "iframe", "object", "embed",
                                                "form", "base")]
    hrefs = [a["href"] for t, a in page.tags if "href" in a]
    assert hrefs and all(re.fullmatch(r"#[a-z-]+", h) for h in hrefs)
    for href in hrefs:
        assert href[1:] in page.texts, f"{href} points at no element"
    # the policy: nothing fetched, and only this style sheet and this script run
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert len(csp) == 1 and csp[0]["http-equiv"] == "Content-Security-Policy"
    policy = dict(d.strip().split(" ", 1) for d in csp[0]["content"].split(";"))
    assert policy["default-src"] == "'none'"
    assert "unsafe" not in csp[0]["content"]
    style = html.split("<style>")[1].split("</style>")[0]
    assert policy["style-src"] == f"'sha256-{_b64sha256(style)}'"
    assert policy["script-src"] == f"'sha256-{_b64sha256(page.scripts[-1][1])}'"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"


def _b64sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


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
    assert "No disputed pairs" in page.texts["disputes"]
    assert "No unmatched records" in page.texts["unmatched"]
    assert "No invalid rows" in page.texts["invalid"]
    assert page.lists == {}


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
    assert "No disputed pairs" in page.texts["disputes"]
    assert "disputes" not in page.lists
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
    ("2026-09/2026-10", (dt.date(2026, 9, 1), dt.date(2026, 10, 31))),
    ("2026-10/2026-09", None), ("2026-10-05", None), ("2026-13", None), ("October", None),
    ("2026-09/2026-10/2026-11", None), (None, None),
])
def test_period_days(period: object, expected: object) -> None:
    assert period_days(period, 8 * 3600) == expected


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


@pytest.mark.parametrize("policy", ["aggregate", "flags"])
def test_page_shows_no_more_than_the_policy(policy: str) -> None:
    """records.parquet holding reasons or differences the policy does not disclose (a
    bug upstream, or a tampered file): the page flags it and shows none of it."""
    job = build_job(1500, seed=12, policy="differences")
    rules = job.rules.with_disclosure(policy)
    summary = {**job.summary, "disclosure": policy, "rules_sm3": rules.sm3_hash()}
    html = render_report(summary, job.statuses, job.records, job.rows, rules,
                         **job.render_kwargs())
    page = PageReader(html)
    checks = page.texts["checks"]
    assert "Inconsistent inputs" in checks
    assert f"rows with differences (none under the '{policy}' policy)" in checks
    assert ("disputed rows with reasons" in checks) == (policy == "aggregate")
    disputes = page.lists["disputes"]
    assert not [c for c in disputes["data"] if c.startswith("diff_")]
    assert ("reasons" in disputes["data"]) == (policy == "flags")
    assert "Δ" not in page.texts["disputes"] and "Σ Δ" not in page.texts["net"]
    if policy == "aggregate":
        assert 'class="tag"' not in html.split('id="disputes"')[1].split("</section>")[0]


def test_policy_of_summary_and_rules_disagree() -> None:
    """summary.json says differences, the rules say flags: the page follows the one that
    discloses less and says so."""
    job = build_job(800, seed=13, policy="flags")
    summary = {**job.summary, "disclosure": "differences"}
    page = PageReader(render_report(summary, *job.render_args()[1:], **job.render_kwargs()))
    assert "disclosure policy (summary.json vs rules)" in page.texts["checks"]
    assert not [c for c in page.lists["disputes"]["data"] if c.startswith("diff_")]


def test_huge_text_is_cut_on_the_page_not_in_the_lists() -> None:
    """An invalid row's record id is as read, of any length: the page cuts it."""
    base = build_job(600, seed=14)
    row = base.statuses.filter(pl.col("status") == "invalid")["row"][0]
    huge = "X" * 200_000
    job = build_job(600, seed=14, record_ids={row: huge})
    html = render_report(*job.render_args(), **job.render_kwargs())
    assert len(html) < len(render_report(*base.render_args(), **base.render_kwargs())) + 5_000
    page = PageReader(html)
    clipped = [r["record_id"] for r in page.rows("invalid") if r["row"] == row]
    assert clipped == ["X" * 999 + "…"]
