"""Chunks (the unit of randomness) and blocks (the unit of memory and writing).

A scenario is generated in **blocks** of whole **chunks** of events:

- a *chunk* is :data:`CHUNK` consecutive events.  Every random draw about the events
  of a chunk (or about the rows made of them) comes from the stream of that
  (purpose, chunk) (:func:`stream`).  The chunk is part of the definition of a
  scenario: changing it changes the data;
- a *block* is any number of whole chunks generated, held and written together.
  Peak memory grows with the block, and nothing else depends on it: every step
  that looks across events (repeat calls, isolation, invalid rows, duplicate
  copies, row numbers) carries its state from block to block so that it does
  exactly what it would do over the whole file at once.  The same seed and knobs
  give the same files whatever the block size (tested byte for byte).

Large temporaries are expensive here: a fresh 80 MB numpy array costs several times
the arithmetic done on it (the kernel faults its pages in one by one), so the work
inside a block also runs on arrays of at most :data:`WORK` elements where it can.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

from data_gen.errors import DataGenError

#: Events per chunk: one random stream per (purpose, chunk).  Part of the definition of a
#: scenario (tests shrink it to exercise chunk and block boundaries in small scenarios).
CHUNK = 1 << 16
#: Default events per block (a multiple of CHUNK): under 1 GiB of peak memory in all.
DEFAULT_BLOCK_EVENTS = 1 << 18
#: Elements per step of a long vectorised loop (not part of the scenario's definition).
WORK = 1 << 20


def spans(n: int, size: int = 0) -> Iterator[tuple[int, int, int]]:
    """(index, start, stop) covering 0..n in steps of ``size`` (default :data:`WORK`)."""
    size = size or WORK
    for index, lo in enumerate(range(0, n, size)):
        yield index, lo, min(n, lo + size)


def block_events(requested: int | None) -> int:
    """The block size actually used: ``requested`` events (default
    :data:`DEFAULT_BLOCK_EVENTS`) rounded up to whole chunks."""
    size = DEFAULT_BLOCK_EVENTS if requested is None else int(requested)
    if size < 1:
        raise DataGenError(f"bad block size: expected at least one event, found {size}")
    return -(-size // CHUNK) * CHUNK


def block_ranges(n: int, size: int) -> Iterator[tuple[int, int]]:
    """(lo, hi) of the blocks of ``size`` events (a multiple of CHUNK) covering 0..n."""
    for lo in range(0, n, size):
        yield lo, min(n, lo + size)


def chunks(lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
    """(chunk index, start, stop) of the chunks of events lo..hi (lo a chunk boundary)."""
    for start in range(lo, hi, CHUNK):
        yield start // CHUNK, start, min(hi, start + CHUNK)


def stream(seed: int, name: str, chunk: int = 0) -> np.random.Generator:
    """The random stream ``name`` of chunk ``chunk`` of a scenario: independent of every
    other stream and chunk."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode()), chunk]))
