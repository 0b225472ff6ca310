"""One oblivious shuffle of all candidate pairs, for the ``aggregate`` policy.

A resharing shuffle with two permutations, each known to two parties [Laur,
Willemson, Zhang, "Round-efficient oblivious database manipulation", ISC 2011,
section 4: a secret-shared vector is permuted by a composition of permutations each
held by a coalition that lacks one party, resharing between the steps].  Here the
permutation is pi = pi_2 o pi_1 with pi_1 known to A and H, pi_2 to B and H; both
come from the pairwise PRSS keys (``Randomness.permutation``) and cover the whole job:
the shuffle runs once, before any chunking, over all n pairs, and what the later
chunks of the shuffled order hold does not depend on the chunk size.

Columns.  Each column is one of
- ``"diff"``: A holds x_A, B holds x_B, the shuffled value is x_A - x_B;
- ``"a"``: A's value; ``"b"``: B's value.

Messages (one round per block of :data:`SHUFFLE_BLOCK` positions, both in the same round):
1. B -> H: for every column with a B part, x_B + m in the original order, m from the
   A-B key (so H sees uniformly random field elements).  A knows m, so after pi_1
   A holds a and H holds h with a + h = x[pi_1] (for ``diff``: a = (x_A + m)[pi_1],
   h = -(x_B + m)[pi_1]; for ``b``: a = -m[pi_1], h = (x_B + m)[pi_1]; for ``a``:
   a = x_A[pi_1], h = 0).
2. A -> B: a + m' in pi_1 order, m' from the A-H key (uniformly random to B).  B applies
   pi_2 and keeps beta = (a + m')[pi_2]; H keeps eta = (h - m')[pi_2] without any message.

Result: for every column, beta (B) + eta (H) = x[pi_1][pi_2], the column in shuffled
order.  Who knows what: A knows pi_1 only and keeps nothing; B knows pi_2 only and holds
beta, uniformly random without eta; H knows pi_1 and pi_2, i.e. the whole permutation,
and holds eta -- which is why H never receives an opened value in this package: every
opening goes to A and B only.  An operator cannot link a shuffled position to a pair
(it misses one of the two permutations).  Cost: linear, 12 bytes per element and
column on each of the two links, one message round per block; memory 16 bytes per
element and column on B and H (and A's masks while it sends).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from protocols.mpc import field as F
from protocols.mpc.rounds import Round

A, B, H = 0, 1, 2
KINDS = ("diff", "a", "b")
SHUFFLE_BLOCK = 1 << 14
"""Positions per message block (a fixed public constant: the masks are drawn per block)."""


def _blocks(n: int):
    for index, lo in enumerate(range(0, n, SHUFFLE_BLOCK)):
        yield index, lo, min(n, lo + SHUFFLE_BLOCK)


def _block_pairs(rand, peers: tuple[int, int], label: bytes, n: int) -> np.ndarray:
    """Pairwise pseudorandom values for positions 0..n-1, drawn block by block."""
    parts = [rand.pair(peers, label + b":" + str(index).encode(), hi - lo) for index, lo, hi in _blocks(n)]
    return np.concatenate(parts) if parts else F.zeros(0)


async def shuffle(net_for_block: Callable[[int], object], rand, pid: int, n: int, label: bytes,
                  kinds: Sequence[str], a_columns: Sequence[np.ndarray | None] | None,
                  b_columns: Sequence[np.ndarray | None] | None) -> list[np.ndarray] | None:
    """Shuffle the columns (int64 arrays of length ``n``; A passes ``a_columns``, B passes
    ``b_columns``, entries of the other owner's kind as None).

    ``net_for_block(index)`` gives the message layer of block ``index`` (its own tags).
    Returns B's ``beta`` columns on B, H's ``eta`` columns on H (field arrays of shape
    (n, 2), value = beta + eta), ``None`` on A."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"shuffle column kind: expected one of {KINDS}, found {kind!r}")
    b_owned = [i for i, kind in enumerate(kinds) if kind in ("diff", "b")]
    pi1 = rand.permutation((A, H), label + b":pi1", n) if pid in (A, H) else None
    pi2 = rand.permutation((B, H), label + b":pi2", n) if pid in (B, H) else None

    # the masks of step 1 (A-B key, original order) and step 2 (A-H key, pi_1 order), drawn
    # one column at a time so that at most one column of masks is alive
    def m1(i: int) -> np.ndarray:
        return _block_pairs(rand, (A, B), label + b":m1:" + str(i).encode(), n)

    def m2(i: int) -> np.ndarray:
        return _block_pairs(rand, (A, H), label + b":m2:" + str(i).encode(), n)

    a_parts: list[np.ndarray] = []
    if pid == A:
        for i, kind in enumerate(kinds):
            if kind == "diff":
                part = F.add(F.from_int64(a_columns[i]), m1(i))[pi1]
            elif kind == "a":
                part = F.from_int64(a_columns[i])[pi1]
            else:
                part = F.neg(m1(i))[pi1]
            a_parts.append(F.add(part, m2(i)))
    b_masked = {i: F.add(F.from_int64(b_columns[i]), m1(i)) for i in b_owned} if pid == B else {}

    received_h = {i: F.zeros(n) for i in b_owned} if pid == H else {}
    received_b = [F.zeros(n) for _ in kinds] if pid == B else []
    for index, lo, hi in _blocks(n):
        count = hi - lo
        rnd = Round(net_for_block(index), "shuffle")
        pending = []
        if pid == B:
            for i in b_owned:
                rnd.send(H, b_masked[i][lo:hi])
            pending = [rnd.expect(A, count, (count,)) for _ in kinds]
        elif pid == A:
            for part in a_parts:
                rnd.send(B, part[lo:hi])
        else:
            pending = [rnd.expect(B, count, (count,)) for _ in b_owned]
        await rnd.run()
        if pid == B:
            for i, item in enumerate(pending):
                received_b[i][lo:hi] = rnd.get(item)
        elif pid == H:
            for i, item in zip(b_owned, pending):
                received_h[i][lo:hi] = rnd.get(item)
    if pid == A:
        return None
    if pid == B:
        return [column[pi2] for column in received_b]
    eta = []
    for i, kind in enumerate(kinds):
        if kind == "diff":
            h = F.neg(received_h[i][pi1])
        elif kind == "b":
            h = received_h[i][pi1]
        else:
            h = F.zeros(n)
        eta.append(F.sub(h, m2(i))[pi2])
    return eta
