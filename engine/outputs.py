"""A party's output folder: ``records.parquet``, ``summary.json``, ``statement.json``.

Formats: docs/records.md § "Outputs of a job, per party".  The documents are built
from a :class:`engine.matching.MatchOutcome`; the private pipeline adds the ledger
anchor and the signatures, the plaintext reference leaves them null / empty.

- ``summary.json``: UTF-8 JSON, 2-space indented, keys in the documented order.
- ``statement.json``: RFC 8785 canonical JSON (so that A's and B's files are the
  same bytes); :func:`statement_signing_bytes` gives what each operator signs.
- ``records.parquet``: the frame of :data:`RECORDS_OUTPUT_SCHEMA`, checked before
  writing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import rfc8785

from engine.errors import SettlechainError
from engine.matching import PARTIES, MatchOutcome

RECORDS_OUTPUT_SCHEMA: dict[str, Any] = {
    "row": pl.Int64, "record_id": pl.String, "status": pl.String, "pair_id": pl.String,
    "stage": pl.String, "reasons": pl.String, "merged_into": pl.String,
    "diff_start_s": pl.Int64, "diff_duration_s": pl.Int64, "diff_charge": pl.Int64,
    "diff_rated_charge": pl.Int64,
}

#: stages reported in summary.json, in order
STAGES: tuple[str, ...] = ("ingest", "psi_exact", "psi_key", "mpc", "report", "anchor", "total")

SUMMARY_FILE = "summary.json"
RECORDS_FILE = "records.parquet"
STATEMENT_FILE = "statement.json"


class OutputError(SettlechainError):
    """An output could not be built or written as documented."""


@dataclass(frozen=True)
class StageTime:
    seconds: float
    items: int


def summary_document(outcome: MatchOutcome, *, job_id: str, period: str, rules_sm3: str,
                     stages: Mapping[str, StageTime], peak_memory_mib: float,
                     anchor: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json`` of one party (docs/records.md)."""
    missing = [s for s in STAGES if s not in stages]
    if missing:
        raise OutputError(f"summary.json: no timing for stage {missing[0]!r} "
                          f"(expected all of {', '.join(STAGES)})")
    party = outcome.party
    return {
        "job_id": job_id,
        "party": party,
        "counterparty": PARTIES[1 - PARTIES.index(party)],
        "period": period,
        "rules_sm3": rules_sm3,
        "disclosure": outcome.disclosure,
        "counts": dict(outcome.counts),
        "pairs": dict(outcome.pairs),
        "reasons": {code: dict(v) for code, v in outcome.reasons.items()},
        "totals": dict(outcome.totals),
        "review": {"settlement": outcome.review.settlement,
                   "reasons": list(outcome.review.reasons)},
        "anchor": dict(anchor) if anchor is not None else None,
        "stages": {**{name: {"seconds": round(float(stages[name].seconds), 6),
                             "items": int(stages[name].items)} for name in STAGES},
                   "peak_memory_mib": round(float(peak_memory_mib), 1)},
    }


def statement_document(outcome: MatchOutcome, *, job_id: str, period: str, rules_sm3: str,
                       operators: Mapping[str, str],
                       commitments: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """The party-neutral settlement statement (docs/records.md ``statement.json``).

    Built by either party from its own outcome; both give equal documents because
    every number in it is known to both (a test checks it).
    """
    by_party = {outcome.party: "local", PARTIES[1 - PARTIES.index(outcome.party)]: "remote"}
    facts = {outcome.local.party: outcome.local, outcome.remote.party: outcome.remote}
    t = outcome.totals

    def side(party: str, name: str) -> int:
        return t[f"{name}_{by_party[party]}_charge"]

    totals = {
        "a_charge": t["local_charge"] if by_party["A"] == "local" else t["remote_charge"],
        "b_charge": t["local_charge"] if by_party["B"] == "local" else t["remote_charge"],
        "agreed_charge": t["agreed_charge"],
        "a_agreed_charge": side("A", "agreed"), "b_agreed_charge": side("B", "agreed"),
        "a_disputed_charge": side("A", "disputed"), "b_disputed_charge": side("B", "disputed"),
        "a_unmatched_charge": side("A", "unmatched"),
        "b_unmatched_charge": side("B", "unmatched"),
    }
    commitments = commitments or {}
    return {
        "job_id": job_id,
        "period": period,
        "rules_sm3": rules_sm3,
        "disclosure": outcome.disclosure,
        "operators": {p: operators[p] for p in PARTIES},
        "commitments": {p: commitments.get(p) for p in PARTIES},
        "records": {
            "a_rows": facts["A"].rows, "b_rows": facts["B"].rows,
            "a_considered": facts["A"].considered, "b_considered": facts["B"].considered,
            "a_unmatched": facts["A"].unmatched_records,
            "b_unmatched": facts["B"].unmatched_records,
        },
        "pairs": dict(outcome.pairs),
        "totals": totals,
        "settlement": outcome.review.settlement,
        "settlement_reasons": list(outcome.review.reasons),
        "signatures": [],
    }


def statement_signing_bytes(statement: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of the statement without ``signatures``: what A and B sign."""
    return rfc8785.dumps({k: v for k, v in statement.items() if k != "signatures"})


def check_records_frame(frame: pl.DataFrame) -> None:
    """Raise :class:`OutputError` unless ``frame`` has exactly the documented columns."""
    found = dict(frame.schema)
    if list(found) != list(RECORDS_OUTPUT_SCHEMA) or any(
            found[c] != t for c, t in RECORDS_OUTPUT_SCHEMA.items()):
        raise OutputError(f"records.parquet: expected columns {RECORDS_OUTPUT_SCHEMA}, "
                          f"found {found}")


def write_party_outputs(directory: str | Path, records: pl.DataFrame, summary: Mapping[str, Any],
                        statement: Mapping[str, Any]) -> Path:
    """Write the three files into ``directory`` (created if needed); returns it.

    Each file is written to a temporary name and renamed, so that a reader never
    sees a half-written output.
    """
    directory = Path(directory)
    check_records_frame(records)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(directory / RECORDS_FILE, lambda p: records.write_parquet(p))
        summary_bytes = (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode()
        _atomic_write(directory / SUMMARY_FILE, lambda p: p.write_bytes(summary_bytes))
        statement_bytes = rfc8785.dumps(dict(statement))
        _atomic_write(directory / STATEMENT_FILE, lambda p: p.write_bytes(statement_bytes))
    except OSError as exc:
        raise OutputError(f"cannot write the outputs into {directory}: {exc.strerror}") from None
    return directory


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
