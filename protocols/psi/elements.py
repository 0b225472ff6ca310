"""Element sets and results of the PSI.

An element is a byte string of any length.  Internally each element is represented by
its 128-bit digest ``BLAKE2b-128(element, person="sc-psi-element")``; the protocol works
on digests only (distinct elements collide with probability < n^2 / 2^129).  Fixed-width
rows are hashed by the numba BLAKE2b kernel, variable-length ones by ``hashlib`` — the
same function, so ``from_fixed(a)`` and ``from_bytes([bytes(r) for r in a])`` agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .errors import DuplicateElementError, InputBoundsError, PsiError

ELEMENT_PERSON = b"sc-psi-element"
DIGEST_BYTES = 16


class ElementSet:
    """A set of distinct elements, held as an (n, 2) uint64 array of digests.

    Build it with :meth:`from_fixed` (fast path, an (n, w) uint8 array of rows) or
    :meth:`from_bytes` (any lengths).  A repeated element raises
    :class:`~protocols.psi.errors.DuplicateElementError` naming the index of the later
    copy and of the first one.
    """

    __slots__ = ("digests",)

    def __init__(self, digests: np.ndarray) -> None:
        if digests.ndim != 2 or digests.shape[1] != 2 or digests.dtype != np.uint64:
            raise InputBoundsError(
                f"element digests: expected an (n, 2) uint64 array, found {digests.dtype} "
                f"{digests.shape}"
            )
        self.digests = np.ascontiguousarray(digests)

    def __len__(self) -> int:
        return int(self.digests.shape[0])

    @classmethod
    def from_fixed(cls, array: np.ndarray) -> ElementSet:
        """Elements are the rows of a 2-D uint8 array (all the same width)."""
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype != np.uint8:
            found = f"{array.dtype} array of shape {array.shape}" if isinstance(array, np.ndarray) \
                else type(array).__name__
            raise InputBoundsError(f"fixed-width elements: expected a 2-D uint8 array, found {found}")
        rows = np.ascontiguousarray(array)
        out = np.empty((rows.shape[0], DIGEST_BYTES), np.uint8)
        h0 = kernels.blake2b_initial_state(DIGEST_BYTES, person=ELEMENT_PERSON)
        kernels.blake2b_rows(rows, h0, kernels.BLAKE2B_IV, out)
        digests = out.view(np.uint64)
        _check_distinct(digests, lambda i, j: bool(np.array_equal(rows[i], rows[j])))
        return cls(digests)

    @classmethod
    def from_words(cls, columns: Sequence[np.ndarray]) -> ElementSet:
        """Elements are rows of little-endian 64-bit words given column by column.

        Same elements (same digests) as ``from_fixed(np.column_stack(columns).view(np.uint8))``
        without building that matrix: the fast path for elements made of integer fields.
        """
        if not columns or any(not isinstance(c, np.ndarray) or c.ndim != 1 for c in columns):
            raise InputBoundsError("word columns: expected one or more 1-D arrays")
        n = columns[0].shape[0]
        if any(c.shape[0] != n or c.dtype.kind not in "iu" or c.dtype.itemsize != 8 for c in columns):
            raise InputBoundsError(
                "word columns: expected 64-bit integer arrays of one length, found "
                + ", ".join(f"{c.dtype}[{c.shape[0]}]" for c in columns))
        words = kernels.word_columns(columns)
        out = np.empty((n, DIGEST_BYTES), np.uint8)
        h0 = kernels.blake2b_initial_state(DIGEST_BYTES, person=ELEMENT_PERSON)
        kernels.blake2b_words(words, h0, kernels.BLAKE2B_IV, out)
        digests = out.view(np.uint64)
        _check_distinct(digests, lambda i, j: all(c[i] == c[j] for c in words))
        return cls(digests)

    @classmethod
    def from_bytes(cls, items: Sequence[bytes]) -> ElementSet:
        """Elements are byte strings of any length (a Python loop: for tests and small inputs)."""
        out = np.empty((len(items), DIGEST_BYTES), np.uint8)
        for i, item in enumerate(items):
            if not isinstance(item, (bytes, bytearray, memoryview)):
                raise InputBoundsError(
                    f"element {i}: expected bytes, found {type(item).__name__}"
                )
            out[i] = np.frombuffer(
                hashlib.blake2b(bytes(item), digest_size=DIGEST_BYTES, person=ELEMENT_PERSON).digest(),
                np.uint8,
            )
        digests = out.view(np.uint64)
        _check_distinct(digests, lambda i, j: bytes(items[i]) == bytes(items[j]))
        return cls(digests)


def _check_distinct(digests: np.ndarray, same) -> None:
    first, later = kernels.first_duplicate(digests)
    if later < 0:
        return
    if same(first, later):
        raise DuplicateElementError(int(later), int(first))
    raise PsiError(  # pragma: no cover - a 128-bit BLAKE2b collision
        f"elements {first} and {later} differ but their 128-bit digests are equal"
    )


@dataclass(frozen=True)
class PsiResult:
    """What one party learns from a run.

    ``local_indices[i]`` is the index (into this party's ElementSet) of the i-th matched
    element; ``pair_ids[i]`` is its 16-byte pair id, equal on both sides for the same pair.
    Both parties list the pairs in the same order (by pair id).  ``peer_size`` is the number
    of elements of the other party.  ``stats`` holds ``bytes_sent``, ``bytes_received``,
    ``messages_sent``, ``messages_received`` and ``seconds`` (per step, and ``total``).
    """

    local_indices: np.ndarray
    pair_ids: np.ndarray
    peer_size: int
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.local_indices.shape[0])
