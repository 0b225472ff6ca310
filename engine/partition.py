"""Partitioned reconciliation: records into buckets by a keyed hash of what matches exactly.

Both operators put each canonical record into bucket

    bucket = SipHash-2-4_K(service ‖ calling ‖ called) mod n_buckets

(the three fields as little-endian 64-bit words: the service code, and the calling and
called numbers as integers).  Matching pairs records only inside one (service, calling,
called) line (docs/matching.md), and the start time is not hashed, so the tolerant time
windows lose no pair across buckets: reconciling bucket b of A with bucket b of B, for
every b, gives exactly the result of reconciling the whole exports, and a party's
memory is bounded by a bucket.

The key is derived from the job's shared secret (:mod:`engine.job.job_secrets`), itself
from both operators' shares, each an HMAC-SM3 under the operator's own SM2 private key of
the job id (:func:`partition_share`).  Only A and B know the shares, so neither H nor an outsider
can tell which bucket a number falls in; the shares are the same on every run of the
same job, so an interrupted job resumes with the same buckets and a recovery run
(``settlechain party --recover``) recomputes the same commitments.  SipHash-2-4 is a
PRF keyed by 128 bits (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
INDOCRYPT 2012); the kernel here is tested against the designers' published vectors.

The number of buckets is agreed before either side reads its data, from both sides'
row estimates (:func:`bucket_count`).  What bucket sizes reveal is in
docs/threat-model.md: to the counterparty (which knows K) the number of own records per
bucket, a histogram over a pseudorandom function of the lines; to H nothing.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from engine.errors import JobError
from ledger_anchor.sm3 import sm3

KEY_BYTES = 16
SHARE_BYTES = 32
DEFAULT_RECORDS_PER_BUCKET = 1 << 20
"""Records per bucket the job aims at: a bucket of 2^20 records needs a few hundred MiB
per party (bench/README.md); the job file can set another value."""
MAX_BUCKETS = 1 << 16


def _hmac_sm3(key: bytes, message: bytes) -> bytes:
    """HMAC (RFC 2104) with SM3, from ``cryptography`` (OpenSSL)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import hmac as crypto_hmac

    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(message)
    return mac.finalize()


def partition_share(private_key: bytes, job_id: str) -> bytes:
    """This operator's share of the partition key: HMAC-SM3(private key, label ‖ job id)."""
    return _hmac_sm3(private_key, b"settlechain/partition-share/v1\n" + job_id.encode())


def share_commitment(share: bytes) -> str:
    """What a party may show of its share (logs, resume checks): its SM3, never the share."""
    return sm3(b"settlechain/partition-share-commitment/v1\n" + share).hex()


def bucket_count(estimated_rows: int, records_per_bucket: int) -> int:
    """Buckets for the larger side's estimated rows (at least 1, at most MAX_BUCKETS)."""
    if records_per_bucket < 1:
        raise JobError(f"records_per_bucket must be at least 1, found {records_per_bucket}")
    return max(1, min(MAX_BUCKETS, math.ceil(max(estimated_rows, 0) / records_per_bucket)))


# ---------------------------------------------------------------------------
# SipHash-2-4 over 64-bit words (numba)

_U64 = np.uint64


@njit(cache=True, nogil=True, inline="always")
def _rotl(x, b):  # pragma: no cover - compiled
    return (x << _U64(b)) | (x >> _U64(64 - b))


@njit(cache=True, nogil=True, inline="always")
def _sipround(v0, v1, v2, v3):  # pragma: no cover - compiled
    """One SipRound (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012, §2)."""
    v0 += v1
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 += v3
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 += v1
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@njit(cache=True, nogil=True)
def _siphash_row(k0, k1, words, row, n_words):  # pragma: no cover - compiled
    v0 = k0 ^ _U64(0x736F6D6570736575)
    v1 = k1 ^ _U64(0x646F72616E646F6D)
    v2 = k0 ^ _U64(0x6C7967656E657261)
    v3 = k1 ^ _U64(0x7465646279746573)
    for w in range(n_words + 1):
        if w < n_words:
            m = words[w, row]
        else:
            m = _U64((8 * n_words) & 255) << _U64(56)
        v3 ^= m
        for _ in range(2):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    v2 ^= _U64(0xFF)
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


@njit(cache=True, nogil=True, parallel=True)
def _siphash_words(k0, k1, words, out):  # pragma: no cover - compiled
    n_words, n = words.shape
    for r in prange(n):
        out[r] = _siphash_row(k0, k1, words, r, n_words)


def siphash24_words(key: bytes, words: np.ndarray) -> np.ndarray:
    """SipHash-2-4 (64-bit output) under the 16-byte ``key`` of each column of ``words``
    ((k, n) uint64): the message of column r is words[0, r] ‖ … ‖ words[k-1, r], each
    little-endian (8k bytes).  Returns (n,) uint64."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"SipHash key must be {KEY_BYTES} bytes, found {len(key)}")
    k0, k1 = np.frombuffer(key, dtype="<u8").astype(np.uint64)
    words = np.ascontiguousarray(words, dtype=np.uint64)
    if words.ndim != 2:
        raise ValueError("words must be (k, n)")
    out = np.empty(words.shape[1], dtype=np.uint64)
    if words.shape[1]:
        _siphash_words(k0, k1, words, out)
    return out


@dataclass(frozen=True)
class Partition:
    """The agreed bucketing of one job: key and number of buckets."""

    key: bytes
    n_buckets: int

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise JobError(f"partition key must be {KEY_BYTES} bytes, found {len(self.key)}")
        if not 1 <= self.n_buckets <= MAX_BUCKETS:
            raise JobError(f"number of buckets must be 1..{MAX_BUCKETS}, found {self.n_buckets}")

    def buckets(self, service: np.ndarray, calling: np.ndarray, called: np.ndarray) -> np.ndarray:
        """(n,) int32 bucket of each record (service code, calling and called as integers)."""
        n = len(service)
        if self.n_buckets == 1:
            return np.zeros(n, dtype=np.int32)
        words = np.empty((3, n), dtype=np.uint64)
        words[0] = np.asarray(service, dtype=np.uint64)
        words[1] = np.asarray(calling, dtype=np.int64).view(np.uint64)
        words[2] = np.asarray(called, dtype=np.int64).view(np.uint64)
        hashed = siphash24_words(self.key, words)
        return (hashed % np.uint64(self.n_buckets)).astype(np.int32)

    def fingerprint(self) -> str:
        """An SM3 of the key, safe to log and to compare between runs."""
        return sm3(b"settlechain/partition-fingerprint/v1\n" + self.key
                   + self.n_buckets.to_bytes(4, "big")).hex()[:16]


def local_partition(n_buckets: int = 1) -> Partition:
    """A partition for one process that holds both sides (the reference reconciler, tests):
    the result of matching does not depend on the key, only the grouping does."""
    return Partition(key=bytes(KEY_BYTES), n_buckets=n_buckets)


def same_key(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def warm_up() -> None:
    """Compile (or load from the cache) the kernel."""
    siphash24_words(bytes(KEY_BYTES), np.zeros((3, 2), dtype=np.uint64))
