"""The report's lists and net position computed the obvious way, record by record in
plain Python, from a fixture's frames and the rules' own per-record lookups; the tests
compare the vectorised code (and the page) with these."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from engine.rules import SERVICES
from tests.unit.report.report_fixtures import Job

OUTCOME = {"matched_exact": "agreed", "matched_tolerance": "agreed", "disputed": "disputed",
           "unmatched": "unmatched"}
DIFFS = ("diff_start_s", "diff_duration_s", "diff_charge", "diff_rated_charge")


def local(job: Job, epoch: int) -> dt.datetime:
    tz = dt.timezone(dt.timedelta(seconds=job.rules.timezone_offset_s))
    return dt.datetime.fromtimestamp(epoch, tz)


def calls(job: Job) -> list[dict[str, Any]]:
    """Every considered canonical record with its outcome, its first row's
    records.parquet entry and all its input rows."""
    status_of = {r["row"]: r for r in job.statuses.iter_rows(named=True)}
    rows_of: dict[int, list[int]] = defaultdict(list)
    for row, unit in job.rows.select("row", "unit").iter_rows():
        if unit is not None:
            rows_of[unit].append(row)
    out = []
    for rec in job.records.iter_rows(named=True):
        first = status_of[rec["row"]]
        outcome = OUTCOME.get(first["status"])
        if outcome is not None:
            out.append({**rec, "outcome": outcome, "first": first,
                        "all_rows": sorted(rows_of[rec["unit"]])})
    return out


def list_rows(job: Job, outcome: str, policy: str) -> list[dict[str, Any]]:
    """The disputes (``disputed``) or unmatched list as the page embeds it: largest
    charge first, then by row; ``start`` in epoch seconds."""
    rules = job.rules
    rows = []
    for c in calls(job):
        if c["outcome"] != outcome:
            continue
        row = {
            "row": c["row"],
            "merged_rows": ";".join(map(str, c["all_rows"])) if c["parts"] > 1 else None,
            "record_id": c["record_id"],
        }
        if outcome == "disputed":
            row["pair_id"] = c["first"]["pair_id"]
        row.update({
            "service": SERVICES[c["service"]], "calling": c["calling"], "called": c["called"],
            "start": c["start"], "day": local(job, c["start"]).date().isoformat(),
            "duration_s": c["duration_s"], "volume_kb": c["volume_kb"], "charge": c["charge"],
            "rated_charge": c["rated_charge"],
            "payer": rules.operator_of(c["calling"]), "payee": rules.operator_of(c["called"]),
            "call_type": rules.call_type_of(c["called"]),
            "time_band": rules.time_band_of(c["start"]),
        })
        if outcome == "disputed" and policy in ("flags", "differences"):
            row["reasons"] = c["first"]["reasons"]
        if outcome == "disputed" and policy == "differences":
            row.update({d: c["first"][d] for d in DIFFS})
        rows.append(row)
    return sorted(rows, key=lambda r: (-r["charge"], r["row"]))


def direction_amounts(job: Job) -> dict[tuple[str, str], dict[str, int]]:
    """(payer, payee) -> outcome -> Σ charge."""
    amounts: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"agreed": 0, "disputed": 0, "unmatched": 0})
    for c in calls(job):
        key = (job.rules.operator_of(c["calling"]), job.rules.operator_of(c["called"]))
        amounts[key][c["outcome"]] += c["charge"]
    return dict(amounts)


def direction_diffs(job: Job) -> dict[tuple[str, str], int]:
    """(payer, payee) -> Σ diff_charge over disputed calls."""
    diffs: dict[tuple[str, str], int] = defaultdict(int)
    for c in calls(job):
        if c["outcome"] == "disputed":
            key = (job.rules.operator_of(c["calling"]), job.rules.operator_of(c["called"]))
            diffs[key] += c["first"]["diff_charge"]
    return dict(diffs)
