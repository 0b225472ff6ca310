"""The three worklists an analyst works from: disputes, unmatched, invalid rows.

One definition of each list's columns, used by the page (its tables, filters and
the CSV the browser generates) and by ``settlechain export`` (CSV, Parquet, XLSX),
so that a list downloaded from the page and the same list exported hold the same
columns, in the same order, with the same values.

Disclosure (docs/threat-model.md, docs/records.md): a column marked ``flags`` is
part of a list only under the ``flags`` and ``differences`` policies, one marked
``differences`` only under ``differences``.  Under ``aggregate`` the disputes list
has no per-pair reasons and no differences; under ``flags`` reasons but no
differences.  No list holds a counterparty value beyond what records.parquet holds
(the differences, under ``differences``).

Money is integer minor units (fen) in every list; the page formats yuan.  Times:
``start`` is local time with its UTC offset (ISO 8601, the rules' time zone) and
``day`` the local date.

CSV: UTF-8, comma-separated, ``\\n`` line ends, a field quoted only when it holds a
comma, a quote or a line break, an empty string written ``""`` and a null as
nothing.  A text field that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading ``'`` so that a spreadsheet opening the CSV does not
run it as a formula (OWASP, "CSV Injection"); Parquet and XLSX hold the exact text
(XLSX cells are typed: text is never a formula).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from engine.names import DISCLOSURE_POLICIES, SERVICES
from engine.report.classes import classify
from engine.rules import Rules

POLICIES: tuple[str, ...] = DISCLOSURE_POLICIES
"""Disclosure policies, from the least disclosed to the most (the order of
:data:`engine.names.DISCLOSURE_POLICIES`)."""

LIST_KINDS: tuple[str, ...] = ("disputes", "unmatched", "invalid")

FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
"""A CSV text field beginning with one of these gets a leading ``'``."""


@dataclass(frozen=True)
class ListColumn:
    """One column of a list (CSV header = ``name``)."""

    name: str
    kind: str
    """``row`` | ``count`` | ``fen`` | ``diff_fen`` | ``diff_s`` | ``time`` | ``text`` |
    ``reasons`` (comma-separated codes): how the page shows it."""
    disclosure: str | None = None
    """None: always; ``flags``: under flags and differences; ``differences``: only
    under differences."""
    category: bool = False
    """Few distinct values: the page embeds them as a dictionary."""


@dataclass(frozen=True)
class DisplayColumn:
    """One column of the page's table, made of list columns."""

    key: str
    title: str
    kind: str
    """``fen`` | ``diff_fen`` | ``diff_s`` | ``time`` | ``row`` | ``id`` | ``text`` |
    ``reasons`` | ``call`` (service, duration_s, volume_kb) | ``direction`` (payer,
    payee) | ``class`` (service, call_type, time_band)."""
    columns: tuple[str, ...]
    numeric: bool = False
    disclosure: str | None = None


@dataclass(frozen=True)
class ListFilter:
    key: str
    title: str
    kind: str
    """``value`` (one column equals), ``reasons`` (the codes include), ``class``,
    ``direction`` (as in :class:`DisplayColumn`)."""
    columns: tuple[str, ...]
    disclosure: str | None = None


@dataclass(frozen=True)
class ListSpec:
    kind: str
    title: str
    columns: tuple[ListColumn, ...]
    display: tuple[DisplayColumn, ...]
    filters: tuple[ListFilter, ...]
    order: str
    """How the list is ordered (and so which rows a capped page embeds)."""

    def visible(self, policy: str) -> ListSpec:
        """The spec with only what ``policy`` discloses."""
        def shown(disclosure: str | None) -> bool:
            return disclosed(disclosure, policy)
        return ListSpec(
            kind=self.kind, title=self.title,
            columns=tuple(c for c in self.columns if shown(c.disclosure)),
            display=tuple(d for d in self.display if shown(d.disclosure)),
            filters=tuple(f for f in self.filters if shown(f.disclosure)),
            order=self.order)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def disclosed(disclosure: str | None, policy: str) -> bool:
    """Whether something marked ``disclosure`` is shown under ``policy`` (an unknown
    policy discloses what ``aggregate`` does)."""
    if disclosure is None:
        return True
    rank = POLICIES.index(policy) if policy in POLICIES else 0
    return rank >= POLICIES.index(disclosure)


_CALL_COLUMNS: tuple[ListColumn, ...] = (
    ListColumn("row", "row"),
    ListColumn("merged_rows", "text"),
    ListColumn("record_id", "text"),
)
_CALL_VALUES: tuple[ListColumn, ...] = (
    ListColumn("service", "text", category=True),
    ListColumn("calling", "text"),
    ListColumn("called", "text"),
    ListColumn("start", "time"),
    ListColumn("day", "text", category=True),
    ListColumn("duration_s", "count"),
    ListColumn("volume_kb", "count"),
    ListColumn("charge", "fen"),
    ListColumn("rated_charge", "fen"),
    ListColumn("payer", "text", category=True),
    ListColumn("payee", "text", category=True),
    ListColumn("call_type", "text", category=True),
    ListColumn("time_band", "text", category=True),
)
_CALL_DISPLAY_HEAD: tuple[DisplayColumn, ...] = (
    DisplayColumn("charge", "Amount", "fen", ("charge",), numeric=True),
)
_CALL_DISPLAY_TAIL: tuple[DisplayColumn, ...] = (
    DisplayColumn("start", "Start", "time", ("start",)),
    DisplayColumn("row", "Row", "row", ("row", "merged_rows"), numeric=True),
    DisplayColumn("record_id", "Record id", "id", ("record_id",)),
    DisplayColumn("call", "Call", "call", ("service", "duration_s", "volume_kb"), numeric=True),
    DisplayColumn("direction", "Payer → payee", "direction", ("payer", "payee")),
    DisplayColumn("class", "Rate class", "class", ("service", "call_type", "time_band")),
)
_CALL_FILTERS: tuple[ListFilter, ...] = (
    ListFilter("class", "Rate class", "class", ("service", "call_type", "time_band")),
    ListFilter("direction", "Payer → payee", "direction", ("payer", "payee")),
    ListFilter("day", "Day", "value", ("day",)),
)
_BY_AMOUNT = "largest amount (this party's charge) first, then by row"

DISPUTES = ListSpec(
    kind="disputes", title="Disputes",
    columns=(*_CALL_COLUMNS, ListColumn("pair_id", "text"), *_CALL_VALUES,
             ListColumn("reasons", "reasons", disclosure="flags", category=True),
             ListColumn("diff_start_s", "diff_s", disclosure="differences"),
             ListColumn("diff_duration_s", "diff_s", disclosure="differences"),
             ListColumn("diff_charge", "diff_fen", disclosure="differences"),
             ListColumn("diff_rated_charge", "diff_fen", disclosure="differences")),
    display=(*_CALL_DISPLAY_HEAD,
             DisplayColumn("diff_charge", "Δ charge", "diff_fen", ("diff_charge",),
                           numeric=True, disclosure="differences"),
             DisplayColumn("reasons", "Reasons", "reasons", ("reasons",), disclosure="flags"),
             *_CALL_DISPLAY_TAIL,
             DisplayColumn("diff_start_s", "Δ start", "diff_s", ("diff_start_s",),
                           numeric=True, disclosure="differences"),
             DisplayColumn("diff_duration_s", "Δ duration", "diff_s", ("diff_duration_s",),
                           numeric=True, disclosure="differences"),
             DisplayColumn("diff_rated_charge", "Δ rated", "diff_fen", ("diff_rated_charge",),
                           numeric=True, disclosure="differences")),
    filters=(ListFilter("reason", "Reason", "reasons", ("reasons",), disclosure="flags"),
             *_CALL_FILTERS),
    order=_BY_AMOUNT,
)

UNMATCHED = ListSpec(
    kind="unmatched", title="Unmatched records",
    columns=(*_CALL_COLUMNS, *_CALL_VALUES),
    display=(*_CALL_DISPLAY_HEAD,
             DisplayColumn("rated_charge", "Rated", "fen", ("rated_charge",), numeric=True),
             *_CALL_DISPLAY_TAIL),
    filters=_CALL_FILTERS,
    order=_BY_AMOUNT,
)

INVALID = ListSpec(
    kind="invalid", title="Invalid rows",
    columns=(ListColumn("row", "row"), ListColumn("record_id", "text"),
             ListColumn("reason", "text", category=True),
             ListColumn("code", "text", category=True),
             ListColumn("column", "text", category=True), ListColumn("message", "text")),
    display=(DisplayColumn("row", "Row", "row", ("row",), numeric=True),
             DisplayColumn("record_id", "Record id", "id", ("record_id",)),
             DisplayColumn("reason", "Reason", "text", ("reason",)),
             DisplayColumn("message", "Message", "text", ("message",))),
    filters=(ListFilter("reason", "Reason", "value", ("reason",)),),
    order="by row",
)

SPECS: Mapping[str, ListSpec] = {"disputes": DISPUTES, "unmatched": UNMATCHED,
                                 "invalid": INVALID}


# ---------------------------------------------------------------------------
# frames


def offset_text(offset_s: int) -> str:
    """A UTC offset in ISO 8601 form, e.g. '+08:00'."""
    sign = "+" if offset_s >= 0 else "-"
    hours, minutes = divmod(abs(offset_s) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def label_calls(worklist: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """A worklist (:meth:`engine.report.frames.PartyFrames.worklist`) with its labels:
    ``service`` as its name, ``payer``, ``payee``, ``call_type``, ``time_band`` from the
    rules, and ``day`` (local date, ISO).  ``start`` stays epoch seconds."""
    local = pl.from_epoch(pl.col("start") + rules.timezone_offset_s, time_unit="s")
    return classify(worklist, rules).with_columns(
        pl.col("service").replace_strict(list(range(len(SERVICES))), list(SERVICES),
                                         return_dtype=pl.String),
        local.dt.strftime("%Y-%m-%d").alias("day"),
    )


def list_frame(spec: ListSpec, labelled: pl.DataFrame, policy: str) -> pl.DataFrame:
    """The list's columns (what ``policy`` discloses), ``start`` still epoch seconds."""
    return labelled.select(spec.visible(policy).names)


def export_frame(spec: ListSpec, labelled: pl.DataFrame, policy: str,
                 offset_s: int) -> pl.DataFrame:
    """The list as written by the export: its columns, ``start`` as local ISO text."""
    frame = list_frame(spec, labelled, policy)
    if "start" in frame.columns:
        local = pl.from_epoch(pl.col("start") + offset_s, time_unit="s")
        frame = frame.with_columns(
            (local.dt.strftime("%Y-%m-%dT%H:%M:%S") + pl.lit(offset_text(offset_s)))
            .alias("start"))
    return frame


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Text fields that a spreadsheet would run as a formula, with a leading ``'``."""
    risky = "^[" + "".join("\\" + c if c in "+-" else c for c in FORMULA_PREFIXES) + "]"
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(risky)).then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items() if dtype == pl.String)


def csv_text(frame: pl.DataFrame) -> str:
    """The list as CSV text (module docstring)."""
    return csv_safe(frame).write_csv(line_terminator="\n")


__all__ = ["DISPUTES", "FORMULA_PREFIXES", "INVALID", "LIST_KINDS", "POLICIES", "SPECS",
           "UNMATCHED", "DisplayColumn", "ListColumn", "ListFilter", "ListSpec", "csv_safe",
           "csv_text", "disclosed", "export_frame", "label_calls", "list_frame",
           "offset_text"]
