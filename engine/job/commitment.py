"""A party's commitment to its canonical records: an SM3 Merkle root (RFC 9162 hashing).

Each operator computes it right after ingest, signs it, and sends it to the other
before any PSI message; it is anchored on the ledger with the settlement
statement.  Later, an auditor who is shown the party's canonical records (or who
recomputes them from the same billing export and rules) can recompute the root and
so check that the reconciliation ran on exactly those records.

Format v1.  Canonical records are taken in ``unit`` order and cut into chunks of
:data:`CHUNK` records; each chunk is one Merkle leaf (leaf hash = SM3(0x00 ‖ data)),
which keeps the tree small (10^7 records are 2,442 leaves) and the hashing in large
buffers.  A chunk's data is::

    b"settlechain/commitment/v1\\n" ‖ u32 count ‖ count × fixed row ‖
    u32[count+1] record_id offsets ‖ record_id bytes ‖ u32[count+1] trunk_group offsets ‖ trunk bytes

with the fixed row (little-endian, 70 bytes): row u64, service u8, excluded u8,
parts u32, calling u64, called u64, start i64, duration_s i64, volume_kb i64,
charge i64, rated_charge i64; numbers packed as in docs/matching.md.  Strings are
UTF-8 and offsets are relative to the chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ledger_anchor.merkle import SM3_HASHER, Frontier

FORMAT = "settlechain/commitment/v1"
CHUNK = 4096
_PREFIX = (FORMAT + "\n").encode("ascii")
_ROW = np.dtype([
    ("row", "<u8"), ("service", "u1"), ("excluded", "u1"), ("parts", "<u4"),
    ("calling", "<u8"), ("called", "<u8"), ("start", "<i8"), ("duration_s", "<i8"),
    ("volume_kb", "<i8"), ("charge", "<i8"), ("rated_charge", "<i8"),
])
assert _ROW.itemsize == 70


@dataclass(frozen=True)
class Commitment:
    root: bytes
    records: int
    leaves: int

    def as_json(self) -> dict:
        return {"format": FORMAT, "root": self.root.hex(), "records": self.records,
                "leaves": self.leaves, "chunk": CHUNK}


def pack_numbers(digits: pl.Series) -> np.ndarray:
    """E.164 digit strings -> u64 ``int(digits) | len(digits) << 56`` (docs/matching.md)."""
    values = digits.cast(pl.UInt64, strict=True).to_numpy().astype(np.uint64)
    lengths = digits.str.len_bytes().cast(pl.UInt64).to_numpy().astype(np.uint64)
    return values | (lengths << np.uint64(56))


def _strings(series: pl.Series) -> tuple[bytes, np.ndarray]:
    """All strings concatenated as UTF-8, and their offsets (len n + 1)."""
    lengths = series.str.len_bytes().cast(pl.Int64).to_numpy()
    offsets = np.zeros(len(series) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = series.str.join("").item() if len(series) else ""
    return data.encode("utf-8"), offsets


def commit_records(records: pl.DataFrame) -> Commitment:
    """The commitment to a canonical ``records`` frame (docs/records.md)."""
    n = records.height
    fixed = np.zeros(n, dtype=_ROW)
    for name in ("row", "service", "parts", "start", "duration_s", "volume_kb", "charge",
                 "rated_charge"):
        fixed[name] = records[name].fill_null(0).to_numpy()
    fixed["excluded"] = records["excluded"].cast(pl.UInt8).to_numpy()
    fixed["calling"] = pack_numbers(records["calling"])
    fixed["called"] = pack_numbers(records["called"])
    ids, id_offsets = _strings(records["record_id"])
    trunks, trunk_offsets = _strings(records["trunk_group"])
    frontier = Frontier(SM3_HASHER)
    for begin in range(0, n, CHUNK):
        end = min(begin + CHUNK, n)
        parts = [_PREFIX, np.uint32(end - begin).tobytes(), fixed[begin:end].tobytes()]
        for data, offsets in ((ids, id_offsets), (trunks, trunk_offsets)):
            rel = (offsets[begin:end + 1] - offsets[begin]).astype("<u4")
            parts.append(rel.tobytes())
            parts.append(data[offsets[begin]:offsets[end]])
        frontier.append(SM3_HASHER.hash_leaf(b"".join(parts)))
    return Commitment(root=frontier.root(), records=n, leaves=frontier.size)
