"""Inline SVG charts, written as text: no charting library, no script, no network.

Two kinds of chart, enough for the report:

- :func:`bar_grid`: horizontal bars, one row per category and one or more columns
  of values (small multiples: e.g. pairs | our charge | their charge per reason).
  A column whose largest bar dwarfs the others (more than :data:`BREAK_RATIO` times
  the second largest, e.g. 98 % ``matched_exact``) is drawn with a *scale break*:
  the axis is set by the second-largest bar and the dominant bar is cut with a
  visible break mark, its true value written beside it, so the small categories
  stay readable on a linear scale.
- :func:`day_columns`: vertical stacked bars per day in two aligned panels, all
  calls on top and a zoom on the rare outcomes (disputed, unmatched) below with its
  own scale.

Every value that comes from data is escaped here; callers pass plain text.  Each
chart is an ``<svg role="img">`` with ``<title>`` and ``<desc>`` referenced by
``aria-labelledby``; each bar is a ``<g class="bar">`` carrying its numbers in
``data-*`` attributes and a ``<title>`` that browsers show as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH = 960
"""viewBox width of every chart; the page scales it to the column width."""
BREAK_RATIO = 4.0
"""A column's largest value above this many times the second largest gets a scale break."""
CHAR_WIDTH = 6.6
"""Estimated advance of one character at the chart font size (12 px), for layout."""

_ROW_HEIGHT = 24
_BAR_HEIGHT = 15
_HEADER_HEIGHT = 22


def attr(value: object) -> str:
    """Escape a value for an attribute or text node."""
    return escape(str(value), quote=True)


def _char_width(char: str) -> float:
    """Estimated advance at 12 px in a typical sans-serif (generous: no font metrics
    here, and a label cut at the chart's edge is worse than a little spare room)."""
    if char.isupper() or char in "→↔¥%@#&—–MW":
        return 8.4
    if char.isdigit():
        return 7.0
    if char in " .,:;'|!ilI·":
        return 3.8
    if ord(char) > 0x2E80:  # CJK: full width
        return 12.0
    return CHAR_WIDTH


def _text_width(text: str) -> float:
    return sum(_char_width(c) for c in text)


def _fit(text: str, width: float) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` (the full text stays in
    the tooltip)."""
    if _text_width(text) <= width:
        return text
    while text and _text_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _num(x: float) -> str:
    """A coordinate with at most one decimal, no trailing zeros."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Column:
    """One column of values in a :func:`bar_grid`."""

    title: str
    values: Sequence[int]
    labels: Sequence[str]
    """The value written beside each bar (e.g. '¥1,234.00')."""
    colors: Sequence[str]
    """One colour per row, or a single colour for the whole column."""
    tooltips: Sequence[str] = ()
    """Per row; default: '<row label> — <column title>: <value label>'."""
    scale_group: str | None = None
    """Columns with the same group share one scale (e.g. our charge vs their charge)."""

    def color(self, i: int) -> str:
        return self.colors[i] if len(self.colors) > 1 else self.colors[0]


@dataclass(frozen=True)
class _Scale:
    domain: float
    """Value drawn at full bar length; 0 when every value is 0."""
    broken: bool
    """True when values above ``domain`` exist and are drawn cut."""


def choose_scale(values: Sequence[int]) -> _Scale:
    """Linear scale for ``values``, with a break when one value dwarfs the rest."""
    positive = sorted((v for v in values if v > 0), reverse=True)
    if not positive:
        return _Scale(0.0, False)
    if len(positive) >= 2 and positive[0] > BREAK_RATIO * positive[1]:
        return _Scale(positive[1] * 1.25, True)
    return _Scale(float(positive[0]), False)


@dataclass
class _Svg:
    """Accumulates SVG elements; :meth:`close` wraps them with title and desc."""

    chart_id: str
    title: str
    desc: str
    height: float = 0.0
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def close(self) -> str:
        cid = attr(self.chart_id)
        head = (
            f'<svg class="chart" id="chart-{cid}" data-chart="{cid}" role="img" '
            f'viewBox="0 0 {WIDTH} {_num(self.height)}" width="{WIDTH}" '
            f'height="{_num(self.height)}" preserveAspectRatio="xMinYMin meet" '
            f'aria-labelledby="chart-{cid}-title chart-{cid}-desc">'
            f'<title id="chart-{cid}-title">{attr(self.title)}</title>'
            f'<desc id="chart-{cid}-desc">{attr(self.desc)}</desc>'
        )
        return head + "".join(self.parts) + "</svg>"


def _break_mark(x: float, y: float, height: float) -> str:
    """Two slanted gaps across a bar at ``x``: the conventional 'axis break' sign."""
    skew = 5.0
    marks = []
    for dx in (0.0, 6.0):
        x0 = x + dx
        marks.append(
            f'<polygon class="break" points="{_num(x0)},{_num(y + height + 2)} '
            f'{_num(x0 + 3)},{_num(y + height + 2)} {_num(x0 + 3 + skew)},{_num(y - 2)} '
            f'{_num(x0 + skew)},{_num(y - 2)}"/>'
        )
    return "".join(marks)


def bar_grid(chart_id: str, title: str, desc: str, row_labels: Sequence[str],
             columns: Sequence[Column], *, empty_text: str = "nothing to show",
             label_width: float | None = None) -> str:
    """Horizontal bars: a row per label, a panel per column."""
    svg = _Svg(chart_id, title, desc)
    n_rows = len(row_labels)
    if n_rows == 0:
        svg.height = 48
        svg.add(f'<text class="empty" x="{WIDTH / 2}" y="28" text-anchor="middle">'
                f"{attr(empty_text)}</text>")
        return svg.close()

    if label_width is None:
        label_width = min(260.0, max(90.0, max(_text_width(t) for t in row_labels) + 14))
    gap = 18.0
    panel_width = (WIDTH - label_width - gap * len(columns)) / len(columns)

    groups: dict[str, list[int]] = {}
    for column in columns:
        if column.scale_group is not None:
            groups.setdefault(column.scale_group, []).extend(column.values)
    scales = [choose_scale(groups[c.scale_group] if c.scale_group else c.values)
              for c in columns]

    top = _HEADER_HEIGHT
    svg.height = top + n_rows * _ROW_HEIGHT + 8
    any_break = False
    for r in range(1, n_rows, 2):
        svg.add(f'<rect class="stripe" x="0" y="{_num(top + r * _ROW_HEIGHT)}" '
                f'width="{WIDTH}" height="{_ROW_HEIGHT}"/>')
    for r, label in enumerate(row_labels):
        row_top = top + r * _ROW_HEIGHT
        svg.add(f'<text class="lbl" x="{_num(label_width - 8)}" y="{_num(row_top + 16)}" '
                f'text-anchor="end">{attr(_fit(label, label_width - 12))}'
                f"<title>{attr(label)}</title></text>")

    for c, (column, scale) in enumerate(zip(columns, scales, strict=True)):
        x0 = label_width + c * (panel_width + gap)
        reserve = min(panel_width * 0.55,
                      max((_text_width(t) for t in column.labels), default=0) + 8)
        bar_room = panel_width - reserve
        svg.add(f'<text class="coltitle" x="{_num(x0)}" y="14">'
                f"{attr(_fit(column.title, panel_width))}</text>")
        svg.add(f'<line class="baseline" x1="{_num(x0)}" x2="{_num(x0)}" y1="{top - 3}" '
                f'y2="{_num(top + n_rows * _ROW_HEIGHT)}"/>')
        for r, (label, value) in enumerate(zip(row_labels, column.values, strict=True)):
            y = top + r * _ROW_HEIGHT + (_ROW_HEIGHT - _BAR_HEIGHT) / 2
            cut = scale.broken and value > scale.domain
            if value <= 0 or scale.domain <= 0:
                length = 0.0
            elif cut:
                length = bar_room
            else:
                length = max(2.0, bar_room * value / scale.domain)
            tooltip = (column.tooltips[r] if column.tooltips
                       else f"{label} — {column.title}: {column.labels[r]}")
            parts = [
                f'<g class="bar{" cut" if cut else ""}" data-row="{attr(label)}" '
                f'data-column="{attr(column.title)}" data-value="{int(value)}">',
                f"<title>{attr(tooltip)}</title>",
            ]
            if length > 0:
                parts.append(
                    f'<rect x="{_num(x0)}" y="{_num(y)}" width="{_num(length)}" '
                    f'height="{_BAR_HEIGHT}" fill="{attr(column.color(r))}"/>')
            if cut:
                any_break = True
                parts.append(_break_mark(x0 + length * 0.72, y, _BAR_HEIGHT))
            parts.append(
                f'<text class="val{" zero" if value == 0 else ""}" '
                f'x="{_num(x0 + length + 5)}" y="{_num(y + 12)}">{attr(column.labels[r])}</text>')
            parts.append("</g>")
            svg.add("".join(parts))
    if any_break:
        svg.height += 16
        svg.add(f'<text class="note" x="{_num(label_width)}" y="{_num(svg.height - 8)}">'
                "Bars drawn cut (╱╱) are far longer than the scale shows; "
                "their true value is written beside them.</text>")
    return svg.close()


# ---------------------------------------------------------------------------
# day columns


@dataclass(frozen=True)
class Series:
    key: str
    name: str
    color: str


@dataclass(frozen=True)
class DayBar:
    label: str
    """Short x label ('1'..'31', 'before', 'after')."""
    full_label: str
    """For the tooltip and data attribute (ISO date)."""
    values: dict[str, int]
    tooltip: str
    shade: bool = False
    """Weekend or outside the period: a light background band."""


def nice_step(maximum: float, target_ticks: int = 4) -> float:
    """A 1-2-5 step giving about ``target_ticks`` ticks from 0 to ``maximum``."""
    if maximum <= 0:
        return 1.0
    raw = maximum / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            step = factor * magnitude
            return max(1.0, step)
    return 10 * magnitude  # pragma: no cover


def _panel(svg: _Svg, bars: Sequence[DayBar], series: Sequence[Series], *, top: float,
           height: float, left: float, band: float, title: str, panel: str,
           fmt: Callable[[int], str]) -> None:
    totals = [sum(b.values[s.key] for s in series) for b in bars]
    maximum = max(totals, default=0)
    step = nice_step(maximum)
    ceiling = step * max(1, math.ceil(maximum / step)) if maximum > 0 else step
    bottom = top + height
    for i, bar in enumerate(bars):
        if bar.shade:
            svg.add(f'<rect class="shade" x="{_num(left + i * band)}" y="{_num(top)}" '
                    f'width="{_num(band)}" height="{_num(height)}"/>')
    tick = 0.0
    while tick <= ceiling + 1e-9:
        y = bottom - height * tick / ceiling
        svg.add(f'<line class="grid" x1="{_num(left)}" x2="{WIDTH - 4}" y1="{_num(y)}" '
                f'y2="{_num(y)}"/>')
        svg.add(f'<text class="axis" x="{_num(left - 6)}" y="{_num(y + 4)}" '
                f'text-anchor="end">{attr(fmt(int(tick)))}</text>')
        tick += step
    svg.add(f'<text class="coltitle" x="{_num(left)}" y="{_num(top - 8)}">{attr(title)}</text>')
    width = max(1.0, band * 0.72)
    for i, bar in enumerate(bars):
        x = left + i * band + (band - width) / 2
        data = " ".join(f'data-{attr(s.key)}="{bar.values[s.key]}"' for s in series)
        parts = [f'<g class="bar day" data-panel="{attr(panel)}" '
                 f'data-day="{attr(bar.full_label)}" {data}>'
                 f"<title>{attr(bar.tooltip)}</title>",
                 # an invisible hit area under the bars: the tooltip works on empty days too
                 f'<rect class="hit" x="{_num(left + i * band)}" y="{_num(top)}" '
                 f'width="{_num(band)}" height="{_num(height)}"/>']
        y = bottom
        for s in series:
            value = bar.values[s.key]
            if value <= 0:
                continue
            h = max(1.5, height * value / ceiling)
            y -= h
            parts.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(width)}" '
                         f'height="{_num(h)}" fill="{attr(s.color)}"/>')
        parts.append("</g>")
        svg.add("".join(parts))
    svg.add(f'<line class="baseline" x1="{_num(left)}" x2="{WIDTH - 4}" y1="{_num(bottom)}" '
            f'y2="{_num(bottom)}"/>')


def day_columns(chart_id: str, title: str, desc: str, bars: Sequence[DayBar],
                overview: Sequence[Series], zoom: Sequence[Series], *,
                overview_title: str, zoom_title: str, fmt: Callable[[int], str],
                empty_text: str = "nothing to show") -> str:
    """Per-day stacked columns: ``overview`` series on top, ``zoom`` series (a subset,
    on their own scale) below, sharing the x axis."""
    svg = _Svg(chart_id, title, desc)
    if not bars:
        svg.height = 48
        svg.add(f'<text class="empty" x="{WIDTH / 2}" y="28" text-anchor="middle">'
                f"{attr(empty_text)}</text>")
        return svg.close()
    left = 70.0
    band = (WIDTH - 4 - left) / len(bars)
    # legend
    x = left
    seen: list[Series] = []
    for s in list(overview) + list(zoom):
        if s.key not in {t.key for t in seen}:
            seen.append(s)
    for s in seen:
        svg.add(f'<rect class="key" x="{_num(x)}" y="4" width="12" height="12" '
                f'fill="{attr(s.color)}"/><text class="lbl" x="{_num(x + 17)}" y="14">'
                f"{attr(s.name)}</text>")
        x += 17 + _text_width(s.name) + 22
    overview_top, overview_height = 48.0, 170.0
    zoom_top = overview_top + overview_height + 40
    zoom_height = 100.0
    _panel(svg, bars, overview, top=overview_top, height=overview_height, left=left,
           band=band, title=overview_title, panel="overview", fmt=fmt)
    _panel(svg, bars, zoom, top=zoom_top, height=zoom_height, left=left, band=band,
           title=zoom_title, panel="zoom", fmt=fmt)
    if not any(v for bar in bars for v in bar.values.values()):
        svg.add(f'<text class="empty" x="{_num(left + (WIDTH - left) / 2)}" '
                f'y="{_num(overview_top + overview_height / 2)}" text-anchor="middle">'
                f"{attr(empty_text)}</text>")
    label_y = zoom_top + zoom_height + 14
    every = max(1, math.ceil(len(bars) * 22 / (WIDTH - left)))
    for i, bar in enumerate(bars):
        if i % every and bar.label not in ("before", "after"):
            continue
        svg.add(f'<text class="axis" x="{_num(left + (i + 0.5) * band)}" y="{_num(label_y)}" '
                f'text-anchor="middle">{attr(bar.label)}</text>')
    svg.height = label_y + 8
    return svg.close()
