"""The aggregate policy's shuffle (protocols.mpc.shuffle): one permutation of all pairs,
held as beta (B) + eta (H), hidden from each operator."""

import asyncio
import os

import numpy as np
import pytest

from protocols.mpc import field as F
from protocols.mpc.rounds import LocalNet, TaggedNet
from protocols.mpc.runtime import local_sources
from protocols.mpc.shuffle import SHUFFLE_BLOCK, shuffle

KINDS = ("diff", "a", "b")


def run_shuffle(n, a_cols, b_cols, keys, log=None):
    nets = LocalNet.mesh(log)
    sources = local_sources(keys)

    async def main():
        return await asyncio.gather(*(
            shuffle(lambda block, pid=pid: TaggedNet(nets[pid], 1, block), sources[pid], pid, n, b"s", KINDS,
                    a_cols if pid == 0 else None, b_cols if pid == 1 else None)
            for pid in range(3)))

    return asyncio.run(main()), sources


def permutation_of(sources, n):
    pi1 = sources[0].permutation((0, 2), b"s:pi1", n)
    pi2 = sources[1].permutation((1, 2), b"s:pi2", n)
    assert np.array_equal(pi1, sources[2].permutation((0, 2), b"s:pi1", n))
    return pi1[pi2]


@pytest.mark.parametrize("n", [0, 1, 5, SHUFFLE_BLOCK + 3])
def test_shares_add_up_to_the_shuffled_columns(n) -> None:
    rng = np.random.default_rng(n)
    x_a = rng.integers(-(1 << 62) + 1, 1 << 62, n)
    x_b = rng.integers(-(1 << 62) + 1, 1 << 62, n)
    c_a, c_b = rng.integers(0, 10**6, n), rng.integers(0, 10**6, n)
    keys = {(0, 1): os.urandom(16), (0, 2): os.urandom(16), (1, 2): os.urandom(16)}
    (none, beta, eta), sources = run_shuffle(n, [x_a, c_a, None], [x_b, None, c_b], keys)
    assert none is None
    perm = permutation_of(sources, n)
    assert sorted(perm.tolist()) == list(range(n))
    expected = [(x_a - x_b)[perm] if n else x_a, c_a[perm], c_b[perm]]
    # x_a - x_b overflows int64 here: compare in the field
    expected[0] = F.sub(F.from_int64(x_a), F.from_int64(x_b))[perm]
    for column, want in zip(range(3), expected):
        total = F.add(beta[column], eta[column])
        want = want if want.ndim == 2 else F.from_int64(want)
        assert F.to_ints(total) == F.to_ints(want)


def test_the_permutation_is_global_and_hidden_from_each_operator() -> None:
    n = 3 * SHUFFLE_BLOCK // 2
    keys = {(0, 1): os.urandom(16), (0, 2): os.urandom(16), (1, 2): os.urandom(16)}
    values = np.arange(n, dtype=np.int64)
    log = []
    (_, beta, eta), sources = run_shuffle(n, [values, values, None], [np.zeros(n, np.int64), None, values], keys,
                                          log=log)
    perm = permutation_of(sources, n)
    # global: positions of the first block go everywhere, not into the first block
    first_block = perm[:SHUFFLE_BLOCK]
    assert first_block.max() >= SHUFFLE_BLOCK
    # each operator knows one of the two permutations only; neither equals the composition
    pi1 = sources[0].permutation((0, 2), b"s:pi1", n)
    pi2 = sources[1].permutation((1, 2), b"s:pi2", n)
    assert not np.array_equal(pi1, perm) and not np.array_equal(pi2, perm)
    # what B holds alone is uniformly random-looking: not the values, not a permutation of them
    held = set(F.to_ints(beta[1]))
    assert len(held & set(range(n))) < 3
    # what H and B receive contains none of the values: a message holds the 8 low bytes of
    # every element first, so a value in the clear would appear as its 8 little-endian bytes
    received = b"".join(payload for _, dst, _, payload in log if dst in (1, 2))
    assert len(received) == 12 * n * 5  # B -> H: 2 columns; A -> B: 3 columns
    for value in (12345, 23456, n - 7):
        assert value.to_bytes(8, "little") not in received


def test_an_unknown_column_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="column kind"):
        asyncio.run(shuffle(lambda block: None, local_sources()[0], 0, 1, b"s", ("c",), [None], None))
