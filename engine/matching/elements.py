"""Pass elements (docs/matching.md "Elements"), pair ids, and the plaintext intersection.

An element is the packed little-endian record

    tag u8 ‖ service u8 ‖ calling u64 ‖ called u64 ‖ field_i i64 … ‖ rank u32

where the numbers are the E.164 digits as integers (validation refuses a leading 0, so
the integer determines the digits), the fields are the pass's compared values, and
the rank is the element's position in its run of equal fields, which makes a party's
elements distinct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.matching.errors import MatchingError
from engine.names import ELEMENT_ID_BYTES, PassSpec
from ledger_anchor.sm3 import sm3


def element_dtype(n_fields: int) -> np.dtype:
    """The packed little-endian record layout of an element with ``n_fields`` i64 fields."""
    return np.dtype(
        [("tag", "u1"), ("service", "u1"), ("calling", "<u8"), ("called", "<u8")]
        + [(f"field{i}", "<i8") for i in range(n_fields)]
        + [("rank", "<u4")]
    )


def encode_elements(tag: int, service: np.ndarray, calling: np.ndarray, called: np.ndarray,
                    fields: Sequence[np.ndarray], rank: np.ndarray) -> np.ndarray:
    """Element bytes as a ``(k, w)`` uint8 array (numbers as integers)."""
    dtype = element_dtype(len(fields))
    out = np.empty(len(rank), dtype=dtype)
    out["tag"] = tag
    out["service"] = service
    out["calling"] = calling
    out["called"] = called
    for i, values in enumerate(fields):
        out[f"field{i}"] = values
    out["rank"] = rank
    return out.view(np.uint8).reshape(len(rank), dtype.itemsize)


def ranks(keys: Sequence[np.ndarray]) -> np.ndarray:
    """0-based position of each item within its run of equal ``keys`` (runs contiguous)."""
    n = len(keys[0]) if keys else 0
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new_group = np.zeros(n, dtype=bool)
    new_group[0] = True
    for key in keys:
        new_group[1:] |= key[1:] != key[:-1]
    positions = np.arange(n, dtype=np.int64)
    group_start = np.maximum.accumulate(np.where(new_group, positions, 0))
    return positions - group_start


@dataclass(frozen=True)
class PassElements:
    """One party's elements of one pass over one bucket: what it offers to the PSI."""

    spec: PassSpec
    elements: np.ndarray
    """``(k, spec.width)`` uint8, distinct rows (the rank makes them so)."""
    records: np.ndarray
    """int64 ``(k,)``: the matcher's record position of each element."""
    ranks: np.ndarray
    """uint32 ``(k,)``: the rank written into each element."""
    units: np.ndarray
    """int64 ``(k,)``: the bucket unit of each element."""

    def __len__(self) -> int:
        return len(self.records)


def pair_ids_hex(ids: np.ndarray) -> pl.Series:
    """``(k, 16)`` uint8 pair ids as a String series of 32 lowercase hex characters."""
    import pyarrow as pa

    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    if len(ids) == 0:
        return pl.Series("pair_id", [], dtype=pl.String)
    if ids.ndim != 2 or ids.shape[1] != ELEMENT_ID_BYTES:
        raise ValueError(f"pair ids: expected shape (k, {ELEMENT_ID_BYTES}), found {ids.shape}")
    # fixed-size binary straight from the buffer (numpy's S dtype would drop trailing zero
    # bytes), hex-encoded by polars
    binary = pa.FixedSizeBinaryArray.from_buffers(pa.binary(ELEMENT_ID_BYTES), len(ids),
                                                  [None, pa.py_buffer(ids)])
    return pl.from_arrow(binary).cast(pl.Binary).bin.encode("hex").alias("pair_id")


# ---------------------------------------------------------------------------
# pair ids and the common order of a pass's pairs

PAIR_KEY_BYTES = 32


def pair_ids(key: bytes, bucket: int, elements: np.ndarray) -> np.ndarray:
    """``(k, 16)`` uint8 pair ids of a pass's matched elements (``(k, w)`` uint8): two
    SipHash-2-4 PRFs under the halves of ``key`` of (bucket ‖ element).  Both sides hold
    equal matched elements, so they derive equal ids without sending any; a party that
    does not hold the key learns nothing from an id; and the ids, like everything else
    computed from the inputs, are the same on every run of the job (a recovery run
    rebuilds records.parquet byte for byte).  Elements of one pass are distinct, so their
    ids are distinct but for a 2^-128 collision (checked per bucket)."""
    from engine.partition import siphash24_words

    if len(key) != PAIR_KEY_BYTES:
        raise ValueError(f"pair-id key must be {PAIR_KEY_BYTES} bytes")
    k, width = elements.shape
    words_n = -(-width // 8) + 1
    padded = np.zeros((k, 8 * words_n), dtype=np.uint8)
    padded[:, :8] = np.frombuffer(int(bucket).to_bytes(8, "little"), dtype=np.uint8)
    padded[:, 8:8 + width] = elements
    words = np.ascontiguousarray(padded.view("<u8").T)
    out = np.empty((k, 2), dtype="<u8")
    out[:, 0] = siphash24_words(key[:16], words)
    out[:, 1] = siphash24_words(key[16:], words)
    return out.view(np.uint8).reshape(k, ELEMENT_ID_BYTES)


def common_order(elements: np.ndarray, local_indices: np.ndarray, key: bytes,
                 bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """A pass's matched elements in the order both sides agree on without talking (by pair
    id), with their ids: ``(local indices, pair ids)``."""
    idx = np.asarray(local_indices, dtype=np.int64)
    ids = pair_ids(key, bucket, elements[idx])
    order = np.lexsort(ids.view(">u8").T[::-1]) if len(ids) else np.zeros(0, dtype=np.int64)
    return idx[order], ids[order]


_PAIR_ID_CONTEXT = b"settlechain/reference/pair-id\x00"


def reference_pair_key(job_id: str) -> bytes:
    """The reference reconciler's pair-id key (public: derived from the job id alone)."""
    return sm3(_PAIR_ID_CONTEXT + job_id.encode("utf-8"))


def plaintext_intersection(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(ia, ib)`` of equal rows of two ``(n, w)`` uint8 element arrays, in A's
    order.  Raises :class:`MatchingError` when a side's elements are not distinct.

    A hash join on a 64-bit mix of each element's bytes, then every joined pair is
    compared on all its bytes, so a hash collision can cost time but never a wrong
    or a missed pair (equal elements always have equal mixes).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.dtype != np.uint8 \
            or b.dtype != np.uint8:
        raise MatchingError("element arrays must be (n, w) uint8 of one width",
                            expected=f"uint8 (n, {a.shape[-1]})",
                            found=f"{a.dtype} {a.shape} and {b.dtype} {b.shape}")
    words_a, words_b = _as_words(a), _as_words(b)
    mix_a, mix_b = _mix(words_a), _mix(words_b)
    for words, mix, party in ((words_a, mix_a, "A"), (words_b, mix_b, "B")):
        _check_distinct(words, mix, party)
    joined = (pl.DataFrame({"h": mix_a, "ia": np.arange(len(mix_a), dtype=np.int64)})
              .join(pl.DataFrame({"h": mix_b, "ib": np.arange(len(mix_b), dtype=np.int64)}),
                    on="h", how="inner")
              .sort("ia"))
    ia = joined.get_column("ia").to_numpy()
    ib = joined.get_column("ib").to_numpy()
    equal = (words_a[:, ia] == words_b[:, ib]).all(axis=0)
    return ia[equal].astype(np.int64), ib[equal].astype(np.int64)


def _as_words(elements: np.ndarray) -> np.ndarray:
    """``(words, n)`` little-endian u64 words of each element, zero-padded."""
    width = elements.shape[1]
    words = -(-width // 8)
    padded = np.zeros((len(elements), 8 * words), dtype=np.uint8)
    padded[:, :width] = elements
    return np.ascontiguousarray(padded.view("<u8").T)


def _mix(words: np.ndarray) -> np.ndarray:
    """A 64-bit mix of each column of ``words`` (a join key, not a cryptographic hash)."""
    mixed = np.zeros(words.shape[1], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for word in words:
            mixed ^= word
            mixed *= np.uint64(0x9E3779B97F4A7C15)
            mixed ^= mixed >> np.uint64(29)
    return mixed


def _check_distinct(words: np.ndarray, mix: np.ndarray, party: str) -> None:
    if pl.Series(mix).n_unique() == len(mix):
        return
    frame = pl.DataFrame({f"w{i}": w for i, w in enumerate(words)})
    repeated = frame.is_duplicated()
    if repeated.any():
        raise MatchingError(f"pass elements of party {party} are not distinct",
                            expected="distinct elements (the rank makes them so)",
                            found=f"element {int(repeated.arg_true()[0])} repeated")
