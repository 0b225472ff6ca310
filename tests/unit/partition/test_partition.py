"""The partition: SipHash-2-4 against the designers' vectors, the key derivation, and the
property that matters: every record of a (service, calling, called) line lands in one bucket."""

from __future__ import annotations

import hmac
import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import JobError
from engine.partition import (
    KEY_BYTES, Partition, bucket_count, partition_share, share_commitment,
    siphash24_words,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "partition" / "siphash24_vectors.txt"
KEY = bytes(range(16))


def published() -> list[bytes]:
    lines = [ln for ln in VECTORS.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 64
    return [bytes.fromhex(ln) for ln in lines]


def siphash_reference(key: bytes, message: bytes) -> int:
    """SipHash-2-4 transcribed from the paper (Aumasson and Bernstein 2012, section 2),
    byte-oriented and slow: the independent check of the word kernel."""
    mask = (1 << 64) - 1

    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & mask

    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D,
         k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def sipround():
        v[0] = (v[0] + v[1]) & mask; v[1] = rotl(v[1], 13); v[1] ^= v[0]; v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & mask; v[3] = rotl(v[3], 16); v[3] ^= v[2]
        v[0] = (v[0] + v[3]) & mask; v[3] = rotl(v[3], 21); v[3] ^= v[0]
        v[2] = (v[2] + v[1]) & mask; v[1] = rotl(v[1], 17); v[1] ^= v[2]; v[2] = rotl(v[2], 32)

    tail = len(message) % 8
    blocks = [int.from_bytes(message[i:i + 8], "little")
              for i in range(0, len(message) - tail, 8)]
    last = int.from_bytes(message[len(message) - tail:], "little") | ((len(message) & 255) << 56)
    for m in blocks + [last]:
        v[3] ^= m
        sipround(); sipround()
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(4):
        sipround()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def test_reference_reproduces_every_published_vector():
    for length, want in enumerate(published()):
        got = siphash_reference(KEY, bytes(range(length)))
        assert got.to_bytes(8, "little") == want, f"length {length}"


@pytest.mark.parametrize("n_words", [1, 2, 3, 7])
def test_kernel_reproduces_the_published_vectors_for_whole_words(n_words):
    message = bytes(range(8 * n_words))
    words = np.frombuffer(message, dtype="<u8").reshape(n_words, 1)
    got = siphash24_words(KEY, words)
    assert int(got[0]).to_bytes(8, "little") == published()[8 * n_words]


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=16, max_size=16),
       rows=st.lists(st.tuples(*[st.integers(0, 2**64 - 1)] * 3), min_size=1, max_size=20))
def test_kernel_equals_reference(key, rows):
    words = np.array(rows, dtype=np.uint64).T.copy()
    got = siphash24_words(key, words)
    for r, row in enumerate(rows):
        message = b"".join(x.to_bytes(8, "little") for x in row)
        assert int(got[r]) == siphash_reference(key, message)


def test_key_size_is_checked():
    with pytest.raises(ValueError, match="16 bytes"):
        siphash24_words(b"short", np.zeros((3, 1), dtype=np.uint64))
    with pytest.raises(JobError, match="16 bytes"):
        Partition(key=b"short", n_buckets=2)
    with pytest.raises(JobError, match="number of buckets"):
        Partition(key=bytes(16), n_buckets=0)


def test_shares_are_hmac_sm3_and_the_job_secret_needs_both():
    from engine.job.job_secrets import JobSecrets

    secret = bytes(range(32))
    share = partition_share(secret, "job-1")
    want = hmac.new(secret, b"settlechain/partition-share/v1\njob-1",
                    lambda: hashlib.new("sm3")).digest()
    assert share == want
    other = partition_share(bytes(32), "job-1")
    assert partition_share(secret, "job-2") != share
    base = JobSecrets.from_shares("job-1", share, other)
    key = base.partition(4).key
    assert len(key) == KEY_BYTES
    assert JobSecrets.from_shares("job-1", other, share).partition(4).key != key  # A then B
    assert JobSecrets.from_shares("job-2", share, other).partition(4).key != key
    assert JobSecrets.from_shares("job-1", share, partition_share(secret, "x")).partition(4).key \
        != key
    # every derived secret is distinct, and session ids depend on the run's nonce
    derived = {base.pair_key, base.statement_salt, key}
    assert len(derived) == 3
    assert base.psi_session_id(b"n1", 0, "S1", 0) != base.psi_session_id(b"n2", 0, "S1", 0)
    assert base.psi_session_id(b"n1", 0, "S1", 0) != base.psi_session_id(b"n1", 0, "S1", 1)
    assert share_commitment(share) != share.hex()
    with pytest.raises(JobError, match="partition share"):
        JobSecrets.from_shares("job-1", share[:5], other)


def test_bucket_count():
    assert bucket_count(0, 1000) == 1
    assert bucket_count(1000, 1000) == 1
    assert bucket_count(1001, 1000) == 2
    assert bucket_count(10**12, 1) == 1 << 16
    with pytest.raises(JobError):
        bucket_count(10, 0)


def test_a_line_lands_in_one_bucket_and_buckets_are_balanced():
    rng = np.random.default_rng(1)
    n = 200_000
    service = rng.integers(0, 3, n)
    calling = rng.integers(10**10, 10**11, n)
    called = rng.integers(10**10, 10**11, n)
    part = Partition(key=bytes(range(16)), n_buckets=8)
    buckets = part.buckets(service, calling, called)
    # the same line (another record of the same call) gets the same bucket
    again = part.buckets(service[:1000], calling[:1000], called[:1000])
    assert np.array_equal(again, buckets[:1000])
    counts = np.bincount(buckets, minlength=8)
    assert counts.min() > 0.95 * n / 8 and counts.max() < 1.05 * n / 8
    # another key moves records between buckets (the key matters)
    other = Partition(key=bytes(16), n_buckets=8).buckets(service, calling, called)
    assert (other != buckets).mean() > 0.8
    assert np.all(Partition(key=bytes(16), n_buckets=1).buckets(service, calling, called) == 0)
