"""The worklists of report.html used in headless Chromium as an analyst would: sorting
by clicking a column header, filtering with the selects, paging, and downloading the
list as CSV (a real download, read back from disk).

What the page shows is compared with the lists computed record by record in plain
Python (tests/unit/report/expected.py); the CSV the browser writes is compared with
what ``settlechain export`` writes for the same rows (engine.report.lists), byte for
byte, and parsed back with the stdlib csv module.

Requires Debian's ``chromium``; without it these tests FAIL with the install line.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine.report import write_report
from engine.report.frames import PartyFrames
from engine.report.lists import DISPUTES, UNMATCHED, csv_text, export_frame, label_calls
from tests.integration.report.chromium import INSTALL_LINE, Browser, Page, find_chromium
from tests.unit.report.expected import list_rows, local
from tests.unit.report.report_fixtures import Job, build_job

# cells of the visible table: per row, [header key -> cell text]
TABLE = """
((id) => JSON.stringify((() => {
  const section = document.getElementById(id);
  const keys = [...section.querySelectorAll('table.worklist thead th')].map(t => t.dataset.key);
  return {
    keys,
    sort: [...section.querySelectorAll('table.worklist thead th[aria-sort]')]
      .map(t => [t.dataset.key, t.getAttribute('aria-sort')]),
    rows: [...section.querySelectorAll('table.worklist tbody tr')].map(tr =>
      Object.fromEntries([...tr.children].map((td, i) => [keys[i], td.textContent]))),
    status: section.querySelector('.matching') ? section.querySelector('.matching').textContent : null,
    download: section.querySelector('[data-action=download]')
      ? section.querySelector('[data-action=download]').textContent : null,
    options: Object.fromEntries([...section.querySelectorAll('select[data-filter]')].map(s =>
      [s.dataset.filter, [...s.options].map(o => [o.value, o.textContent])])),
  };
})()))
"""

HOSTILE_IDS = ['=HYPERLINK("http://x")', 'a,b"c', "line\nbreak", "-5", "@at", "+1", "\tTAB"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.fail(f"Chromium is not installed; the report is tested in headless Chromium. "
                    f"Install it with: {INSTALL_LINE}", pytrace=False)
    with Browser(executable) as running:
        yield running


def _hostile(job_args: dict[str, Any]) -> Job:
    """A job whose disputed calls include record ids a spreadsheet or a CSV parser
    would trip over."""
    base = build_job(**job_args)
    first_rows = [r["row"] for r in list_rows(base, "disputed", "flags")]
    return build_job(**job_args, record_ids=dict(zip(first_rows[3:], HOSTILE_IDS,
                                                     strict=False)))


@pytest.fixture(scope="module", params=["differences", "flags", "aggregate"])
def job(request: pytest.FixtureRequest) -> Job:
    return _hostile({"n_rows": 3000, "seed": 31, "policy": request.param})


@pytest.fixture()
def page(browser: Browser, job: Job, tmp_path: Path) -> Iterator[Page]:
    path = write_report(tmp_path, *job.render_args(), **job.render_kwargs())
    opened = browser.open(path)
    try:
        assert opened.evaluate("document.documentElement.dataset.worklists") == "ready"
        yield opened
        assert opened.log_entries() == []  # no script error, nothing blocked by the CSP
    finally:
        opened.close()


def _table(page: Page, section: str) -> dict[str, Any]:
    return json.loads(page.evaluate(TABLE.strip() + f"({json.dumps(section)})"))


def _rows_shown(page: Page, section: str) -> list[int]:
    return [int(r["row"].split(" (")[0].replace(",", "")) for r in _table(page, section)["rows"]]


def _label(row: dict[str, Any], kind: str) -> str:
    if kind == "direction":
        return f"{row['payer']} → {row['payee']}"
    return " · ".join((row["service"], row["call_type"], row["time_band"]))


# ---------------------------------------------------------------------------


def test_first_view_is_largest_amount_first(page: Page, job: Job) -> None:
    policy = job.summary["disclosure"]
    expected = list_rows(job, "disputed", policy)
    assert 0 < len(expected) <= 100, "the fixture's disputes fit one page"
    table = _table(page, "disputes")
    assert _rows_shown(page, "disputes") == [r["row"] for r in expected]
    assert table["sort"] == [["charge", "descending"]]
    assert table["status"] == f"Rows 1–{len(expected)} of {len(expected)}"
    assert table["download"] == f"Download CSV ({len(expected)} rows)"
    # the disclosure policy decides the columns and the filters
    assert ("reasons" in table["keys"]) == (policy != "aggregate")
    assert ("diff_charge" in table["keys"]) == (policy == "differences")
    assert ("reason" in table["options"]) == (policy != "aggregate")
    assert set(table["options"]) >= {"class", "direction", "day"}


def test_clicking_headers_sorts(page: Page, job: Job) -> None:
    policy = job.summary["disclosure"]
    expected = list_rows(job, "disputed", policy)

    def order(key: Any, *, nulls_last: str | None = None) -> list[int]:
        ranked = sorted(expected, key=lambda r: (key(r), r["row"]))
        if nulls_last:
            ranked = ([r for r in ranked if r[nulls_last] is not None]
                      + [r for r in ranked if r[nulls_last] is None])
        return [r["row"] for r in ranked]

    page.click("#disputes th[data-key=charge] button")  # the sorted column: toggles
    assert _rows_shown(page, "disputes") == order(lambda r: r["charge"])
    assert _table(page, "disputes")["sort"] == [["charge", "ascending"]]
    page.click("#disputes th[data-key=start] button")  # a new column: oldest first
    assert _rows_shown(page, "disputes") == order(lambda r: r["start"])
    page.click("#disputes th[data-key=start] button")
    assert _rows_shown(page, "disputes") == order(lambda r: -r["start"])
    assert _table(page, "disputes")["sort"] == [["start", "descending"]]
    page.click("#disputes th[data-key=record_id] button")
    assert _rows_shown(page, "disputes") == order(lambda r: r["record_id"])
    page.click("#disputes th[data-key=direction] button")
    assert _rows_shown(page, "disputes") == order(lambda r: _label(r, "direction"))
    page.click("#disputes th[data-key=class] button")
    assert _rows_shown(page, "disputes") == order(lambda r: _label(r, "class"))
    page.click("#disputes th[data-key=row] button")  # numbers: largest first
    assert _rows_shown(page, "disputes") == sorted((r["row"] for r in expected), reverse=True)
    if policy != "aggregate":
        page.click("#disputes th[data-key=reasons] button")
        assert _rows_shown(page, "disputes") == order(lambda r: r["reasons"] or "",
                                                      nulls_last="reasons")
    if policy == "differences":
        page.click("#disputes th[data-key=diff_charge] button")  # largest difference first
        assert _rows_shown(page, "disputes") == order(lambda r: -r["diff_charge"])
        page.click("#disputes th[data-key=diff_charge] button")
        assert _rows_shown(page, "disputes") == order(lambda r: r["diff_charge"])


def test_filters_narrow_the_list(page: Page, job: Job) -> None:
    policy = job.summary["disclosure"]
    expected = list_rows(job, "disputed", policy)
    options = _table(page, "disputes")["options"]
    # each filter offers every value of the list, with its count
    days = Counter(r["day"] for r in expected)
    assert options["day"] == [["", "all"]] + [[d, f"{d} ({n})"] for d, n in sorted(days.items())]
    directions = Counter(_label(r, "direction") for r in expected)
    assert [o[0] for o in options["direction"][1:]] == sorted(directions)

    def shown_for(predicate: Any) -> list[int]:
        return [r["row"] for r in expected if predicate(r)]

    direction = directions.most_common(1)[0][0]
    page.choose("#disputes select[data-filter=direction]", direction)
    want = shown_for(lambda r: _label(r, "direction") == direction)
    assert _rows_shown(page, "disputes") == want
    assert _table(page, "disputes")["status"] == \
        f"Rows 1–{len(want)} of {len(want)} matching the filters (of {len(expected)})"
    assert _table(page, "disputes")["download"] == f"Download CSV ({len(want)} rows)"
    rate_class = Counter(_label(r, "class") for r in expected
                         if _label(r, "direction") == direction).most_common(1)[0][0]
    page.choose("#disputes select[data-filter=class]", rate_class)
    assert _rows_shown(page, "disputes") == shown_for(
        lambda r: _label(r, "direction") == direction and _label(r, "class") == rate_class)
    page.choose("#disputes select[data-filter=direction]", "")
    page.choose("#disputes select[data-filter=class]", "")
    day = days.most_common(1)[0][0]
    page.choose("#disputes select[data-filter=day]", day)
    assert _rows_shown(page, "disputes") == shown_for(lambda r: r["day"] == day)
    page.choose("#disputes select[data-filter=day]", "")
    if policy != "aggregate":
        # a pair with several reasons is found under each of them
        reasons = Counter(c for r in expected for c in r["reasons"].split(","))
        assert [o[0] for o in options["reason"][1:]] == sorted(reasons)
        for code in reasons:
            page.choose("#disputes select[data-filter=reason]", code)
            assert _rows_shown(page, "disputes") == shown_for(
                lambda r, c=code: c in r["reasons"].split(","))
        page.choose("#disputes select[data-filter=reason]", "")
    assert _rows_shown(page, "disputes") == [r["row"] for r in expected]
    # a filter that matches nothing says so
    page.choose("#disputes select[data-filter=day]", sorted(days)[0])
    page.choose("#disputes select[data-filter=direction]", next(
        d for d in sorted(directions) if not any(
            r["day"] == sorted(days)[0] and _label(r, "direction") == d for r in expected)))
    assert _rows_shown(page, "disputes") == []
    assert _table(page, "disputes")["status"].startswith("No rows")


def _download(browser: Browser, page: Page, section: str, folder: Path) -> tuple[Path, str]:
    folder.mkdir(exist_ok=True)
    browser.allow_downloads(folder)
    page.click(f"#{section} [data-action=download]")
    path = browser.wait_download(folder)
    return path, path.read_bytes().decode("utf-8")


def test_download_is_the_export_csv(browser: Browser, page: Page, job: Job,
                                    tmp_path: Path) -> None:
    policy = job.summary["disclosure"]
    frames = PartyFrames(job.statuses, job.records, job.rows, job.quarantine)
    offset = job.rules.timezone_offset_s
    for section, spec, outcome in (("disputes", DISPUTES, "disputed"),
                                   ("unmatched", UNMATCHED, "unmatched")):
        path, text = _download(browser, page, section, tmp_path / section)
        assert path.name == f"{job.summary['job_id']}-A-{section}.csv"
        exported = csv_text(export_frame(spec, label_calls(frames.worklist(outcome), job.rules),
                                         policy, offset))
        assert text == exported, section  # what `settlechain export` writes, byte for byte
        # ...and read back with an independent parser, the lists' values
        parsed = list(csv.DictReader(io.StringIO(text, newline="")))
        expected = list_rows(job, outcome, policy)
        assert len(parsed) == len(expected)
        for got, want in zip(parsed, expected, strict=True):
            rid = want["record_id"]
            assert got["record_id"] == ("'" + rid if rid[0] in "=+-@\t\r" else rid)
            assert int(got["charge"]) == want["charge"]
            assert got["start"] == local(job, want["start"]).isoformat()
            assert got["day"] == want["day"]
            assert got["merged_rows"] == (want["merged_rows"] or "")
            assert got.get("reasons") == want.get("reasons")
            if policy == "differences" and outcome == "disputed":
                assert int(got["diff_charge"]) == want["diff_charge"]
            else:
                assert "diff_charge" not in got
    hostile = [r["record_id"] for r in csv.DictReader(io.StringIO(
        _download(browser, page, "disputes", tmp_path / "again")[1], newline=""))]
    assert "'=HYPERLINK(\"http://x\")" in hostile and "line\nbreak" in hostile
    assert "'-5" in hostile and "'@at" in hostile and "'+1" in hostile and "'\tTAB" in hostile


def test_download_follows_filters_and_sort(browser: Browser, page: Page, job: Job,
                                           tmp_path: Path) -> None:
    policy = job.summary["disclosure"]
    expected = list_rows(job, "disputed", policy)
    day = Counter(r["day"] for r in expected).most_common(1)[0][0]
    page.choose("#disputes select[data-filter=day]", day)
    page.click("#disputes th[data-key=start] button")
    _, text = _download(browser, page, "disputes", tmp_path)
    rows = [int(r["row"]) for r in csv.DictReader(io.StringIO(text, newline=""))]
    assert rows == [r["row"] for r in sorted(expected, key=lambda r: (r["start"], r["row"]))
                    if r["day"] == day]
    assert rows == _rows_shown(page, "disputes")


def test_paging(browser: Browser, tmp_path: Path) -> None:
    job = build_job(8000, seed=32)
    expected = list_rows(job, "unmatched", "flags")
    assert len(expected) > 200
    path = write_report(tmp_path, *job.render_args(), **job.render_kwargs())
    page = browser.open(path)
    try:
        first = _rows_shown(page, "unmatched")
        assert first == [r["row"] for r in expected[:100]]
        assert page.evaluate("document.querySelector('#unmatched [data-action=prev]').disabled")
        page.click("#unmatched [data-action=next]")
        assert _rows_shown(page, "unmatched") == [r["row"] for r in expected[100:200]]
        assert _table(page, "unmatched")["status"] == f"Rows 101–200 of {len(expected):,}"
        page.click("#unmatched [data-action=prev]")
        assert _rows_shown(page, "unmatched") == first
        # a new sort starts again at the first page
        page.click("#unmatched [data-action=next]")
        page.click("#unmatched th[data-key=charge] button")
        assert _rows_shown(page, "unmatched") == [r["row"] for r in sorted(
            expected, key=lambda r: (r["charge"], r["row"]))[:100]]
        assert page.log_entries() == []
    finally:
        page.close()


def test_without_the_script_the_first_page_is_the_same(browser: Browser, job: Job,
                                                       tmp_path: Path) -> None:
    """The Python renderer and worklist.js render the first page identically."""
    path = write_report(tmp_path, *job.render_args(), **job.render_kwargs())
    html_of = ("JSON.stringify(['disputes', 'unmatched', 'invalid'].map(id => "
               "document.querySelector('#' + id + ' table.worklist tbody').innerHTML))")
    scripted = browser.open(path)
    static = browser.open(path, scripts=False)
    try:
        assert static.evaluate("document.documentElement.dataset.worklists || null") is None
        assert scripted.evaluate("document.documentElement.dataset.worklists") == "ready"
        with_script, without = (json.loads(p.evaluate(html_of)) for p in (scripted, static))
        assert all(with_script) and with_script == without
        # without the script, the controls stay hidden and the note says why
        assert static.evaluate("document.querySelector('#disputes .controls').hidden")
    finally:
        scripted.close()
        static.close()


def test_usable_at_the_cap(browser: Browser, tmp_path: Path) -> None:
    """20,000 rows embedded per list (the cap): the page loads, sorts, filters and
    downloads within seconds."""
    job = build_job(220_000, seed=33, exact_share=0.70, tolerance_share=0.04,
                    disputed_share=0.12, policy="differences")
    for kind in ("disputed", "unmatched"):
        assert len(list_rows_fast(job, kind)) > 20_000
    path = write_report(tmp_path, *job.render_args(), **job.render_kwargs())
    size = path.stat().st_size
    assert size < 15_000_000, f"page of {size:,} bytes at the cap"
    started = time.monotonic()
    page = browser.open(path)
    try:
        loaded = time.monotonic() - started
        assert page.evaluate("document.documentElement.dataset.worklists") == "ready"
        assert loaded < 20, f"{loaded:.1f} s to load and render"
        assert _table(page, "disputes")["status"] == "Rows 1–100 of 20,000"
        assert "first 20,000 of" in page.evaluate(
            "document.getElementById('disputes-capped').textContent")
        started = time.monotonic()
        page.click("#disputes th[data-key=start] button")
        page.choose("#disputes select[data-filter=direction]", "CMCC → CUCC")
        took = time.monotonic() - started
        assert took < 5, f"{took:.1f} s to sort and filter 20,000 rows"
        folder = tmp_path / "dl"
        _, text = _download(browser, page, "disputes", folder)
        shown = _table(page, "disputes")["download"]
        assert f"({text.count(chr(10)) - 1:,} rows)" in shown
        assert page.log_entries() == []
    finally:
        page.close()


def list_rows_fast(job: Job, outcome: str) -> pl.DataFrame:
    """The calls of an outcome (first rows), counted with polars (a 220,000-row job is
    too slow for the record-by-record reference)."""
    first = job.statuses.select("row", "status")
    return job.records.join(first, on="row").filter(pl.col("status") == outcome)

