"""Work in blocks of events.

Large temporaries are expensive here: a fresh 80 MB numpy array costs several
times the arithmetic done on it (the kernel faults its pages in one by one),
while blocks of 2^20 elements stay in memory the allocator recycles.  So every
per-event or per-row computation runs block by block, writing into arrays
allocated once; random draws use one stream per (purpose, block), which keeps a
scenario deterministic for a seed and independent of how many blocks ran before.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

#: Events (or rows) per block.  Part of the definition of a scenario: changing it changes
#: the random draws, hence the data, for scenarios larger than one block.
BLOCK = 1 << 20


def spans(n: int) -> Iterator[tuple[int, int, int]]:
    """(block index, start, stop) covering 0..n in blocks of :data:`BLOCK`."""
    for index, lo in enumerate(range(0, n, BLOCK)):
        yield index, lo, min(n, lo + BLOCK)


def stream(seed: int, name: str, block: int = 0) -> np.random.Generator:
    """The random stream ``name`` of block ``block`` of a scenario: independent of every
    other stream and block."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode()), block]))
