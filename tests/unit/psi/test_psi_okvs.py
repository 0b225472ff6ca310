"""RR22's OKVS (protocols/psi/okvs.py) against a slow reference written from RR22 Figure 1.

The reference builds the n x m binary matrix H from the same rows (three sparse columns
and the 64-bit dense tail of each key) and solves H·P = v by plain Gaussian elimination on
Python integers; P is not unique (free columns), so both encodings are compared through
Decode, which the reference computes as <row(x), P> on its own.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from protocols.psi import okvs


def ref_rows(params, cols, dense):
    """Row i of H as a Python integer (bit c = column c), global columns."""
    rows = []
    for i in range(cols.shape[0]):
        r = 0
        for c in cols[i]:
            r ^= 1 << int(c)
        tail = (int(cols[i, 0]) // params.m_cluster) * params.m_cluster + params.m_sparse
        for b in range(64):
            if (int(dense[i]) >> b) & 1:
                r ^= 1 << (tail + b)
        rows.append(r)
    return rows


def ref_solve(rows, values, m):
    """Gaussian elimination over GF(2) with 128-bit payloads; None if inconsistent."""
    pivots = {}                                 # pivot column -> (row, value)
    for r, v in zip(rows, values):
        for c, (pr, pv) in pivots.items():
            if (r >> c) & 1:
                r ^= pr
                v ^= pv
        if r == 0:
            if v:
                return None
            continue
        c = r.bit_length() - 1
        for c2 in list(pivots):                 # keep the basis reduced
            pr, pv = pivots[c2]
            if (pr >> c) & 1:
                pivots[c2] = (pr ^ r, pv ^ v)
        pivots[c] = (r, v)
    p = [0] * m
    for c, (r, v) in pivots.items():            # free columns zero: P[c] = v (reduced rows)
        p[c] = v
    return p


def ref_decode(row: int, p) -> int:
    out = 0
    c = 0
    while row:
        if row & 1:
            out ^= p[c]
        row >>= 1
        c += 1
    return out


def _keys(rng, n):
    return rng.integers(0, 2**63, (n, 2), dtype=np.int64).view(np.uint64)


@pytest.mark.parametrize("n", [1, 2, 17, 100, 400])
def test_encode_matches_the_reference(n) -> None:
    rng = np.random.default_rng(n)
    params = okvs.OkvsParams.for_keys(n)
    cluster, cols, dense = okvs.rows(_keys(rng, n), os.urandom(16), params)
    values = _keys(rng, n)
    p = okvs.encode(params, cluster, cols, dense, values)
    rows = ref_rows(params, cols, dense)
    ints = [int(v[0]) | (int(v[1]) << 64) for v in values]
    ref_p = ref_solve(rows, ints, params.size)
    assert ref_p is not None
    p_ints = [int(x[0]) | (int(x[1]) << 64) for x in p]
    for row, want in zip(rows, ints):
        assert ref_decode(row, ref_p) == want     # the reference solves the system
        assert ref_decode(row, p_ints) == want    # and so does the kernel's P
    decoded = okvs.decode(params, p, cols, dense)
    assert [int(d[0]) | (int(d[1]) << 64) for d in decoded] == ints
    # Decode of keys that were not encoded is the reference's <row, P> too
    _, other_cols, other_dense = okvs.rows(_keys(rng, 50), os.urandom(16), params)
    other = okvs.decode(params, p, other_cols, other_dense)
    for row, got in zip(ref_rows(params, other_cols, other_dense), other):
        assert ref_decode(row, p_ints) == int(got[0]) | (int(got[1]) << 64)


def test_gap_rows_are_solved_through_the_dense_tail() -> None:
    """Rows that cannot be triangulated (duplicated sparse parts) are solved by the dense
    columns: the greedy step sets them aside and Gaussian elimination places them."""
    params = okvs.OkvsParams(n=30, clusters=1, capacity=30, m_sparse=64)
    rng = np.random.default_rng(9)
    cols = np.array([[i, i + 1, i + 2] for i in range(0, 60, 3)] * 1 + [[0, 1, 2]] * 10, np.int64)
    dense = rng.integers(0, 2**63, cols.shape[0], dtype=np.int64).view(np.uint64)
    values = _keys(rng, cols.shape[0])
    p = okvs.encode(params, np.zeros(cols.shape[0], np.int64), cols, dense, values)
    assert np.array_equal(okvs.decode(params, p, cols, dense), values)
    assert np.any(p[params.m_sparse:]), "the dense tail carries the gap rows"


def test_failures_are_clean_errors() -> None:
    params = okvs.OkvsParams(n=40, clusters=1, capacity=40, m_sparse=64)
    rng = np.random.default_rng(10)
    cols = np.array([[0, 1, 2]] * 40, np.int64)              # a gap of 39 rows > MAX_GAP
    dense = rng.integers(0, 2**63, 40, dtype=np.int64).view(np.uint64)
    with pytest.raises(okvs.OkvsFailure, match="could not be triangulated.*new session id"):
        okvs.encode(params, np.zeros(40, np.int64), cols, dense, _keys(rng, 40))
    # the same row twice with different values: dependent and inconsistent
    cols = np.array([[0, 1, 2], [0, 1, 2]], np.int64)
    dense = np.array([5, 5], np.uint64)
    with pytest.raises(okvs.OkvsFailure, match="dependent"):
        okvs.encode(params, np.zeros(2, np.int64), cols, dense, np.array([[1, 0], [2, 0]], np.uint64))
    # a cluster above its capacity
    small = okvs.OkvsParams(n=3, clusters=2, capacity=1, m_sparse=16)
    with pytest.raises(okvs.OkvsFailure, match="more than 1 keys fell into it"):
        okvs.encode(small, np.zeros(3, np.int64), np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], np.int64),
                    np.zeros(3, np.uint64), np.zeros((3, 2), np.uint64))


def test_parameters_follow_rr22_section_3() -> None:
    assert 1.24 < okvs.expansion(1 << 16) < 1.25
    assert 1.43 < okvs.expansion(1 << 10) < 1.46
    one = okvs.OkvsParams.for_keys(100_000)
    assert one.clusters == 1 and one.capacity == 100_000
    many = okvs.OkvsParams.for_keys(10_000_000)
    assert many.clusters == 153 and many.capacity > 10_000_000 / 153
    assert 1.25 < many.size / 10_000_000 < 1.32
    # the Chernoff margin: the chance that a binomial load exceeds it, union over clusters
    mu = 10_000_000 / 153
    delta = many.capacity / mu - 1
    log2_bound = -mu * ((1 + delta) * np.log1p(delta) - delta) / np.log(2) + np.log2(153)
    assert log2_bound <= -41


def test_many_small_encodings_never_fail() -> None:
    """1,000 encodings of 30-300 keys under fresh keys: no failure (each < 2^-40)."""
    rng = np.random.default_rng(11)
    for trial in range(1000):
        n = int(rng.integers(30, 300))
        params = okvs.OkvsParams.for_keys(n)
        cluster, cols, dense = okvs.rows(_keys(rng, n), os.urandom(16), params)
        values = _keys(rng, n)
        p = okvs.encode(params, cluster, cols, dense, values)
        if trial % 100 == 0:
            assert np.array_equal(okvs.decode(params, p, cols, dense), values)


def test_clustered_encoding_decodes_every_key() -> None:
    rng = np.random.default_rng(12)
    n = 300_000
    params = okvs.OkvsParams.for_keys(n)
    assert params.clusters == 5
    cluster, cols, dense = okvs.rows(_keys(rng, n), os.urandom(16), params)
    assert set(np.unique(cluster).tolist()) == set(range(5))
    values = _keys(rng, n)
    p = okvs.encode(params, cluster, cols, dense, values)
    assert np.array_equal(okvs.decode(params, p, cols, dense), values)
