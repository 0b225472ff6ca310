"""A party's commitment to its canonical records: an SM3 Merkle root over per-bucket roots.

Each operator computes it after ingest, signs it, and sends it to the other before any
PSI message; it is anchored on the ledger with the settlement statement.  An auditor
who is shown the party's canonical records (or recomputes them from the same export,
rules and job) can recompute the root and so check that the reconciliation ran on
exactly those records; a recovery run (``settlechain party --recover``) refuses to
rebuild outputs unless its inputs give the anchored root.

Format v2 (RFC 9162 hashing with SM3: leaf = SM3(0x00 ‖ data), node = SM3(0x01 ‖ l ‖ r)).

- **Bucket tree.**  A bucket's canonical records in unit order, cut into chunks of
  :data:`CHUNK` records; each chunk is one leaf with data
  ``"settlechain/commitment/v2/records\\n" ‖ u32 bucket ‖ u32 count ‖ count × row``,
  the fixed row (little-endian, 70 bytes): row u64, service u8, excluded u8, parts u32,
  calling u64, called u64, start i64, duration_s i64, volume_kb i64, charge i64,
  rated_charge i64 (numbers as integers).  An empty bucket has the root of the empty tree.
- **Dataset tree.**  One leaf per bucket, in bucket order, with data
  ``"settlechain/commitment/v2/bucket\\n" ‖ u32 bucket ‖ u64 records ‖ bucket root``.

The record ids are not in the tree (the rows are, and the export binds row to id); they
stay in the party's own files.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ledger_anchor.merkle import SM3_HASHER, Frontier

FORMAT = "settlechain/commitment/v2"
CHUNK = 4096
_RECORDS_PREFIX = b"settlechain/commitment/v2/records\n"
_BUCKET_PREFIX = b"settlechain/commitment/v2/bucket\n"
_ROW = np.dtype([
    ("row", "<u8"), ("service", "u1"), ("excluded", "u1"), ("parts", "<u4"),
    ("calling", "<u8"), ("called", "<u8"), ("start", "<i8"), ("duration_s", "<i8"),
    ("volume_kb", "<i8"), ("charge", "<i8"), ("rated_charge", "<i8"),
])
assert _ROW.itemsize == 70


@dataclass(frozen=True)
class BucketRoot:
    bucket: int
    records: int
    root: bytes


@dataclass(frozen=True)
class Commitment:
    root: bytes
    records: int
    buckets: int

    def as_json(self) -> dict:
        return {"format": FORMAT, "root": self.root.hex(), "records": self.records,
                "buckets": self.buckets, "chunk": CHUNK}


def bucket_root(bucket: int, records: pl.DataFrame) -> BucketRoot:
    """The root of one bucket's canonical records (engine.ingest.stream.BUCKET_RECORDS_SCHEMA)."""
    n = records.height
    fixed = np.zeros(n, dtype=_ROW)
    for name in ("row", "service", "parts", "start", "duration_s", "volume_kb", "charge"):
        fixed[name] = records.get_column(name).to_numpy()
    fixed["rated_charge"] = records.get_column("rated_charge").fill_null(0).to_numpy()
    fixed["excluded"] = records.get_column("excluded").cast(pl.UInt8).to_numpy()
    fixed["calling"] = records.get_column("calling").to_numpy().astype(np.int64).view(np.uint64)
    fixed["called"] = records.get_column("called").to_numpy().astype(np.int64).view(np.uint64)
    frontier = Frontier(SM3_HASHER)
    head = _RECORDS_PREFIX + struct.pack("<I", bucket)
    for begin in range(0, n, CHUNK):
        end = min(begin + CHUNK, n)
        frontier.append(SM3_HASHER.hash_leaf(
            head + struct.pack("<I", end - begin) + fixed[begin:end].tobytes()))
    return BucketRoot(bucket=bucket, records=n, root=frontier.root())


def dataset_commitment(roots: Sequence[BucketRoot]) -> Commitment:
    """The dataset root over the buckets' roots (in bucket order, every bucket once)."""
    if [r.bucket for r in roots] != list(range(len(roots))):
        raise ValueError("bucket roots must be given for buckets 0..n-1 in order")
    frontier = Frontier(SM3_HASHER)
    for r in roots:
        frontier.append(SM3_HASHER.hash_leaf(
            _BUCKET_PREFIX + struct.pack("<IQ", r.bucket, r.records) + r.root))
    return Commitment(root=frontier.root(), records=sum(r.records for r in roots),
                      buckets=len(roots))
