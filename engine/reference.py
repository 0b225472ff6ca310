"""The plaintext reference reconciler (the oracle).  NO PRIVACY.

Both operators' sides in one process, each an :class:`engine.side.OperatorSide` driven
exactly as the private job drives it — the same ingest, the same buckets, the same
circuit breaker (:mod:`engine.breaker`), the same outputs — except that

- a pass's intersection is a plaintext join on the element bytes
  (:func:`engine.matching.elements.plaintext_intersection`) instead of PSI, and
- the candidate pairs are evaluated in the clear
  (:func:`engine.matching.evaluation.plaintext_evaluation`) instead of by MPC.

So it needs no more memory than the job: a bucket of each side at a time.  Pair ids are
:func:`engine.matching.elements.pair_ids` under a key derived from the job id alone
(deterministic, not private).  Its outputs are those of a private job on the same inputs, rules and period,
except the pair ids, the anchor and the timings.  Use it for testing and debugging:
whoever runs it sees both files.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.breaker import SideSizes, check_considered, check_sizes
from engine.errors import JobError
from engine.ingest.reading import CHUNK_ROWS, open_input
from engine.matching.elements import common_order, plaintext_intersection, reference_pair_key
from engine.matching.errors import MatchingError
from engine.matching.evaluation import plaintext_evaluation
from engine.matching.outcome import Outcome
from engine.outputs import (
    QUARANTINE_FILE, RECORDS_FILE, STATEMENT_FILE, SUMMARY_FILE, StageTime, stages_json,
    statement_document, summary_document, write_json,
)
from engine.partition import DEFAULT_RECORDS_PER_BUCKET, Partition, bucket_count, local_partition
from engine.period import PeriodWindow, period_window
from engine.rules import Rules
from engine.side import OperatorSide, SidePlan

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PartyReport:
    outcome: Outcome
    summary: dict[str, Any]
    statement: dict[str, Any]
    records: pl.DataFrame
    """records.parquet as written."""


@dataclass(frozen=True)
class ReferenceResult:
    a: PartyReport
    b: PartyReport

    def party(self, name: str) -> PartyReport:
        return {"A": self.a, "B": self.b}[name]


def reconcile_files(path_a: str | Path, path_b: str | Path, rules: Rules, *, out: str | Path,
                    job_id: str, period: str | None = None,
                    records_per_bucket: int = DEFAULT_RECORDS_PER_BUCKET,
                    chunk_rows: int = CHUNK_ROWS, operators: tuple[str, str] = ("A", "B"),
                    progress: Progress | None = None) -> ReferenceResult:
    """Reconcile two exports in the clear, bucket by bucket, writing each party's outputs to
    ``out/A`` and ``out/B`` (records.parquet, quarantine.parquet, summary.json,
    statement.json).  Raises :class:`JobError` with the job's reason when the circuit
    breaker refuses, after writing each side's quarantine.parquet."""
    out = Path(out)
    window = period_window(period, rules.timezone_offset_s) if period else None
    sources = [open_input(path_a), open_input(path_b)]
    n_buckets = bucket_count(max(s.estimated_rows for s in sources), records_per_bucket)
    partition = Partition(key=reference_pair_key(job_id)[:16], n_buckets=n_buckets)
    with tempfile.TemporaryDirectory(prefix="settlechain-reference-") as folder:
        sides = [OperatorSide(SidePlan(party, rules, window, partition,
                                       Path(folder) / party, chunk_rows), source)
                 for party, source in zip(("A", "B"), sources, strict=True)]
        return _reconcile(sides, rules, job_id=job_id, window=window, period=period,
                          operators=operators, out=out, progress=progress)


def reconcile_plain(a: Any, b: Any, rules: Rules, *, job_id: str, period: str | None = None,
                    operators: tuple[str, str] = ("A", "B"), n_buckets: int = 1,
                    out: str | Path | None = None) -> ReferenceResult:
    """Reconcile two sides' canonical frames (``rows`` and ``records``, the frames of
    :func:`engine.ingest.ingest`) in the clear: for the tests.  ``n_buckets`` splits them
    the way a job would (the result must not depend on it); ``out``: where the output
    files go (default: a temporary folder)."""
    partition = local_partition(n_buckets)
    with tempfile.TemporaryDirectory(prefix="settlechain-reference-") as folder:
        sides = [OperatorSide.from_frames(SidePlan(party, rules, None, partition,
                                                   Path(folder) / party), frames.rows,
                                          frames.records)
                 for party, frames in (("A", a), ("B", b))]
        return _reconcile(sides, rules, job_id=job_id, window=None, period=period,
                          operators=operators,
                          out=Path(out) if out is not None else Path(folder) / "out",
                          progress=None)


def _reconcile(sides: list[OperatorSide], rules: Rules, *, job_id: str,
               window: PeriodWindow | None, period: str | None, operators: tuple[str, str],
               out: Path, progress: Progress | None) -> ReferenceResult:
    side_a, side_b = sides
    clock: dict[str, float] = {}
    items: dict[str, list[int]] = {}

    def timed(stage: str, seconds: float, item_a: int, item_b: int) -> None:
        clock[stage] = clock.get(stage, 0.0) + seconds
        got = items.setdefault(stage, [0, 0])
        got[0] += item_a
        got[1] += item_b

    began = time.perf_counter()
    t0 = time.perf_counter()
    for side in sides:
        if side.scanned is None:
            side.scan(None if progress is None else
                      (lambda done, total, p=side.plan.party: progress(f"read {p}", done, total)))
    reason = check_sizes({s.plan.party: SideSizes(s.input_rows, s.invalid_rows) for s in sides},
                         rules.circuit_breaker)
    for side in sides:
        if not side.roots:
            side.local()
    timed("ingest", time.perf_counter() - t0, side_a.input_rows, side_b.input_rows)
    if reason is None:
        reason = check_considered({s.plan.party: s.considered for s in sides})
    if reason is not None:
        for side in sides:
            (out / side.plan.party).mkdir(parents=True, exist_ok=True)
            side.write_quarantine(out / side.plan.party / QUARANTINE_FILE)
        raise JobError(reason)
    timed("agree", 0.0, 0, 0)
    t0 = time.perf_counter()
    commitments = {s.plan.party: s.commitment().root.hex() for s in sides}
    timed("commit", time.perf_counter() - t0, side_a.considered, side_b.considered)

    key = reference_pair_key(job_id)
    for b in range(side_a.n_buckets):
        ma, mb = side_a.matcher(b), side_b.matcher(b)
        while ma.next_pass is not None:
            spec = ma.next_pass
            t0 = time.perf_counter()
            ea, eb = ma.build_pass(spec), mb.build_pass(spec)
            ia, ib = plaintext_intersection(ea.elements, eb.elements)
            ia, ids_a = common_order(ea.elements, ia, key, b)
            ib, ids_b = common_order(eb.elements, ib, key, b)
            if not np.array_equal(ids_a, ids_b):  # pragma: no cover - equal elements, equal ids
                raise MatchingError("the two sides derived different pair ids")
            ma.record_pass(ea, ia, ids_a)
            mb.record_pass(eb, ib, ids_b)
            timed(spec.job_stage, time.perf_counter() - t0, len(ea), len(eb))
        side_a.save_psi(ma)
        side_b.save_psi(mb)
        if progress is not None:
            progress("buckets", b + 1, side_a.n_buckets)

    t0 = time.perf_counter()
    (va, counts_a), (vb, counts_b) = side_a.candidates(), side_b.candidates()
    if counts_a != counts_b:
        raise MatchingError("the two sides found different numbers of candidate pairs",
                            expected=str(counts_a), found=str(counts_b))
    evaluation = plaintext_evaluation(va, vb, rules)
    timed("mpc", time.perf_counter() - t0, len(va), len(vb))

    t0 = time.perf_counter()
    tallies = {s.plan.party: s.finish(evaluation) for s in sides}
    facts = {"A": tallies["A"].side_facts(side_a.evaluation),
             "B": tallies["B"].side_facts(side_b.evaluation)}
    members = {"A": operators[0], "B": operators[1]}
    outcomes = {"A": tallies["A"].outcome(facts["B"], side_a.evaluation, rules, members),
                "B": tallies["B"].outcome(facts["A"], side_b.evaluation, rules, members)}
    digests = {}
    for side in sides:
        folder = out / side.plan.party
        folder.mkdir(parents=True, exist_ok=True)
        side.write_quarantine(folder / QUARANTINE_FILE)
        digests[side.plan.party] = side.write_records(folder / RECORDS_FILE)
    label = period or _period_label(sides, rules)
    statements = {p: statement_document(outcomes[p], job_id=job_id, period=label,
                                        rules_sm3=rules.sm3_hash(), operators=members,
                                        commitments=commitments, outputs=digests)
                  for p in ("A", "B")}
    if statements["A"] != statements["B"]:
        raise MatchingError("the two parties' statements differ",
                            expected=str(statements["A"]), found=str(statements["B"]))
    timed("report", time.perf_counter() - t0, side_a.input_rows, side_b.input_rows)
    total = time.perf_counter() - began

    reports = {}
    for i, side in enumerate(sides):
        party = side.plan.party
        stages = {name: StageTime(clock.get(name, 0.0), items.get(name, [0, 0])[i])
                  for name in ("ingest", "agree", "commit", "psi_exact", "psi_key", "mpc",
                               "report")}
        tally = tallies[party]
        summary = summary_document(
            outcomes[party], job_id=job_id, period=label, rules_sm3=rules.sm3_hash(),
            operators=members,
            stages=stages_json(stages, StageTime(total, side.input_rows), _peak_mib()),
            excluded_by_reason=tally.excluded_by_reason,
            invalid_by_reason=tally.invalid_by_reason, outputs={"records": digests[party]},
            partition={"buckets": side.n_buckets}, period_window=window)
        folder = out / party
        write_json(folder / SUMMARY_FILE, summary)
        write_json(folder / STATEMENT_FILE, statements[party], canonical=True)
        reports[party] = PartyReport(outcome=outcomes[party], summary=summary,
                                     statement=statements[party],
                                     records=pl.read_parquet(folder / RECORDS_FILE))
    return ReferenceResult(a=reports["A"], b=reports["B"])


def _period_label(sides: list[OperatorSide], rules: Rules) -> str:
    """``YYYY-MM`` of the considered records' start times (rules' local time), or
    ``YYYY-MM/YYYY-MM`` when they span several months; ``none`` without records."""
    import datetime as dt

    low, high = None, None
    for side in sides:
        for b in range(side.n_buckets):
            starts = pl.scan_parquet(side.work.bucket_file(b, "records.parquet")).filter(
                ~pl.col("excluded")).select(pl.col("start").min().alias("lo"),
                                            pl.col("start").max().alias("hi")).collect()
            lo, hi = starts.row(0)
            if lo is not None:
                low = lo if low is None else min(low, lo)
                high = hi if high is None else max(high, hi)
    if low is None:
        return "none"
    tz = dt.timezone(dt.timedelta(seconds=rules.timezone_offset_s))
    first, last = (dt.datetime.fromtimestamp(int(v), tz).strftime("%Y-%m") for v in (low, high))
    return first if first == last else f"{first}/{last}"


def _peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


__all__ = ["PartyReport", "ReferenceResult", "reconcile_files", "reconcile_plain"]
