"""The party's human-readable report: ``report.html``.

One self-contained HTML file per party and job (inline CSS and inline SVG; no
script, no font or image from anywhere; a Content-Security-Policy forbids every
fetch), for an operator's finance team: who, what period and which rules; the
settlement decision and ledger anchor; key totals in yuan; charts of records by
status, disputes by reason, amounts by rate class and by payer → payee, daily
volumes agreed vs disputed, stage timings; the first disputed records.

Modules (in topological order of their imports):

- ``aggregate``  polars over the frames -> :class:`~engine.report.aggregate.ReportData`
  (all heavy work, vectorised; rate classes classified per column)
- ``svg``        inline SVG bar charts (scale breaks for a dominant category)
- ``page``       the HTML document

Usage::

    html = render_report(summary, statuses, records, rows, rules)
    path = write_report(out_dir, summary, statuses, records, rows, rules)
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from engine.report.aggregate import ReportData, ReportInputError, aggregate
from engine.report.page import render_page
from engine.rules import Rules

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
DEFAULT_DISPUTED_ROWS = 50


def render_report(summary: Mapping[str, Any], statuses: pl.DataFrame, records: pl.DataFrame,
                  rows: pl.DataFrame, rules: Rules, *,
                  max_disputed_rows: int = DEFAULT_DISPUTED_ROWS) -> str:
    """The report as HTML text.

    ``summary``: the party's summary.json as a dict; ``statuses``: the frame of
    records.parquet; ``records`` and ``rows``: the canonical frames from ingest;
    ``rules``: the job's rules.  ``max_disputed_rows``: how many disputed rows the
    table lists.  Deterministic: the same inputs give the same text.  Raises
    :class:`ReportInputError` when a frame lacks a documented column or has an
    unknown status.
    """
    if not isinstance(summary, Mapping):
        raise ReportInputError("summary is not an object", file="summary.json",
                               expected="a dict", found=type(summary).__name__)
    data = aggregate(summary, statuses, records, rows, rules,
                     max_disputed_rows=max_disputed_rows)
    return render_page(summary, data, rules)


def write_report(out_dir: str | Path, summary: Mapping[str, Any], statuses: pl.DataFrame,
                 records: pl.DataFrame, rows: pl.DataFrame, rules: Rules, *,
                 max_disputed_rows: int = DEFAULT_DISPUTED_ROWS,
                 filename: str = REPORT_FILE) -> Path:
    """Render the report and write it to ``out_dir / filename`` (UTF-8, replaced
    atomically).  Returns the path."""
    html = render_report(summary, statuses, records, rows, rules,
                         max_disputed_rows=max_disputed_rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / filename
    fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(html)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("report written: %s (%d bytes)", target, len(html.encode("utf-8")))
    return target


__all__ = ["REPORT_FILE", "ReportData", "ReportInputError", "render_report", "write_report"]
