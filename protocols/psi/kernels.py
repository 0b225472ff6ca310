"""numba kernels of the PSI core: BLAKE2b, bit-matrix transpose, cuckoo hashing, joins.

Everything here is a pure function over contiguous numpy buffers (no Python objects per
element, no I/O, no randomness of its own: seeds are passed in).  All kernels use
``cache=True`` so that a process pays numba's compilation once per machine.  The number
of distinct kernels is kept small on purpose (first-time compilation is part of the
test budget).

BLAKE2b (RFC 7693) is implemented here because the OPRF needs ~10^7-10^8 independent
short hashes and a Python-level loop over ``hashlib`` costs ~0.6 µs per call; the
kernels are tested against ``hashlib.blake2b`` (an independent implementation) and
against the RFC 7693 Appendix A vector (tests/vectors/psi/).
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import njit, prange

# The two parties of a run usually share a machine's cores (and always do in tests and
# benchmarks).  numba's default OpenMP pool spins after each parallel region, starving
# the peer process: measured at 10^6 x 10^6 on 2 cores, 14.5 s end to end with OpenMP vs
# 7.8 s with the workqueue layer.  Choose workqueue unless the process already chose.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# The workqueue layer aborts the process if two threads launch parallel regions at once,
# so every parallel kernel of this module is launched under this lock (a PSI run calls
# them per chunk of 2^15 bins: the lock costs nothing measurable).  Other numba code in
# the same process that launches parallel regions from several threads should choose a
# thread-safe layer (NUMBA_THREADING_LAYER=omp or tbb) before importing this module.
_PARALLEL_LAUNCH = threading.Lock()

_U = np.uint64

#: BLAKE2b initialisation vector (RFC 7693, section 2.6).
BLAKE2B_IV = np.array(
    [
        0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
        0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
    ],
    dtype=np.uint64,
)


def blake2b_initial_state(digest_size: int, *, salt: bytes = b"", person: bytes = b"") -> np.ndarray:
    """h_0 of unkeyed BLAKE2b with the given digest size, salt and personalisation.

    Same parameter block as ``hashlib.blake2b(digest_size=..., salt=..., person=...)``
    (RFC 7693 section 2.5 and the BLAKE2 paper's parameter block).
    """
    if not 1 <= digest_size <= 64 or len(salt) > 16 or len(person) > 16:
        raise ValueError("digest_size must be 1..64, salt and person at most 16 bytes")
    block = bytearray(64)
    block[0] = digest_size
    block[1] = 0  # key length
    block[2] = 1  # fanout
    block[3] = 1  # depth
    block[32:32 + len(salt)] = salt
    block[48:48 + len(person)] = person
    return BLAKE2B_IV ^ np.frombuffer(bytes(block), dtype="<u8").astype(np.uint64)


@njit(cache=True, nogil=True)
def _g(a, b, c, d, x, y):
    a = a + b + x
    d = d ^ a
    d = (d >> _U(32)) | (d << _U(32))
    c = c + d
    b = b ^ c
    b = (b >> _U(24)) | (b << _U(40))
    a = a + b + y
    d = d ^ a
    d = (d >> _U(16)) | (d << _U(48))
    c = c + d
    b = b ^ c
    b = (b >> _U(63)) | (b << _U(1))
    return a, b, c, d


@njit(cache=True, nogil=True)
def _round(v, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15):
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 = v
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m0, m1)
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m2, m3)
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m4, m5)
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m6, m7)
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m8, m9)
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m10, m11)
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m12, m13)
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m14, m15)
    return (v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15)


@njit(cache=True, nogil=True)
def _compress(h, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15,
              t, last, iv):
    """BLAKE2b compression F (RFC 7693 3.2) of one 128-byte block; ``h`` is an 8-tuple."""
    h0, h1, h2, h3, h4, h5, h6, h7 = h
    v14 = iv[6]
    if last:
        v14 = ~v14
    v = (h0, h1, h2, h3, h4, h5, h6, h7, iv[0], iv[1], iv[2], iv[3],
         iv[4] ^ t, iv[5], v14, iv[7])
    # Twelve rounds; round r permutes the message words by SIGMA[r mod 10] (RFC 7693 2.7).
    v = _round(v, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15)
    v = _round(v, m14, m10, m4, m8, m9, m15, m13, m6, m1, m12, m0, m2, m11, m7, m5, m3)
    v = _round(v, m11, m8, m12, m0, m5, m2, m15, m13, m10, m14, m3, m6, m7, m1, m9, m4)
    v = _round(v, m7, m9, m3, m1, m13, m12, m11, m14, m2, m6, m5, m10, m4, m0, m15, m8)
    v = _round(v, m9, m0, m5, m7, m2, m4, m10, m15, m14, m1, m11, m12, m6, m8, m3, m13)
    v = _round(v, m2, m12, m6, m10, m0, m11, m8, m3, m4, m13, m7, m5, m15, m14, m1, m9)
    v = _round(v, m12, m5, m1, m15, m14, m13, m4, m10, m0, m7, m6, m3, m9, m2, m8, m11)
    v = _round(v, m13, m11, m7, m14, m12, m1, m3, m9, m5, m0, m15, m4, m8, m6, m2, m10)
    v = _round(v, m6, m15, m14, m9, m11, m3, m0, m8, m12, m2, m13, m7, m1, m4, m10, m5)
    v = _round(v, m10, m2, m8, m4, m7, m6, m1, m5, m15, m11, m9, m14, m3, m12, m13, m0)
    v = _round(v, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15)
    v = _round(v, m14, m10, m4, m8, m9, m15, m13, m6, m1, m12, m0, m2, m11, m7, m5, m3)
    return (h0 ^ v[0] ^ v[8], h1 ^ v[1] ^ v[9], h2 ^ v[2] ^ v[10], h3 ^ v[3] ^ v[11],
            h4 ^ v[4] ^ v[12], h5 ^ v[5] ^ v[13], h6 ^ v[6] ^ v[14], h7 ^ v[7] ^ v[15])


@njit(cache=True, nogil=True)
def _hash_index_and_row(h0, iv, j, r0, r1, r2, r3, r4, r5, r6, r7):
    """BLAKE2b of the 72 bytes ``u64le(j) || row`` (one block); returns the 16-byte digest as 2 words."""
    z = _U(0)
    h = (h0[0], h0[1], h0[2], h0[3], h0[4], h0[5], h0[6], h0[7])
    h = _compress(h, _U(j), r0, r1, r2, r3, r4, r5, r6, r7, z, z, z, z, z, z, z,
                  _U(72), True, iv)
    return h[0], h[1]


_BLOCK = 4096  # rows per parallel work item


@njit(cache=True, nogil=True, parallel=True)
def _blake2b_rows_parallel(rows, h0, iv, out):
    """``out[r] = BLAKE2b(rows[r])[:out.shape[1]]`` for every row of a (n, L) uint8 array.

    ``h0`` comes from :func:`blake2b_initial_state` with the same digest size as
    ``out.shape[1]`` (at most 64).  Rows of any width L ≥ 0 (several blocks if L > 128).
    """
    n, width = rows.shape
    outlen = out.shape[1]
    nblocks = max(1, (width + 127) // 128)
    nwork = (n + _BLOCK - 1) // _BLOCK
    for w in prange(nwork):
        buf = np.zeros(128, np.uint8)
        words = buf.view(np.uint64)
        for r in range(w * _BLOCK, min(n, (w + 1) * _BLOCK)):
            h = (h0[0], h0[1], h0[2], h0[3], h0[4], h0[5], h0[6], h0[7])
            for bi in range(nblocks):
                start = bi * 128
                end = min(width, start + 128)
                buf[:] = 0
                for p in range(start, end):
                    buf[p - start] = rows[r, p]
                h = _compress(h, words[0], words[1], words[2], words[3], words[4], words[5],
                              words[6], words[7], words[8], words[9], words[10], words[11],
                              words[12], words[13], words[14], words[15],
                              _U(end), bi == nblocks - 1, iv)
            for p in range(outlen):
                out[r, p] = np.uint8((h[p >> 3] >> _U(8 * (p & 7))) & _U(255))


@njit(cache=True, nogil=True, parallel=True)
def _blake2b_words_parallel(columns, h0, iv, out):
    """``out[r] = BLAKE2b(columns[0][r] || columns[1][r] || ...)`` over little-endian 64-bit
    words: the same digest as :func:`blake2b_rows` of the rows of ``np.column_stack(columns)``
    viewed as bytes, without building that matrix.  ``columns`` is a numba typed List of
    k read-only 1-D uint64 arrays of one length n."""
    k = len(columns)
    n = columns[0].shape[0]
    outlen = out.shape[1]
    width = 8 * k
    nblocks = max(1, (k + 15) // 16)
    nwork = (n + _BLOCK - 1) // _BLOCK
    for w in prange(nwork):
        m = np.zeros(16, np.uint64)
        lo = w * _BLOCK
        hi = min(n, lo + _BLOCK)
        local = np.zeros((hi - lo, nblocks * 16), np.uint64)   # this block's rows, row-major
        for c in range(k):
            column = columns[c]
            for r in range(lo, hi):
                local[r - lo, c] = column[r]
        for r in range(lo, hi):
            h = (h0[0], h0[1], h0[2], h0[3], h0[4], h0[5], h0[6], h0[7])
            for bi in range(nblocks):
                for t in range(16):
                    m[t] = local[r - lo, bi * 16 + t]
                end = min(width, (bi + 1) * 128)
                h = _compress(h, m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9],
                              m[10], m[11], m[12], m[13], m[14], m[15], _U(end),
                              bi == nblocks - 1, iv)
            for p in range(outlen):
                out[r, p] = np.uint8((h[p >> 3] >> _U(8 * (p & 7))) & _U(255))


def word_columns(columns):
    """A numba typed List of read-only C-contiguous uint64 views of the given 64-bit columns
    (one array type for every column, so that one compiled kernel serves them all)."""
    from numba.typed import List

    out = List()
    for column in columns:
        view = np.ascontiguousarray(column).view(np.uint64).view()
        view.flags.writeable = False
        out.append(view)
    return out


@njit(cache=True, nogil=True)
def bins_from_words(words, nbins):
    """(n, 3) uint32 bins h_k = (word_k * m) >> 32 from (n, 4) uint32 pseudorandom words."""
    n = words.shape[0]
    out = np.empty((n, 3), np.uint32)
    m = _U(nbins)
    for i in range(n):
        for k in range(3):
            out[i, k] = np.uint32((_U(words[i, k]) * m) >> _U(32))
    return out


@njit(cache=True, nogil=True, parallel=True)
def _receiver_oprf_parallel(t_rows, bin_start, bin_element, h0, iv, out):
    """KKRT receiver outputs of one chunk of bins.

    ``t_rows`` (B, 8) uint64: rows t_j of the OT-extension matrix for bins
    ``bin_start .. bin_start+B``; ``bin_element`` (B,) int64: the element in each bin
    (-1: empty).  Writes ``out[r] = H(j, t_j)`` (16 bytes as 2 words, bin order) for
    the occupied bins j = bin_start + r.
    """
    nb = t_rows.shape[0]
    for r in prange(nb):
        if bin_element[r] >= 0:
            a, b = _hash_index_and_row(h0, iv, bin_start + r, t_rows[r, 0], t_rows[r, 1],
                                       t_rows[r, 2], t_rows[r, 3], t_rows[r, 4], t_rows[r, 5],
                                       t_rows[r, 6], t_rows[r, 7])
            out[r, 0] = a
            out[r, 1] = b


@njit(cache=True, nogil=True, parallel=True)
def _sender_oprf_parallel(q_rows, bin_start, offsets, aes_out, words, s_words, h0, iv, out):
    """KKRT sender outputs for the candidates of one chunk of bins (bin order).

    ``offsets`` (B + 1,): bin ``bin_start + r`` holds candidates ``offsets[r]..offsets[r+1]``
    (counted from ``offsets[0]``).  For candidate c in bin j: code C(w_c) = AES_k(w_c) ^ w_c
    over four keys (``aes_out`` (4, nc, 2) words, ``words`` (nc, 2)); the OPRF value
    ``H(j, q_j ^ (C(w_c) & s))`` is written to ``out[c]`` (sequential writes: random
    writes into the send order would cost more than the hash; the caller keeps the map).
    """
    nb = q_rows.shape[0]
    base = np.int64(offsets[0])
    for r in prange(nb):
        j = np.int64(bin_start + r)
        q0, q1, q2, q3 = q_rows[r, 0], q_rows[r, 1], q_rows[r, 2], q_rows[r, 3]
        q4, q5, q6, q7 = q_rows[r, 4], q_rows[r, 5], q_rows[r, 6], q_rows[r, 7]
        for c in range(np.int64(offsets[r]) - base, np.int64(offsets[r + 1]) - base):
            w0 = words[c, 0]
            w1 = words[c, 1]
            x0 = q0 ^ ((aes_out[0, c, 0] ^ w0) & s_words[0])
            x1 = q1 ^ ((aes_out[0, c, 1] ^ w1) & s_words[1])
            x2 = q2 ^ ((aes_out[1, c, 0] ^ w0) & s_words[2])
            x3 = q3 ^ ((aes_out[1, c, 1] ^ w1) & s_words[3])
            x4 = q4 ^ ((aes_out[2, c, 0] ^ w0) & s_words[4])
            x5 = q5 ^ ((aes_out[2, c, 1] ^ w1) & s_words[5])
            x6 = q6 ^ ((aes_out[3, c, 0] ^ w0) & s_words[6])
            x7 = q7 ^ ((aes_out[3, c, 1] ^ w1) & s_words[7])
            a, b = _hash_index_and_row(h0, iv, j, x0, x1, x2, x3, x4, x5, x6, x7)
            out[c, 0] = a
            out[c, 1] = b


@njit(cache=True, nogil=True)
def candidate_words(digests, cand_pos, n):
    """Code inputs w = digest ^ (function << 120) of sender candidates (pos = function * n + e)."""
    nc = cand_pos.shape[0]
    words = np.empty((nc, 2), np.uint64)
    for c in range(nc):
        p = np.int64(cand_pos[c])
        k = p // n
        e = p - k * n
        words[c, 0] = digests[e, 0]
        words[c, 1] = digests[e, 1] ^ (_U(k) << _U(56))
    return words


@njit(cache=True, nogil=True)
def bin_words(digests, bin_element, bin_function):
    """Code inputs w of the receiver's bins (zero for empty bins)."""
    nb = bin_element.shape[0]
    words = np.zeros((nb, 2), np.uint64)
    for r in range(nb):
        e = bin_element[r]
        if e >= 0:
            words[r, 0] = digests[e, 0]
            words[r, 1] = digests[e, 1] ^ (_U(bin_function[r]) << _U(56))
    return words


@njit(cache=True, nogil=True)
def code_rows(aes_out, words, bin_element, rows):
    """Receiver code rows C(w) = AES_k(w) ^ w (512 bits as 8 words); zero for empty bins."""
    nb = words.shape[0]
    for r in range(nb):
        if bin_element[r] < 0:
            for k in range(8):
                rows[r, k] = 0
        else:
            for b in range(4):
                rows[r, 2 * b] = aes_out[b, r, 0] ^ words[r, 0]
                rows[r, 2 * b + 1] = aes_out[b, r, 1] ^ words[r, 1]


@njit(cache=True, nogil=True)
def _swap_stage(a, j, m):
    k = 0
    while k < 64:
        for i in range(k, k + j):
            t = ((a[i] >> _U(j)) ^ a[i + j]) & m
            a[i + j] ^= t
            a[i] ^= t << _U(j)
        k += 2 * j


@njit(cache=True, nogil=True)
def _transpose64(a):
    """In-place transpose of a 64x64 bit matrix held as 64 words (row i = a[i], LSB first)."""
    _swap_stage(a, 32, _U(0x00000000FFFFFFFF))
    _swap_stage(a, 16, _U(0x0000FFFF0000FFFF))
    _swap_stage(a, 8, _U(0x00FF00FF00FF00FF))
    _swap_stage(a, 4, _U(0x0F0F0F0F0F0F0F0F))
    _swap_stage(a, 2, _U(0x3333333333333333))
    _swap_stage(a, 1, _U(0x5555555555555555))


@njit(cache=True, nogil=True, parallel=True)
def _bit_transpose_parallel(src, dst):
    """Transpose a bit matrix: ``src`` (R, C/8) uint8 rows of C bits -> ``dst`` (C, R/8).

    Bit c of a row is bit (c mod 8) of byte c // 8 (least significant bit first).  R and C
    must be multiples of 64 and both arrays C-contiguous.  Works on super-tiles of 8x8
    tiles of 64x64 bits, so that every cache line of ``src`` is read once, whole, and every
    line of ``dst`` written once, whole (power-of-two row strides would otherwise make the
    64 rows of a tile collide in the same cache sets).
    """
    s64 = src.view(np.uint64)
    d64 = dst.view(np.uint64)
    nrb = src.shape[0] // 64
    ncb = s64.shape[1]
    nsr = (nrb + 7) // 8
    nsc = (ncb + 7) // 8
    for st in prange(nsr * nsc):
        srb = (st // nsc) * 8
        scb = (st % nsc) * 8
        rcount = min(8, nrb - srb)
        ccount = min(8, ncb - scb)
        buf = np.empty((8, 8, 64), np.uint64)
        for rl in range(rcount):
            for i in range(64):
                row = (srb + rl) * 64 + i
                for cl in range(ccount):
                    buf[rl, cl, i] = s64[row, scb + cl]
        for rl in range(rcount):
            for cl in range(ccount):
                _transpose64(buf[rl, cl])
        for cl in range(ccount):
            for i in range(64):
                drow = (scb + cl) * 64 + i
                for rl in range(rcount):
                    d64[drow, srb + rl] = buf[rl, cl, i]


@njit(cache=True, nogil=True)
def cuckoo_insert(positions, nbins, max_kicks, seed):
    """Stash-less cuckoo hashing of n elements with 3 candidate bins each.

    ``positions`` (n, 3) uint32: the bins h_1(x), h_2(x), h_3(x).  Returns
    ``(bin_element, bin_function, failed)``: the element in each bin (-1: empty), which of
    the three functions placed it, and -1 or the index of an element that could not be
    placed within ``max_kicks`` evictions (random walk; the walk's coin is a xorshift
    seeded by ``seed``, which only affects placement, never the transcript).
    """
    n = positions.shape[0]
    bin_element = np.full(nbins, -1, np.int32)
    bin_function = np.zeros(nbins, np.int8)
    state = _U(seed) | _U(1)
    for e in range(n):
        cur = e
        placed = False
        last_bin = -1
        for _kick in range(max_kicks):
            for k in range(3):
                b = np.int64(positions[cur, k])
                if bin_element[b] < 0:
                    bin_element[b] = cur
                    bin_function[b] = k
                    placed = True
                    break
            if placed:
                break
            state ^= state << _U(13)
            state ^= state >> _U(7)
            state ^= state << _U(17)
            k = np.int64(state % _U(3))
            b = np.int64(positions[cur, k])
            if b == last_bin:
                k = (k + 1) % 3
                b = np.int64(positions[cur, k])
            victim = np.int64(bin_element[b])
            bin_element[b] = cur
            bin_function[b] = k
            last_bin = b
            cur = victim
        if not placed:
            return bin_element, bin_function, cur
    return bin_element, bin_function, -1


@njit(cache=True, nogil=True)
def bucket_candidates(positions, nbins):
    """Counting sort of the 3n (element, function) candidates by bin.

    Returns ``(cand_pos, offsets, send_index)``: candidates in bin order as
    ``function * n + element``; ``offsets`` (nbins + 1) so that bin b's candidates are
    ``offsets[b]:offsets[b+1]``; and ``send_index[p]`` = the bin-order index of candidate
    p (the inverse map, filled in the same pass).
    """
    n = positions.shape[0]
    offsets = np.zeros(nbins + 1, np.uint32)
    for e in range(n):
        for k in range(3):
            offsets[np.int64(positions[e, k]) + 1] += 1
    for b in range(nbins):
        offsets[b + 1] += offsets[b]
    fill = offsets[:nbins].copy()
    cand_pos = np.empty(3 * n, np.uint32)
    send_index = np.empty(3 * n, np.uint32)
    for k in range(3):
        for e in range(n):
            b = np.int64(positions[e, k])
            i = fill[b]
            fill[b] = i + 1
            p = k * n + e
            cand_pos[i] = np.uint32(p)
            send_index[p] = i
    return cand_pos, offsets, send_index


@njit(cache=True, nogil=True)
def first_duplicate(digests):
    """First repeated row of a (n, 2) uint64 array: ``(earlier, later)`` or ``(-1, -1)``.

    Open addressing on the (pseudorandom) first word; 4-byte slots and batched table reads
    keep the cache misses few and overlapping.
    """
    n = digests.shape[0]
    size = 16
    while size < 2 * n:
        size *= 2
    mask = np.int64(size - 1)
    table = np.zeros(size, np.uint32)   # index + 1, 0 = empty
    slots = np.empty(_PROBE_BATCH, np.int64)
    seen = np.empty(_PROBE_BATCH, np.uint32)
    for lo in range(0, n, _PROBE_BATCH):
        hi = min(n, lo + _PROBE_BATCH)
        for t in range(hi - lo):
            slots[t] = np.int64(digests[lo + t, 0] & _U(mask))
        for t in range(hi - lo):
            seen[t] = table[slots[t]]
        for t in range(hi - lo):
            i = lo + t
            slot = slots[t]
            while True:
                j = np.int64(table[slot]) - 1
                if j < 0:
                    table[slot] = np.uint32(i + 1)
                    break
                if digests[j, 0] == digests[i, 0] and digests[j, 1] == digests[i, 1]:
                    return j, i
                slot = (slot + 1) & mask
    return -1, -1


@njit(cache=True, nogil=True)
def build_value_table(values, occupied):
    """Open-addressing index over the OPRF values of occupied bins (``occupied[i] >= 0``).

    Slot = low bits of the first word (the values are pseudorandom); an entry is
    ``(first word >> 32) << 32 | (index + 1)`` (0: empty), so a probe reads one 8-byte
    entry and compares 32 more key bits before touching ``values``.
    """
    n = values.shape[0]
    count = 0
    for i in range(n):
        if occupied[i] >= 0:
            count += 1
    size = 16
    while size < 2 * count:
        size *= 2
    mask = np.int64(size - 1)
    table = np.zeros(size, np.uint64)
    high = _U(0xFFFFFFFF00000000)
    for i in range(n):
        if occupied[i] < 0:
            continue
        slot = np.int64(values[i, 0] & _U(mask))
        while table[slot] != 0:
            slot = (slot + 1) & mask
        table[slot] = (values[i, 0] & high) | _U(i + 1)
    return table


_PROBE_BATCH = 32


@njit(cache=True, nogil=True)
def probe_values(table, values, received, value_bytes, offset, matched_by, out_pos, out_idx):
    """Look the received truncated values up in the local values.

    ``received`` (count * value_bytes,) uint8; a hit compares all ``value_bytes`` bytes of
    the local 16-byte value.  Records the match in ``out_pos``/``out_idx`` (index into
    ``values``) and marks it in ``matched_by`` (position + 1).  Returns the number of
    matches, or ``-(i + 1)`` if received value i hits a local value that already matched
    (a repeated value: the peer misbehaved).

    Probes run in batches: the table entries of 32 values are loaded in a branch-free
    loop (independent cache misses overlap), then each probe is resolved.
    """
    mask = np.int64(table.shape[0] - 1)
    high = _U(0xFFFFFFFF00000000)
    count = received.shape[0] // value_bytes
    found = 0
    keys = np.empty(_PROBE_BATCH, np.uint64)
    slots = np.empty(_PROBE_BATCH, np.int64)
    first = np.empty(_PROBE_BATCH, np.uint64)
    for lo in range(0, count, _PROBE_BATCH):
        hi = min(count, lo + _PROBE_BATCH)
        for t in range(hi - lo):
            base = (lo + t) * value_bytes
            w = _U(0)
            for k in range(8):
                w |= _U(received[base + k]) << _U(8 * k)
            keys[t] = w
            slots[t] = np.int64(w & _U(mask))
        for t in range(hi - lo):
            first[t] = table[slots[t]]
        for t in range(hi - lo):
            if first[t] == 0:
                continue  # empty slot: certainly no match
            i = lo + t
            base = i * value_bytes
            w = keys[t]
            slot = slots[t]
            while table[slot] != 0:
                entry = table[slot]
                if (entry & high) == (w & high):
                    e = np.int64(entry & _U(0xFFFFFFFF)) - 1
                    same = values[e, 0] == w
                    if same:
                        for k in range(8, value_bytes):
                            byte = np.uint8((values[e, 1] >> _U(8 * (k - 8))) & _U(255))
                            if byte != received[base + k]:
                                same = False
                                break
                    if same:
                        if matched_by[e] != 0:
                            return -(i + 1)
                        matched_by[e] = offset + i + 1
                        out_pos[found] = offset + i
                        out_idx[found] = e
                        found += 1
                        break
                slot = (slot + 1) & mask
    return found

@njit(cache=True, nogil=True)
def fisher_yates(randoms):
    """A uniformly random permutation of range(n) from n random 64-bit words (bias < n / 2^64)."""
    n = randoms.shape[0]
    perm = np.arange(n, dtype=np.int64)
    for i in range(n - 1, 0, -1):
        j = np.int64(randoms[i] % _U(i + 1))
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp
    return perm


@njit(cache=True, nogil=True)
def gather_prefixes(values, index, value_bytes, out):
    """``out`` (len(index) * value_bytes,) = the first value_bytes bytes of values[index[i]]."""
    for i in range(index.shape[0]):
        r = np.int64(index[i])
        base = i * value_bytes
        lo = values[r, 0]
        hi = values[r, 1]
        for k in range(value_bytes):
            if k < 8:
                out[base + k] = np.uint8((lo >> _U(8 * k)) & _U(255))
            else:
                out[base + k] = np.uint8((hi >> _U(8 * (k - 8))) & _U(255))


def _serialized(kernel):
    """Launch a parallel kernel under the module lock (see _PARALLEL_LAUNCH)."""
    def launch(*args):
        with _PARALLEL_LAUNCH:
            return kernel(*args)
    launch.__name__ = kernel.__name__.strip("_").replace("_parallel", "")
    launch.__doc__ = kernel.__doc__
    launch.kernel = kernel
    return launch


blake2b_rows = _serialized(_blake2b_rows_parallel)
blake2b_words = _serialized(_blake2b_words_parallel)
receiver_oprf = _serialized(_receiver_oprf_parallel)
sender_oprf = _serialized(_sender_oprf_parallel)
bit_transpose = _serialized(_bit_transpose_parallel)


def warm_up() -> None:
    """Call every kernel once on tiny inputs of the types a run uses.

    A process pays ~0.4 s for numba's first dispatch and ~20 ms per cached kernel; a
    caller can pay that in a background thread while it reads its input (the CLI does).
    """
    u64, u32 = np.uint64, np.uint32
    n, nbins = 2, 128
    digests = np.zeros((n, 16), np.uint8)
    h0 = blake2b_initial_state(16)
    column = np.arange(n, dtype=u64)
    blake2b_words(word_columns([column]), h0, BLAKE2B_IV, digests)
    digests = digests.view(u64)
    first_duplicate(digests)
    positions = bins_from_words(np.zeros((n, 4), u32), nbins)
    bin_element, bin_function, _ = cuckoo_insert(positions, nbins, 10, 1)
    cand_pos, offsets, send_index = bucket_candidates(positions, nbins)
    fisher_yates(np.zeros(n, u64))
    rows = np.zeros((nbins, 64), np.uint8)
    columns = np.zeros((512, nbins // 8), np.uint8)
    bit_transpose(columns, rows)
    bit_transpose(rows, columns)
    flat = np.zeros(4 * nbins * 16, np.uint8)
    aes = flat.view(u64).reshape(4, nbins, 2)
    words = bin_words(digests, bin_element, bin_function)
    code_rows(aes, words, bin_element, rows.view(u64))
    values = np.zeros((nbins, 2), u64)
    receiver_oprf(rows.view(u64), 0, bin_element, h0, BLAKE2B_IV, values)
    cwords = candidate_words(digests, cand_pos, n)
    caes = np.zeros(4 * cand_pos.size * 16, np.uint8).view(u64).reshape(4, cand_pos.size, 2)
    s_words = np.zeros(64, np.uint8).view(u64)
    sender_oprf(rows.view(u64), 0, offsets, caes, cwords, s_words, h0, BLAKE2B_IV,
                np.zeros((cand_pos.size, 2), u64))
    table = build_value_table(values, bin_element)
    received = np.frombuffer(bytes(16), np.uint8)
    probe_values(table, values, received, 8, 0, np.zeros(nbins, np.int64),
                 np.zeros(2, np.int64), np.zeros(2, np.int64))
    gather_prefixes(values, send_index, 8, np.zeros(8 * send_index.size, np.uint8))
