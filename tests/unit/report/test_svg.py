"""The SVG charts: scale breaks for a dominant category, zero categories, accessibility."""

from __future__ import annotations

import re

from engine.report import render_report
from engine.report.svg import Column, bar_grid, choose_scale, nice_step
from tests.unit.report.report_fixtures import PageReader, build_job


def _widths(svg: str) -> dict[str, float]:
    """data-row -> drawn width of its bar (0 when no rect)."""
    widths = {}
    for match in re.finditer(r'<g class="bar[^"]*" data-row="([^"]*)"[^>]*>(.*?)</g>', svg):
        rect = re.search(r'<rect [^>]*width="([\d.]+)"', match.group(2))
        widths[match.group(1)] = float(rect.group(1)) if rect else 0.0
    return widths


def test_choose_scale_breaks_only_for_a_dominant_value() -> None:
    assert choose_scale([9800, 100, 50]).broken
    assert choose_scale([9800, 100, 50]).domain == 125.0
    assert not choose_scale([300, 100, 50]).broken
    assert choose_scale([300, 100, 50]).domain == 300
    assert not choose_scale([9800, 0, 0]).broken  # a single bar needs no break
    assert choose_scale([0, 0]).domain == 0
    assert choose_scale([]).domain == 0


def test_dominant_category_keeps_small_ones_legible() -> None:
    labels = ["exact", "tolerance", "disputed", "unmatched", "invalid", "none"]
    values = [98_000, 900, 600, 450, 50, 0]
    svg = bar_grid("t", "title", "desc", labels,
                   [Column("rows", values, [str(v) for v in values], ["#000"])])
    widths = _widths(svg)
    # the dominant bar is cut (marked), the others are drawn to one linear scale
    assert re.search(r'<g class="bar cut" data-row="exact"', svg)
    assert svg.count('class="break"') == 2 and "drawn cut" in svg
    assert widths["tolerance"] > 0.7 * widths["exact"]
    assert abs(widths["disputed"] / widths["tolerance"] - 600 / 900) < 0.01
    assert widths["invalid"] >= 2.0
    assert widths["none"] == 0.0
    # every value is written out, the dominant one too
    assert ">98000</text>" in svg and ">0</text>" in svg


def test_no_break_without_dominance() -> None:
    values = [300, 200, 100]
    svg = bar_grid("t", "title", "desc", ["a", "b", "c"],
                   [Column("rows", values, [str(v) for v in values], ["#000"])])
    widths = _widths(svg)
    assert "cut" not in svg and 'class="break"' not in svg
    assert abs(widths["b"] / widths["a"] - 2 / 3) < 0.01


def test_shared_scale_group() -> None:
    ours, theirs = [100, 50], [200, 10]
    svg = bar_grid("t", "title", "desc", ["x", "y"],
                   [Column("ours", ours, ["", ""], ["#000"], scale_group="g"),
                    Column("theirs", theirs, ["", ""], ["#111"], scale_group="g")])
    rects = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert len(rects) == 4
    # ours' 100 is drawn at half the length of theirs' 200
    assert abs(rects[0] / rects[2] - 0.5) < 0.01


def test_every_chart_has_accessible_labels() -> None:
    job = build_job(1500, seed=2, exact_share=0.98, tolerance_share=0.005,
                    disputed_share=0.005)
    html = render_report(*job.render_args())
    page = PageReader(html)
    for chart_id, attrs in page.charts.items():
        assert attrs["role"] == "img"
        title_id, desc_id = attrs["aria-labelledby"].split()
        assert page.texts[title_id].strip() and page.texts[desc_id].strip(), chart_id
    # with 98 % matched_exact the status chart breaks its scale
    status = [b for b in page.bars["status"] if "cut" in b["class"].split()]
    assert [b["data-row"] for b in status] == ["Matched exactly"]
    # each bar has a tooltip
    groups = re.findall(r'<g class="bar[^>]*>(.*?)</g>', html)
    assert len(groups) == sum(len(b) for b in page.bars.values())
    assert all(g.startswith("<title>") for g in groups)


def test_nice_step() -> None:
    assert nice_step(100) == 25
    assert nice_step(150) == 50
    assert nice_step(7) == 2
    assert nice_step(0) == 1
    assert nice_step(1_000_000) == 250_000
