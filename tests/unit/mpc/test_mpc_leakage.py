"""What each party sees: the values it opens and the messages it receives, per policy
(docs/threat-model.md, the MPC lines of the leakage table; docs/matching.md "Disclosure").

The role objects record every value they open (``openings``); ``LocalNet`` logs every
message.  A party's view is read from those, never from its result alone."""

import asyncio
import os
import re
from collections import defaultdict

import numpy as np
import pytest

from protocols.mpc import field as F
from protocols.mpc.cells import plan_from_reasons
from protocols.mpc.cli import generate_pairs
from protocols.mpc.params import POLICIES, REASON_BITS, PairValues, ToleranceParams
from protocols.mpc.protocol import run_local
from protocols.mpc.reference import plaintext_discrepancy
from protocols.mpc.runtime import local_sources

A, B, H = 0, 1, 2
CHUNK = re.compile(r" \(chunk (\d+)\)$")


def observe(params, a, b, *, chunk_size=None, keys=None):
    """Run the three roles; return (results, openings per party, message log)."""
    keys = keys or {(0, 1): os.urandom(16), (0, 2): os.urandom(16), (1, 2): os.urandom(16)}
    openings = [[], [], []]
    log = []
    results = asyncio.run(run_local(params, a, b, local_sources(keys), chunk_size=chunk_size, log=log,
                                    openings=openings))
    return results, openings, log


def by_kind(openings):
    """kind -> list of items, each the concatenation over chunks (in chunk order)."""
    grouped = defaultdict(list)
    for what, items in openings:
        match = CHUNK.search(what)
        kind = CHUNK.sub("", what)
        grouped[kind].append((int(match.group(1)) if match else -1, items))
    out = {}
    for kind, entries in grouped.items():
        entries.sort(key=lambda e: e[0])
        width = len(entries[0][1])
        out[kind] = [np.concatenate([items[i] for _, items in entries]) for i in range(width)]
    return out


def view(openings):
    """What a party learns from its openings: which opened values are zero (the checks),
    and the values of the class sums, opened once."""
    out = {}
    for kind, items in by_kind(openings).items():
        if kind == "opening of the class charge sums":
            out[kind] = [F.to_signed_int(x) for x in items[0]]
        else:
            out[kind] = [F.is_zero(item).tolist() for item in items]
    return out


def transcript_shape(log):
    """Bytes per (sender, receiver, kind of message)."""
    shape = defaultdict(int)
    for src, dst, what, payload in log:
        shape[(src, dst, CHUNK.sub("", what))] += len(payload)
    return dict(shape)


@pytest.mark.parametrize("policy", POLICIES)
def test_openings_do_not_depend_on_the_chunk_size(policy) -> None:
    params = ToleranceParams(5, 2, 2, policy)
    n = 2100
    a, b = generate_pairs(n, seed=21)
    keys = {(0, 1): os.urandom(16), (0, 2): os.urandom(16), (1, 2): os.urandom(16)}
    views, shapes, results = [], [], []
    for chunk_size in (64, 1000, n):
        (ra, rb, rh), openings, log = observe(params, a, b, chunk_size=chunk_size, keys=keys)
        assert openings[H] == []  # H opens nothing, under every policy
        views.append((view(openings[A]), view(openings[B])))
        shapes.append(transcript_shape(log))
        results.append(ra)
    assert views[0] == views[1] == views[2]
    assert views[0][0] == views[0][1]  # A and B see the same
    assert shapes[0] == shapes[1] == shapes[2]
    assert results[0].cells == results[1].cells == results[2].cells
    if policy == "aggregate":
        # the class sums are opened once per job: 6 cells x 2 charges
        assert len(views[0][0]["opening of the class charge sums"]) == 12
        assert sum(1 for what, _ in openings[A] if "class charge sums" in what) == 1


def test_issue_reproduction_65_pairs_chunk_64_does_not_reveal_pair_64() -> None:
    """docs: issue 11 item 1.  65 pairs, chunk size 64, aggregate; pair 64 (alone in the
    second chunk) is the only disputed pair; its start time and charge differ."""
    n = 65
    start = np.full(n, 1_767_225_600)
    charge_a = np.arange(1000, 1000 + n)
    charge_b = charge_a.copy()
    start_b = start.copy()
    start_b[64] += 600
    charge_a[64], charge_b[64] = 1827, 12345
    a = PairValues(start, np.full(n, 60), charge_a, charge_a)
    b = PairValues(start_b, np.full(n, 60), charge_b, charge_b)
    params = ToleranceParams(5, 2, 2, "aggregate")
    (ra, rb, _), openings, log = observe(params, a, b, chunk_size=64)
    assert ra.disputed.tolist() == [False] * 64 + [True]
    for pid in (A, B):
        seen = by_kind(openings[pid])
        # nothing per chunk but the status and the checks of shuffled positions
        assert set(seen) == {"opening of the status", "opening of the shuffled start, duration and charge checks",
                             "opening of the shuffled rate check", "opening of the class charge sums"}
        # the class sums: opened once, all withheld (one disputed pair), so all 0
        assert [F.to_int(x) for x in seen["opening of the class charge sums"][0]] == [0] * 12
        for items in seen.values():
            for item in items:
                opened = set(F.to_ints(item))
                assert 12345 not in opened and 1827 not in opened
    # nor does it reach A in any message, in any encoding
    to_a = b"".join(payload for _, dst, _, payload in log if dst == A)
    assert b"12345" not in to_a and (12345).to_bytes(8, "little") not in to_a
    assert ra.cells.disputed.charge is None and ra.cells.by_reason["charge_rounding"].charge is None
    assert ra.reason_pairs == {"start_time": 1, "duration": 0, "charge_rate_mismatch": 0, "charge_rounding": 1,
                               "charge_unexplained": 0}


def test_issue_reproduction_with_more_disputed_pairs_opens_only_the_job_total() -> None:
    """The same job with ten more disputed pairs of the same class in the first chunk: the
    class sum covers all eleven and is opened once; pair 64's charge is in no opening."""
    n = 65
    start = np.full(n, 1_767_225_600)
    charge_a = np.arange(1000, 1000 + n)
    charge_b = charge_a.copy()
    off = [3, 7, 11, 19, 23, 29, 31, 37, 41, 43, 64]
    charge_b[off] += 50  # rate equal: charge_rate_mismatch
    charge_a[64], charge_b[64] = 1827, 12345
    a = PairValues(start, np.full(n, 60), charge_a, charge_a)
    b = PairValues(start, np.full(n, 60), charge_b, charge_a)
    params = ToleranceParams(5, 2, 2, "aggregate")
    (ra, _, _), openings, _ = observe(params, a, b, chunk_size=64)
    sums = [F.to_signed_int(x) for x in by_kind(openings[A])["opening of the class charge sums"][0]]
    rate = list(ra.cells.by_reason).index("charge_rate_mismatch")
    assert sums[2 * rate:2 * rate + 2] == [int(charge_a[off].sum()), int(charge_b[off].sum())]
    assert ra.cells.by_reason["charge_rate_mismatch"].charge == (int(charge_a[off].sum()), int(charge_b[off].sum()))
    for items in by_kind(openings[A]).values():
        for item in items:
            assert 12345 not in set(F.to_ints(item))


# --- the leakage table, line by line -------------------------------------------------

def small_job(n=300, seed=4):
    return generate_pairs(n, seed=seed)


@pytest.mark.parametrize("policy", POLICIES)
def test_table_h_learns_the_number_of_pairs_only(policy) -> None:
    """H: opens nothing, gets no result, and receives only the job digests (flags,
    differences) or, under aggregate, shares that are uniformly random on their own
    (the shuffle's masked columns and B's halves of the zero-test vectors)."""
    a, b = small_job()
    (_, _, rh), openings, log = observe(ToleranceParams(5, 2, 2, policy), a, b, chunk_size=100)
    assert rh is None and openings[H] == []
    kinds = {CHUNK.sub("", what) for _, dst, what, _ in log if dst == H}
    if policy == "aggregate":
        assert kinds == {"job parameters", "shuffle", "shuffled range-check vectors and charges"}
    else:
        assert kinds == {"job parameters"}


def test_table_operator_under_flags_learns_reasons_per_pair_and_nothing_of_the_rate_within_tolerance() -> None:
    """A, B under flags: per pair whether start, duration and charge are within tolerance;
    the rated-charge check only where the charge is beyond tolerance."""
    n = 6
    base = np.full(n, 1_767_225_600)
    a = PairValues(base, np.full(n, 60), np.full(n, 500), np.full(n, 500))
    # pairs 0-2: charge within tolerance, rated charge far off / equal / off; pairs 3-5: charge off
    b = PairValues(base, np.full(n, 60), np.array([500, 501, 500, 600, 600, 600]),
                   np.array([900, 500, 499, 500, 900, 400]))
    params = ToleranceParams(5, 2, 2, "flags")
    (ra, _, _), openings, _ = observe(params, a, b)
    seen = by_kind(openings[A])
    assert set(seen) == {"opening of the start, duration and charge checks",
                         "opening of the rate check and the differences"}
    t, d, c = (F.is_zero(x) for x in seen["opening of the start, duration and charge checks"])
    assert t.all() and d.all() and c.tolist() == [True] * 3 + [False] * 3
    rate = seen["opening of the rate check and the differences"]
    assert len(rate) == 1  # no differences under flags
    # where the charge is within tolerance the rate opening is random: never zero, whatever
    # the rated charges are (pair 2's are within tolerance)
    assert F.is_zero(rate[0]).tolist() == [False, False, False, True, False, False]
    assert ra.reasons.tolist() == [0, 0, 0, REASON_BITS["charge_rate_mismatch"], REASON_BITS["charge_rounding"],
                                   REASON_BITS["charge_rounding"]]


def test_table_operator_under_differences_learns_differences_of_disputed_pairs_only() -> None:
    n = 4
    base = np.full(n, 1_767_225_600)
    a = PairValues(base, np.full(n, 60), np.full(n, 500), np.full(n, 500))
    b = PairValues(base - np.array([3, 3, 30, 30]), np.full(n, 60), np.full(n, 500), np.full(n, 500))
    params = ToleranceParams(5, 2, 2, "differences")
    (ra, rb, _), openings, _ = observe(params, a, b)
    items = by_kind(openings[A])["opening of the rate check and the differences"]
    start_diff = items[1]
    # pairs 0, 1 are within tolerance (d_t = 3): the opened value is not 3, it is random
    assert all(v not in (3, F.P - 3) for v in F.to_ints(start_diff[:2]))
    assert [F.to_signed_int(x) for x in start_diff[2:]] == [30, 30]
    assert ra.differences["start"].tolist() == [0, 0, 30, 30] and rb.differences["start"].tolist() == [0, 0, -30, -30]


def test_table_operator_under_aggregate_learns_status_and_an_unlinked_histogram() -> None:
    """A, B under aggregate: the status per pair in the pair order; the reason combination
    per *shuffled* position (the permutation is pi_2 o pi_1, A knows only pi_1, B only
    pi_2); the class sums once.  Nothing else is opened."""
    a, b = small_job(400, seed=9)
    params = ToleranceParams(5, 2, 2, "aggregate")
    keys = {(0, 1): os.urandom(16), (0, 2): os.urandom(16), (1, 2): os.urandom(16)}
    (ra, _, _), openings, _ = observe(params, a, b, chunk_size=128, keys=keys)
    expected = plaintext_discrepancy(a, b, ToleranceParams(5, 2, 2, "flags"))
    seen = by_kind(openings[A])
    assert (~F.is_zero(seen["opening of the status"][0])).tolist() == expected.disputed.tolist()
    sources = local_sources(keys)
    perm = sources[0].permutation((0, 2), b"shuffle:pi1", 400)[sources[1].permutation((1, 2), b"shuffle:pi2", 400)]
    t, d, c = (F.is_zero(x) for x in seen["opening of the shuffled start, duration and charge checks"])
    ok_r = F.is_zero(seen["opening of the shuffled rate check"][0])
    reasons = expected.reasons[perm]
    assert (~t).tolist() == ((reasons & REASON_BITS["start_time"]) != 0).tolist()
    assert (~d).tolist() == ((reasons & REASON_BITS["duration"]) != 0).tolist()
    assert (~c).tolist() == ((reasons & 28) != 0).tolist()
    assert (ok_r & ~c).tolist() == ((reasons & REASON_BITS["charge_rate_mismatch"]) != 0).tolist()
    assert (ok_r & c).sum() == 0  # within charge tolerance: the rate opening is random
    # the shuffled order is not the pair order (A cannot link a position to a pair)
    assert not np.array_equal(reasons, expected.reasons)
    plan = plan_from_reasons(expected.reasons, params.min_cell_pairs)
    sums = [F.to_signed_int(x) for x in seen["opening of the class charge sums"][0]]
    for slot, cell in enumerate([*ra.cells.by_reason.values(), ra.cells.other]):
        if cell.charge is None:
            assert sums[2 * slot:2 * slot + 2] == [0, 0]
        else:
            assert tuple(sums[2 * slot:2 * slot + 2]) == cell.charge
    assert ra.cells == expected.cells and plan.in_other == tuple(
        code for code, cell in ra.cells.by_reason.items() if cell.in_other)


@pytest.mark.parametrize("policy", POLICIES)
def test_table_withheld_sums_never_reach_the_other_operator(policy) -> None:
    """One disputed pair in the job: its charges are in no cell A learns, and B's charge
    reaches A in no message and no opening (under differences A learns the difference,
    by design, but no sum)."""
    n = 40
    base = np.full(n, 1_767_225_600)
    charge = np.arange(2000, 2000 + n)
    charge_b = charge.copy()
    charge_b[17] = 987_654
    a = PairValues(base, np.full(n, 60), charge, charge)
    b = PairValues(base, np.full(n, 60), charge_b, charge)
    params = ToleranceParams(5, 2, 2, policy)
    (ra, rb, _), openings, log = observe(params, a, b, chunk_size=16)
    for result in (ra, rb):
        cells = result.cells
        assert cells.disputed.pairs == 1 and cells.disputed.charge is None
        assert cells.matched_tolerance.charge is None
        assert all(c.charge is None for c in cells.by_reason.values()) and cells.other.charge is None
        assert cells.candidates.charge == (int(charge.sum()), int(charge_b.sum()))
    # the sums message from B holds exactly one number: the candidates' sum
    sums_messages = [payload for src, dst, what, payload in log if src == B and dst == A
                      and what == "charge sums of the disclosed cells"]
    assert sums_messages == [str(int(charge_b.sum())).encode()]
    to_a = b"".join(payload for _, dst, _, payload in log if dst == A)
    assert b"987654" not in to_a and (987_654).to_bytes(8, "little") not in to_a
    for items in by_kind(openings[A]).values():
        for item in items:
            assert 987_654 not in set(F.to_ints(item))
