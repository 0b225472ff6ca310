"""PartyMatcher's contract with its drivers: step order, checks of pass and
evaluation results, checks of the canonical frames, the circuit breaker."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from matching_oracle import make_rules
from matching_fixed import fixed_sides

from engine.errors import JobError
from engine.matching import (
    PASSES,
    MatchingError,
    PartyMatcher,
    SideFacts,
    check_input_sizes,
)
from engine.reference import plaintext_intersection, reference_pair_ids
from engine.tolerance import evaluate_pairs

RULES = make_rules(5, 12, 2, 2, policy="flags")
NO_IDS = np.zeros((0, 16), np.uint8)
NONE = np.zeros(0, np.int64)


def _matchers(rules=RULES):
    a, b = fixed_sides()
    fa, fb = a.build(), b.build()
    return (PartyMatcher("A", fa.rows, fa.records, rules),
            PartyMatcher("B", fb.rows, fb.records, rules))


def _run_passes(ma, mb):
    for spec in PASSES:
        ea, eb = ma.build_pass(spec), mb.build_pass(spec)
        ia, ib = plaintext_intersection(ea.elements, eb.elements)
        ids = reference_pair_ids(bytes(16), spec.tag, len(ia))
        ma.record_pass(ea, ia, ids)
        mb.record_pass(eb, ib, ids)


def test_passes_must_run_in_order() -> None:
    ma, _ = _matchers()
    with pytest.raises(MatchingError, match="in order") as info:
        ma.build_pass("S2a")
    assert info.value.expected == "S1" and info.value.found == "S2a"
    pe = ma.build_pass("S1")
    with pytest.raises(MatchingError, match="built twice"):
        ma.build_pass("S1")
    with pytest.raises(MatchingError, match="after the last pass"):
        ma.candidate_values()
    ma.record_pass(pe, NONE, NO_IDS)
    with pytest.raises(MatchingError, match="last build_pass"):
        ma.record_pass(pe, NONE, NO_IDS)  # stale elements
    assert ma.next_pass.name == "S2a"


def test_bad_pass_results_are_refused() -> None:
    ma, _ = _matchers()
    pe = ma.build_pass("S1")
    n = len(pe)
    with pytest.raises(MatchingError, match="out of range"):
        ma.record_pass(pe, np.array([n]), np.zeros((1, 16), np.uint8))
    with pytest.raises(MatchingError, match="paired twice"):
        ma.record_pass(pe, np.array([0, 0]), np.zeros((2, 16), np.uint8))
    with pytest.raises(MatchingError, match="aligned"):
        ma.record_pass(pe, np.array([0, 1]), np.zeros((1, 16), np.uint8))
    with pytest.raises(MatchingError, match="aligned"):
        ma.record_pass(pe, np.array([0]), np.zeros((1, 8), np.uint8))
    with pytest.raises(MatchingError, match="1-D integer"):
        ma.record_pass(pe, np.array([0.5]), np.zeros((1, 16), np.uint8))


def test_duplicate_pair_ids_are_refused() -> None:
    ma, mb = _matchers()
    for spec in PASSES:
        ea, eb = ma.build_pass(spec), mb.build_pass(spec)
        ia, ib = plaintext_intersection(ea.elements, eb.elements)
        ids = np.zeros((len(ia), 16), np.uint8)  # every pair the same id
        ma.record_pass(ea, ia, ids)
        mb.record_pass(eb, ib, ids)
    result = evaluate_pairs(ma.candidate_values(), mb.candidate_values(), RULES.tolerances,
                            "flags")
    ma.record_evaluation(result)
    mb.record_evaluation(result)
    with pytest.raises(MatchingError, match="pair ids are not unique"):
        ma.finish(mb.side_facts())


def _evaluated(policy="flags"):
    rules = make_rules(5, 12, 2, 2, policy=policy)
    ma, mb = _matchers(rules)
    _run_passes(ma, mb)
    result = evaluate_pairs(ma.candidate_values(), mb.candidate_values(), rules.tolerances,
                            policy)
    return ma, mb, result


def test_candidate_values_are_in_the_common_order() -> None:
    ma, mb, _ = _evaluated()
    va, vb = ma.candidate_values(), mb.candidate_values()
    assert va.start.tolist() == [3000, 4000, 5000] and vb.start.tolist() == [3007, 4000, 5003]
    assert va.charge.dtype == np.int64 and len(va) == ma.candidate_count == 3


@pytest.mark.parametrize("mutation, message", [
    (lambda r: dataclasses.replace(r, disputed=r.disputed[:-1]), "one disputed flag"),
    (lambda r: dataclasses.replace(r, tolerance_charge=(r.tolerance_charge[0] + 1,
                                                        r.tolerance_charge[1])),
     "charge over matched_tolerance"),
    (lambda r: dataclasses.replace(r, disputed_charge=(0, 0)), "charge over disputed"),
    (lambda r: dataclasses.replace(r, reasons=None), "reasons are required"),
    (lambda r: dataclasses.replace(r, reasons=r.reasons ^ 1), "reasons must be non-empty"),
    (lambda r: dataclasses.replace(r, per_reason={**r.per_reason, "start_time": (0, 0, 0)}),
     "per_reason"),
    (lambda r: dataclasses.replace(r, per_reason={**r.per_reason, "bogus": (0, 0, 0)}),
     "unknown reason code"),
])
def test_inconsistent_evaluations_are_refused(mutation, message) -> None:
    ma, _, result = _evaluated()
    with pytest.raises(MatchingError, match=message):
        ma.record_evaluation(mutation(result))


def test_differences_policy_needs_differences() -> None:
    ma, _, result = _evaluated("differences")
    with pytest.raises(MatchingError, match="differences are required"):
        ma.record_evaluation(dataclasses.replace(result, differences=None))


def test_results_need_the_evaluation_and_consistent_counterparty_facts() -> None:
    ma, mb, result = _evaluated()
    with pytest.raises(MatchingError, match="not evaluated"):
        ma.side_facts()
    ma.record_evaluation(result)
    mb.record_evaluation(result)
    with pytest.raises(MatchingError, match="recorded twice"):
        ma.record_evaluation(result)
    fa, fb = ma.side_facts(), mb.side_facts()
    assert fa == SideFacts("A", rows=10, considered=6, unmatched_records=1, unmatched_rows=2,
                           unmatched_charge=9, local_charge=43)
    with pytest.raises(MatchingError, match="wrong party"):
        ma.finish(fa)
    with pytest.raises(MatchingError, match="do not add up"):
        ma.finish(dataclasses.replace(fb, local_charge=fb.local_charge + 1))
    with pytest.raises(MatchingError, match="disagree with the pairs"):
        ma.finish(dataclasses.replace(fb, unmatched_records=fb.unmatched_records + 1))
    outcome = ma.finish(fb)
    assert outcome.totals["remote_charge"] == 42


def test_no_candidates_needs_no_evaluation() -> None:
    a, _ = fixed_sides()
    fa = a.build()
    ma = PartyMatcher("A", fa.rows, fa.records, RULES)
    empty = fa.records.clear()
    mb = PartyMatcher("B", pl.DataFrame({"row": [], "record_id": [], "status": [],
                                         "reason": [], "unit": []}), empty, RULES)
    _run_passes(ma, mb)
    assert ma.candidate_count == 0
    outcome = ma.finish(mb.side_facts())
    assert outcome.counts["unmatched_local"] == 7
    assert outcome.pairs == {"matched_exact": 0, "matched_tolerance": 0, "disputed": 0}


# -- canonical frames ----------------------------------------------------------


def _frames():
    a, _ = fixed_sides()
    return a.build()


@pytest.mark.parametrize("change, column, message", [
    (lambda f: (f.rows, f.records.drop("rated_charge")), "rated_charge", "missing column"),
    (lambda f: (f.rows, f.records.with_columns(pl.col("start").cast(pl.String))), "start",
     "wrong dtype"),
    (lambda f: (f.rows, f.records.with_columns(pl.col("unit") + 1)), "unit", "0..n-1"),
    (lambda f: (f.rows.with_columns(pl.lit("weird").alias("status")), f.records), "status",
     "unknown status"),
    (lambda f: (f.rows.with_columns(pl.when(pl.col("row") == 1).then(None)
                                    .otherwise(pl.col("unit")).alias("unit")), f.records),
     "unit", "unit must point"),
    (lambda f: (f.rows, f.records.with_columns(pl.lit(True).alias("excluded"))), "status",
     "excluded flag"),
    (lambda f: (f.rows, f.records.with_columns(pl.lit(1, pl.Int32).alias("parts"))), "parts",
     "parts must equal"),
    (lambda f: (f.rows, f.records.with_columns(pl.when(pl.col("unit") == 2).then(None)
                                               .otherwise(pl.col("charge")).alias("charge"))),
     "charge", "missing value"),
    (lambda f: (f.rows, f.records.with_columns(pl.lit(-1, pl.Int64).alias("duration_s"))),
     "duration_s", "negative"),
    (lambda f: (f.rows, f.records.with_columns(pl.lit(3, pl.UInt8).alias("service"))),
     "service", "unknown service"),
    (lambda f: (f.rows.with_columns(pl.lit(None, pl.Int64).alias("row")), f.records), "row",
     "missing row number"),
])
def test_bad_frames_are_refused(change, column, message) -> None:
    rows, records = change(_frames())
    with pytest.raises(MatchingError, match=message) as info:
        PartyMatcher("A", rows, records, RULES)
    assert info.value.column == column


def test_integer_columns_of_another_width_are_accepted() -> None:
    f = _frames()
    records = f.records.with_columns(pl.col("start").cast(pl.Int32),
                                     pl.col("parts").cast(pl.Int64))
    rows = f.rows.with_columns(pl.col("unit").cast(pl.UInt32))
    assert PartyMatcher("A", rows, records, RULES).considered == 6


def test_circuit_breaker_on_input_sizes() -> None:
    check_input_sizes(1000, 2000, RULES)
    check_input_sizes(10, 999, RULES)  # smaller side below min_records_for_ratio
    with pytest.raises(JobError, match="max_size_ratio"):
        check_input_sizes(1000, 2001, RULES)
    tight = dataclasses.replace(RULES, circuit_breaker=dataclasses.replace(
        RULES.circuit_breaker, max_records=5))
    with pytest.raises(JobError, match="B has 6 input rows"):
        check_input_sizes(5, 6, tight)


def test_plaintext_intersection_refuses_repeated_elements() -> None:
    a = np.array([[1, 2], [1, 2]], np.uint8)
    with pytest.raises(MatchingError, match="not distinct"):
        plaintext_intersection(a, np.array([[1, 2]], np.uint8))
    ia, ib = plaintext_intersection(np.array([[3, 0], [1, 2], [9, 9]], np.uint8),
                                    np.array([[9, 9], [1, 2], [3, 1]], np.uint8))
    assert ia.tolist() == [1, 2] and ib.tolist() == [1, 0]


def test_reference_pair_ids_are_distinct() -> None:
    ids = np.concatenate([reference_pair_ids(bytes(16), tag, 1000) for tag in (1, 2)])
    assert len({bytes(r) for r in ids}) == 2000


def test_plaintext_intersection_survives_mix_collisions(monkeypatch) -> None:
    import engine.reference as reference

    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, (40, 5), dtype=np.uint8)
    a = np.unique(a, axis=0)
    b = np.concatenate([a[::3], rng.integers(4, 8, (5, 5), dtype=np.uint8)])[::-1].copy()
    expected = sorted((i, j) for i in range(len(a)) for j in range(len(b))
                      if a[i].tobytes() == b[j].tobytes())
    monkeypatch.setattr(reference, "_mix", lambda words: np.zeros(words.shape[1], np.uint64))
    ia, ib = plaintext_intersection(a, b)
    assert list(zip(ia.tolist(), ib.tolist())) == expected and len(expected) == len(a[::3])
    with pytest.raises(MatchingError, match="party B are not distinct"):
        plaintext_intersection(a, np.concatenate([b, b[:1]]))
