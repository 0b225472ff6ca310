"""GF(2^89 - 1) helpers: the bilinear split of the range-check polynomial, the codec."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.mpc import field as F
from protocols.mpc.errors import MalformedMessageError

LIMIT = (1 << 62) - 1


def test_modulus_is_the_mersenne_prime_m89() -> None:
    assert F.P == 618970019642690137449562111  # 2^89 - 1, a Mersenne prime (OEIS A000668)
    for base in (2, 3, 5, 7, 11, 13):
        assert pow(base, F.P - 1, F.P) == 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.lists(st.tuples(st.integers(-LIMIT, LIMIT), st.integers(-40, 40)),
                                    min_size=1, max_size=20))
def test_bilinear_split_equals_the_polynomial(tolerance, pairs) -> None:
    u_int = np.array([p[0] for p in pairs], dtype=np.int64)
    v_int = np.clip(u_int - np.array([p[1] for p in pairs], dtype=np.int64), -LIMIT, LIMIT)
    u, v = F.from_int64(u_int), F.from_int64(v_int)
    split = (F.lagrange_basis(u, tolerance) * F.shifted_roots_products(v, tolerance)).sum(axis=0) % F.P
    direct = F.roots_polynomial((u - v) % F.P, tolerance)
    assert (split == direct).all()
    # the roots are exactly the differences within tolerance, also for huge differences
    within = np.array([abs(int(a) - int(b)) <= tolerance for a, b in zip(u_int, v_int)])
    assert ((direct == 0) == within).all()


@pytest.mark.parametrize("tolerance", [0, 1, 5, 64])
def test_roots_at_the_tolerance_boundary(tolerance) -> None:
    d = np.array([-tolerance - 1, -tolerance, 0, tolerance, tolerance + 1, LIMIT, -LIMIT], dtype=np.int64)
    values = F.roots_polynomial(F.from_int64(d), tolerance)
    assert list(values == 0) == [False, True, True, True, False, False, False]


def test_codec_round_trip_and_rejections() -> None:
    x = np.array([0, 1, F.P - 1, 1 << 88, 12345678901234567890], dtype=object)
    assert (F.decode(F.encode(x), 5, what="t") == x).all()
    with pytest.raises(MalformedMessageError, match="expected 5 field elements"):
        F.decode(F.encode(x)[:-1], 5, what="t")
    bad = np.array([F.P], dtype=object)  # equal to the modulus: not a field element
    with pytest.raises(MalformedMessageError, match="modulus"):
        F.decode(F.encode(bad), 1, what="t")


def test_signed_round_trip() -> None:
    values = np.array([0, -1, 1, LIMIT, -LIMIT, -(2 ** 63) + 1], dtype=object)
    assert list(F.to_signed(values % F.P)) == list(values)


def test_random_elements_in_range() -> None:
    import os
    x = F.from_random_bytes(os.urandom(12 * 1000), 1000)
    assert all(0 <= int(v) < F.P for v in x) and len(set(x)) == 1000
    y = F.from_random_bytes(bytes(12 * 10), 10, nonzero=True)
    assert all(1 <= int(v) < F.P for v in y)
