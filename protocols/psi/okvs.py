"""Oblivious key-value store (OKVS) of RR22: sparse random rows, greedy triangulation, dense tail.

Raghuraman and Rindal, "Blazing Fast PSI from Improved OKVS and Subfield VOLE", ACM CCS
2022 (RR22), Section 2 and Figure 1.  A linear OKVS maps n key-value pairs (x_i, v_i) to a
vector P of m values with Decode(P, x) = <row(x), P> = v_i for every encoded key, where

    row(x) = row'(x) || row^(x),   row'(x) in {0,1}^m' of weight w = 3 (three distinct random
                                   columns), row^(x) in {0,1}^64 (a random dense tail)

so that Decode is a XOR of 3 + (about 32) entries of P: binary rows make the OKVS linear
over GF(2), hence over any GF(2)-vector space of values (the VOLE-based PSI decodes vectors
of GF(2^128) elements and of k-bit strings with the same rows).

Encoding (RR22 Figure 1): [Triangulate] repeatedly pick the sparse column of minimum
non-zero weight among the remaining rows; one row containing it becomes that column's
pivot, the others containing it are set aside as the *gap* (a weight-1 column sets nothing
aside: plain hypergraph peeling).  [Back-substitution] in reverse order of pivots, each
pivot entry is an affine function of the 64 dense entries: P[p] = c_p xor mask_p * D.
[Solve-Dense] each gap row gives one GF(2) equation in D; Gaussian elimination solves them.
Non-pivot entries are zero: the PSI never reveals P (it travels masked by the VOLE's
pseudorandom A, RR22 Section 4), so the OKVS need not be oblivious there.

Clustering (RR22 Section 2.1, "Separate"): above 2^16 keys the keys are hashed into beta
clusters of about 2^16 expected keys, each an independent OKVS instance with its own m'_c
sparse and 64 dense columns, sized for a load n* that no cluster exceeds except with
probability 2^-41 (Chernoff bound on the binomial load, union over the clusters).  Each
cluster's triangulation then works in the CPU cache (measured: 10^7 keys in one instance
took 18 s, nearly all of it DRAM latency), and clusters encode in parallel.

Parameters and failure probability (statistical security lambda = 40):

- w = 3; m' = e(n)·n sparse columns with e(n) from RR22 Section 3.2: the phase-transition
  point e* = 1.223 (equation (2), w = 3) and the slope of log-failure against e,
  log2(lambda/e) = 0.55·log2(n) + 0.093w'^3 - 1.01w'^2 + 2.92w' - 0.13 with w' = log2 w
  (equation (3)), solved for a gap-free encoding (g < 1) at lambda = 40:
  e(n) = e* + (lambda + 9.2) / slope(n), with lambda = 41 + log2(beta) per cluster (union
  bound; one instance: lambda = 41).  That gives e = 1.245 at n = 2^16 (one instance) and
  1.249 per cluster for 10^7 keys; 1.44 at 2^10; below n = 2^6 (outside the fitted range)
  the value for 2^6 is used, and m' >= 16.  With the cluster load margin, m is about
  1.28 n for 10^6-10^7 keys.
- The dense tail has 64 binary columns ("binary row^", RR22 Lemma 2.1): a gap of g rows is
  solvable with probability >= 1 - 2^(g-64), so up to MAX_GAP = 24 gap rows keep the
  failure probability below 2^-40, while the fitted e(n) makes even a gap of one row
  rarer than 2^-40 (the plateau of duplicate rows, probability about 1/n, costs one gap
  row each and is absorbed).
- Encoding fails (:class:`OkvsFailure`) only with a larger gap or a singular dense system;
  the caller aborts the run ("run again with a new session id"): the keys are hashed
  under a fresh session key, so a failure says nothing about the input.

The kernels are tested against a slow reference written from Figure 1 (plain Gaussian
elimination over GF(2) on the full matrix) in tests/unit/psi/test_psi_okvs.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from . import kernels
from .errors import PsiError
from .primitives import AesEcb

_U = np.uint64

WEIGHT = 3                 #: w, sparse columns per row
DENSE_COLUMNS = 64         #: binary dense tail (one 64-bit word per row)
MAX_GAP = 24               #: lambda + g <= 64: a gap up to 24 rows is solved w.p. >= 1 - 2^-40
STATISTICAL_SECURITY = 40
PHASE_TRANSITION = 1.223   #: e* for w = 3 (RR22 equation (2))
CLUSTER_KEYS = 1 << 16     #: expected keys per cluster (RR22 uses 2^14; 2^16 fits our L2/L3)


class OkvsFailure(PsiError):
    """The OKVS could not encode the keys (probability < 2^-40 per run)."""


def expansion(n: int, security: float = STATISTICAL_SECURITY + 1) -> float:
    """e(n) = m'/n from RR22 Section 3.2, equations (2) and (3) (see the module docstring)."""
    n_fit = max(n, 64)
    wp = math.log2(WEIGHT)
    log_slope = 0.55 * math.log2(n_fit) + 0.093 * wp ** 3 - 1.01 * wp ** 2 + 2.92 * wp - 0.13
    return PHASE_TRANSITION + (security + 9.2) / 2.0 ** log_slope


def _load_bound(n: int, clusters: int, security: float) -> int:
    """Smallest n* with clusters · Pr[Bin(n, 1/clusters) > n*] <= 2^-security (Chernoff)."""
    mu = n / clusters
    target = security * math.log(2) + math.log(clusters)
    k = math.ceil(mu)
    while True:
        delta = k / mu - 1
        if delta > 0 and mu * ((1 + delta) * math.log1p(delta) - delta) >= target:
            return k
        k += max(1, int(mu * 0.002))


@dataclass(frozen=True)
class OkvsParams:
    """Shape of an OKVS for n keys: ``clusters`` instances of ``m_sparse`` + 64 columns each,
    each holding at most ``capacity`` keys."""

    n: int
    clusters: int
    capacity: int
    m_sparse: int

    @property
    def m_cluster(self) -> int:
        return self.m_sparse + DENSE_COLUMNS

    @property
    def size(self) -> int:
        return self.clusters * self.m_cluster

    @classmethod
    def for_keys(cls, n: int) -> OkvsParams:
        if n <= 2 * CLUSTER_KEYS:
            return cls(n, 1, n, max(16, math.ceil(expansion(n) * n)))
        clusters = math.ceil(n / CLUSTER_KEYS)
        capacity = _load_bound(n, clusters, STATISTICAL_SECURITY + 1)
        security = STATISTICAL_SECURITY + 1 + math.log2(clusters)
        return cls(n, clusters, capacity, math.ceil(expansion(capacity, security) * capacity))


@njit(cache=True, nogil=True)
def _distinct_columns(words, m_sparse):
    """(n, 3) int64 distinct columns in [0, m') from three 32-bit words per row.

    c0 = w0·m' >> 32, c1 from the m' - 1 columns other than c0, c2 from the m' - 2 others:
    a uniformly random set of three distinct columns (up to the 2^-32 rounding of scaling).
    """
    n = words.shape[0]
    out = np.empty((n, 3), np.int64)
    m = np.int64(m_sparse)
    for i in range(n):
        c0 = np.int64((_U(words[i, 0]) * _U(m)) >> _U(32))
        c1 = np.int64((_U(words[i, 1]) * _U(m - 1)) >> _U(32))
        if c1 >= c0:
            c1 += 1
        lo, hi = (c0, c1) if c0 < c1 else (c1, c0)
        c2 = np.int64((_U(words[i, 2]) * _U(m - 2)) >> _U(32))
        if c2 >= lo:
            c2 += 1
        if c2 >= hi:
            c2 += 1
        out[i, 0] = c0
        out[i, 1] = c1
        out[i, 2] = c2
    return out


@njit(cache=True, nogil=True)
def _place(words, clusters, m_sparse, m_cluster):
    """Cluster of each key (4th word) and its three distinct columns, as global column indices."""
    n = words.shape[0]
    cluster = np.empty(n, np.int64)
    for i in range(n):
        cluster[i] = np.int64((_U(words[i, 3]) * _U(clusters)) >> _U(32))
    cols = _distinct_columns(words, m_sparse)
    for i in range(n):
        base = cluster[i] * m_cluster
        for k in range(3):
            cols[i, k] += base
    return cluster, cols


def rows(digests: np.ndarray, key: bytes, params: OkvsParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """row(x) of each element: (n,) cluster, (n, 3) int64 global sparse columns, (n,) uint64
    dense tails.

    All come from AES-128 under ``key`` (a fresh session key, RR22's instance key r) of the
    element digest and of the digest with its top bit flipped (a random function of x)."""
    n = digests.shape[0]
    src = np.ascontiguousarray(digests, dtype=np.uint64)
    buf = np.empty(n * 16 + 16, np.uint8)
    enc = AesEcb(key)
    enc.encrypt_into(src, buf)
    words = buf[: n * 16].view(np.uint32).reshape(n, 4).copy()
    tweaked = src.copy()
    tweaked[:, 1] ^= _U(1) << _U(63)
    enc.encrypt_into(tweaked, buf)
    dense = buf[: n * 16].view(np.uint64).reshape(n, 2)[:, 0].copy()
    cluster, cols = _place(words, params.clusters, params.m_sparse, params.m_cluster)
    return cluster, cols, dense


@njit(cache=True, nogil=True)
def _triangulate(cols, m_sparse, max_gap):
    """Greedy triangulation (RR22 Figure 1, step 2).

    Works on 32-bit indices (a cluster holds < 2^31 keys) so that a cluster's arrays stay in
    the CPU cache.  Returns ``(order, pivot, gap, ngap)``: ``order`` the rows in pivot order (-1 padded),
    ``pivot[r]`` the pivot column of row r (-1 for gap rows), ``gap`` the gap rows.  ``ngap``
    is -1 if more than ``max_gap`` rows had to be set aside.
    """
    n = cols.shape[0]
    deg = np.zeros(m_sparse, np.int32)
    for r in range(n):
        for k in range(3):
            deg[cols[r, k]] += 1
    start = np.zeros(m_sparse + 1, np.int64)
    for c in range(m_sparse):
        start[c + 1] = start[c] + deg[c]
    fill = start[:m_sparse].copy()
    incident = np.empty(3 * n, np.int32)
    for r in range(n):
        for k in range(3):
            c = cols[r, k]
            incident[fill[c]] = r
            fill[c] += 1
    alive = np.ones(n, np.bool_)
    pivot = np.full(n, -1, np.int32)
    order = np.full(n, -1, np.int32)
    gap = np.full(max_gap + 1, -1, np.int64)
    ngap = 0
    stack = np.empty(m_sparse + 3 * n, np.int32)
    top = 0
    for c in range(m_sparse):
        if deg[c] == 1:
            stack[top] = c
            top += 1
    done = 0
    while done + ngap < n:
        c = -1
        while top > 0:
            top -= 1
            cand = stack[top]
            if deg[cand] == 1:
                c = cand
                break
        if c < 0:  # no weight-1 column: the column of minimum non-zero weight
            best = -1
            for j in range(m_sparse):
                if deg[j] > 0 and (best < 0 or deg[j] < deg[best]):
                    best = j
                    if deg[j] == 2:
                        break
            c = best
        chosen = -1
        for t in range(start[c], start[c + 1]):
            r = incident[t]
            if not alive[r]:
                continue
            alive[r] = False
            if chosen < 0:
                chosen = r
                pivot[r] = c
                order[done] = r
                done += 1
            else:
                if ngap >= max_gap:
                    return order, pivot, gap, -1
                gap[ngap] = r
                ngap += 1
            for k in range(3):
                c2 = cols[r, k]
                deg[c2] -= 1
                if deg[c2] == 1:
                    stack[top] = c2
                    top += 1
    return order, pivot, gap, ngap


@njit(cache=True, nogil=True)
def _back_substitute(cols, dense, values, order, pivot, count, with_masks, out_const, out_mask):
    """Pivot entries as affine functions of the dense tail, in reverse pivot order.

    ``out_const[p]`` (2 words) and ``out_mask[p]`` (64-bit) with P[p] = const xor mask·D;
    non-pivot sparse columns stay zero (their const and mask are zero)."""
    for i in range(count - 1, -1, -1):
        r = order[i]
        p = pivot[r]
        a = values[r, 0]
        b = values[r, 1]
        mask = dense[r]
        for k in range(3):
            c = cols[r, k]
            if c != p:
                a ^= out_const[c, 0]
                b ^= out_const[c, 1]
                if with_masks:
                    mask ^= out_mask[c]
        out_const[p, 0] = a
        out_const[p, 1] = b
        if with_masks:
            out_mask[p] = mask


@njit(cache=True, nogil=True)
def _solve_dense(cols, dense, values, gap, ngap, const, mask):
    """Solve the gap rows' equations for the 64 dense entries D (2 words each).

    Returns ``(D, ok)``; free dense entries are zero."""
    d = np.zeros((64, 2), np.uint64)
    eq_mask = np.zeros(ngap, np.uint64)
    eq_val = np.zeros((ngap, 2), np.uint64)
    for g in range(ngap):
        r = gap[g]
        mk = dense[r]
        a = values[r, 0]
        b = values[r, 1]
        for k in range(3):
            c = cols[r, k]
            a ^= const[c, 0]
            b ^= const[c, 1]
            mk ^= mask[c]
        eq_mask[g] = mk
        eq_val[g, 0] = a
        eq_val[g, 1] = b
    # Gaussian elimination, reduced row echelon form
    pivot_bit = np.full(ngap, -1, np.int64)
    rank = 0
    for bit in range(64):
        sel = -1
        for g in range(rank, ngap):
            if (eq_mask[g] >> _U(bit)) & _U(1):
                sel = g
                break
        if sel < 0:
            continue
        eq_mask[rank], eq_mask[sel] = eq_mask[sel], eq_mask[rank]
        t0, t1 = eq_val[rank, 0], eq_val[rank, 1]
        eq_val[rank, 0], eq_val[rank, 1] = eq_val[sel, 0], eq_val[sel, 1]
        eq_val[sel, 0], eq_val[sel, 1] = t0, t1
        for g in range(ngap):
            if g != rank and (eq_mask[g] >> _U(bit)) & _U(1):
                eq_mask[g] ^= eq_mask[rank]
                eq_val[g, 0] ^= eq_val[rank, 0]
                eq_val[g, 1] ^= eq_val[rank, 1]
        pivot_bit[rank] = bit
        rank += 1
    for g in range(rank, ngap):
        if eq_val[g, 0] != 0 or eq_val[g, 1] != 0:
            return d, False       # 0 = non-zero: the gap rows are dependent and inconsistent
    for g in range(rank):         # free dense entries are zero, so each pivot takes its value
        d[pivot_bit[g], 0] = eq_val[g, 0]
        d[pivot_bit[g], 1] = eq_val[g, 1]
    return d, True


@njit(cache=True, nogil=True)
def dense_tables(tail):
    """Tables of XOR-combinations of the 64 dense entries, 8 bits at a time: (8, 256, 2)."""
    t = np.zeros((8, 256, 2), np.uint64)
    for byte in range(8):
        for v in range(1, 256):
            low = v & (v - 1)          # v without its lowest bit
            bit = 0
            while not (v >> bit) & 1:
                bit += 1
            t[byte, v, 0] = t[byte, low, 0] ^ tail[8 * byte + bit, 0]
            t[byte, v, 1] = t[byte, low, 1] ^ tail[8 * byte + bit, 1]
    return t


@njit(cache=True, nogil=True)
def _apply_masks(const, mask, table, m_sparse, out):
    for p in range(m_sparse):
        a = const[p, 0]
        b = const[p, 1]
        mk = mask[p]
        if mk:
            for byte in range(8):
                v = np.int64((mk >> _U(8 * byte)) & _U(255))
                a ^= table[byte, v, 0]
                b ^= table[byte, v, 1]
        out[p, 0] = a
        out[p, 1] = b


@njit(cache=True, nogil=True)
def _encode_one(cols, dense, values, m_sparse, out):
    """One OKVS instance: local columns in [0, m_sparse); writes m_sparse + 64 entries of out.
    Returns 0, or 1 (gap too large) or 2 (dependent gap rows)."""
    n = cols.shape[0]
    if n == 0:
        return 0
    order, pivot, gap, ngap = _triangulate(cols, m_sparse, MAX_GAP)
    if ngap < 0:
        return 1
    const = np.zeros((m_sparse, 2), np.uint64)
    if ngap == 0:
        _back_substitute(cols, dense, values, order, pivot, n, False, const, np.zeros(1, np.uint64))
        out[:m_sparse] = const
        return 0
    mask = np.zeros(m_sparse, np.uint64)
    _back_substitute(cols, dense, values, order, pivot, n - ngap, True, const, mask)
    tail, ok = _solve_dense(cols, dense, values, gap, ngap, const, mask)
    if not ok:
        return 2
    _apply_masks(const, mask, dense_tables(tail), m_sparse, out)
    out[m_sparse:] = tail
    return 0


@njit(cache=True, nogil=True, parallel=True)
def _encode_parallel(cluster, cols, dense, values, clusters, capacity, m_sparse, out, status):
    n = cols.shape[0]
    m_cluster = m_sparse + 64
    count = np.zeros(clusters + 1, np.int64)
    for i in range(n):
        count[cluster[i] + 1] += 1
    for c in range(clusters):
        count[c + 1] += count[c]
    fill = count[:clusters].copy()
    members = np.empty(n, np.int64)
    for i in range(n):
        members[fill[cluster[i]]] = i
        fill[cluster[i]] += 1
    for c in prange(clusters):
        lo, hi = count[c], count[c + 1]
        if hi - lo > capacity:
            status[c] = 3
            continue
        k = hi - lo
        local = np.empty((k, 3), np.int32)
        d = np.empty(k, np.uint64)
        v = np.empty((k, 2), np.uint64)
        base = c * m_cluster
        for t in range(k):
            i = members[lo + t]
            for j in range(3):
                local[t, j] = cols[i, j] - base
            d[t] = dense[i]
            v[t, 0] = values[i, 0]
            v[t, 1] = values[i, 1]
        status[c] = _encode_one(local, d, v, m_sparse, out[base:base + m_cluster])


def encode(params: OkvsParams, cluster: np.ndarray, cols: np.ndarray, dense: np.ndarray,
           values: np.ndarray) -> np.ndarray:
    """P, a (params.size, 2) uint64 array with Decode(P, x_i) = values[i] for every row.

    ``values`` are (n, 2) uint64 (a 128-bit value, or a shorter one in the low bits)."""
    out = np.zeros((params.size, 2), np.uint64)
    status = np.zeros(params.clusters, np.int64)
    with kernels._PARALLEL_LAUNCH:
        _encode_parallel(cluster, cols, dense, np.ascontiguousarray(values, dtype=np.uint64),
                         params.clusters, params.capacity, params.m_sparse, out, status)
    if np.any(status):
        c = int(np.flatnonzero(status)[0])
        what = {1: f"more than {MAX_GAP} rows could not be triangulated",
                2: "the gap rows are dependent",
                3: f"more than {params.capacity} keys fell into it"}[int(status[c])]
        raise OkvsFailure(
            f"OKVS cluster {c} of {params.clusters}: {what} (expected with probability < 2^-40); "
            "run again with a new session id")
    return out


@njit(cache=True, nogil=True, parallel=True)
def _cluster_tables_parallel(p, clusters, m_sparse, out):
    """Per cluster, the XOR-combination tables of its 64 dense entries: (clusters, 8, 256, 2)."""
    m_cluster = m_sparse + 64
    for c in prange(clusters):
        tail = c * m_cluster + m_sparse
        out[c] = dense_tables(p[tail:tail + 64])


@njit(cache=True, nogil=True, parallel=True)
def _decode_parallel(p, cols, dense, m_sparse, tables, out):
    n = cols.shape[0]
    m_cluster = m_sparse + 64
    for i in prange(n):
        a = p[cols[i, 0], 0] ^ p[cols[i, 1], 0] ^ p[cols[i, 2], 0]
        b = p[cols[i, 0], 1] ^ p[cols[i, 1], 1] ^ p[cols[i, 2], 1]
        table = tables[cols[i, 0] // m_cluster]
        mk = dense[i]
        for byte in range(8):
            v = np.int64((mk >> _U(8 * byte)) & _U(255))
            a ^= table[byte, v, 0]
            b ^= table[byte, v, 1]
        out[i, 0] = a
        out[i, 1] = b


def decode(params: OkvsParams, p: np.ndarray, cols: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """(n, 2) uint64: <row(x_i), P> for every row (XOR of the selected entries; the dense
    tail through 8 lookups in per-cluster tables of its XOR-combinations)."""
    out = np.empty((cols.shape[0], 2), np.uint64)
    if cols.shape[0]:
        tables = np.empty((params.clusters, 8, 256, 2), np.uint64)
        with kernels._PARALLEL_LAUNCH:
            _cluster_tables_parallel(p, params.clusters, params.m_sparse, tables)
            _decode_parallel(p, cols, dense, params.m_sparse, tables, out)
    return out


def warm_up() -> None:
    params = OkvsParams.for_keys(2)
    digests = np.zeros((2, 2), np.uint64)
    digests[1, 0] = 1
    cluster, cols, dense = rows(digests, bytes(16), params)
    p = encode(params, cluster, cols, dense, np.zeros((2, 2), np.uint64))
    decode(params, p, cols, dense)
    twice = np.array([[0, 1, 2], [0, 1, 2]], np.int32)
    out = np.zeros((16 + 64, 2), np.uint64)
    _encode_one(twice, np.array([1, 2], np.uint64), np.zeros((2, 2), np.uint64), 16, out)
