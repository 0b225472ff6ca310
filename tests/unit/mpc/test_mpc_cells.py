"""The small-cell rule (protocols.mpc.cells, docs/matching.md "Disclosure")."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.mpc.cells import CELL_NAMES, CellPlan, class_counts, plan_from_reasons, primary_reason, reason_pairs
from protocols.mpc.params import REASON_BITS, REASON_CODES, Cell
from protocols.mpc.reference import summarize

K = 5
BITS = REASON_BITS


def plan(n_tolerance, classes, k=K):
    counts = {code: classes.get(code, 0) for code in REASON_CODES}
    return CellPlan.from_counts(n_tolerance, sum(counts.values()), counts, k)


def test_primary_reason_is_the_last_reason_code() -> None:
    reasons = np.array([0, BITS["start_time"], BITS["start_time"] | BITS["duration"],
                        BITS["duration"] | BITS["charge_unexplained"], BITS["start_time"] | BITS["charge_rate_mismatch"],
                        BITS["charge_rounding"]], dtype=np.uint8)
    assert list(primary_reason(reasons)) == [-1, 0, 1, 4, 2, 3]
    assert class_counts(reasons) == {"start_time": 1, "duration": 1, "charge_rate_mismatch": 1,
                                      "charge_rounding": 1, "charge_unexplained": 1}
    # the per-reason counts overlap, the classes do not
    assert reason_pairs(reasons) == {"start_time": 3, "duration": 2, "charge_rate_mismatch": 1,
                                     "charge_rounding": 1, "charge_unexplained": 1}


def test_one_disputed_pair_in_the_job() -> None:
    p = plan(100, {"charge_rate_mismatch": 1})
    # disputed is small: both status sums go (each is candidates minus the other), and so
    # does every class; the candidates' sum stays
    assert p.disclosed == {"candidates"}
    assert p.pairs["disputed"] == 1 and p.pairs["charge_rate_mismatch"] == 1 and p.in_other == ()


def test_one_pair_in_a_reason_class() -> None:
    p = plan(50, {"start_time": 10, "duration": 8, "charge_rate_mismatch": 1})
    # the single pair goes to "other", which then takes the smallest other class too
    assert p.in_other == ("duration", "charge_rate_mismatch")
    assert p.pairs["other"] == 9
    assert p.disclosed == {"matched_tolerance", "disputed", "candidates", "start_time", "other",
                           "charge_rounding", "charge_unexplained"}  # the last two are empty: sums 0


@pytest.mark.parametrize("count,alone", [(K - 1, False), (K, True)])
def test_k_minus_one_and_k_pairs(count, alone) -> None:
    p = plan(50, {"start_time": 20, "duration": count, "charge_rounding": 6})
    assert ("duration" in p.disclosed) is alone
    if not alone:
        # k - 1 pairs alone in "other": the smallest remaining class joins them
        assert p.in_other == ("duration", "charge_rounding") and p.pairs["other"] == count + 6


def test_small_classes_merge_into_other() -> None:
    p = plan(50, {"start_time": 20, "duration": 3, "charge_unexplained": 3})
    assert p.in_other == ("duration", "charge_unexplained")
    assert p.pairs["other"] == 6 and "other" in p.disclosed and "start_time" in p.disclosed
    cells = p.cells({name: (i, 10 * i) for i, name in enumerate(CELL_NAMES)})
    assert cells.by_reason["duration"] == Cell(3, None, in_other=True)
    assert cells.other.charge == (CELL_NAMES.index("other"), 10 * CELL_NAMES.index("other"))
    assert cells.by_reason["start_time"].charge is not None


def test_count_only() -> None:
    # a few disputed pairs: counts only, for them and for their classes
    p = plan(100, {"duration": 2, "charge_rounding": 1})
    cells = p.cells({name: (1, 1) for name in p.wire_order})
    assert cells.disputed == Cell(3, None)
    assert cells.matched_tolerance == Cell(100, None)
    assert cells.by_reason["duration"] == Cell(2, None) and cells.other == Cell(0, None)
    assert cells.candidates == Cell(103, (1, 1))
    # a job with fewer than k candidate pairs: nothing but counts
    tiny = plan(2, {"start_time": 1})
    assert tiny.disclosed == set()


def test_few_matched_tolerance_pairs_withhold_the_classes() -> None:
    # disputed = candidates - matched_tolerance, and the classes add up to disputed
    p = plan(2, {"start_time": 40, "duration": 30})
    assert p.disclosed == {"candidates"}


def test_empty_cells_are_given_as_zero() -> None:
    p = plan(20, {})
    cells = p.cells({name: (7, 8) if name in ("matched_tolerance", "candidates") else (0, 0)
                     for name in p.wire_order})
    assert cells.disputed == Cell(0, (0, 0)) and cells.matched_tolerance == Cell(20, (7, 8))
    assert all(c == Cell(0, (0, 0)) for c in cells.by_reason.values()) and cells.other == Cell(0, (0, 0))


def test_k_of_one_gives_every_sum() -> None:
    p = plan(1, {"start_time": 1, "charge_rounding": 1}, k=1)
    assert p.disclosed == set(CELL_NAMES) and p.in_other == ()


def test_counts_that_do_not_add_up_are_refused() -> None:
    with pytest.raises(ValueError, match="do not split"):
        CellPlan.from_counts(10, 3, {code: 0 for code in REASON_CODES}, K)


def _membership(reasons, plan_):
    """Per pair, the disclosed cells it belongs to (plus all candidates, which an
    operator can derive from the side facts)."""
    primary = primary_reason(reasons)
    rows = []
    for i, r in enumerate(reasons):
        cells = {"candidates"}
        cells.add("disputed" if r else "matched_tolerance")
        if r:
            code = REASON_CODES[primary[i]]
            cells.add("other" if code in plan_.in_other else code)
        rows.append(frozenset(c for c in cells if c in plan_.disclosed or c == "candidates"))
    return rows


reason_masks = st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 18, 19, 12, 13])


@settings(max_examples=300, deadline=None)
@given(st.lists(reason_masks, min_size=0, max_size=60), st.integers(1, 9),
       st.lists(st.integers(0, 10**6), min_size=60, max_size=60))
def test_every_derivable_sum_covers_at_least_k_pairs(reasons, k, charges) -> None:
    """The disclosed cells form a tree; pairs with the same membership are the atoms, and
    any sum an operator can derive from the disclosed sums is a combination of atom sums.
    Every atom holds at least k pairs (given at least k candidate pairs)."""
    reasons = np.array(reasons, dtype=np.uint8)
    n = len(reasons)
    p = plan_from_reasons(reasons, k)
    if n >= k:
        rows = _membership(reasons, p)
        for atom in set(rows):
            assert rows.count(atom) >= k, (atom, rows.count(atom))
    # and the sums are right: each disclosed cell's sum over its pairs, "other" = merged classes
    charge_a = np.array(charges[:n], dtype=np.int64)
    charge_b = charge_a * 3 + 1
    counts, cells = summarize(reasons, charge_a, charge_b, k)
    primary = primary_reason(reasons)
    members = {"matched_tolerance": reasons == 0, "disputed": reasons != 0, "candidates": np.ones(n, bool)}
    members.update({code: primary == i for i, code in enumerate(REASON_CODES)})
    members["other"] = np.isin(primary, [REASON_CODES.index(c) for c in p.in_other])
    by_name = {"matched_tolerance": cells.matched_tolerance, "disputed": cells.disputed,
               "candidates": cells.candidates, "other": cells.other, **cells.by_reason}
    for name, cell in by_name.items():
        assert cell.pairs == int(members[name].sum())
        if name in p.disclosed:
            assert cell.charge == (int(charge_a[members[name]].sum()), int(charge_b[members[name]].sum()))
        else:
            assert cell.charge is None
    assert counts == reason_pairs(reasons)
