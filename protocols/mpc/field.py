"""Arithmetic in the prime field GF(p), p = 2^89 - 1, vectorised with numba.

Pure and deterministic: no randomness of its own, no network.

Representation.  A *field array* is a ``uint64`` NumPy array whose last axis has
length 2: ``x[..., 0]`` holds the low 64 bits and ``x[..., 1]`` the high 25 bits of a
canonical value in [0, p).  Everything before the last axis is the array's shape, so
``x[perm]``, ``x[lo:hi]``, ``np.concatenate`` and ``reshape`` work as for any NumPy
array.  The kernels multiply through three 30-bit limbs (products of limbs fit in 64
bits) and reduce with 2^89 = 1 (mod p); they are checked against Python's integers in
tests/unit/mpc/test_mpc_field.py.  MPyC's own field arrays hold one Python ``int``
per element, about twenty times slower for this protocol's sizes.

Why p = 2^89 - 1 (a Mersenne prime):
- every input value x satisfies |x| <= 2^62 - 1 (a public bound checked on input),
  so a difference d = x_A - x_B satisfies |d| < 2^63, and d - j for any tolerance
  offset |j| <= 4096 satisfies |d - j| < 2^64 < p: d - j = 0 in GF(p) iff d = j
  over the integers.  The range checks are therefore exact, never wrap around.
- a sum of at most 2^26 values with |x| < 2^62 is below 2^88 = p/2 in magnitude: the
  job's charge sums open to the exact integer (``protocols.mpc.params.MAX_PAIRS``).
- 89 bits fit in 12 bytes on the wire.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from protocols.mpc.errors import MalformedMessageError

P = (1 << 89) - 1
ELEMENT_BYTES = 12
RANDOM_BYTES = 12
"""Random bytes per field element: 89 uniform bits are a uniform value in [0, 2^89);
reduced mod p = 2^89 - 1 only 2^89 - 1 itself moves (to 0), a statistical distance of
2^-89 from uniform."""

# Lagrange coefficients at 0 for the share points x = 1 (A), 2 (B), 3 (H).
LAGRANGE_DEG2 = (3, P - 3, 1)
"""Reconstruct a degree-2 sharing from all three shares: s = 3 s_A - 3 s_B + s_H."""

_M64 = (1 << 64) - 1
_U64 = np.uint64
_HIGH_LIMIT = 1 << 25

# numba: every constant a uint64, so that no expression is promoted to float64
_K_M25 = np.uint64((1 << 25) - 1)
_K_M29 = np.uint64((1 << 29) - 1)
_K_M30 = np.uint64((1 << 30) - 1)
_K_M64 = np.uint64(_M64)
_K_0 = np.uint64(0)
_K_1 = np.uint64(1)
_K_2 = np.uint64(2)
_K_4 = np.uint64(4)
_K_25 = np.uint64(25)
_K_29 = np.uint64(29)
_K_30 = np.uint64(30)
_K_60 = np.uint64(60)


# ---------------------------------------------------------------------------
# scalar helpers (Python ints)


def inv(value: int) -> int:
    return pow(value % P, -1, P)


def element(value: int) -> np.ndarray:
    """One field element (shape (2,)) from a Python int (reduced mod p)."""
    value %= P
    return np.array([value & _M64, value >> 64], dtype=_U64)


def to_int(x: np.ndarray) -> int:
    """One field element as a Python int in [0, p)."""
    return int(x[..., 0]) | (int(x[..., 1]) << 64)


def to_signed_int(x: np.ndarray) -> int:
    """One field element as a Python int in (-p/2, p/2)."""
    value = to_int(x)
    return value - P if value > P >> 1 else value


def zeros(*shape: int) -> np.ndarray:
    return np.zeros((*shape, 2), dtype=_U64)


def full(value: int, *shape: int) -> np.ndarray:
    out = np.empty((*shape, 2), dtype=_U64)
    out[...] = element(value)
    return out


def from_ints(values) -> np.ndarray:
    """Python ints (any size, any sign) as a field array (tests, small vectors)."""
    reduced = [int(v) % P for v in values]
    return np.array([[v & _M64, v >> 64] for v in reduced], dtype=_U64).reshape(len(reduced), 2)


def to_ints(x: np.ndarray) -> list[int]:
    flat = np.asarray(x).reshape(-1, 2)
    return [int(lo) | (int(hi) << 64) for lo, hi in flat]


# ---------------------------------------------------------------------------
# conversions


def from_int64(values: np.ndarray) -> np.ndarray:
    """Signed int64 values as field elements (negative x becomes p + x = p - |x|)."""
    values = np.asarray(values, dtype=np.int64)
    out = np.empty((*values.shape, 2), dtype=_U64)
    negative = values < 0
    as_unsigned = values.view(_U64)
    # x >= 0: (x, 0); x < 0 (|x| < 2^63): p - |x| = (2^25 - 1) 2^64 + (2^64 - 1 - |x|) and
    # 2^64 - 1 - |x| = x - 1 in two's complement
    out[..., 0] = np.where(negative, as_unsigned - _U64(1), as_unsigned)
    out[..., 1] = np.where(negative, _U64((1 << 25) - 1), _U64(0))
    return out


def from_bits(bits: np.ndarray) -> np.ndarray:
    """A boolean (or 0/1) array as field elements."""
    out = np.zeros((*np.shape(bits), 2), dtype=_U64)
    out[..., 0] = np.asarray(bits, dtype=bool)
    return out


def to_int64(x: np.ndarray, *, what: str = "value") -> np.ndarray:
    """Field elements that represent signed values with |v| < 2^63 back to int64."""
    lo = x[..., 0]
    hi = x[..., 1]
    positive = (hi == 0) & (lo < _U64(1 << 63))
    # p - v for v > p/2: high part 2^25 - 1 and low part 2^64 - 1 - |v|
    negative = (hi == _U64((1 << 25) - 1)) & (lo >= _U64(1 << 63))
    if not (positive | negative).all():
        raise ValueError(f"{what}: a field element does not represent a signed 64-bit value")
    return np.where(positive, lo, lo + _U64(1)).view(np.int64)


def is_zero(x: np.ndarray) -> np.ndarray:
    return (x[..., 0] == 0) & (x[..., 1] == 0)


def from_random_bytes(buffer: bytes, count: int, *, nonzero: bool = False) -> np.ndarray:
    """``count`` field elements from 12 random bytes each (8 low bytes of all elements,
    then 4 high bytes of all elements).  ``nonzero`` maps the value 0 (probability
    2^-88) to 1: a statistical distance of 2^-88 from uniform on GF(p)*."""
    if len(buffer) < RANDOM_BYTES * count:
        raise ValueError("not enough random bytes")
    out = np.empty((count, 2), dtype=_U64)
    out[:, 0] = np.frombuffer(buffer, dtype="<u8", count=count)
    out[:, 1] = np.frombuffer(buffer, dtype="<u4", count=count, offset=8 * count) & 0x1FFFFFF
    top = (out[:, 0] == _K_M64) & (out[:, 1] == _K_M25)
    out[top] = 0
    if nonzero:
        out[is_zero(out), 0] = 1
    return out


def encode(x: np.ndarray) -> bytes:
    """Fixed width: 8 low bytes of every element, then 4 high bytes of every element,
    little-endian (the same layout as :func:`from_random_bytes`)."""
    flat = np.ascontiguousarray(x).reshape(-1, 2)
    return flat[:, 0].astype("<u8").tobytes() + flat[:, 1].astype("<u4").tobytes()


def decode(data: bytes, count: int, *, what: str) -> np.ndarray:
    """Inverse of :func:`encode`; a wrong size or a value >= p is a malformed message."""
    if len(data) != ELEMENT_BYTES * count:
        raise MalformedMessageError(
            f"{what}: expected {count} field elements ({ELEMENT_BYTES * count} bytes), found {len(data)} bytes")
    out = np.empty((count, 2), dtype=_U64)
    out[:, 0] = np.frombuffer(data, dtype="<u8", count=count)
    out[:, 1] = np.frombuffer(data, dtype="<u4", count=count, offset=8 * count)
    if count and (int(out[:, 1].max()) >= _HIGH_LIMIT
                  or bool(((out[:, 0] == _K_M64) & (out[:, 1] == _K_M25)).any())):
        raise MalformedMessageError(f"{what}: a value is not below the field modulus 2^89 - 1")
    return out


# ---------------------------------------------------------------------------
# numba kernels over flat (m, 2) arrays


@njit(cache=True, nogil=True, inline="always")
def _canonical(lo, hi):
    """(lo, hi) = hi 2^64 + lo with hi < 2^40, reduced mod p to [0, p)."""
    carry = hi >> _K_25
    hi = hi & _K_M25
    total = lo + carry
    if total < lo:
        hi += _K_1
    lo = total
    carry = hi >> _K_25
    hi = hi & _K_M25
    total = lo + carry
    if total < lo:
        hi += _K_1
    lo = total
    if hi == _K_M25 and lo == _K_M64:
        return _K_0, _K_0
    return lo, hi


@njit(cache=True, nogil=True, inline="always")
def _add(alo, ahi, blo, bhi):
    lo = alo + blo
    hi = ahi + bhi
    if lo < alo:
        hi += _K_1
    return _canonical(lo, hi)


@njit(cache=True, nogil=True, inline="always")
def _neg(lo, hi):
    if lo == _K_0 and hi == _K_0:
        return _K_0, _K_0
    return _K_M64 - lo, _K_M25 - hi


@njit(cache=True, nogil=True, inline="always")
def _sub(alo, ahi, blo, bhi):
    nlo, nhi = _neg(blo, bhi)
    return _add(alo, ahi, nlo, nhi)


@njit(cache=True, nogil=True, inline="always")
def _mul(alo, ahi, blo, bhi):
    # 30-bit limbs: a = a0 + a1 2^30 + a2 2^60 with a2 < 2^29
    a0 = alo & _K_M30
    a1 = (alo >> _K_30) & _K_M30
    a2 = (alo >> _K_60) | (ahi << _K_4)
    b0 = blo & _K_M30
    b1 = (blo >> _K_30) & _K_M30
    b2 = (blo >> _K_60) | (bhi << _K_4)
    c0 = a0 * b0
    c1 = a0 * b1 + a1 * b0
    c2 = a0 * b2 + a1 * b1 + a2 * b0
    c3 = a1 * b2 + a2 * b1
    c4 = a2 * b2
    # 2^90 = 2 and 2^120 = 2^31 (mod p)
    t0 = c0 + _K_2 * c3
    t1 = c1 + _K_2 * c4 + (t0 >> _K_30)
    r0 = t0 & _K_M30
    t2 = c2 + (t1 >> _K_30)
    r1 = t1 & _K_M30
    # t2 2^60 = (t2 mod 2^29) 2^60 + (t2 >> 29) 2^89, and 2^89 = 1
    r0 += t2 >> _K_29
    r2 = t2 & _K_M29
    r1 += r0 >> _K_30
    r0 &= _K_M30
    r2 += r1 >> _K_30
    r1 &= _K_M30
    lo = r0 | (r1 << _K_30) | (r2 << _K_60)
    hi = r2 >> _K_4
    return _canonical(lo, hi)


@njit(cache=True, nogil=True)
def _k_add(a, b, out):
    for i in range(a.shape[0]):
        out[i, 0], out[i, 1] = _add(a[i, 0], a[i, 1], b[i, 0], b[i, 1])


@njit(cache=True, nogil=True)
def _k_sub(a, b, out):
    for i in range(a.shape[0]):
        out[i, 0], out[i, 1] = _sub(a[i, 0], a[i, 1], b[i, 0], b[i, 1])


@njit(cache=True, nogil=True)
def _k_mul(a, b, out):
    for i in range(a.shape[0]):
        out[i, 0], out[i, 1] = _mul(a[i, 0], a[i, 1], b[i, 0], b[i, 1])


@njit(cache=True, nogil=True)
def _k_scale(a, clo, chi, out):
    for i in range(a.shape[0]):
        out[i, 0], out[i, 1] = _mul(a[i, 0], a[i, 1], clo, chi)


@njit(cache=True, nogil=True)
def _k_muladd(x, y, z, out):
    """out = x + y z."""
    for i in range(x.shape[0]):
        plo, phi = _mul(y[i, 0], y[i, 1], z[i, 0], z[i, 1])
        out[i, 0], out[i, 1] = _add(x[i, 0], x[i, 1], plo, phi)


@njit(cache=True, nogil=True)
def _k_affine(v, z, clo, chi, out):
    """out = v + (z - v) c."""
    for i in range(v.shape[0]):
        dlo, dhi = _sub(z[i, 0], z[i, 1], v[i, 0], v[i, 1])
        plo, phi = _mul(dlo, dhi, clo, chi)
        out[i, 0], out[i, 1] = _add(v[i, 0], v[i, 1], plo, phi)


@njit(cache=True, nogil=True)
def _k_split(v, z, c1lo, c1hi, c2lo, c2hi, out1, out2):
    """out1 = v + (z - v) c1, out2 = v + (z - v) c2."""
    for i in range(v.shape[0]):
        dlo, dhi = _sub(z[i, 0], z[i, 1], v[i, 0], v[i, 1])
        plo, phi = _mul(dlo, dhi, c1lo, c1hi)
        out1[i, 0], out1[i, 1] = _add(v[i, 0], v[i, 1], plo, phi)
        plo, phi = _mul(dlo, dhi, c2lo, c2hi)
        out2[i, 0], out2[i, 1] = _add(v[i, 0], v[i, 1], plo, phi)


@njit(cache=True, nogil=True)
def _k_sum(a):
    lo = _K_0
    hi = _K_0
    for i in range(a.shape[0]):
        lo, hi = _add(lo, hi, a[i, 0], a[i, 1])
    return lo, hi


@njit(cache=True, nogil=True)
def _k_inner_rows(a, b, rows, n, out):
    """out[i] = sum_k a[k n + i] b[k n + i]."""
    for i in range(n):
        lo = _K_0
        hi = _K_0
        for k in range(rows):
            j = k * n + i
            plo, phi = _mul(a[j, 0], a[j, 1], b[j, 0], b[j, 1])
            lo, hi = _add(lo, hi, plo, phi)
        out[i, 0] = lo
        out[i, 1] = hi


@njit(cache=True, nogil=True)
def _k_lagrange_basis(u, weights, blind, out):
    """out[k n + i] = blind_i w_k prod_{j != k} (u_i - j), nodes j = 0..D."""
    n = u.shape[0]
    count = weights.shape[0]
    prefix = np.empty((count, 2), dtype=np.uint64)
    factors = np.empty((count, 2), dtype=np.uint64)
    for i in range(n):
        for k in range(count):
            factors[k, 0], factors[k, 1] = _sub(u[i, 0], u[i, 1], np.uint64(k), _K_0)
        prefix[0, 0] = _K_1
        prefix[0, 1] = _K_0
        for k in range(1, count):
            prefix[k, 0], prefix[k, 1] = _mul(prefix[k - 1, 0], prefix[k - 1, 1], factors[k - 1, 0],
                                              factors[k - 1, 1])
        slo = blind[i, 0]
        shi = blind[i, 1]
        for k in range(count - 1, -1, -1):
            plo, phi = _mul(prefix[k, 0], prefix[k, 1], slo, shi)
            j = k * n + i
            out[j, 0], out[j, 1] = _mul(plo, phi, weights[k, 0], weights[k, 1])
            slo, shi = _mul(slo, shi, factors[k, 0], factors[k, 1])


@njit(cache=True, nogil=True)
def _k_shifted_roots(v, tolerance, blind, out):
    """out[k n + i] = blind_i prod_{m=k}^{k+w-1} e_m with e_m = (m - tolerance) - v_i,
    w = 2 tolerance + 1, k = 0..w (suffix of the first block times prefix of the second)."""
    n = v.shape[0]
    width = 2 * tolerance + 1
    factors = np.empty((2 * width, 2), dtype=np.uint64)
    suffix = np.empty((width + 1, 2), dtype=np.uint64)
    for i in range(n):
        for m in range(2 * width):
            shift = m - tolerance
            if shift >= 0:
                slo = np.uint64(shift)
                shi = _K_0
            else:
                slo, shi = _neg(np.uint64(-shift), _K_0)
            factors[m, 0], factors[m, 1] = _sub(slo, shi, v[i, 0], v[i, 1])
        suffix[width, 0] = blind[i, 0]
        suffix[width, 1] = blind[i, 1]
        for k in range(width - 1, -1, -1):
            suffix[k, 0], suffix[k, 1] = _mul(suffix[k + 1, 0], suffix[k + 1, 1], factors[k, 0], factors[k, 1])
        plo = _K_1
        phi = _K_0
        for k in range(width + 1):
            j = k * n + i
            out[j, 0], out[j, 1] = _mul(suffix[k, 0], suffix[k, 1], plo, phi)
            if k < width:
                plo, phi = _mul(plo, phi, factors[width + k, 0], factors[width + k, 1])


# ---------------------------------------------------------------------------
# array operations (any shape, last axis 2)


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=_U64).reshape(-1, 2)


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"field arrays of different shapes: {a.shape} and {b.shape}")


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _same_shape(a, b)
    out = np.empty(a.shape, dtype=_U64)
    _k_add(_flat(a), _flat(b), out.reshape(-1, 2))
    return out


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _same_shape(a, b)
    out = np.empty(a.shape, dtype=_U64)
    _k_sub(_flat(a), _flat(b), out.reshape(-1, 2))
    return out


def neg(a: np.ndarray) -> np.ndarray:
    return sub(np.zeros_like(a), a)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _same_shape(a, b)
    out = np.empty(a.shape, dtype=_U64)
    _k_mul(_flat(a), _flat(b), out.reshape(-1, 2))
    return out


def scale(a: np.ndarray, c: int) -> np.ndarray:
    """a times the constant c (a Python int)."""
    c %= P
    out = np.empty(a.shape, dtype=_U64)
    _k_scale(_flat(a), _U64(c & _M64), _U64(c >> 64), out.reshape(-1, 2))
    return out


def muladd(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """x + y z."""
    _same_shape(x, y)
    _same_shape(x, z)
    out = np.empty(x.shape, dtype=_U64)
    _k_muladd(_flat(x), _flat(y), _flat(z), out.reshape(-1, 2))
    return out


def affine(v: np.ndarray, z: np.ndarray, c: int) -> np.ndarray:
    """v + (z - v) c: the value at x = c x_p of the line through (0, v) and (x_p, z)."""
    _same_shape(v, z)
    c %= P
    out = np.empty(v.shape, dtype=_U64)
    _k_affine(_flat(v), _flat(z), _U64(c & _M64), _U64(c >> 64), out.reshape(-1, 2))
    return out


def affine_pair(v: np.ndarray, z: np.ndarray, c1: int, c2: int) -> tuple[np.ndarray, np.ndarray]:
    """(affine(v, z, c1), affine(v, z, c2)) in one pass."""
    _same_shape(v, z)
    c1 %= P
    c2 %= P
    out1 = np.empty(v.shape, dtype=_U64)
    out2 = np.empty(v.shape, dtype=_U64)
    _k_split(_flat(v), _flat(z), _U64(c1 & _M64), _U64(c1 >> 64), _U64(c2 & _M64), _U64(c2 >> 64),
             out1.reshape(-1, 2), out2.reshape(-1, 2))
    return out1, out2


def total(a: np.ndarray) -> np.ndarray:
    """The sum of all elements (shape (2,))."""
    lo, hi = _k_sum(_flat(a))
    return np.array([lo, hi], dtype=_U64)


def inner_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum_k a[k] b[k] for arrays of shape (rows, n, 2): shape (n, 2)."""
    _same_shape(a, b)
    rows, n = a.shape[0], a.shape[1]
    out = np.empty((n, 2), dtype=_U64)
    _k_inner_rows(_flat(a), _flat(b), rows, n, out)
    return out


# ---------------------------------------------------------------------------
# The range check as a bilinear form (see protocols.mpc.protocol).
#
# R_tau(z) = prod_{j=-tau}^{tau} (z - j) vanishes exactly on |z| <= tau.  With D = 2 tau + 1
# and nodes k = 0..D, Lagrange interpolation of the degree-D polynomial u -> R_tau(u - v)
# gives   R_tau(u - v) = sum_k L_k(u) * R_tau(k - v),
# a sum of D + 1 products of a function of u alone and a function of v alone.


def _lagrange_weights(degree: int) -> np.ndarray:
    """w_k = 1 / prod_{j != k} (k - j) over the nodes 0..degree, as a field array."""
    weights = []
    for k in range(degree + 1):
        denominator = 1
        for j in range(degree + 1):
            if j != k:
                denominator = denominator * (k - j) % P
        weights.append(inv(denominator))
    return from_ints(weights)


_WEIGHTS: dict[int, np.ndarray] = {}


def lagrange_basis(u: np.ndarray, tolerance: int, blind: np.ndarray | None = None) -> np.ndarray:
    """Rows blind * L_0(u) .. blind * L_D(u) (shape (D + 1, n, 2)), D = 2 * tolerance + 1,
    with prefix and suffix products (no inversions): L_k(u) = w_k prod_{j != k} (u - j)."""
    degree = 2 * tolerance + 1
    if degree not in _WEIGHTS:
        _WEIGHTS[degree] = _lagrange_weights(degree)
    u = _flat(u)
    n = u.shape[0]
    blind = full(1, n) if blind is None else _flat(blind)
    out = np.empty((degree + 1, n, 2), dtype=_U64)
    _k_lagrange_basis(u, _WEIGHTS[degree], blind, out.reshape(-1, 2))
    return out


def shifted_roots_products(v: np.ndarray, tolerance: int, blind: np.ndarray | None = None) -> np.ndarray:
    """Rows blind * R_tau(k - v) for k = 0..D (shape (D + 1, n, 2)).

    R_tau(k - v) = prod_{i=k-tau}^{k+tau} (i - v): sliding windows of width w = 2 tau + 1
    over the 2w factors e_i = (i - v), i = -tau .. D + tau, computed as a suffix product of
    the first block times a prefix product of the second (no inversions)."""
    v = _flat(v)
    n = v.shape[0]
    blind = full(1, n) if blind is None else _flat(blind)
    out = np.empty((2 * tolerance + 2, n, 2), dtype=_U64)
    _k_shifted_roots(v, tolerance, blind, out.reshape(-1, 2))
    return out


def roots_polynomial(z: np.ndarray, tolerance: int) -> np.ndarray:
    """R_tau(z) evaluated directly (tests, the reference)."""
    out = full(1, z.shape[0])
    for j in range(-tolerance, tolerance + 1):
        out = mul(out, sub(z, full(j, z.shape[0])))
    return out


def warm_up() -> None:
    """Load (or compile) every kernel once, so that a job does not pay numba's first call
    while its peers wait."""
    x = from_ints([1, 2])
    muladd(add(x, x), sub(x, x), mul(x, x))
    affine(scale(x, 3), x, 2)
    affine_pair(x, x, 2, 3)
    total(x)
    inner_rows(lagrange_basis(x, 1), shifted_roots_products(x, 1))


# ---------------------------------------------------------------------------
# pseudorandom secret sharing [Cramer, Damgard, Ishai, "Share conversion, pseudorandom
# secret-sharing and applications to secure computation", TCC 2005], three parties,
# threshold t = 1, share points x = 1, 2, 3: the same formulas as MPyC's
# thresha.np_pseudorandom_share / np_pseudorandom_share_0 (checked against them).


def _f_subset(pid: int, subset: tuple[int, int]) -> int:
    """f_S(x_pid) for the degree-1 polynomial f_S with f_S(0) = 1 and f_S = 0 at the share
    point of the party outside S."""
    outside = 3 - subset[0] - subset[1]
    return (1 - (pid + 1) * inv(outside + 1)) % P


def prss_share(pid: int, streams: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """This party's share of a pseudorandom degree-1 sharing of sum_S r_S, from the
    pseudorandom values r_S of the two pairs S this party belongs to."""
    parts = [scale(values, _f_subset(pid, subset)) for subset, values in sorted(streams.items())]
    return add(parts[0], parts[1])


def przs_share(pid: int, streams: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """This party's share of a pseudorandom degree-2 sharing of 0: sum_S r_S x f_S(x)."""
    parts = [scale(values, (pid + 1) * _f_subset(pid, subset)) for subset, values in sorted(streams.items())]
    return add(parts[0], parts[1])


def warm_up() -> None:
    """Load (or compile, on a fresh install) every kernel of this module once, so that the
    first secure computation of a job does not wait for numba."""
    a, b = from_ints([1, 2, 3]), from_ints([4, 5, 6])
    add(a, b), sub(a, b), neg(a), mul(a, b), scale(a, 3), muladd(a, a, b)
    affine(a, b, 2), affine_pair(a, b, 2, 3), total(a)
    inner_rows(a.reshape(3, 1, 2), b.reshape(3, 1, 2))
    lagrange_basis(a, 1), shifted_roots_products(a, 1)
