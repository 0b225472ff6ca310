"""report.html rendered by headless Chromium: the charts are drawn, nothing is fetched.

Requires Debian's ``chromium`` (``apt-get update && apt-get install -y chromium``);
without it these tests FAIL with that install line, they never skip.

Set ``SETTLECHAIN_REPORT_SCREENSHOT=/some/file.png`` to keep the full-page
screenshot of the typical report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.report import write_report
from tests.integration.report.chromium import INSTALL_LINE, Browser, decode_png, find_chromium
from tests.unit.report.report_fixtures import Job, build_job

CHARTS = ("status", "reasons", "by-class", "by-operator", "daily", "stages")

# Run inside the page: per chart, its box and its bars as the browser laid them out.
INSPECT = """
JSON.stringify({
  ready: document.documentElement.dataset.worklists || null,
  width: document.documentElement.scrollWidth,
  charts: [...document.querySelectorAll('svg.chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    const bars = [...svg.querySelectorAll('g.bar')].map(g => {
      const rects = [...g.querySelectorAll('rect:not(.hit)')].map(r => {
        const b = r.getBoundingClientRect();
        const style = getComputedStyle(r);
        const cx = b.x + b.width / 2, cy = b.y + b.height / 2;
        return {width: b.width, height: b.height, fill: style.fill,
                visible: style.visibility !== 'hidden' && style.display !== 'none',
                // hit test: the rect is what the page shows at its own centre
                onTop: (() => { const e = document.elementFromPoint(cx, cy);
                                return e === r || (e && r.contains(e)); })()};
      });
      return {data: {...g.dataset}, cut: g.classList.contains('cut'), rects,
              text: [...g.querySelectorAll('text')].map(t => t.textContent)};
    });
    return {id: svg.dataset.chart, x: box.x + scrollX, y: box.y + scrollY,
            width: box.width, height: box.height, bars,
            label: svg.getAttribute('aria-labelledby').split(' ')
                      .map(id => document.getElementById(id).textContent).join(' | '),
            empty: [...svg.querySelectorAll('text.empty')].map(t => t.textContent)};
  }),
})
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.fail(f"Chromium is not installed; the report is tested in headless Chromium. "
                    f"Install it with: {INSTALL_LINE}", pytrace=False)
    with Browser(executable) as running:
        yield running


def _rgb(css: str) -> tuple[int, int, int]:
    inside = css[css.index("(") + 1:css.index(")")]
    r, g, b = (int(float(v)) for v in inside.split(",")[:3])
    return r, g, b


def _load(browser: Browser, job: Job,
          folder: Path) -> tuple[Any, dict[str, Any], np.ndarray, bytes]:
    path = write_report(folder, *job.render_args(), **job.render_kwargs())
    page = browser.open(path)
    try:
        info = json.loads(page.evaluate(INSPECT))
        png = page.screenshot()
        requests, logs = page.requested_urls(), page.log_entries()
    finally:
        page.close()
    # nothing but the file itself was requested, and nothing was blocked or failed
    assert requests == [path.resolve().as_uri()], requests
    assert logs == [], logs
    assert info["ready"] == "ready"  # the page's script ran, under its CSP
    return page, info, decode_png(png), png


def _chart(info: dict[str, Any], chart_id: str) -> dict[str, Any]:
    found = [c for c in info["charts"] if c["id"] == chart_id]
    assert len(found) == 1, f"chart {chart_id!r} missing from the page"
    return found[0]


def _colour_pixels(pixels: np.ndarray, chart: dict[str, Any], rgb: tuple[int, int, int]) -> int:
    x0, y0 = int(chart["x"]), int(chart["y"])
    x1, y1 = int(chart["x"] + chart["width"]), int(chart["y"] + chart["height"])
    region = pixels[y0:y1, x0:x1]
    return int(np.all(region == np.array(rgb, dtype=np.uint8), axis=2).sum())


def test_charts_are_drawn(browser: Browser, tmp_path: Path) -> None:
    job = build_job(3000, seed=11, policy="differences")
    _, info, pixels, png = _load(browser, job, tmp_path)
    if target := os.environ.get("SETTLECHAIN_REPORT_SCREENSHOT"):
        Path(target).write_bytes(png)
    assert pixels.shape[1] == info["width"]
    for chart_id in CHARTS:
        chart = _chart(info, chart_id)
        assert chart["width"] > 600 and chart["height"] > 60, chart_id
        assert chart["label"].strip(" |"), f"{chart_id}: no accessible title/desc"
        assert not chart["empty"], f"{chart_id} says it is empty: {chart['empty']}"
        nonzero = [b for b in chart["bars"]
                   if any(int(v) > 0 for k, v in b["data"].items()
                          if k not in ("row", "column", "day", "panel"))]
        assert nonzero, f"{chart_id}: no bar with a value"
        colours: dict[tuple[int, int, int], int] = {}
        for bar in nonzero:
            drawn = [r for r in bar["rects"] if r["width"] >= 1 and r["height"] >= 1]
            assert drawn, f"{chart_id}: bar {bar['data']} has a value but no drawn rect"
            assert all(r["visible"] and r["onTop"] for r in drawn), (chart_id, bar)
            for r in drawn:
                colours[_rgb(r["fill"])] = colours.get(_rgb(r["fill"]), 0) + 1
        # the screenshot really has the bars' colours inside this chart's box
        for rgb, n_rects in colours.items():
            assert _colour_pixels(pixels, chart, rgb) >= 2 * n_rects, (chart_id, rgb)
    # zero bars draw no rect but still say 0
    status = _chart(info, "status")
    assert all(b["rects"] or b["text"] for b in status["bars"])


def test_dominant_category_stays_legible(browser: Browser, tmp_path: Path) -> None:
    job = build_job(4000, seed=12, exact_share=0.98, tolerance_share=0.004,
                    disputed_share=0.004, invalid_share=0.002, duplicate_share=0.001)
    _, info, _, _ = _load(browser, job, tmp_path)
    bars = {b["data"]["row"]: b for b in _chart(info, "status")["bars"]}
    exact = bars["Matched exactly"]
    assert exact["cut"], "98 % matched_exact should be drawn with a scale break"
    exact_width = exact["rects"][0]["width"]
    small = [b for name, b in bars.items() if name != "Matched exactly" and b["rects"]]
    assert small, "the non-exact statuses have bars"
    widest = max(b["rects"][0]["width"] for b in small)
    assert widest > 0.5 * exact_width  # the zoom gives the small ones the room
    assert all(b["rects"][0]["width"] >= 2 for b in small)


def test_empty_report_renders(browser: Browser, tmp_path: Path) -> None:
    job = build_job(0)
    job.summary.pop("stages")
    _, info, pixels, _ = _load(browser, job, tmp_path)
    for chart_id in CHARTS:
        chart = _chart(info, chart_id)
        assert chart["width"] > 600 and chart["height"] > 30, chart_id
        assert all(not b["rects"] for b in chart["bars"]), f"{chart_id}: bars drawn for zeros"
    assert _chart(info, "by-class")["empty"] == ["no considered records"]
    assert _chart(info, "stages")["empty"] == ["no stage timings in summary.json"]
    assert _chart(info, "daily")["empty"] == ["no considered records in these days"]
    # all seven statuses are listed with their zero
    assert [b["text"] for b in _chart(info, "status")["bars"]] == [["0 · 0 %"]] * 7
    assert pixels.size > 0
