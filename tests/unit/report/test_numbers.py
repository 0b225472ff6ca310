"""Every number the page shows equals an independent computation on the inputs.

The page's bars carry their numbers in data-* attributes; these tests read them back
with html.parser and compare them with plain-Python computations over the same
frames (the rate class of each record from the rules' own per-record lookups, the
local day from :mod:`datetime`), so that the vectorised polars code is checked
against an obviously correct one.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest

from engine.report import render_report, write_report
from engine.report.page import yuan
from engine.rules import SERVICES
from tests.unit.report.expected import direction_amounts, direction_diffs, list_rows
from tests.unit.report.report_fixtures import Job, PageReader, build_job

OUTCOME = {"matched_exact": "Agreed", "matched_tolerance": "Agreed", "disputed": "Disputed",
           "unmatched": "Unmatched"}
STATUS_LABELS = {
    "matched_exact": "Matched exactly", "matched_tolerance": "Matched within tolerance",
    "disputed": "Disputed", "unmatched": "Unmatched", "duplicate": "Duplicate",
    "invalid": "Invalid", "excluded": "Excluded by rule",
}


@pytest.fixture(scope="module", params=["flags", "differences", "aggregate"])
def job(request: pytest.FixtureRequest) -> Job:
    return build_job(3000, seed=7, policy=request.param)


@pytest.fixture(scope="module")
def page(job: Job) -> PageReader:
    return PageReader(render_report(*job.render_args(), **job.render_kwargs()))


def _considered(job: Job) -> list[dict]:
    """Canonical records with the status of their first row, when paired or unmatched."""
    status_of_row = dict(zip(job.statuses["row"].to_list(), job.statuses["status"].to_list(),
                             strict=True))
    out = []
    for rec in job.records.iter_rows(named=True):
        status = status_of_row[rec["row"]]
        if status in OUTCOME:
            out.append({**rec, "outcome": OUTCOME[status]})
    return out


def test_status_bars_count_input_rows(job: Job, page: PageReader) -> None:
    expected = Counter(job.statuses["status"].to_list())
    got = page.values("status")
    assert got == {STATUS_LABELS[s]: expected.get(s, 0) for s in STATUS_LABELS}
    assert sum(got.values()) == job.statuses.height


def test_rate_class_bars_equal_per_record_classification(job: Job, page: PageReader) -> None:
    rules = job.rules
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for rec in _considered(job):
        label = " · ".join((SERVICES[rec["service"]], rules.call_type_of(rec["called"]),
                            rules.time_band_of(rec["start"])))
        expected[(label, rec["outcome"])] += rec["charge"]
    got = {(b["data-row"], b["data-column"]): int(b["data-value"]) for b in page.bars["by-class"]}
    assert {k: v for k, v in got.items() if v} == dict(expected)
    # every class with a record appears, each with all three columns
    assert {k[0] for k in got} == {k[0] for k in expected}
    assert len(got) == 3 * len({k[0] for k in expected})
    # the classes add up to the party's considered charge in summary.json
    assert sum(got.values()) == job.summary["totals"]["local_charge"]


def test_operator_pair_bars_equal_per_record_lookup(job: Job, page: PageReader) -> None:
    rules = job.rules
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for rec in _considered(job):
        label = f"{rules.operator_of(rec['calling'])} → {rules.operator_of(rec['called'])}"
        expected[(label, rec["outcome"])] += rec["charge"]
    got = {(b["data-row"], b["data-column"]): int(b["data-value"])
           for b in page.bars["by-operator"]}
    assert {k: v for k, v in got.items() if v} == dict(expected)


def test_daily_bars_equal_local_days(job: Job, page: PageReader) -> None:
    tz = dt.timezone(dt.timedelta(seconds=job.rules.timezone_offset_s))
    first, last = dt.date(2026, 10, 1), dt.date(2026, 10, 31)
    expected: dict[str, Counter] = defaultdict(Counter)
    for rec in _considered(job):
        day = dt.datetime.fromtimestamp(rec["start"], tz).date()
        key = "before" if day < first else "after" if day > last else day.isoformat()
        expected[key][rec["outcome"].lower()] += 1
    overview = [b for b in page.bars["daily"] if b["data-panel"] == "overview"]
    days = [b["data-day"] for b in overview]
    # every day of the period is shown, in order, even days without a record
    in_period = [d for d in days if d not in ("before", "after")]
    # records outside the period get their own bars, before and after the period's days
    outside = [k for k in ("before", "after") if k in expected]
    assert outside, "the fixture places records outside the period"
    assert [d for d in days if d in ("before", "after")] == outside
    assert days[0] == "before" if "before" in outside else days[0] == first.isoformat()
    assert in_period == [(first + dt.timedelta(days=i)).isoformat() for i in range(31)]
    got = {b["data-day"]: Counter({k: int(b[f"data-{k}"]) for k in
                                   ("agreed", "disputed", "unmatched")}) for b in overview}
    assert {d: +c for d, c in got.items() if +c} == dict(expected)
    zoom = {b["data-day"]: (int(b["data-disputed"]), int(b["data-unmatched"]))
            for b in page.bars["daily"] if b["data-panel"] == "zoom"}
    assert zoom == {d: (c["disputed"], c["unmatched"]) for d, c in got.items()}


def test_reason_bars_show_summary_per_reason(job: Job, page: PageReader) -> None:
    names = {"start_time": "Start time", "duration": "Duration",
             "charge_rate_mismatch": "Charge: rate mismatch",
             "charge_rounding": "Charge: rounding", "charge_unexplained": "Charge: unexplained"}
    reasons = job.summary["reasons"]
    for code, name in names.items():
        entry = reasons.get(code, {"pairs": 0, "local_charge": 0, "remote_charge": 0})
        assert page.values("reasons", "pairs")[name] == entry["pairs"]
        assert page.values("reasons", "CMCC's charge")[name] == entry["local_charge"]
        assert page.values("reasons", "CUCC's charge")[name] == entry["remote_charge"]


def test_key_figures_and_totals_in_yuan(job: Job, page: PageReader) -> None:
    totals = job.summary["totals"]
    assert yuan(totals["agreed_charge"]) in page.texts["figure-agreed"]
    assert yuan(totals["disputed_local_charge"]) in page.texts["figure-disputed"]
    assert yuan(totals["disputed_remote_charge"]) in page.texts["figure-disputed"]
    assert yuan(totals["unmatched_local_charge"]) in page.texts["figure-unmatched"]
    assert f"{job.statuses.height:,}" in page.texts["figure-rows"]
    disclosure_checks = {"aggregate": 2, "flags": 1, "differences": 0}[job.summary["disclosure"]]
    assert f"All {13 + disclosure_checks} checks pass" in page.texts["checks"]


def test_stage_bars(job: Job, page: PageReader) -> None:
    stages = job.summary["stages"]
    assert page.values("stages", "wall seconds")["MPC on differing pairs"] == round(
        stages["mpc"]["seconds"] * 1000)
    assert page.values("stages", "items processed")["Ingest, validate, rate"] == \
        stages["ingest"]["items"]
    # the total is summary.json's, as given: the page measures no time
    assert f"total wall time {stages['total']['seconds']:,.2f} s" in page.texts["stages"]


def test_stage_total_is_read_not_computed(job: Job) -> None:
    summary = {**job.summary, "stages": {**job.summary["stages"],
                                         "total": {"seconds": 1234.5678, "items": 1},
                                         "agree": {"seconds": 0.25, "items": 2}}}
    page = PageReader(render_report(summary, *job.render_args()[1:], **job.render_kwargs()))
    assert "total wall time 1,234.57 s" in page.texts["stages"]
    assert page.values("stages", "wall seconds")["Agree (job, rules, sizes)"] == 250
    rows = [b["data-row"] for b in page.bars["stages"] if b.get("data-column") == "wall seconds"]
    assert rows.index("Ingest, validate, rate") < rows.index("Agree (job, rules, sizes)") < \
        rows.index("PSI: exact and tolerant values")


def test_worklists_embed_every_call_largest_first(job: Job, page: PageReader) -> None:
    policy = job.summary["disclosure"]
    for kind, outcome in (("disputes", "disputed"), ("unmatched", "unmatched")):
        expected = list_rows(job, outcome, policy)
        assert expected, f"the fixture has {outcome} calls"
        assert page.rows(kind) == expected, kind
        assert page.lists[kind]["total"] == len(expected)
        assert f"All {len(expected):,}" in page.texts[kind]
    invalid = job.statuses.filter(pl.col("status") == "invalid").sort("row")
    messages = dict(job.quarantine.select("row", "message").iter_rows())
    assert page.rows("invalid") == [
        {"row": r, "record_id": rid, "reason": reason, "code": reason.split(":")[0],
         "column": reason.split(":")[1], "message": messages[r]}
        for r, rid, reason in invalid.select("row", "record_id", "reasons").iter_rows()]


def test_capped_worklists_embed_the_largest_and_point_to_the_export(job: Job) -> None:
    page = PageReader(render_report(*job.render_args(), **job.render_kwargs(),
                                    max_list_rows=7))
    policy = job.summary["disclosure"]
    for kind, outcome in (("disputes", "disputed"), ("unmatched", "unmatched")):
        expected = list_rows(job, outcome, policy)
        assert len(expected) > 7
        assert page.rows(kind) == expected[:7]
        assert page.lists[kind]["total"] == len(expected)
        capped = page.texts[f"{kind}-capped"]
        assert f"first 7 of {len(expected):,}" in capped
        assert "settlechain export --out DIR" in capped
        # the first page, rendered without the script, is those rows in that order
        text = page.texts[kind]
        positions = [text.index(r["record_id"]) for r in expected[:7]]
        assert positions == sorted(positions)
        assert expected[7]["record_id"] not in text
    invalid = job.statuses.filter(pl.col("status") == "invalid").sort("row")
    assert [r["row"] for r in page.rows("invalid")] == invalid["row"].head(7).to_list()


def test_net_position_per_direction(job: Job, page: PageReader) -> None:
    amounts = direction_amounts(job)
    zero = {"agreed": 0, "disputed": 0, "unmatched": 0}
    forward, backward = amounts.get(("CMCC", "CUCC"), zero), amounts.get(("CUCC", "CMCC"), zero)
    for row_id, payer, payee, expected in (("net-forward", "CMCC", "CUCC", forward),
                                           ("net-backward", "CUCC", "CMCC", backward)):
        attrs = next(a for t, a in page.tags if a.get("id") == row_id)
        assert (attrs["data-payer"], attrs["data-payee"]) == (payer, payee)
        cells = _row_cells(page, row_id, "data-fen")
        assert cells[:4] == [expected["agreed"], expected["disputed"],
                             expected["agreed"] + expected["disputed"], expected["unmatched"]]
        if job.summary["disclosure"] == "differences":
            assert cells[4] == direction_diffs(job).get((payer, payee), 0)
        else:
            assert len(cells) == 4
    nets = _row_cells(page, "net-row", "data-net")
    net = {o: forward[o] - backward[o] for o in zero}
    assert nets == [net["agreed"], net["disputed"], net["agreed"] + net["disputed"],
                    net["unmatched"]]
    headline = page.texts["net-agreed"]
    if net["agreed"] > 0:
        assert f"CMCC pays CUCC {yuan(net['agreed'])}" in headline
    else:
        assert f"CUCC pays CMCC {yuan(-net['agreed'])}" in headline
    assert "settled automatically" in headline
    # every direction with a call is listed once, and they add up to the local charge
    listed = [(a["data-payer"], a["data-payee"]) for t, a in page.tags
              if t == "tr" and "data-payer" in a]
    assert sorted(listed) == sorted(set(amounts) | {("CMCC", "CUCC"), ("CUCC", "CMCC")})
    assert sum(sum(v.values()) for v in amounts.values()) == job.summary["totals"]["local_charge"]


def _row_cells(page: PageReader, row_id: str, attribute: str) -> list[int]:
    """The ``attribute`` values of the cells of the table row ``row_id``, in order."""
    inside, values = False, []
    for tag, attrs in page.tags:
        if tag == "tr":
            inside = attrs.get("id") == row_id
        elif inside and tag == "td" and attribute in attrs:
            values.append(int(attrs[attribute]))
    return values


def test_inconsistent_summary_is_flagged(job: Job) -> None:
    summary = {**job.summary, "counts": {**job.summary["counts"]},
               "totals": {**job.summary["totals"]}}
    summary["counts"]["disputed"] += 1
    summary["totals"]["local_charge"] -= 5
    page = PageReader(render_report(summary, *job.render_args()[1:]))
    text = page.texts["checks"]
    assert "Inconsistent inputs" in text
    assert "rows disputed" in text and "local charge" in text
    assert "agreed local charge" not in text  # that one still agrees


def test_render_is_deterministic_and_written(job: Job, tmp_path: Path) -> None:
    first = render_report(*job.render_args(), **job.render_kwargs())
    assert render_report(*job.render_args(), **job.render_kwargs()) == first
    path = write_report(tmp_path / "out", *job.render_args(), **job.render_kwargs())
    assert path == tmp_path / "out" / "report.html"
    assert path.read_text(encoding="utf-8") == first
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temp file left
