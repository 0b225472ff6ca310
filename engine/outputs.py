"""A party's output documents: ``summary.json``, ``statement.json``, ``anchor.json``.

Formats: docs/records.md "Outputs of a job, per party".  Each document is built once, from
the party's :class:`~engine.matching.outcome.Outcome` and a frozen clock, and written
once, durably (write, fsync, rename): nothing is patched after it was written.

- ``summary.json`` (UTF-8 JSON, 2-space indented, keys in the documented order) is
  written with records.parquet, quarantine.parquet and report.html *before* the party
  confirms that it is ready for the anchor; it times every stage up to the report.
- ``statement.json`` (RFC 8785 canonical JSON, the same bytes at A and B) and
  ``anchor.json`` (the anchor receipt: ledger indices, leaf hashes, checkpoint, the
  anchor stage's time) are written after the anchor.

:func:`statement_signing_bytes` gives what each operator signs; the statement binds both
parties' records.parquet by the SM3 digest of its content (engine.side).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from engine.errors import SettlechainError
from engine.matching.outcome import Outcome
from engine.names import JOB_STAGES, OPERATOR_ROLES
from engine.durable import durable_write
from ledger_anchor.commitment import document_bytes

SUMMARY_FILE = "summary.json"
RECORDS_FILE = "records.parquet"
STATEMENT_FILE = "statement.json"
QUARANTINE_FILE = "quarantine.parquet"
REPORT_FILE = "report.html"
ANCHOR_FILE = "anchor.json"

#: stages timed in summary.json (the anchor's time is in anchor.json), then ``total``
SUMMARY_STAGES: tuple[str, ...] = tuple(s for s in JOB_STAGES if s != "anchor")


class OutputError(SettlechainError):
    """An output could not be built or written as documented."""


@dataclass(frozen=True)
class StageTime:
    seconds: float
    items: int
    peak_memory_mib: float | None = None
    waiting_seconds: float = 0.0
    """Of ``seconds``, the time spent waiting for another party."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seconds": round(float(self.seconds), 6), "items": int(self.items)}
        if self.waiting_seconds:
            out["waiting_seconds"] = round(float(self.waiting_seconds), 6)
        if self.peak_memory_mib is not None:
            out["peak_memory_mib"] = round(float(self.peak_memory_mib), 1)
        return out


def stages_json(stages: Mapping[str, StageTime], total: StageTime,
                peak_memory_mib: float) -> dict[str, Any]:
    missing = [s for s in SUMMARY_STAGES if s not in stages]
    if missing:
        raise OutputError(f"summary.json: no timing for stage {missing[0]!r} "
                          f"(expected all of {', '.join(SUMMARY_STAGES)})")
    return {**{name: stages[name].as_json() for name in SUMMARY_STAGES},
            "total": total.as_json(), "peak_memory_mib": round(float(peak_memory_mib), 1)}


def summary_document(outcome: Outcome, *, job_id: str, period: str, rules_sm3: str,
                     operators: Mapping[str, str], stages: Mapping[str, Any],
                     excluded_by_reason: Mapping[str, int],
                     invalid_by_reason: Mapping[str, int],
                     outputs: Mapping[str, str] | None = None,
                     statement_sm3: str | None = None,
                     partition: Mapping[str, Any] | None = None,
                     period_window: Any = None) -> dict[str, Any]:
    """``summary.json`` of one party (docs/records.md).  ``period_window``: the
    :class:`engine.period.PeriodWindow` records were checked against (None: no check)."""
    party = outcome.party
    other = OPERATOR_ROLES[1 - OPERATOR_ROLES.index(party)]
    return {
        "job_id": job_id,
        "party": party,
        "member": operators[party],
        "counterparty": other,
        "counterparty_member": operators[other],
        "period": period,
        "period_window": None if period_window is None else
        {"start": period_window.start, "end": period_window.end},
        "rules_sm3": rules_sm3,
        "disclosure": outcome.disclosure,
        "counts": dict(outcome.counts),
        "excluded_by_reason": dict(sorted(excluded_by_reason.items())),
        "invalid_by_reason": dict(sorted(invalid_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        "pairs": dict(outcome.pairs),
        "reasons": {code: dict(v) for code, v in outcome.reasons.items()},
        "totals": dict(outcome.totals),
        "held": outcome.held,
        "review": {"settlement": outcome.review.settlement,
                   "reasons": list(outcome.review.reasons)},
        "statement_sm3": statement_sm3,
        "outputs": dict(outputs or {}),
        "partition": dict(partition or {}),
        "stages": dict(stages),
    }


def statement_document(outcome: Outcome, *, job_id: str, period: str, rules_sm3: str,
                       operators: Mapping[str, str], commitments: Mapping[str, str | None],
                       outputs: Mapping[str, str | None]) -> dict[str, Any]:
    """The party-neutral settlement statement (docs/records.md ``statement.json``).

    Built by either party from its own outcome; both give equal documents because every
    number in it is known to both (a test checks it).  ``commitments``: each side's
    dataset root; ``outputs``: each side's records.parquet digest.
    """
    by_party = {outcome.party: "local",
                OPERATOR_ROLES[1 - OPERATOR_ROLES.index(outcome.party)]: "remote"}
    facts = {outcome.local.party: outcome.local, outcome.remote.party: outcome.remote}
    t = outcome.totals

    def side(party: str, name: str) -> int | None:
        return t[f"{name}_{by_party[party]}_charge"]

    # a side's own total is in the statement only when the other side knows it too
    known = t["remote_charge"] is not None and outcome.local.local_charge is not None
    totals = {
        "a_charge": (t["local_charge"] if by_party["A"] == "local" else t["remote_charge"])
        if known else None,
        "b_charge": (t["local_charge"] if by_party["B"] == "local" else t["remote_charge"])
        if known else None,
        "agreed_charge": t["agreed_charge"],
        "a_agreed_charge": side("A", "agreed"), "b_agreed_charge": side("B", "agreed"),
        "a_disputed_charge": side("A", "disputed"), "b_disputed_charge": side("B", "disputed"),
        "a_unmatched_charge": side("A", "unmatched"),
        "b_unmatched_charge": side("B", "unmatched"),
    }
    held = None
    if outcome.held is not None:
        h = outcome.held
        held = {"pairs": h["pairs"],
                "a_charge": h["local_charge"] if by_party["A"] == "local" else h["remote_charge"],
                "b_charge": h["local_charge"] if by_party["B"] == "local" else h["remote_charge"]}
    return {
        "kind": "settlement_statement",
        "job_id": job_id,
        "period": period,
        "rules_sm3": rules_sm3,
        "disclosure": outcome.disclosure,
        "operators": {p: operators[p] for p in OPERATOR_ROLES},
        "commitments": {p: commitments.get(p) for p in OPERATOR_ROLES},
        "outputs": {p: outputs.get(p) for p in OPERATOR_ROLES},
        "records": {
            "a_rows": facts["A"].rows, "b_rows": facts["B"].rows,
            "a_considered": facts["A"].considered, "b_considered": facts["B"].considered,
            "a_unmatched": facts["A"].unmatched_records,
            "b_unmatched": facts["B"].unmatched_records,
        },
        "pairs": dict(outcome.pairs),
        "totals": totals,
        "held": held,
        "classes": list(outcome.classes),
        "settlement": outcome.review.settlement,
        "settlement_reasons": list(outcome.review.reasons),
        "signatures": [],
    }


def statement_signing_bytes(statement: Mapping[str, Any]) -> bytes:
    """What A and B sign and commit to on the ledger: RFC 8785 canonical JSON of the
    statement without ``signatures`` and ``ledger`` (ledger_anchor.commitment)."""
    return document_bytes(statement)


def write_json(path: Path, document: Mapping[str, Any], *, canonical: bool = False) -> None:
    """Write a JSON document durably (canonical: RFC 8785 bytes, as signed)."""
    data = rfc8785.dumps(dict(document)) if canonical else \
        (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        durable_write(path, lambda tmp: tmp.write_bytes(data))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
