"""A slow, literal transcription of RFC 9162 §2.1 (MTH, PATH, PROOF/SUBPROOF), used
only to check ledger_anchor.merkle.  Recursion over lists of leaves, exactly as written."""

from collections.abc import Callable

Hash = Callable[[bytes], bytes]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(h: Hash, leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return h(b"")
    if n == 1:
        return h(b"\x00" + leaves[0])
    k = _k(n)
    return h(b"\x01" + mth(h, leaves[:k]) + mth(h, leaves[k:]))


def path(h: Hash, m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return path(h, m, leaves[:k]) + [mth(h, leaves[k:])]
    return path(h, m - k, leaves[k:]) + [mth(h, leaves[:k])]


def subproof(h: Hash, m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [mth(h, leaves)]
    k = _k(n)
    if m <= k:
        return subproof(h, m, leaves[:k], b) + [mth(h, leaves[k:])]
    return subproof(h, m - k, leaves[k:], False) + [mth(h, leaves[:k])]


def proof(h: Hash, m: int, leaves: list[bytes]) -> list[bytes]:
    if m == 0 or m == len(leaves):
        return []
    return subproof(h, m, leaves, True)
