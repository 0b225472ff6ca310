"""Benchmark of report.html at 10^6 input rows: render time, page size, and the page in
headless Chromium (load, sort, filter, CSV download), with the worklists embedded at
the cap (20,000 rows each) and, as the peer in the same run, the same page with no
list embedded (``max_list_rows=0``: what the worklists cost).

Run (on the shared machine, always under the global lock)::

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_report.py \
        -o python_files='bench_*.py' --benchmark-enable -s

Input: ``tests/unit/report/report_fixtures.build_job(10**6)``: one party's frames
with 3 % disputed and about 3 % unmatched calls (about 30,000 each, so both lists
are capped) and 1 % invalid rows (10,000).  Times are medians of ``ROUNDS`` rounds;
the browser's own timings come from the Navigation Timing API and performance.now().
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import pytest

from engine.report import MAX_LIST_ROWS, render_report, write_report
from tests.integration.report.chromium import Browser, find_chromium
from tests.unit.report.report_fixtures import build_job

ROWS = int(os.environ.get("SETTLECHAIN_BENCH_REPORT_ROWS", 10**6))
ROUNDS = 3

# in the page: (ms) the click's handler and the layout it causes
TIMED = """
(() => { const t = performance.now(); %s; document.body.offsetHeight;
         return performance.now() - t; })()
"""


@pytest.fixture(scope="module")
def job():
    began = time.perf_counter()
    built = build_job(ROWS, seed=1)
    print(f"\nbuilt a {ROWS:,}-row job in {time.perf_counter() - began:.1f} s")
    return built


def _median_seconds(action, rounds: int = ROUNDS) -> tuple[float, list[float]]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times), times


@pytest.mark.parametrize("cap", [MAX_LIST_ROWS, 0], ids=["cap-20000", "no-lists"])
def test_render(job, cap: int) -> None:
    html = render_report(*job.render_args(), **job.render_kwargs(), max_list_rows=cap)
    median, times = _median_seconds(lambda: render_report(
        *job.render_args(), **job.render_kwargs(), max_list_rows=cap))
    print(f"render {ROWS:,} rows, max_list_rows={cap:,}: median {median:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times)}); page {len(html.encode()):,} bytes")


@pytest.mark.parametrize("cap", [MAX_LIST_ROWS, 0], ids=["cap-20000", "no-lists"])
def test_in_chromium(job, cap: int) -> None:
    executable = find_chromium()
    assert executable, "Chromium is required"
    with tempfile.TemporaryDirectory() as folder, Browser(executable, timeout_s=120) as browser:
        path = write_report(Path(folder), *job.render_args(), **job.render_kwargs(),
                            max_list_rows=cap)
        loads, sorts, filters, downloads = [], [], [], []
        for _ in range(ROUNDS):
            page = browser.open(path)
            timing = json.loads(page.evaluate(
                "JSON.stringify(performance.getEntriesByType('navigation')[0])"))
            loads.append(timing["loadEventEnd"] / 1000)
            if cap:
                sorts.append(page.evaluate(TIMED % "document.querySelector("
                                           "'#disputes th[data-key=start] button').click()"))
                filters.append(page.evaluate(TIMED % (
                    "const s = document.querySelector('#disputes select[data-filter=direction]');"
                    " s.value = s.options[1].value;"
                    " s.dispatchEvent(new Event('change'))")))
                target = Path(folder) / "downloads"
                target.mkdir(exist_ok=True)
                browser.allow_downloads(target)
                page.evaluate("document.querySelector('#disputes select[data-filter=direction]')"
                              ".value = ''")
                page.evaluate("document.querySelector('#disputes select[data-filter=direction]')"
                              ".dispatchEvent(new Event('change'))")
                began = time.perf_counter()
                page.click("#disputes [data-action=download]")
                downloaded = browser.wait_download(target)
                downloads.append(time.perf_counter() - began)
                assert downloaded.stat().st_size > 0
            assert page.log_entries() == []
            page.close()
        line = (f"chromium, max_list_rows={cap:,}, page {path.stat().st_size:,} bytes: "
                f"load (navigation to load event) median {statistics.median(loads):.2f} s "
                f"({', '.join(f'{t:.2f}' for t in loads)})")
        if cap:
            line += (f"; sort 20,000 disputes by start {statistics.median(sorts):.0f} ms; "
                     f"filter by direction {statistics.median(filters):.0f} ms; "
                     f"CSV of 20,000 rows downloaded {statistics.median(downloads):.2f} s")
        print(line)
