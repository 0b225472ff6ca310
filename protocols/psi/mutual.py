"""Mutual output: pair ids and confirmation tags, the same for every PSI protocol here.

After an OPRF-based PSI the receiver R knows which of its elements match which of the
sender's *elements* (R sees the sender's OPRF values in the sender's secret random order).
To give the sender S the intersection too, R sends, for each match, the index ``e`` of the
sender's element in that order and a confirmation tag; S checks each tag against its own
element, so R cannot claim an element it did not find (a false claim passes with
probability 2^-32).  Both parties then derive the pair id of a matched element from the
element itself and the session context:

    pair_id(x) || tag(x) = BLAKE2b-160(salt = s, person = "sc-psi-pair")(d(x))

with ``s`` derived from the session context (the hash of both hellos, which carries both
parties' fresh random seeds).  Only A and B know the context, so nobody else can compute or
test a pair id, and ids never repeat across runs.  What S receives is an element index
and a tag it can compute itself: nothing about R's data beyond the match.

Why element indices and not OPRF positions (issue 11, item 4): in KKRT16 the sender sends
3 values per element, one per cuckoo hash function k, at position p = k·n_S + e.  Sending
p back would tell S which hash function placed each matched element in R's cuckoo table,
and that depends on R's *other* elements.  R therefore sends only e, and the pair id and
tag depend only on the element, not on which of S's values matched, so nothing S
computes reveals k.  (The same encoding serves RR22, where S sends one value per element.)
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .errors import PsiProtocolError
from .primitives import derive

PAIR_ID_BYTES = 16
TAG_BYTES = 4
POSITION_BYTES = 4   #: element indices travel as uint32 little-endian
_PERSON = b"sc-psi-pair"


def pair_ids_and_tags(context: bytes, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, 16) pair ids and (k, 4) tags of the elements with these (k, 2) uint64 digests."""
    rows = np.ascontiguousarray(digests, dtype=np.uint64).view(np.uint8).reshape(-1, 16)
    out = np.empty((rows.shape[0], PAIR_ID_BYTES + TAG_BYTES), np.uint8)
    if rows.shape[0]:
        h0 = kernels.blake2b_initial_state(PAIR_ID_BYTES + TAG_BYTES,
                                           salt=derive(context, b"sc-psi-pair-salt", 16),
                                           person=_PERSON)
        kernels.blake2b_rows(rows, h0, kernels.BLAKE2B_IV, out)
    return np.ascontiguousarray(out[:, :PAIR_ID_BYTES]), np.ascontiguousarray(out[:, PAIR_ID_BYTES:])


def encode_claims(indices: np.ndarray, tags: np.ndarray, max_bytes: int):
    """Yield (positions bytes, tags bytes) chunks of at most ``max_bytes`` each, in index order."""
    per = max(1, max_bytes // (POSITION_BYTES + TAG_BYTES))
    for lo in range(0, indices.size, per):
        yield (indices[lo:lo + per].astype("<u4").tobytes(),
               np.ascontiguousarray(tags[lo:lo + per]).tobytes())


def check_distinct_increasing(indices: np.ndarray, what: str) -> None:
    if indices.size and np.any(np.diff(indices) <= 0):
        raise PsiProtocolError(f"{what}: two matches for one sender element "
                               "(a false positive of the OPRF comparison; expected one each)")


class ClaimChecker:
    """Sender side: collects R's claimed element indices and tags, then verifies them."""

    def __init__(self, n_sender: int) -> None:
        self.n = n_sender
        self._indices: list[np.ndarray] = []
        self._tags: list[np.ndarray] = []
        self._last = -1

    def add(self, positions: bytes, tags: bytes) -> None:
        if len(positions) % POSITION_BYTES or len(tags) != len(positions) // POSITION_BYTES * TAG_BYTES:
            raise PsiProtocolError(
                f"matches: expected {POSITION_BYTES}-byte positions and {TAG_BYTES}-byte tags, "
                f"found {len(positions)} and {len(tags)} bytes")
        indices = np.frombuffer(positions, "<u4").astype(np.int64)
        if indices.size and (indices[0] <= self._last or np.any(np.diff(indices) <= 0)
                             or indices[-1] >= self.n):
            raise PsiProtocolError(
                f"matches: expected strictly increasing positions below {self.n} (across "
                "messages too), found otherwise")
        if indices.size:
            self._last = int(indices[-1])
        self._indices.append(indices)
        self._tags.append(np.frombuffer(tags, np.uint8).reshape(-1, TAG_BYTES))

    @property
    def count(self) -> int:
        return sum(i.size for i in self._indices)

    def confirm(self, context: bytes, sender_digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(claimed indices, pair ids) after checking every tag against our own element."""
        indices = np.concatenate(self._indices) if self._indices else np.empty(0, np.int64)
        tags = np.concatenate(self._tags) if self._tags else np.empty((0, TAG_BYTES), np.uint8)
        ids, mine = pair_ids_and_tags(context, sender_digests[indices])
        if not np.array_equal(mine, tags):
            bad = int(np.nonzero(np.any(mine != tags, axis=1))[0][0])
            raise PsiProtocolError(
                f"matches: confirmation tag of position {int(indices[bad])} does not match "
                "(expected the tag of our element there)")
        return indices, ids
