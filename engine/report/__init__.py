"""The party's report for the people who settle: ``report.html``.

One self-contained HTML file per party and job (inline CSS, inline SVG and one
inline script, admitted by hash in its Content-Security-Policy, which forbids every
fetch), for an operator's settlement analysts: the operators by name and who signed;
the settlement decision and ledger anchor; who pays whom, net, per direction, before
and after the disputed amounts; key totals in yuan; worklists of every disputed pair,
every unmatched record and every invalid row (sortable, filterable, downloadable as
CSV in the browser; embedded up to :data:`MAX_LIST_ROWS` rows each, largest amount
first); charts of records by status, disputes by reason, amounts by rate class and
by payer → payee, daily volumes, stage timings.  docs/report.md describes it.

Modules (in topological order of their imports):

- ``frames``     the one adapter to the ingest frames, records.parquet and
                 quarantine.parquet -> the report's own schema
- ``classes``    rate class and payer / payee of calls, vectorised
- ``lists``      the worklists' columns (one definition for the page and the export)
- ``parties``    operators' names, signers and key ids from summary / statement
- ``aggregate``  polars over the frames -> :class:`~engine.report.aggregate.ReportData`
- ``svg``        inline SVG bar charts (scale breaks for a dominant category)
- ``page``       the HTML document (and ``worklist.js``, the page's script)

Usage::

    html = render_report(summary, statuses, records, rows, rules,
                         statement=statement, quarantine=quarantine)
    path = write_report(out_dir, summary, statuses, records, rows, rules,
                        statement=statement, quarantine=quarantine)

A job writes its report with :func:`write_bucketed_report`: the calls bucket by bucket
(one :class:`PartyFrames` per bucket) and records.parquet through the streaming
:class:`~engine.report.frames.StatusFile`, so that the report of 10^8 rows needs the
memory of a bucket, not of the export.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from engine.durable import durable_write
from collections.abc import Iterable

from engine.report.aggregate import MAX_LIST_ROWS, ReportData, WholeFile, aggregate, aggregate_parts
from engine.report.frames import PartyFrames, ReportInputError, StatusFile
from engine.report.page import render_page
from engine.report.parties import read_parties
from engine.rules import Rules

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def render_report(summary: Mapping[str, Any], statuses: pl.DataFrame, records: pl.DataFrame,
                  rows: pl.DataFrame, rules: Rules, *,
                  statement: Mapping[str, Any] | None = None,
                  quarantine: pl.DataFrame | None = None,
                  max_list_rows: int = MAX_LIST_ROWS) -> str:
    """The report as HTML text.

    ``summary``: the party's summary.json as a dict (its ``stages`` are shown as
    given, never measured here); ``statuses``: the frame of records.parquet;
    ``records`` and ``rows``: the canonical frames from ingest; ``rules``: the job's
    rules; ``statement``: the statement.json document (for its signers; None: the
    page says it was not given); ``quarantine``: the quarantine.parquet frame (for
    the invalid rows' messages; None: no messages); ``max_list_rows``: rows of each
    worklist embedded in the page.  Deterministic: the same inputs give the same
    text.  Raises :class:`ReportInputError` when a frame lacks a documented column
    or has an unknown status, or the statement is malformed or of another job.
    """
    if not isinstance(summary, Mapping):
        raise ReportInputError("summary is not an object", file="summary.json",
                               expected="a dict", found=type(summary).__name__)
    frames = PartyFrames(statuses, records, rows, quarantine)
    parties = read_parties(summary, statement, rules)
    data = aggregate(summary, frames, rules, parties, max_list_rows=max_list_rows)
    return render_page(summary, data, rules)


def write_report(out_dir: str | Path, summary: Mapping[str, Any], statuses: pl.DataFrame,
                 records: pl.DataFrame, rows: pl.DataFrame, rules: Rules, *,
                 statement: Mapping[str, Any] | None = None,
                 quarantine: pl.DataFrame | None = None,
                 max_list_rows: int = MAX_LIST_ROWS,
                 filename: str = REPORT_FILE) -> Path:
    """Render the report and write it to ``out_dir / filename`` (UTF-8, durably: written,
    fsync'd and renamed).  Returns the path."""
    html = render_report(summary, statuses, records, rows, rules, statement=statement,
                         quarantine=quarantine, max_list_rows=max_list_rows)
    return _write_html(out_dir, filename, html)


def write_bucketed_report(out_dir: str | Path, summary: Mapping[str, Any], whole: WholeFile,
                          parts: Iterable[PartyFrames], rules: Rules, *,
                          statement: Mapping[str, Any] | None = None,
                          max_list_rows: int = MAX_LIST_ROWS,
                          filename: str = REPORT_FILE) -> Path:
    """:func:`write_report` from the whole-file views of records.parquet (``whole``, e.g.
    a :class:`StatusFile`) and the party's calls in parts (a job's buckets, read one after
    the other): the same page, in the memory of a part."""
    if not isinstance(summary, Mapping):
        raise ReportInputError("summary is not an object", file="summary.json",
                               expected="a dict", found=type(summary).__name__)
    parties = read_parties(summary, statement, rules)
    data = aggregate_parts(summary, whole, parts, rules, parties, max_list_rows=max_list_rows)
    return _write_html(out_dir, filename, render_page(summary, data, rules))


def _write_html(out_dir: str | Path, filename: str, html: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / filename

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(html)
        os.chmod(tmp, 0o644)

    durable_write(target, write)  # fsync'd before the party says it is ready to anchor
    log.info("report written: %s (%d bytes)", target, len(html.encode("utf-8")))
    return target


__all__ = ["MAX_LIST_ROWS", "REPORT_FILE", "ReportData", "ReportInputError", "StatusFile",
           "render_report", "write_bucketed_report", "write_report"]
