"""billing-report.html rendered by headless Chromium: the charts are drawn with the right
numbers, the tables are there, nothing is fetched.

Requires Debian's ``chromium`` (``apt-get update && apt-get install -y chromium``); without it
these tests FAIL with that install line, they never skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from billing.aging import BUCKETS, aging
from billing.report import COLOURS, cash_flow, write_report
from tests.integration.report.chromium import INSTALL_LINE, Browser, decode_png, find_chromium
from tests.unit.billing.billing_scenario import AS_OF, build

INSPECT = """
JSON.stringify({
  scripts: document.querySelectorAll('script').length,
  width: document.documentElement.scrollWidth,
  meta: {...document.getElementById('meta').dataset},
  tables: Object.fromEntries([...document.querySelectorAll('table')].map(t =>
      [t.className, t.querySelectorAll('tbody tr').length])),
  charts: [...document.querySelectorAll('svg.chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    return {id: svg.dataset.chart, x: box.x + scrollX, y: box.y + scrollY, width: box.width, height: box.height,
            title: svg.querySelector('title').textContent,
            empty: [...svg.querySelectorAll('text.empty')].map(t => t.textContent),
            bars: [...svg.querySelectorAll('g.bar')].map(g => ({
              label: g.dataset.label, total: Number(g.dataset.total),
              rects: [...g.querySelectorAll('rect')].map(r => {
                const b = r.getBoundingClientRect();
                return {key: r.dataset.key, value: Number(r.dataset.value), width: b.width, height: b.height,
                        fill: getComputedStyle(r).fill};
              })})),
            series: [...svg.querySelectorAll('g.series')].map(g => ({
              name: g.dataset.series, last: Number(g.dataset.last),
              length: g.querySelector('polyline').getTotalLength()}))};
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


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    built = build(tmp_path_factory.mktemp("billing"))
    yield built
    built.close()


def _load(browser: Browser, path: Path):  # type: ignore[no-untyped-def]
    page = browser.open(path)
    try:
        info = json.loads(page.evaluate(INSPECT))
        png = page.screenshot()
        requests, logs = page.requested_urls(), page.log_entries()
    finally:
        page.close()
    assert requests == [path.resolve().as_uri()], requests
    assert logs == [], logs
    assert info["scripts"] == 0
    return info, decode_png(png)


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_billing_report_draws_what_the_state_says(browser: Browser, scenario, tmp_path: Path) -> None:
    state = scenario.cucc.state()
    path = write_report(state, AS_OF, tmp_path)
    info, pixels = _load(browser, path)
    charts = {c["id"]: c for c in info["charts"]}
    assert set(charts) == {"aging", "cash-flow", "over-time"}
    for chart in charts.values():
        assert chart["width"] > 600 and chart["height"] > 60 and chart["title"] and not chart["empty"]
    # aging: one bar per counterparty and side, segments equal to the state's buckets
    rows = aging(state, AS_OF)
    bars = {b["label"]: b for b in charts["aging"]["bars"]}
    assert set(bars) == {f"{r.counterparty} {r.side}" for r in rows}
    for row in rows:
        bar = bars[f"{row.counterparty} {row.side}"]
        assert bar["total"] == row.total
        assert {r["key"]: r["value"] for r in bar["rects"]} == {b: row.buckets[b] for b in BUCKETS if row.buckets[b]}
        assert all(r["width"] >= 1 and r["height"] >= 10 for r in bar["rects"])
    # the screenshot has the bucket colours inside the aging chart
    chart = charts["aging"]
    region = pixels[int(chart["y"]):int(chart["y"] + chart["height"]), int(chart["x"]):int(chart["x"] + chart["width"])]
    for rect in (r for b in charts["aging"]["bars"] for r in b["rects"]):
        rgb = np.array(_hex_rgb(COLOURS[rect["key"]]), dtype=np.uint8)
        assert int(np.all(region == rgb, axis=2).sum()) > 20, rect["key"]
    # cash flow: in / out per week as computed
    flows = dict(cash_flow(state, AS_OF))
    for bar in charts["cash-flow"]["bars"]:
        assert bar["total"] == flows[bar["label"]]["in"] + flows[bar["label"]]["out"]
    # over time: the receivables line ends at what is outstanding now
    series = {s["name"]: s for s in charts["over-time"]["series"]}
    outstanding = sum(i.outstanding for i in state.items.values() if i.creditor == "CUCC")
    assert series["receivable"]["last"] == outstanding and series["receivable"]["length"] > 100
    # the tables
    assert info["tables"]["overdue"] >= 1 and info["tables"]["adjustments"] == 1
    assert info["tables"]["unmatched"] == len(state.unmatched) >= 1
    assert info["meta"]["member"] == "CUCC" and int(info["meta"]["items"]) == len(state.items)


def test_empty_billing_report_renders(browser: Browser, scenario, tmp_path: Path) -> None:
    with scenario.consortium.member("CTCC") as ctcc:
        path = write_report(ctcc.state(), AS_OF, tmp_path)
    info, _ = _load(browser, path)
    charts = {c["id"]: c for c in info["charts"]}
    assert charts["aging"]["empty"] == ["nothing outstanding"] and charts["over-time"]["empty"] == ["no movements"]
    assert info["meta"]["items"] == "0"
