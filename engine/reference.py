"""The plaintext reference reconciler (the oracle).  NO PRIVACY.

Both parties' canonical records in one process: two :class:`engine.matching.
PartyMatcher` objects driven exactly as the private pipeline drives them, except
that

- a pass's intersection is a plaintext join on the element bytes
  (:func:`plaintext_intersection`) instead of PSI, and
- the candidate pairs are evaluated by :func:`engine.tolerance.evaluate_pairs`
  instead of MPC.

Pair ids here are ``AES-128_k(tag ‖ 0^7 ‖ ordinal)`` with ``k`` = the first 16
bytes of SM3(``"settlechain/reference/pair-id\\0"`` ‖ job id) and ``ordinal`` the
pair's position (big-endian u64) in the pass's common order (A's element order):
distinct by construction (AES is a permutation), deterministic for a job id, and
*not* private — anyone who knows the job id can invert them.  The private pipeline
takes its pair ids from the PSI instead.

Use it for testing and debugging: its outputs are those of a private job on the
same inputs, with the same rules, except the pair ids, the anchor and the timings.
"""

from __future__ import annotations

import datetime as dt
import resource
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import polars as pl
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from engine.matching import (
    ELEMENT_ID_BYTES,
    PASSES,
    MatchingError,
    MatchOutcome,
    PartyMatcher,
    check_input_sizes,
)
from engine.outputs import StageTime, statement_document, summary_document
from engine.rules import Rules
from engine.tolerance import evaluate_pairs
from ledger_anchor.sm3 import sm3

_PAIR_ID_CONTEXT = b"settlechain/reference/pair-id\x00"


class CanonicalFrames(Protocol):
    """What ``engine.ingest.ingest`` returns (docs/records.md "Canonical frames")."""

    rows: pl.DataFrame
    records: pl.DataFrame


@dataclass(frozen=True)
class PartyReport:
    """One party's outputs, ready for :func:`engine.outputs.write_party_outputs`."""

    outcome: MatchOutcome
    summary: dict[str, Any]
    statement: dict[str, Any]

    @property
    def records(self) -> pl.DataFrame:
        return self.outcome.records


@dataclass(frozen=True)
class ReferenceResult:
    a: PartyReport
    b: PartyReport

    def party(self, name: str) -> PartyReport:
        return {"A": self.a, "B": self.b}[name]


def pair_id_key(job_id: str) -> bytes:
    """The AES key of the reference's pair ids for ``job_id`` (module docstring)."""
    return sm3(_PAIR_ID_CONTEXT + job_id.encode("utf-8"))[:16]


def reference_pair_ids(key: bytes, tag: int, count: int) -> np.ndarray:
    """``(count, 16)`` uint8 pair ids of one pass (module docstring)."""
    blocks = np.zeros((count, ELEMENT_ID_BYTES), dtype=np.uint8)
    blocks[:, 0] = tag
    blocks[:, 8:] = np.arange(count, dtype=">u8").view(np.uint8).reshape(count, 8)
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out = encryptor.update(blocks.tobytes()) + encryptor.finalize()
    return np.frombuffer(out, dtype=np.uint8).reshape(count, ELEMENT_ID_BYTES).copy()


def plaintext_intersection(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(ia, ib)`` of equal rows of two ``(n, w)`` uint8 element arrays, in A's
    order.  Raises :class:`MatchingError` when a side's elements are not distinct.

    A hash join on a 64-bit mix of each element's bytes, then every joined pair is
    compared on all its bytes, so a hash collision can cost time but never a wrong
    or a missed pair (equal elements always have equal mixes).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.dtype != np.uint8 \
            or b.dtype != np.uint8:
        raise MatchingError("element arrays must be (n, w) uint8 of one width",
                            expected=f"uint8 (n, {a.shape[-1]})",
                            found=f"{a.dtype} {a.shape} and {b.dtype} {b.shape}")
    words_a, words_b = _as_words(a), _as_words(b)
    mix_a, mix_b = _mix(words_a), _mix(words_b)
    for words, mix, party in ((words_a, mix_a, "A"), (words_b, mix_b, "B")):
        _check_distinct(words, mix, party)
    joined = (pl.DataFrame({"h": mix_a, "ia": np.arange(len(mix_a), dtype=np.int64)})
              .join(pl.DataFrame({"h": mix_b, "ib": np.arange(len(mix_b), dtype=np.int64)}),
                    on="h", how="inner")
              .sort("ia"))
    ia = joined.get_column("ia").to_numpy()
    ib = joined.get_column("ib").to_numpy()
    equal = (words_a[:, ia] == words_b[:, ib]).all(axis=0)
    return ia[equal].astype(np.int64), ib[equal].astype(np.int64)


def _as_words(elements: np.ndarray) -> np.ndarray:
    """``(words, n)`` little-endian u64 words of each element, zero-padded."""
    width = elements.shape[1]
    words = -(-width // 8)
    padded = np.zeros((len(elements), 8 * words), dtype=np.uint8)
    padded[:, :width] = elements
    return np.ascontiguousarray(padded.view("<u8").T)


def _mix(words: np.ndarray) -> np.ndarray:
    """A 64-bit mix of each column of ``words`` (a join key, not a cryptographic hash)."""
    mixed = np.zeros(words.shape[1], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for word in words:
            mixed ^= word
            mixed *= np.uint64(0x9E3779B97F4A7C15)
            mixed ^= mixed >> np.uint64(29)
    return mixed


def _check_distinct(words: np.ndarray, mix: np.ndarray, party: str) -> None:
    if pl.Series(mix).n_unique() == len(mix):
        return
    frame = pl.DataFrame({f"w{i}": w for i, w in enumerate(words)})
    repeated = frame.is_duplicated()
    if repeated.any():
        raise MatchingError(f"pass elements of party {party} are not distinct",
                            expected="distinct elements (the rank makes them so)",
                            found=f"element {int(repeated.arg_true()[0])} repeated")


def default_period(records: list[pl.DataFrame], rules: Rules) -> str:
    """``YYYY-MM`` of the considered records' start times in the rules' local time, or
    ``YYYY-MM/YYYY-MM`` when they span several months; ``none`` without records."""
    starts = [r.filter(~r.get_column("excluded").fill_null(False)).get_column("start")
              for r in records]
    values = pl.concat(starts).drop_nulls() if starts else pl.Series([], dtype=pl.Int64)
    if values.is_empty():
        return "none"
    tz = dt.timezone(dt.timedelta(seconds=rules.timezone_offset_s))
    first, last = (dt.datetime.fromtimestamp(int(v), tz).strftime("%Y-%m")
                   for v in (values.min(), values.max()))
    return first if first == last else f"{first}/{last}"


def reconcile_plain(a: CanonicalFrames, b: CanonicalFrames, rules: Rules, *, job_id: str,
                    period: str | None = None,
                    operators: tuple[str, str] = ("A", "B"),
                    ingest_seconds: tuple[float, float] = (0.0, 0.0)) -> ReferenceResult:
    """Reconcile two parties' canonical frames in the clear; both parties' outputs."""
    began = time.perf_counter()
    check_input_sizes(a.rows.height, b.rows.height, rules)
    matchers = (PartyMatcher("A", a.rows, a.records, rules),
                PartyMatcher("B", b.rows, b.records, rules))
    key = pair_id_key(job_id)
    seconds = {"psi_exact": 0.0, "psi_key": 0.0, "mpc": 0.0, "report": 0.0}
    items = {p: {"psi_exact": 0, "psi_key": 0} for p in ("A", "B")}
    for spec in PASSES:
        t0 = time.perf_counter()
        ea, eb = (m.build_pass(spec) for m in matchers)
        ia, ib = plaintext_intersection(ea.elements, eb.elements)
        ids = reference_pair_ids(key, spec.tag, len(ia))
        matchers[0].record_pass(ea, ia, ids)
        matchers[1].record_pass(eb, ib, ids)
        stage = "psi_key" if spec.stage == "key" else "psi_exact"
        seconds[stage] += time.perf_counter() - t0
        items["A"][stage] += len(ea)
        items["B"][stage] += len(eb)

    t0 = time.perf_counter()
    va, vb = (m.candidate_values() for m in matchers)
    evaluation = evaluate_pairs(va, vb, rules.tolerances, rules.disclosure)
    for m in matchers:
        m.record_evaluation(evaluation)
    seconds["mpc"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fa, fb = (m.side_facts() for m in matchers)
    outcomes = (matchers[0].finish(fb), matchers[1].finish(fa))
    if period is None:
        period = default_period([a.records, b.records], rules)
    rules_sm3 = rules.sm3_hash()
    statements = [statement_document(o, job_id=job_id, period=period, rules_sm3=rules_sm3,
                                     operators={"A": operators[0], "B": operators[1]})
                  for o in outcomes]
    if statements[0] != statements[1]:
        raise MatchingError("the two parties' statements differ",
                            expected=str(statements[0]), found=str(statements[1]))
    seconds["report"] = time.perf_counter() - t0
    total = time.perf_counter() - began
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    reports = []
    for i, outcome in enumerate(outcomes):
        party = outcome.party
        stages = {
            "ingest": StageTime(ingest_seconds[i], matchers[i].rows_count),
            "psi_exact": StageTime(seconds["psi_exact"], items[party]["psi_exact"]),
            "psi_key": StageTime(seconds["psi_key"], items[party]["psi_key"]),
            "mpc": StageTime(seconds["mpc"], matchers[i].candidate_count),
            "report": StageTime(seconds["report"], matchers[i].rows_count),
            "anchor": StageTime(0.0, 0),
            "total": StageTime(total + sum(ingest_seconds), matchers[i].rows_count),
        }
        summary = summary_document(outcome, job_id=job_id, period=period, rules_sm3=rules_sm3,
                                   stages=stages, peak_memory_mib=peak_mib, anchor=None)
        reports.append(PartyReport(outcome=outcome, summary=summary, statement=statements[i]))
    return ReferenceResult(a=reports[0], b=reports[1])
