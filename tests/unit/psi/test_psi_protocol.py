"""The PSI result equals the plaintext intersection (hypothesis), both roles, both sides agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psi_helpers import make_sets, plaintext_pairs, run_pair

from protocols.psi import PROTOCOLS, ElementSet


@st.composite
def set_pairs(draw):
    n_a = draw(st.integers(0, 2000))
    n_b = draw(st.integers(0, 2000))
    common = draw(st.integers(0, min(n_a, n_b)))
    return (n_a, n_b, common, draw(st.integers(0, 2**32 - 1)), draw(st.booleans()),
            draw(st.sampled_from(PROTOCOLS)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(set_pairs())
def test_result_equals_plaintext_intersection(case) -> None:
    n_a, n_b, common, seed, a_is_client, protocol = case
    rng = np.random.default_rng(seed)
    a, b = make_sets(rng, n_a, n_b, common)
    ra, rb = run_pair(ElementSet.from_fixed(a), ElementSet.from_fixed(b), a_is_client=a_is_client,
                      protocol=protocol)
    got = set(zip(ra.local_indices.tolist(), rb.local_indices.tolist()))
    assert got == plaintext_pairs(a, b)
    assert len(ra) == len(rb) == common
    # pair ids aligned and equal on both sides, in one common (sorted) order, all distinct
    assert np.array_equal(ra.pair_ids, rb.pair_ids)
    ids = [bytes(r) for r in ra.pair_ids]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert (ra.peer_size, rb.peer_size) == (n_b, n_a)
    assert ra.local_indices.dtype == np.int64 and ra.pair_ids.shape == (common, 16)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.binary(max_size=70), max_size=60, unique=True),
       st.lists(st.binary(max_size=70), max_size=60, unique=True), st.sampled_from(PROTOCOLS))
def test_variable_length_elements(xs, ys, protocol) -> None:
    ra, rb = run_pair(ElementSet.from_bytes(xs), ElementSet.from_bytes(ys), protocol=protocol)
    matched_a = [xs[i] for i in ra.local_indices]
    matched_b = [ys[j] for j in rb.local_indices]
    assert matched_a == matched_b, "the i-th pair is the same element on both sides"
    assert set(matched_a) == set(xs) & set(ys)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pair_ids_are_bound_to_the_session(protocol) -> None:
    rng = np.random.default_rng(11)
    a, b = make_sets(rng, 200, 150, 80)
    ea, eb = ElementSet.from_fixed(a), ElementSet.from_fixed(b)
    r1, _ = run_pair(ea, eb, session=b"job-1/pass-S1", protocol=protocol)
    r2, _ = run_pair(ea, eb, session=b"job-1/pass-S1", protocol=protocol)
    r3, _ = run_pair(ea, eb, session=b"job-1/pass-S2", protocol=protocol)
    ids1, ids2, ids3 = ({bytes(r) for r in x.pair_ids} for x in (r1, r2, r3))
    assert len(ids1) == 80
    assert not ids1 & ids2, "fresh randomness per run: ids never repeat across runs"
    assert not ids1 & ids3


def test_stats_report_bytes_and_steps() -> None:
    rng = np.random.default_rng(12)
    a, b = make_sets(rng, 500, 500, 250)
    ra, rb = run_pair(ElementSet.from_fixed(a), ElementSet.from_fixed(b))
    assert ra.stats["bytes_sent"] == rb.stats["bytes_received"] > 500 * 64
    assert rb.stats["bytes_sent"] == ra.stats["bytes_received"]
    for step in ("base_ot", "cuckoo", "ot_extension", "match", "total"):
        assert step in ra.stats["seconds"]
    for step in ("base_ot", "bucketing", "ot_extension", "confirm", "total"):
        assert step in rb.stats["seconds"]
