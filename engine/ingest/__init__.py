"""The ingest stage: one operator's billing export → canonical frames.

``ingest(path, rules)`` reads a CSV or Parquet export (docs/records.md "Input"),
validates and normalises every row, marks exact local duplicates, merges the
partial records of long calls, applies the rules' exclusions and rates every
considered record from the tariff table (docs/rules.md "Rating").  It returns an
:class:`IngestResult` with the ``rows`` frame (one per input row: status, reason,
unit) and the ``records`` frame (one per canonical record), the quarantine entries
of the invalid rows, counts and timings.

``rate(records, rules)`` rates a records frame on its own.

Modules, in the order they depend on each other: ``schema`` (names), ``reading``
(files → raw frame, file-level errors), ``timestamps`` (ISO-8601 → epoch seconds),
``validation`` (row checks, normalisation), ``rating`` (tariff lookup and amounts),
``quarantine`` (messages, writing), ``pipeline`` (the local processing order),
``cli`` (``settlechain validate``).
"""

from engine.ingest.pipeline import (
    STAGES,
    IngestResult,
    ProgressCallback,
    RowAccountingError,
    ingest,
)
from engine.ingest.rating import rate
from engine.ingest.reading import read_input

__all__ = [
    "STAGES",
    "IngestResult",
    "ProgressCallback",
    "RowAccountingError",
    "ingest",
    "rate",
    "read_input",
]
