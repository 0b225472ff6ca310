"""Arithmetic in the prime field GF(p), p = 2^89 - 1, over NumPy object arrays.

Pure and deterministic: no randomness of its own, no network.  Values are Python
ints in [0, p) held in ``dtype=object`` arrays (what MPyC's field arrays hold too).

Why p = 2^89 - 1 (a Mersenne prime):
- every input value x satisfies |x| <= 2^62 - 1 (a public bound checked on input),
  so a difference d = x_A - x_B satisfies |d| < 2^63, and d - j for any tolerance
  offset |j| <= 4096 satisfies |d - j| < 2^64 < p: d - j = 0 in GF(p) iff d = j
  over the integers.  The range checks are therefore exact, never wrap around.
- a sum over one chunk (<= 2^16 pairs) of values with |x| < 2^62 is below 2^78 in
  magnitude, far from p/2 = 2^88: chunk sums open to the exact integer.
- 89 bits fit in 12 bytes on the wire.
"""

from __future__ import annotations

import numpy as np

from protocols.mpc.errors import MalformedMessageError

P = (1 << 89) - 1
ELEMENT_BYTES = 12
_M64 = (1 << 64) - 1

# Lagrange coefficients at 0 for the share points x = 1 (A), 2 (B), 3 (H).
LAGRANGE_DEG2 = (3, P - 3, 1)
"""Reconstruct a degree-2 sharing from all three shares: s = 3 s_A - 3 s_B + s_H."""


def inv(value: int) -> int:
    return pow(value % P, -1, P)


def lagrange_pair(points: tuple[int, int]) -> tuple[int, int]:
    """Coefficients at 0 for a degree-1 sharing known at two share points."""
    x1, x2 = points
    return (x2 * inv(x2 - x1) % P, x1 * inv(x1 - x2) % P)


def from_int64(values: np.ndarray) -> np.ndarray:
    """Signed int64 values as field elements (negative x becomes p + x)."""
    return np.asarray(values, dtype=np.int64).astype(object) % P


def to_signed(values: np.ndarray) -> np.ndarray:
    """Field elements back to Python ints in (-p/2, p/2)."""
    out = np.asarray(values, dtype=object).copy()
    high = out > (P >> 1)
    out[high] = out[high] - P
    return out


def zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=object)


RANDOM_BYTES = 12
"""Random bytes per field element: 89 uniform bits are a uniform value in [0, 2^89);
reduced mod p = 2^89 - 1 only 2^89 - 1 itself moves (to 0), a statistical distance of
2^-89 from uniform."""


def from_random_bytes(buffer: bytes, count: int, *, nonzero: bool = False) -> np.ndarray:
    """``count`` field elements from 12 random bytes each; ``nonzero`` maps into [1, p)."""
    if len(buffer) < RANDOM_BYTES * count:
        raise ValueError("not enough random bytes")
    low = np.frombuffer(buffer, dtype="<u8", count=count).astype(object)
    high = (np.frombuffer(buffer, dtype="<u4", count=count, offset=8 * count) & 0x1FFFFFF).astype(object)
    value = low + (high << 64)
    if nonzero:
        return value % (P - 1) + 1
    return value % P


def encode(values: np.ndarray) -> bytes:
    """Fixed width: 8 low bytes then 4 high bytes per element, little-endian."""
    values = np.asarray(values, dtype=object)
    low = (values & _M64).astype(np.uint64)
    high = (values >> 64).astype(np.uint32)
    return low.astype("<u8").tobytes() + high.astype("<u4").tobytes()


def decode(data: bytes, count: int, *, what: str) -> np.ndarray:
    """Inverse of :func:`encode`; a wrong size or a value >= p is a malformed message."""
    if len(data) != ELEMENT_BYTES * count:
        raise MalformedMessageError(
            f"{what}: expected {count} field elements ({ELEMENT_BYTES * count} bytes), found {len(data)} bytes")
    low = np.frombuffer(data, dtype="<u8", count=count).astype(object)
    high = np.frombuffer(data, dtype="<u4", count=count, offset=8 * count)
    if count and int(high.max()) >= (1 << 25):
        raise MalformedMessageError(f"{what}: a value is not below the field modulus 2^89 - 1")
    values = low + (high.astype(object) << 64)
    if count and (values >= P).any():
        raise MalformedMessageError(f"{what}: a value is not below the field modulus 2^89 - 1")
    return values


# ---------------------------------------------------------------------------
# The range check as a bilinear form (see protocols.mpc.protocol).
#
# R_tau(z) = prod_{j=-tau}^{tau} (z - j) vanishes exactly on |z| <= tau.  With D = 2 tau + 1
# and nodes k = 0..D, Lagrange interpolation of the degree-D polynomial u -> R_tau(u - v)
# gives   R_tau(u - v) = sum_k L_k(u) * R_tau(k - v),
# a sum of D + 1 products of a function of u alone and a function of v alone.


def _lagrange_weights(degree: int) -> list[int]:
    """w_k = 1 / prod_{j != k} (k - j) over the nodes 0..degree."""
    weights = []
    for k in range(degree + 1):
        denominator = 1
        for j in range(degree + 1):
            if j != k:
                denominator = denominator * (k - j) % P
        weights.append(inv(denominator))
    return weights


def lagrange_basis(u: np.ndarray, tolerance: int) -> np.ndarray:
    """Rows L_0(u) .. L_D(u) (shape (D + 1, n)), D = 2 * tolerance + 1, with prefix and
    suffix products (no inversions): L_k(u) = w_k * prod_{j<k}(u - j) * prod_{j>k}(u - j)."""
    degree = 2 * tolerance + 1
    n = u.shape[0]
    factors = [(u - k) % P for k in range(degree + 1)]
    prefix = [np.ones(n, dtype=object)]
    for k in range(degree):
        prefix.append(prefix[-1] * factors[k] % P)
    out = np.empty((degree + 1, n), dtype=object)
    suffix = np.ones(n, dtype=object)
    weights = _lagrange_weights(degree)
    for k in range(degree, -1, -1):
        out[k] = prefix[k] * suffix % P * weights[k] % P
        suffix = suffix * factors[k] % P
    return out


def shifted_roots_products(v: np.ndarray, tolerance: int) -> np.ndarray:
    """Rows R_tau(k - v) for k = 0..D (shape (D + 1, n)).

    R_tau(k - v) = prod_{i=k-tau}^{k+tau} (i - v): sliding windows of width w = 2 tau + 1
    over the 2w factors e_i = (i - v), i = -tau .. D + tau, computed as a suffix product of
    the first block times a prefix product of the second (no inversions)."""
    width = 2 * tolerance + 1
    n = v.shape[0]
    factors = [(i - v) % P for i in range(-tolerance, 2 * tolerance + 2 + tolerance)]  # 2w factors
    suffix = [None] * (width + 1)
    suffix[width] = np.ones(n, dtype=object)
    for k in range(width - 1, -1, -1):
        suffix[k] = suffix[k + 1] * factors[k] % P
    out = np.empty((width + 1, n), dtype=object)
    prefix = np.ones(n, dtype=object)
    for k in range(width + 1):
        out[k] = suffix[k] * prefix % P
        if k < width:
            prefix = prefix * factors[width + k] % P
    return out


def roots_polynomial(z: np.ndarray, tolerance: int) -> np.ndarray:
    """R_tau(z) evaluated directly (for tests)."""
    out = np.ones(z.shape[0], dtype=object)
    for j in range(-tolerance, tolerance + 1):
        out = out * ((z - j) % P) % P
    return out
