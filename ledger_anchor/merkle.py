"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, proofs and verifiers.

The hash function is a parameter (:class:`LogHasher`), so the published SHA-256 vectors
of transparency-dev/merkle check the same code that the ledger runs with SM3.

Layout, in the manner of transparency-dev/merkle: the ``*_ranges`` functions say
*which* subtrees a proof is made of (pure index arithmetic), :func:`inclusion_proof`
and :func:`consistency_proof` assemble the hashes from any store of *perfect* subtree
hashes (node ``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``),
and the ``verify_*`` functions check a proof, returning ``None`` or raising
:class:`~ledger_anchor.errors.ProofError` with got/want.

Every proof needs O(log n) perfect nodes: each element is the hash of a range that
splits into at most log2(n) perfect subtrees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ledger_anchor.errors import ProofError
from ledger_anchor.sm3 import sm3

NodeId = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [begin, end)


@dataclass(frozen=True)
class LogHasher:
    """RFC 9162 §2.1.1 with hash function ``hash_fn`` of ``size``-byte digests."""

    name: str
    hash_fn: Callable[[bytes], bytes]
    size: int

    def empty_root(self) -> bytes:
        return self.hash_fn(b"")

    def hash_leaf(self, data: bytes) -> bytes:
        return self.hash_fn(b"\x00" + data)

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        return self.hash_fn(b"\x01" + left + right)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


SM3_HASHER = LogHasher("sm3", sm3, 32)
SHA256_HASHER = LogHasher("sha256", _sha256, 32)


# ---------------------------------------------------------------------------
# Index arithmetic


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_nodes(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees, left to right, whose leaves are exactly [begin, end)."""
    nodes: list[NodeId] = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else 63
        while (1 << level) > end - begin:
            level -= 1
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def frontier_nodes(size: int) -> list[NodeId]:
    """The perfect subtrees whose roots make up a tree of ``size`` leaves (its compact range)."""
    return perfect_nodes(0, size)


def inclusion_proof_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form RFC 9162's PATH(index, D[0:size]), leaf's sibling first."""
    if not 0 <= index < size:
        raise ProofError("inclusion proof: index out of range", got=index, want=f"0 <= index < {size}")
    ranges: list[Range] = []
    begin, end = 0, size
    while end - begin > 1:
        k = split_point(end - begin)
        if index - begin < k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin = begin + k
    ranges.reverse()
    return ranges


def consistency_proof_ranges(size1: int, size2: int) -> list[Range]:
    """The ranges whose hashes form RFC 9162's PROOF(size1, D[0:size2])."""
    if not 0 <= size1 <= size2:
        raise ProofError("consistency proof: sizes out of order", got=(size1, size2), want="0 <= size1 <= size2")
    if size1 == 0 or size1 == size2:
        return []
    ranges: list[Range] = []
    begin, end, m, whole = 0, size2, size1, True
    while True:
        n = end - begin
        if m == n:
            if not whole:
                ranges.append((begin, end))
            break
        k = split_point(n)
        if m <= k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin, m, whole = begin + k, m - k, False
    ranges.reverse()
    return ranges


def inclusion_proof_length(index: int, size: int) -> int:
    inner = (index ^ (size - 1)).bit_length()
    return inner + bin(index >> inner).count("1")


# ---------------------------------------------------------------------------
# Assembling proofs from stored perfect-subtree hashes


def range_hash(hasher: LogHasher, begin: int, end: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    """MTH(D[begin:end]) from the perfect subtrees of :func:`perfect_nodes`."""
    if begin == end:
        return hasher.empty_root()
    parts = [nodes[node] for node in perfect_nodes(begin, end)]
    result = parts[-1]
    for left in reversed(parts[:-1]):
        result = hasher.hash_children(left, result)
    return result


NodeReader = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]


def _assemble(hasher: LogHasher, ranges: list[Range], read_nodes: NodeReader) -> list[bytes]:
    wanted: list[NodeId] = []
    for begin, end in ranges:
        wanted.extend(perfect_nodes(begin, end))
    nodes = read_nodes(wanted)
    return [range_hash(hasher, begin, end, nodes) for begin, end in ranges]


def inclusion_proof(hasher: LogHasher, index: int, size: int, read_nodes: NodeReader) -> list[bytes]:
    return _assemble(hasher, inclusion_proof_ranges(index, size), read_nodes)


def consistency_proof(hasher: LogHasher, size1: int, size2: int, read_nodes: NodeReader) -> list[bytes]:
    return _assemble(hasher, consistency_proof_ranges(size1, size2), read_nodes)


def root_of(hasher: LogHasher, size: int, read_nodes: NodeReader) -> bytes:
    return range_hash(hasher, 0, size, read_nodes(frontier_nodes(size)))


# ---------------------------------------------------------------------------
# Verifiers (RFC 9162 §2.1.3.2 and §2.1.4.2)


def _check_hashes(hasher: LogHasher, proof: Sequence[bytes], what: str) -> None:
    for position, element in enumerate(proof):
        if not isinstance(element, (bytes, bytearray)) or len(element) != hasher.size:
            got = len(element) if isinstance(element, (bytes, bytearray)) else type(element).__name__
            raise ProofError(f"{what}: proof element {position} has the wrong length", got=got, want=hasher.size)


def root_from_inclusion_proof(hasher: LogHasher, index: int, size: int, leaf_hash: bytes,
                              proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for ``leaf_hash`` at ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError("inclusion proof: index out of range", got=index, want=f"0 <= index < {size}")
    if len(leaf_hash) != hasher.size:
        raise ProofError("inclusion proof: leaf hash has the wrong length", got=len(leaf_hash), want=hasher.size)
    _check_hashes(hasher, proof, "inclusion proof")
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise ProofError("inclusion proof: wrong number of elements", got=len(proof), want=want)
    fn, sn, result = index, size - 1, bytes(leaf_hash)
    for element in proof:
        if fn & 1 or fn == sn:
            result = hasher.hash_children(element, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = hasher.hash_children(result, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # pragma: no cover - excluded by the length check
        raise ProofError("inclusion proof: too short for the tree size", got=len(proof), want=want)
    return result


def verify_inclusion(hasher: LogHasher, index: int, size: int, leaf_hash: bytes,
                     proof: Sequence[bytes], root: bytes) -> None:
    """None if ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``size`` with ``root``."""
    computed = root_from_inclusion_proof(hasher, index, size, leaf_hash, proof)
    if computed != bytes(root):
        raise ProofError("inclusion proof: computed root differs from the expected root",
                         got=computed, want=bytes(root))


def verify_consistency(hasher: LogHasher, size1: int, size2: int, proof: Sequence[bytes],
                       root1: bytes, root2: bytes) -> None:
    """None if ``proof`` shows the tree (size1, root1) is a prefix of (size2, root2)."""
    if not 0 <= size1 <= size2:
        raise ProofError("consistency proof: sizes out of order", got=(size1, size2), want="0 <= size1 <= size2")
    _check_hashes(hasher, proof, "consistency proof")
    if size1 == 0:
        raise ProofError("consistency proof: a proof from the empty tree is meaningless", got=size1, want=">= 1")
    if size1 == size2:
        if proof:
            raise ProofError("consistency proof: expected an empty proof for equal sizes", got=len(proof), want=0)
        if bytes(root1) != bytes(root2):
            raise ProofError("consistency proof: equal sizes but different roots", got=bytes(root2), want=bytes(root1))
        return
    want = len(consistency_proof_ranges(size1, size2))
    if len(proof) != want:
        raise ProofError("consistency proof: wrong number of elements", got=len(proof), want=want)
    elements = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        elements.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = elements[0]
    for element in elements[1:]:
        if sn == 0:  # pragma: no cover - excluded by the length check
            raise ProofError("consistency proof: too long", got=len(proof), want=want)
        if fn & 1 or fn == sn:
            first = hasher.hash_children(element, first)
            second = hasher.hash_children(element, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = hasher.hash_children(second, element)
        fn >>= 1
        sn >>= 1
    if first != bytes(root1):
        raise ProofError("consistency proof: computed old root differs from root1", got=first, want=bytes(root1))
    if second != bytes(root2):
        raise ProofError("consistency proof: computed new root differs from root2", got=second, want=bytes(root2))
    if sn != 0:  # pragma: no cover - excluded by the length check
        raise ProofError("consistency proof: too short", got=len(proof), want=want)


# ---------------------------------------------------------------------------
# Incremental tree (the right frontier), used by appends and full verification


@dataclass
class Frontier:
    """The perfect-subtree roots of a tree of ``size`` leaves, largest first."""

    hasher: LogHasher
    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    @classmethod
    def load(cls, hasher: LogHasher, size: int, read_nodes: NodeReader) -> Frontier:
        ids = frontier_nodes(size)
        nodes = read_nodes(ids)
        return cls(hasher, size, [nodes[node] for node in ids])

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; returns the perfect nodes (level, index, hash) it completes."""
        created = [(0, self.size, leaf_hash)]
        value, level, index = leaf_hash, 0, self.size
        while index & 1:
            value = self.hasher.hash_children(self.hashes.pop(), value)
            level += 1
            index >>= 1
            created.append((level, index, value))
        self.hashes.append(value)
        self.size += 1
        return created

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        created: list[tuple[int, int, bytes]] = []
        for leaf_hash in leaf_hashes:
            created.extend(self.append(leaf_hash))
        return created

    def root(self) -> bytes:
        if not self.hashes:
            return self.hasher.empty_root()
        result = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            result = self.hasher.hash_children(left, result)
        return result

    def copy(self) -> Frontier:
        return Frontier(self.hasher, self.size, list(self.hashes))
