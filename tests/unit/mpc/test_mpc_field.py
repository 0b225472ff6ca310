"""GF(2^89 - 1) kernels against Python's integers (an independent implementation), the
bilinear split of the range-check polynomial, the codec, and the PRSS formulas against
MPyC's thresha."""

import os
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.mpc import field as F
from protocols.mpc.errors import MalformedMessageError

LIMIT = (1 << 62) - 1
P = F.P
# values where limb boundaries and the reduction are exercised
EDGES = [0, 1, 2, 3, P - 1, P - 2, P >> 1, (P >> 1) + 1, (1 << 30) - 1, 1 << 30, (1 << 60) - 1, 1 << 60,
         (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 64, (1 << 88), (1 << 88) + 12345, P - (1 << 64)]
elements = st.one_of(st.sampled_from(EDGES), st.integers(0, P - 1))


def test_modulus_is_the_mersenne_prime_m89() -> None:
    assert F.P == 618970019642690137449562111  # 2^89 - 1, a Mersenne prime (OEIS A000668)
    for base in (2, 3, 5, 7, 11, 13):
        assert pow(base, F.P - 1, F.P) == 1


def test_arithmetic_on_every_pair_of_edge_values() -> None:
    xs = [x for x in EDGES for _ in EDGES]
    ys = [y for _ in EDGES for y in EDGES]
    a, b = F.from_ints(xs), F.from_ints(ys)
    assert F.to_ints(F.add(a, b)) == [(x + y) % P for x, y in zip(xs, ys)]
    assert F.to_ints(F.sub(a, b)) == [(x - y) % P for x, y in zip(xs, ys)]
    assert F.to_ints(F.mul(a, b)) == [x * y % P for x, y in zip(xs, ys)]
    assert F.to_ints(F.neg(a)) == [-x % P for x in xs]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(elements, elements, elements), min_size=1, max_size=50), elements)
def test_kernels_equal_python_integers(triples, constant) -> None:
    xs, ys, zs = (list(t) for t in zip(*triples))
    x, y, z = F.from_ints(xs), F.from_ints(ys), F.from_ints(zs)
    assert F.to_ints(F.mul(x, y)) == [a * b % P for a, b in zip(xs, ys)]
    assert F.to_ints(F.scale(x, constant)) == [a * constant % P for a in xs]
    assert F.to_ints(F.muladd(x, y, z)) == [(a + b * c) % P for a, b, c in zip(xs, ys, zs)]
    assert F.to_ints(F.affine(x, y, constant)) == [(a + (b - a) * constant) % P for a, b in zip(xs, ys)]
    first, second = F.affine_pair(x, y, constant, constant + 7)
    assert F.to_ints(first) == F.to_ints(F.affine(x, y, constant))
    assert F.to_ints(second) == [(a + (b - a) * (constant + 7)) % P for a, b in zip(xs, ys)]
    assert F.to_int(F.total(x)) == sum(xs) % P
    rows = np.stack([x, y, z])
    assert F.to_ints(F.inner_rows(rows, rows[::-1].copy())) == [
        (a * c + b * b + c * a) % P for a, b, c in zip(xs, ys, zs)]
    # every output is canonical: below p
    assert all(v < P for v in F.to_ints(F.add(x, F.from_ints([P - 1] * len(xs)))))


def test_results_are_canonical_at_the_modulus() -> None:
    # (p - 1) + 1 = 0, and products that reduce to exactly p must come out as 0
    assert F.to_ints(F.add(F.from_ints([P - 1]), F.from_ints([1]))) == [0]
    assert F.to_ints(F.mul(F.from_ints([P - 1]), F.from_ints([P - 1]))) == [1]
    assert F.to_ints(F.sub(F.from_ints([0]), F.from_ints([0]))) == [0]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.lists(st.tuples(st.integers(-LIMIT, LIMIT), st.integers(-40, 40)),
                                    min_size=1, max_size=20))
def test_bilinear_split_equals_the_polynomial(tolerance, pairs) -> None:
    u_int = np.array([p[0] for p in pairs], dtype=np.int64)
    v_int = np.clip(u_int - np.array([p[1] for p in pairs], dtype=np.int64), -LIMIT, LIMIT)
    u, v = F.from_int64(u_int), F.from_int64(v_int)
    blind = F.from_ints([3 + i for i in range(len(pairs))])
    split = F.inner_rows(F.lagrange_basis(u, tolerance, blind), F.shifted_roots_products(v, tolerance))
    direct = F.roots_polynomial(F.sub(u, v), tolerance)
    assert F.to_ints(split) == [d * (3 + i) % P for i, d in enumerate(F.to_ints(direct))]
    # against Python integers: R(d) = prod (d - j)
    expected = []
    for a, b in zip(u_int, v_int):
        value = 1
        for j in range(-tolerance, tolerance + 1):
            value = value * (int(a) - int(b) - j) % P
        expected.append(value)
    assert F.to_ints(direct) == expected
    # the roots are exactly the differences within tolerance, also for huge differences
    within = [abs(int(a) - int(b)) <= tolerance for a, b in zip(u_int, v_int)]
    assert list(F.is_zero(direct)) == within


@pytest.mark.parametrize("tolerance", [0, 1, 5, 64])
def test_roots_at_the_tolerance_boundary(tolerance) -> None:
    d = np.array([-tolerance - 1, -tolerance, 0, tolerance, tolerance + 1, LIMIT, -LIMIT], dtype=np.int64)
    values = F.roots_polynomial(F.from_int64(d), tolerance)
    assert list(F.is_zero(values)) == [False, True, True, True, False, False, False]


def test_codec_round_trip_and_rejections() -> None:
    x = F.from_ints([0, 1, P - 1, 1 << 88, 12345678901234567890])
    assert F.to_ints(F.decode(F.encode(x), 5, what="t")) == F.to_ints(x)
    # the wire layout: 8 low bytes of each element, then 4 high bytes of each
    assert F.encode(F.from_ints([1 << 64 | 7])) == (7).to_bytes(8, "little") + (1).to_bytes(4, "little")
    with pytest.raises(MalformedMessageError, match="expected 5 field elements"):
        F.decode(F.encode(x)[:-1], 5, what="t")
    equal_to_p = (P & ((1 << 64) - 1)).to_bytes(8, "little") + (P >> 64).to_bytes(4, "little")
    with pytest.raises(MalformedMessageError, match="modulus"):
        F.decode(equal_to_p, 1, what="t")
    too_high = bytes(8) + (1 << 25).to_bytes(4, "little")
    with pytest.raises(MalformedMessageError, match="modulus"):
        F.decode(too_high, 1, what="t")


def test_signed_round_trip() -> None:
    values = np.array([0, -1, 1, LIMIT, -LIMIT, -(2 ** 63) + 1, 2 ** 63 - 1], dtype=np.int64)
    field = F.from_int64(values)
    assert F.to_ints(field) == [int(v) % P for v in values]
    assert list(F.to_int64(field)) == list(values)
    assert [F.to_signed_int(x) for x in field] == [int(v) for v in values]
    with pytest.raises(ValueError, match="signed 64-bit"):
        F.to_int64(F.from_ints([1 << 70]))


def test_random_elements_in_range() -> None:
    x = F.from_random_bytes(os.urandom(12 * 1000), 1000)
    values = F.to_ints(x)
    assert all(0 <= v < P for v in values) and len(set(values)) == 1000
    assert max(values) > 1 << 80  # the high bytes are used
    y = F.from_random_bytes(bytes(12 * 10), 10, nonzero=True)
    assert F.to_ints(y) == [1] * 10
    top = ((1 << 64) - 1).to_bytes(8, "little") + ((1 << 25) - 1).to_bytes(4, "little")  # 2^89 - 1 = p
    assert F.to_ints(F.from_random_bytes(top, 1)) == [0]


def test_prss_formulas_equal_mpyc_thresha() -> None:
    """protocols.mpc.field.prss_share / przs_share against MPyC's np_pseudorandom_share(_0)
    on the same PRF outputs (MPyC's PRF, MPyC's field)."""
    import protocols.mpc.runtime  # noqa: F401  (imports MPyC with a clean argv)
    from mpyc import finfields, thresha

    gf = finfields.GF(P)
    keys = {(0, 1): os.urandom(16), (0, 2): os.urandom(16), (1, 2): os.urandom(16)}
    label, n = b"test-label", 7
    for pid in range(3):
        prfs = {subset: thresha.PRF(key, P) for subset, key in keys.items() if pid in subset}
        streams = {subset: F.from_ints(list(prf(label, (n,)))) for subset, prf in prfs.items()}
        ours = F.to_ints(F.prss_share(pid, streams))
        theirs = [int(v) for v in thresha.np_pseudorandom_share(gf, 3, pid, prfs, label, n).value]
        assert ours == theirs
        streams0 = {subset: F.from_ints([int(v) for v in prf(label, (n, 1)).reshape(-1)])
                    for subset, prf in prfs.items()}
        ours0 = F.to_ints(F.przs_share(pid, streams0))
        theirs0 = [int(v) for v in thresha.np_pseudorandom_share_0(gf, 3, pid, prfs, label, n).value]
        assert ours0 == theirs0


def test_prss_shares_reconstruct() -> None:
    from protocols.mpc.runtime import local_sources

    sources = local_sources()
    shares = [F.to_ints(s.random_shares(b"r", 20)) for s in sources]
    zeros = [F.to_ints(s.zero_shares(b"z", 20)) for s in sources]
    for i in range(20):
        # degree 1: any two shares give the same secret
        s01 = (2 * shares[0][i] - shares[1][i]) % P
        s02 = (3 * shares[0][i] - shares[2][i]) * F.inv(2) % P
        assert s01 == s02
        # degree 2 zero sharing
        assert (3 * zeros[0][i] - 3 * zeros[1][i] + zeros[2][i]) % P == 0
    assert len({tuple(s) for s in shares}) == 3


def test_field_arrays_index_like_numpy() -> None:
    rng = random.Random(5)
    values = [rng.randrange(P) for _ in range(10)]
    x = F.from_ints(values)
    perm = np.array([3, 1, 4, 0, 9, 2, 6, 5, 8, 7])
    assert F.to_ints(x[perm]) == [values[i] for i in perm]
    assert F.to_ints(np.concatenate([x[:4], x[4:]])) == values
