"""Silent subfield VOLE for the RR22 PSI: numba kernels and the pure steps of both parties.

A (subfield) vector-OLE of length m gives the sender S a global key Delta in GF(2^128) and a
vector B in GF(2^128)^m, and the receiver R vectors A in {0,1}^(8q)^m (q-byte strings,
embedded in GF(2^128) as polynomials of degree < 8q) and C in GF(2^128)^m with

    C = B + A·Delta        (characteristic 2: + is XOR)

(RR22 Section 4, Figure 7, after Boyle, Couteau, Gilboa, Ishai, "Compressing vector OLE",
CCS 2018, and Boyle et al., "Efficient pseudorandom correlation generators: silent OT
extension and more", CRYPTO 2019).  Every map below is GF(2)-linear, so a q-byte A works
exactly like a subfield element: the correction A - P costs 8q bits per entry instead of
128 (RR22's low-communication instantiation, q·8 >= lambda + log2(n_R n_S)).

Construction ("silent": communication sublinear in m), per chunk of at most 2^20 outputs:

1. Dual LPN with an expand-accumulate code (Boyle, Couteau, Gilboa, Ishai, Kohl, Resch,
   Scholl, "Correlated pseudorandomness from expand-accumulate codes", CRYPTO 2022):
   G = B_exp · A_acc maps a noise vector of length N >= 5m to m outputs: first the
   accumulator (prefix XOR, A_acc upper-triangular all-ones), then each output XORs
   ``EA_WEIGHT`` = 21 positions of the accumulated vector, sampled by SplitMix64 from a
   seed derived from the session (the code is public; see :func:`_column`).  R's A is
   G·e for a sparse noise vector e; the shares are G applied to sparse-VOLE shares.
2. Regular noise: t blocks of 2^d positions (N = t·2^d), one non-zero entry beta_j (a
   uniform q-byte string) at a uniform position alpha_j of each block.
3. Sparse VOLE per block (single-point VOLE, Boyle et al. 2019 Section 4; Weng, Yang, Katz,
   Wang, "Wolverine", S&P 2021, Figure 5): S expands a GGM tree (Goldreich-Goldwasser-Micali)
   of depth d with the PRG G(s) = (pi_0(s) xor s, pi_1(s) xor s), pi_b = AES-128 under two
   keys derived from the session (the fixed-key construction analysed by Guo, Katz, Wang,
   Yu, "Efficient and secure multiparty computation from fixed-key block ciphers", S&P
   2020); R learns every leaf but alpha's through d 1-out-of-2 OTs carrying the XOR of each
   level's left or right nodes; with one base VOLE (c_j = b_j + beta_j·Delta) S sends
   b_j xor (XOR of all leaves), from which R obtains w_alpha = v_alpha + beta_j·Delta.
4. Base VOLEs by COPE (Keller, Orsini, Scholl, "MASCOT", CCS 2016, Section 4.1, "correlated
   oblivious product evaluation"): S is the receiver of 128 base OTs with choice bits
   Delta_i; for the j-th VOLE R sends u_ij = PRG(k_i^0)_j xor PRG(k_i^1)_j xor beta_j, and
   S's q_ij = PRG(k_i^Delta_i)_j xor Delta_i·u_ij = t_ij xor Delta_i·beta_j, so that
   sum_i x^i q_ij = sum_i x^i t_ij + beta_j·Delta.
5. The GGM OTs: IKNP OT extension (Ishai, Kilian, Nissim, Petrank, CRYPTO 2003) on the same
   128 base OTs (separate PRG streams), hashed with BLAKE2b into random OTs (R's choices are
   the tree-path bits it needs, so no derandomisation is needed).

The 128 base OTs are the Chou-Orlandi OTs of :mod:`protocols.psi.primitives`.

Security parameters (computational kappa = 128): noise t >= ``NOISE_MIN`` = 552 per chunk.
libOTe estimates the relative minimum distance of the dual of an EA code with expander
weight 21 and N = 5m at delta = 0.15 ("ExAcc21"), and a linear test then has bias at most
(1 - delta)^t for noise whose entries may be zero in a coordinate (each bit of a uniform
beta is zero half the time; the binary-noise bound would be (1 - 2 delta)^t), so
t >= 128 / -log2(0.85) = 546 gives 128 bits against linear tests; we round up to 552 and
use more when 5m / 2^d rounds (t = ceil(5m / 2^d)).  For a chunk with t >= 2m the output is
even statistically uniform (G restricted to the noise positions has full rank w.h.p.).
These are estimates of LPN hardness, as in the cited works, not proofs.

Field: GF(2^128) = GF(2)[x] / (x^128 + x^7 + x^2 + x + 1); an element is two little-endian
64-bit words, bit i the coefficient of x^i.  Multiplication is checked against the GHASH of
AES-GCM in OpenSSL (reflected bit order) in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from . import kernels
from .primitives import AesEcb, ColumnPrg, derive

_U = np.uint64
_R = np.uint64(0x87)   # x^7 + x^2 + x + 1

EA_SCALE = 5             #: N >= 5 m (the EA code's rate 1/5, libOTe's "ExAcc" configuration)
EA_WEIGHT = 21           #: expander weight
NOISE_MIN = 552          #: t >= 128 / -log2(1 - 0.15), rounded up to a multiple of 8
CHUNK_OUTPUTS = 1 << 20  #: outputs per independent LPN instance (bounds memory and tree sizes)
BASE_OTS = 128           #: Delta has 128 bits: one base OT per bit


# -- GF(2^128) -----------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _times_x(lo, hi):
    carry = hi >> _U(63)
    hi = (hi << _U(1)) | (lo >> _U(63))
    lo = lo << _U(1)
    if carry:
        lo ^= _R
    return lo, hi


@njit(cache=True, nogil=True)
def gf128_mul(a0, a1, b0, b1):
    """a·b in GF(2^128) (shift-and-add; for tables, tests and small inputs)."""
    r0 = _U(0)
    r1 = _U(0)
    for i in range(128):
        bit = (b0 >> _U(i)) & _U(1) if i < 64 else (b1 >> _U(i - 64)) & _U(1)
        if bit:
            r0 ^= a0
            r1 ^= a1
        a0, a1 = _times_x(a0, a1)
    return r0, r1


@njit(cache=True, nogil=True)
def delta_tables(d0, d1, nbytes):
    """T[b, v] = Delta · (v · x^(8b)) for the first ``nbytes`` bytes: (nbytes, 256, 2)."""
    t = np.zeros((nbytes, 256, 2), np.uint64)
    base0, base1 = d0, d1
    for b in range(nbytes):
        powers = np.empty((8, 2), np.uint64)
        p0, p1 = base0, base1
        for bit in range(8):
            powers[bit, 0] = p0
            powers[bit, 1] = p1
            p0, p1 = _times_x(p0, p1)
        base0, base1 = p0, p1          # Delta · x^(8(b+1))
        for v in range(1, 256):
            low = v & (v - 1)
            bit = 0
            while not (v >> bit) & 1:
                bit += 1
            t[b, v, 0] = t[b, low, 0] ^ powers[bit, 0]
            t[b, v, 1] = t[b, low, 1] ^ powers[bit, 1]
    return t


@njit(cache=True, nogil=True, parallel=True)
def _mul_tables_parallel(tables, values, add, out):
    """out[i] = add[i] xor Delta·values[i] for q-byte values (q = tables.shape[0])."""
    n = values.shape[0]
    nbytes = tables.shape[0]
    for i in prange(n):
        a = add[i, 0]
        b = add[i, 1]
        for k in range(nbytes):
            word = values[i, 0] if k < 8 else values[i, 1]
            v = np.int64((word >> _U(8 * (k & 7))) & _U(255))
            a ^= tables[k, v, 0]
            b ^= tables[k, v, 1]
        out[i, 0] = a
        out[i, 1] = b


def mul_add(tables: np.ndarray, values: np.ndarray, add: np.ndarray) -> np.ndarray:
    """(n, 2): add xor Delta·values (Delta fixed by ``tables``)."""
    out = np.empty_like(add)
    if values.shape[0]:
        with kernels._PARALLEL_LAUNCH:
            _mul_tables_parallel(tables, values, add, out)
    return out


@njit(cache=True, nogil=True)
def cope_combine(q):
    """(T, 2): sum_i x^i · q[i, j] for q (128, T, 2) (Horner's rule from i = 127 down)."""
    count = q.shape[1]
    out = np.zeros((count, 2), np.uint64)
    for j in range(count):
        a = _U(0)
        b = _U(0)
        for i in range(q.shape[0] - 1, -1, -1):
            a, b = _times_x(a, b)
            a ^= q[i, j, 0]
            b ^= q[i, j, 1]
        out[j, 0] = a
        out[j, 1] = b
    return out


def to_words(data: np.ndarray, nbytes: int) -> np.ndarray:
    """(..., nbytes) uint8 -> (..., 2) uint64 (zero-extended little-endian)."""
    shape = data.shape[:-1]
    out = np.zeros(shape + (16,), np.uint8)
    out[..., :nbytes] = data
    return out.view(np.uint64).reshape(shape + (2,))


def to_bytes(words: np.ndarray, nbytes: int) -> np.ndarray:
    """(..., 2) uint64 -> (..., nbytes) uint8 (the low bytes)."""
    return np.ascontiguousarray(np.ascontiguousarray(words).view(np.uint8).reshape(words.shape[:-1] + (16,))[..., :nbytes])


# -- parameters ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Chunk:
    outputs: int    #: m_c
    depth: int      #: d: each noise block has 2^d positions
    trees: int      #: t: noise entries (GGM trees)

    @property
    def length(self) -> int:
        return self.trees << self.depth

    @classmethod
    def for_outputs(cls, outputs: int) -> Chunk:
        """d = floor(log2(5 m / t_min)) (at least 1), t = max(t_min, ceil(5 m / 2^d))."""
        ratio = EA_SCALE * outputs / NOISE_MIN
        depth = max(1, int(math.floor(math.log2(ratio)))) if ratio >= 2 else 1
        trees = max(NOISE_MIN, math.ceil(EA_SCALE * outputs / (1 << depth)))
        return cls(outputs, depth, trees)


@dataclass(frozen=True)
class VoleParams:
    """Shape of one VOLE run: chunks, base VOLEs (one per tree), GGM OTs (one per tree level)."""

    length: int           #: m
    value_bytes: int      #: q, bytes of an A entry
    chunks: tuple[Chunk, ...]

    @classmethod
    def for_length(cls, length: int, value_bytes: int) -> VoleParams:
        if not 1 <= value_bytes <= 16:
            raise ValueError(f"VOLE value bytes: expected 1..16, found {value_bytes}")
        sizes = [CHUNK_OUTPUTS] * (length // CHUNK_OUTPUTS)
        if length % CHUNK_OUTPUTS or not sizes:
            sizes.append(length % CHUNK_OUTPUTS or length)
        return cls(length, value_bytes, tuple(Chunk.for_outputs(s) for s in sizes))

    @property
    def noise(self) -> int:
        return sum(c.trees for c in self.chunks)

    @property
    def ots(self) -> int:
        return sum(c.trees * c.depth for c in self.chunks)

    @property
    def ots_padded(self) -> int:
        return -(-self.ots // 128) * 128

    @property
    def setup_bytes(self) -> int:
        """R -> S: the IKNP matrix U (128 x M bits) and the COPE corrections (128 x T x q)."""
        return BASE_OTS * self.ots_padded // 8 + BASE_OTS * self.noise * self.value_bytes

    @property
    def reply_bytes(self) -> int:
        """S -> R: two masked level sums per GGM OT and one leaf correction per tree."""
        return 32 * self.ots + 16 * self.noise


# -- PRGs and hashes -----------------------------------------------------------------------

def keystream(key: bytes, nbytes: int) -> np.ndarray:
    """``nbytes`` of AES-128-CTR under ``key`` (one stream per key)."""
    out = np.empty(max(nbytes, 0) + 16, np.uint8)
    ColumnPrg([key]).fill(out[None, :nbytes] if nbytes else out[None, :0])
    return out[:nbytes]


def ot_hash(context: bytes, index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """H(j, row) = BLAKE2b-128(salt from the context)(u64le(j) || row) for (M, 16) rows: (M, 2)."""
    n = rows.shape[0]
    data = np.empty((n, 24), np.uint8)
    data[:, :8] = index.astype("<u8").view(np.uint8).reshape(n, 8)
    data[:, 8:] = rows.reshape(n, 16)
    out = np.empty((n, 16), np.uint8)
    if n:
        h0 = kernels.blake2b_initial_state(16, salt=derive(context, b"sc-psi-iknp-salt", 16),
                                           person=b"sc-psi-iknp")
        kernels.blake2b_rows(data, h0, kernels.BLAKE2B_IV, out)
    return out.view(np.uint64)


class Ggm:
    """The PRG of the GGM trees: G(s) = (pi_0(s) xor s, pi_1(s) xor s), pi_b = AES under keys
    derived from the session context."""

    def __init__(self, context: bytes) -> None:
        self._aes = [AesEcb(derive(context, b"sc-psi-ggm", 16, bytes([b]))) for b in (0, 1)]

    def pi(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pi_0(s), pi_1(s)) for (..., 2) uint64 nodes, same shape (G(s) = pi_b(s) xor s)."""
        flat = np.ascontiguousarray(nodes)
        out = []
        for aes in self._aes:
            buf = np.empty(flat.size * 8 + 16, np.uint8)
            aes.encrypt_into(flat, buf)
            out.append(buf[: flat.size * 8].view(np.uint64).reshape(nodes.shape))
        return out[0], out[1]


@njit(cache=True, nogil=True, parallel=True)
def _ggm_level_parallel(parent, aes0, aes1, child, sums):
    """Children of one tree level: child[2j] = pi_0(s_j) xor s_j, child[2j+1] = pi_1(s_j) xor s_j
    (``aes0``/``aes1`` hold pi_b(s)); ``sums[i, side]`` = XOR of tree i's children on that side."""
    for i in prange(parent.shape[0]):
        a0 = _U(0)
        a1 = _U(0)
        b0 = _U(0)
        b1 = _U(0)
        for j in range(parent.shape[1]):
            l0 = aes0[i, j, 0] ^ parent[i, j, 0]
            l1 = aes0[i, j, 1] ^ parent[i, j, 1]
            r0 = aes1[i, j, 0] ^ parent[i, j, 0]
            r1 = aes1[i, j, 1] ^ parent[i, j, 1]
            child[i, 2 * j, 0] = l0
            child[i, 2 * j, 1] = l1
            child[i, 2 * j + 1, 0] = r0
            child[i, 2 * j + 1, 1] = r1
            a0 ^= l0
            a1 ^= l1
            b0 ^= r0
            b1 ^= r1
        sums[i, 0, 0] = a0
        sums[i, 0, 1] = a1
        sums[i, 1, 0] = b0
        sums[i, 1, 1] = b1


class Levels:
    """Preallocated buffers for expanding t trees level by level (two alternating node
    arrays of the final size and the two AES outputs): no allocation per level, and one
    instance serves every VOLE chunk of the same shape (fresh memory costs page faults)."""

    def __init__(self, trees: int, depth: int) -> None:
        leaves = trees << depth
        self._nodes = [np.empty((leaves, 2), np.uint64), np.empty((leaves, 2), np.uint64)]
        half = max(1, leaves // 2)
        self._aes = [np.empty(half * 16 + 16, np.uint8), np.empty(half * 16 + 16, np.uint8)]
        self.trees = trees
        self._turn = 0

    def next(self, ggm: Ggm, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Children (t, 2w, 2) of ``level`` (t, w, 2) and the per-side sums (t, 2, 2)."""
        t, width = level.shape[0], level.shape[1]
        flat = level.reshape(-1, 2)
        pis = []
        for aes, buf in zip(ggm._aes, self._aes):
            aes.encrypt_into(flat, buf)
            pis.append(buf[: flat.size * 8].view(np.uint64).reshape(t, width, 2))
        out = self._nodes[self._turn]
        self._turn ^= 1
        child = out[: t * 2 * width].reshape(t, 2 * width, 2)
        sums = np.empty((t, 2, 2), np.uint64)
        with kernels._PARALLEL_LAUNCH:
            _ggm_level_parallel(level, pis[0], pis[1], child, sums)
        return child, sums


def ggm_sender(ggm: Ggm, roots: np.ndarray, depth: int, levels: Levels | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full trees: (leaves (t, 2^d, 2), level sums (t, d, 2 sides, 2)).  The XOR of a tree's
    leaves is the XOR of its two last-level sums."""
    t = roots.shape[0]
    levels = levels or Levels(t, depth)
    level = np.ascontiguousarray(roots).reshape(t, 1, 2)
    sums = np.empty((t, depth, 2, 2), np.uint64)
    for lv in range(depth):
        level, sums[:, lv] = levels.next(ggm, level)
    return level, sums


def ggm_receiver(ggm: Ggm, alpha: np.ndarray, depth: int, known_sums: np.ndarray,
                 levels: Levels | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Leaves of every tree except the punctured one (zero there): (t, 2^d, 2), and the XOR
    of each tree's known leaves (t, 2).

    ``known_sums`` (t, d, 2): the XOR of the level's nodes on the side off the path to alpha
    (the OT output)."""
    t = alpha.shape[0]
    rows = np.arange(t)
    levels = levels or Levels(t, depth)
    bit = (alpha >> (depth - 1)) & 1
    level = np.zeros((t, 2, 2), np.uint64)
    level[rows, 1 - bit] = known_sums[:, 0]
    path = bit.copy()
    total = known_sums[:, 0].copy()   # XOR of the known nodes of the current level
    for lv in range(1, depth):
        level, sums = levels.next(ggm, level)   # the path node's children are garbage
        bit = (alpha >> (depth - 1 - lv)) & 1
        side = 1 - bit
        sibling = 2 * path + side
        # the XOR of the known nodes on that side, less the garbage at the sibling's place
        garbage = level[rows, sibling] ^ level[rows, 2 * path + bit]
        known = sums[rows, side] ^ level[rows, sibling]
        level[rows, sibling] = known_sums[:, lv] ^ known
        level[rows, 2 * path + bit] = 0
        total = sums[:, 0] ^ sums[:, 1] ^ garbage ^ level[rows, sibling]
        path = 2 * path + bit
    return level, total


# -- expand-accumulate code ----------------------------------------------------------------

def ea_seed(context: bytes, index: int) -> int:
    """The seed of chunk ``index``'s expander, from the session context (public to both)."""
    return int.from_bytes(derive(context, b"sc-psi-ea", 8, index.to_bytes(4, "little")), "little")


@njit(cache=True, nogil=True, inline="always")
def _column(seed, r, k, length):
    """Column of the k-th one of output r's expander row: SplitMix64 (Steele, Lea, Flood,
    "Fast splittable pseudorandom number generators", OOPSLA 2014) of (seed, r, k), scaled to
    [0, N).  The code is public: its randomness need not be secret, only fixed in advance
    and independent of the noise, as for the random expander of the EA paper."""
    z = _U(seed) + (_U(r) * _U(EA_WEIGHT) + _U(k) + _U(1)) * _U(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U(30))) * _U(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U(27))) * _U(0x94D049BB133111EB)
    z = z ^ (z >> _U(31))
    return np.int64(((z >> _U(32)) * _U(length)) >> _U(32))


@njit(cache=True, nogil=True)
def ea_columns(seed, outputs, length):
    """(outputs, EA_WEIGHT): the expander's columns of every output (for tests and references)."""
    out = np.empty((outputs, EA_WEIGHT), np.int64)
    for r in range(outputs):
        for k in range(EA_WEIGHT):
            out[r, k] = _column(seed, r, k, length)
    return out


@njit(cache=True, nogil=True)
def accumulate(x):
    """In place: x[i] ^= x[i-1] for i = 1 .. N-1 (the accumulator A_acc)."""
    a = x[0, 0]
    b = x[0, 1]
    for i in range(1, x.shape[0]):
        a ^= x[i, 0]
        b ^= x[i, 1]
        x[i, 0] = a
        x[i, 1] = b


@njit(cache=True, nogil=True, parallel=True)
def _expand_parallel(x, seed, out):
    """out[r] = XOR over k of x[column(r, k)] (the expander B_exp)."""
    length = x.shape[0]
    for r in prange(out.shape[0]):
        a = _U(0)
        b = _U(0)
        for k in range(EA_WEIGHT):
            p = _column(seed, r, k, length)
            a ^= x[p, 0]
            b ^= x[p, 1]
        out[r, 0] = a
        out[r, 1] = b


@njit(cache=True, nogil=True, parallel=True)
def _expand_regular_parallel(prefix, alpha, depth, seed, length, out):
    """G·e for regular noise without materialising e: after the accumulator, entry p is the
    XOR of the noise values at positions <= p, i.e. prefix[s] with s = (p >> d) + [alpha of
    p's block <= p mod 2^d] (one noise entry per block of 2^d positions)."""
    low = np.int64((1 << depth) - 1)
    for r in prange(out.shape[0]):
        a = _U(0)
        b = _U(0)
        for k in range(EA_WEIGHT):
            p = _column(seed, r, k, length)
            block = p >> depth
            s = block + (1 if (p & low) >= alpha[block] else 0)
            a ^= prefix[s, 0]
            b ^= prefix[s, 1]
        out[r, 0] = a
        out[r, 1] = b


def ea_encode(x: np.ndarray, seed: int, outputs: int) -> np.ndarray:
    """G·x for a noise-length vector x (N, 2) (overwritten: accumulated in place)."""
    accumulate(x)
    out = np.empty((outputs, 2), np.uint64)
    with kernels._PARALLEL_LAUNCH:
        _expand_parallel(x, _U(seed), out)
    return out


def ea_encode_regular(alpha: np.ndarray, values: np.ndarray, depth: int, seed: int, outputs: int) -> np.ndarray:
    """G·e for the regular noise e with values[j] at position j·2^d + alpha[j]."""
    prefix = np.zeros((values.shape[0] + 1, 2), np.uint64)
    prefix[1:] = np.bitwise_xor.accumulate(values, axis=0)
    out = np.empty((outputs, 2), np.uint64)
    with kernels._PARALLEL_LAUNCH:
        _expand_regular_parallel(prefix, alpha.astype(np.int64), depth, _U(seed),
                                 alpha.shape[0] << depth, out)
    return out


def warm_up() -> None:
    gf128_mul(_U(1), _U(0), _U(2), _U(0))
    tables = delta_tables(_U(3), _U(0), 2)
    values = np.zeros((2, 2), np.uint64)
    mul_add(tables, values, values)
    cope_combine(np.zeros((128, 1, 2), np.uint64))
    x = np.zeros((4, 2), np.uint64)
    ea_encode(x, 1, 2)
    ea_encode_regular(np.zeros(2, np.int64), np.zeros((2, 2), np.uint64), 1, 1, 2)
    ea_columns(_U(1), 1, 4)
    ggm = Ggm(bytes(32))
    ggm_receiver(ggm, np.zeros(2, np.int64), 2, ggm_sender(ggm, np.zeros((2, 2), np.uint64), 2)[1][:, :, 1])
    Levels(1, 1)
