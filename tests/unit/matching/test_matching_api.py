"""The bucket matcher's contract with its drivers: step order, checks of pass and
evaluation results, the finishing of a bucket, the party's sums, the circuit breaker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matching_fixed import fixed_sides
from matching_oracle import make_rules

from engine.breaker import SideSizes, check_considered, check_sizes
from engine.matching import MatchingError, SideFacts, checked_evaluation, plaintext_evaluation
from engine.matching.elements import common_order, pair_ids, plaintext_intersection
from engine.matching.outcome import JobTally
from engine.names import PASSES
from engine.partition import local_partition
from engine.side import OperatorSide, SidePlan

RULES = make_rules(5, 12, 2, 2, policy="flags")
NO_IDS = np.zeros((0, 16), np.uint8)
NONE = np.zeros(0, np.int64)


def _sides(tmp_path: Path, rules=RULES):
    a, b = fixed_sides()
    return [OperatorSide.from_frames(SidePlan(p, rules, None, local_partition(1), tmp_path / p),
                                     f.rows, f.records)
            for p, f in (("A", a.build()), ("B", b.build()))]


def _run_passes(ma, mb):
    for spec in PASSES:
        ea, eb = ma.build_pass(spec), mb.build_pass(spec)
        ia, ib = plaintext_intersection(ea.elements, eb.elements)
        ia, ids = common_order(ea.elements, ia, bytes(32), 0)
        ib, ids_b = common_order(eb.elements, ib, bytes(32), 0)
        assert np.array_equal(ids, ids_b)
        ma.record_pass(ea, ia, ids)
        mb.record_pass(eb, ib, ids)


def test_passes_must_run_in_order(tmp_path) -> None:
    ma = _sides(tmp_path)[0].matcher(0)
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


def test_bad_pass_results_are_refused(tmp_path) -> None:
    ma = _sides(tmp_path)[0].matcher(0)
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


def _evaluated(tmp_path, policy="flags"):
    rules = make_rules(5, 12, 2, 2, policy=policy)
    side_a, side_b = _sides(tmp_path, rules)
    ma, mb = side_a.matcher(0), side_b.matcher(0)
    _run_passes(ma, mb)
    side_a.save_psi(ma)
    side_b.save_psi(mb)
    result = plaintext_evaluation(ma.candidate_values(), mb.candidate_values(), rules)
    return side_a, side_b, ma, mb, result


def test_duplicate_pair_ids_are_refused(tmp_path) -> None:
    side_a, side_b = _sides(tmp_path)
    ma, mb = side_a.matcher(0), side_b.matcher(0)
    for spec in PASSES:
        ea, eb = ma.build_pass(spec), mb.build_pass(spec)
        ia, ib = plaintext_intersection(ea.elements, eb.elements)
        ids = np.zeros((len(ia), 16), np.uint8)  # every pair the same id
        ma.record_pass(ea, ia, ids)
        mb.record_pass(eb, ib, ids)
    side_a.save_psi(ma)
    result = plaintext_evaluation(ma.candidate_values(), mb.candidate_values(), RULES)
    with pytest.raises(MatchingError, match="pair ids are not unique"):
        side_a.finish(result)


def test_candidate_values_are_in_the_common_order(tmp_path) -> None:
    _, _, ma, mb, _ = _evaluated(tmp_path)
    va, vb = ma.candidate_values(), mb.candidate_values()
    # pairwise in one order both sides derive (by pair id), whatever that order is
    assert sorted(zip(va.start.tolist(), vb.start.tolist())) == [(3000, 3007), (4000, 4000),
                                                                 (5000, 5003)]
    assert va.charge.dtype == np.int64 and len(va) == 3


def _cell(result, name, **change):
    from protocols.mpc.params import Cell

    cell = getattr(result.cells, name)
    return dataclasses.replace(result, cells=dataclasses.replace(
        result.cells, **{name: Cell(**{"pairs": cell.pairs, "charge": cell.charge,
                                       "in_other": cell.in_other, **change})}))


@pytest.mark.parametrize("mutation, message", [
    (lambda r: dataclasses.replace(r, disputed=r.disputed[:-1]), "one disputed flag"),
    (lambda r: _cell(r, "matched_tolerance", charge=(r.cells.matched_tolerance.charge[0] + 1,
                                                     r.cells.matched_tolerance.charge[1])),
     "charge over the matched_tolerance"),
    (lambda r: _cell(r, "disputed", charge=(0, 0)), "charge over the disputed"),
    (lambda r: _cell(r, "candidates", pairs=99), "candidates pairs"),
    (lambda r: dataclasses.replace(r, reasons=None), "reasons are required"),
    (lambda r: dataclasses.replace(r, reasons=r.reasons ^ 1), "reasons must be non-empty"),
    (lambda r: dataclasses.replace(r, reason_pairs={**r.reason_pairs, "start_time": 9}),
     "reason_pairs"),
    (lambda r: dataclasses.replace(r, reason_pairs={**r.reason_pairs, "bogus": 0}),
     "unknown reason code"),
])
def test_inconsistent_evaluations_are_refused(tmp_path, mutation, message) -> None:
    side_a, _, _, _, result = _evaluated(tmp_path)
    with pytest.raises(MatchingError, match=message):
        side_a.finish(mutation(result))


def test_differences_policy_needs_differences(tmp_path) -> None:
    _, _, ma, _, result = _evaluated(tmp_path, "differences")
    with pytest.raises(MatchingError, match="differences are required"):
        checked_evaluation(dataclasses.replace(result, differences=None), "A", "differences",
                           ma.candidate_values().charge)


def test_sums_need_consistent_counterparty_facts(tmp_path) -> None:
    side_a, side_b, _, _, result = _evaluated(tmp_path)
    ta, tb = side_a.finish(result), side_b.finish(result)
    fa, fb = ta.side_facts(side_a.evaluation), tb.side_facts(side_b.evaluation)
    assert fa == SideFacts("A", rows=10, considered=6, unmatched_records=1, unmatched_rows=2,
                           unmatched_charge=9, local_charge=43,
                           tolerance_classes=fa.tolerance_classes)
    with pytest.raises(MatchingError, match="wrong party"):
        ta.outcome(fa, side_a.evaluation, RULES)
    with pytest.raises(MatchingError, match="do not add up"):
        ta.outcome(dataclasses.replace(fb, local_charge=fb.local_charge + 1), side_a.evaluation,
                   RULES)
    with pytest.raises(MatchingError, match="disagree with the pairs"):
        ta.outcome(dataclasses.replace(fb, unmatched_records=fb.unmatched_records + 1),
                   side_a.evaluation, RULES)
    assert ta.outcome(fb, side_a.evaluation, RULES).totals["remote_charge"] == 42


def test_lost_rows_are_caught(tmp_path) -> None:
    side_a, side_b, _, _, result = _evaluated(tmp_path)
    ta, tb = side_a.finish(result), side_b.finish(result)
    ta.input_rows += 1  # one row more than the buckets and pass 1 account for
    with pytest.raises(MatchingError, match="rows lost"):
        ta.outcome(tb.side_facts(side_b.evaluation), side_a.evaluation, RULES)


def test_no_candidates_needs_no_evaluation(tmp_path) -> None:
    a, _ = fixed_sides()
    fa = a.build()
    side = OperatorSide.from_frames(SidePlan("A", RULES, None, local_partition(1), tmp_path),
                                    fa.rows, fa.records)
    ma = side.matcher(0)
    for spec in PASSES:
        ma.record_pass(ma.build_pass(spec), NONE, NO_IDS)
    side.save_psi(ma)
    from engine.matching.evaluation import empty_evaluation

    tally = side.finish(empty_evaluation(RULES))
    remote = SideFacts("B", rows=0, considered=0, unmatched_records=0, unmatched_rows=0,
                       unmatched_charge=0, local_charge=0)
    outcome = tally.outcome(remote, side.evaluation, RULES)
    assert outcome.held is None and outcome.totals["agreed_charge"] == 0
    assert outcome.counts["unmatched_local"] == 7
    assert outcome.pairs == {"matched_exact": 0, "matched_tolerance": 0, "disputed": 0}


def test_frames_with_a_leading_zero_number_are_refused(tmp_path) -> None:
    a, _ = fixed_sides()
    fa = a.build()
    records = fa.records.with_columns(pl.lit("0861380").alias("calling"))
    with pytest.raises(MatchingError, match="the first not 0") as info:
        OperatorSide.from_frames(SidePlan("A", RULES, None, local_partition(1), tmp_path),
                                 fa.rows, records)
    assert info.value.column == "calling"


# -- the circuit breaker (engine.breaker: one definition for job and reference) ----------


@pytest.mark.parametrize("a, b, reason", [
    ((1000, 0), (2000, 0), None),
    ((10, 0), (999, 0), None),                       # small side: up to ratio × minimum
    ((10, 0), (2001, 0), "the smaller side has fewer than 1,000 rows"),
    ((1000, 0), (2001, 0), "differ by a factor 2.00"),
    ((0, 0), (0, 0), None),                          # empty exports pass the size bounds
    ((0, 0), (2000, 0), None),
    ((0, 0), (2001, 0), "fewer than 1,000 rows"),
    ((1000, 10), (1000, 0), None),                   # 1 % invalid: at the bound
    ((1000, 11), (1000, 0), "A has 11 invalid rows of 1,000"),
    ((1000, 0), (1000, 1000), "B has 1,000 invalid rows of 1,000 (100.0%)"),
])
def test_circuit_breaker_sizes(a, b, reason) -> None:
    rules = make_rules(5, 12, 2, 2)
    rules = dataclasses.replace(rules, circuit_breaker=dataclasses.replace(
        rules.circuit_breaker, max_invalid_share=0.01, min_records_for_ratio=1000))
    got = check_sizes({"A": SideSizes(*a), "B": SideSizes(*b)}, rules.circuit_breaker)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


def test_circuit_breaker_max_records_and_nothing_to_settle() -> None:
    rules = make_rules(5, 12, 2, 2)
    tight = dataclasses.replace(rules.circuit_breaker, max_records=5)
    assert "B has 6 input rows" in check_sizes({"A": SideSizes(5, 0), "B": SideSizes(6, 0)},
                                               tight)
    assert check_considered({"A": 0, "B": 0}).startswith("nothing to settle")
    assert check_considered({"A": 0, "B": 1}) is None


def test_plaintext_intersection_refuses_repeated_elements() -> None:
    a = np.array([[1, 2], [1, 2]], np.uint8)
    with pytest.raises(MatchingError, match="not distinct"):
        plaintext_intersection(a, np.array([[1, 2]], np.uint8))
    ia, ib = plaintext_intersection(np.array([[3, 0], [1, 2], [9, 9]], np.uint8),
                                    np.array([[9, 9], [1, 2], [3, 1]], np.uint8))
    assert ia.tolist() == [1, 2] and ib.tolist() == [1, 0]


def test_pair_ids_are_a_keyed_function_of_bucket_and_element() -> None:
    rng = np.random.default_rng(5)
    elements = np.unique(rng.integers(0, 256, (2000, 30), dtype=np.uint8), axis=0)
    key = bytes(range(32))
    ids = pair_ids(key, 0, elements)
    assert ids.shape == (len(elements), 16) and ids.dtype == np.uint8
    assert len({bytes(r) for r in ids}) == len(elements)            # distinct
    assert np.array_equal(pair_ids(key, 0, elements[::-1]), ids[::-1])  # per element
    assert not (pair_ids(key, 1, elements) == ids).all(axis=1).any()    # the bucket counts
    assert not (pair_ids(bytes(32), 0, elements) == ids).all(axis=1).any()  # the key counts
    # the common order does not depend on the order a side holds its elements in
    order_a, ids_a = common_order(elements, np.arange(len(elements)), key, 0)
    perm = rng.permutation(len(elements))
    order_b, ids_b = common_order(elements[perm], np.arange(len(elements)), key, 0)
    assert np.array_equal(ids_a, ids_b)
    assert np.array_equal(elements[order_a], elements[perm][order_b])


def test_plaintext_intersection_survives_mix_collisions(monkeypatch) -> None:
    import engine.matching.elements as elements

    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, (40, 5), dtype=np.uint8)
    a = np.unique(a, axis=0)
    b = np.concatenate([a[::3], rng.integers(4, 8, (5, 5), dtype=np.uint8)])[::-1].copy()
    expected = sorted((i, j) for i in range(len(a)) for j in range(len(b))
                      if a[i].tobytes() == b[j].tobytes())
    monkeypatch.setattr(elements, "_mix", lambda words: np.zeros(words.shape[1], np.uint64))
    ia, ib = plaintext_intersection(a, b)
    assert list(zip(ia.tolist(), ib.tolist())) == expected and len(expected) == len(a[::3])
    with pytest.raises(MatchingError, match="party B are not distinct"):
        plaintext_intersection(a, np.concatenate([b, b[:1]]))


def test_job_tally_starts_empty() -> None:
    tally = JobTally(party="A", input_rows=0)
    assert tally.side_facts().considered == 0


def test_small_cells_are_held_back_from_the_statement(tmp_path) -> None:
    """With the example's 3 candidate pairs and k = 5 every candidate sum is withheld: the
    agreed money leaves out the key-matched pairs, the statement says how many pairs are
    held, names no charge of the other side for them, and goes to manual review."""
    import dataclasses as dc

    from engine.outputs import statement_document

    rules = dc.replace(make_rules(5, 12, 2, 2), min_cell_pairs=5)
    side_a, side_b = _sides(tmp_path, rules)
    ma, mb = side_a.matcher(0), side_b.matcher(0)
    _run_passes(ma, mb)
    side_a.save_psi(ma)
    side_b.save_psi(mb)
    result = plaintext_evaluation(ma.candidate_values(), mb.candidate_values(), rules)
    assert result.cells.candidates.pairs == 3 and result.cells.candidates.charge is None
    ta, tb = side_a.finish(result), side_b.finish(result)
    fa, fb = ta.side_facts(side_a.evaluation), tb.side_facts(side_b.evaluation)
    assert fa.local_charge is None and fa.tolerance_classes is None  # would give them away
    oa = ta.outcome(fb, side_a.evaluation, rules)
    ob = tb.outcome(fa, side_b.evaluation, rules)
    assert oa.held == {"pairs": 3, "local_charge": None, "remote_charge": None}
    assert oa.totals["disputed_remote_charge"] is None and oa.totals["remote_charge"] is None
    assert oa.totals["agreed_charge"] == ta.exact_charge + ta.values_charge
    assert oa.review.settlement == "manual_review"
    assert any(r.startswith("small_cells: the amounts of 3 candidate pairs") for r in oa.review.reasons)
    statements = [statement_document(o, job_id="j", period="2026-10", rules_sm3="r",
                                     operators={"A": "a", "B": "b"}, commitments={}, outputs={})
                  for o in (oa, ob)]
    assert statements[0] == statements[1]
    assert statements[0]["held"] == {"pairs": 3, "a_charge": None, "b_charge": None}
    assert statements[0]["totals"]["a_charge"] is None
