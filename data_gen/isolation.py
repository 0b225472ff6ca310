"""Isolation: no two events of one (service, calling, called) come close, block by block.

Two different events with the same (service, calling, called) could be paired with
each other by the tolerant passes, which would make the expected status depend on
the matcher's tie-breaking.  Called numbers are unique per event (numbers.CalledNumbers),
so only a repeat call and the other events carrying its source's original numbers
(the source itself, if it is not a repeat, and the source's other repeats) can share
a triple; they all lie within :func:`~data_gen.events.repeat_window` events of the
source.

Events are decided in order: a repeat event is **renumbered** (its called number gets
new subscriber digits in the same range, so the same operator, tariff and charges)
when one of its records on either side, as the matcher will read it (wrong UTC
offsets included), comes within :meth:`GenConfig.isolation_gap_s` of a record of an
earlier event that still carries the same triple.  Afterwards every two events of a
triple are at least the gap apart on both sides, so every true pair is isolated in
the sense of docs/matching.md and its status follows from the guarantees there.

Each decision looks back at most a repeat window, so a ring of the recent events'
records (a few tens of bytes per event of the window) carries everything a block
needs from the blocks before it, and the result does not depend on the block size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_gen.config import GenConfig
from data_gen.events import Events
from data_gen.numbers import CalledNumbers, with_subscribers


@dataclass
class Records:
    """One side's canonical record of each event of a block, as the matcher reads it."""

    present: np.ndarray  # bool
    start: np.ndarray    # int64 UTC epoch seconds
    end: np.ndarray      # int64: start + duration


class Isolation:
    """Decides, block by block and in event order, which repeat events to renumber."""

    def __init__(self, config: GenConfig, window: int, block_events: int) -> None:
        self.gap = config.isolation_gap_s()
        self.window = window
        capacity = window + block_events
        self.capacity = capacity
        self.service = np.zeros(capacity, dtype=np.uint8)
        self.is_repeat = np.zeros(capacity, dtype=bool)
        self.present = np.zeros((2, capacity), dtype=bool)
        self.start = np.zeros((2, capacity), dtype=np.int64)
        self.end = np.zeros((2, capacity), dtype=np.int64)
        # the repeat events of the last window: index, source, still carrying its numbers
        self.recent_index = np.zeros(0, dtype=np.int64)
        self.recent_source = np.zeros(0, dtype=np.int64)
        self.recent_retained = np.zeros(0, dtype=bool)

    def block(self, events: Events, side_a: Records, side_b: Records,
              numbers: CalledNumbers) -> np.ndarray:
        """Renumber the block's repeat events that need it (``events.called`` in place);
        return their positions in the block."""
        lo, m = events.lo, len(events)
        at = np.arange(lo, lo + m, dtype=np.int64) % self.capacity
        self.service[at] = events.service
        self.is_repeat[at] = events.repeat
        for k, side in enumerate((side_a, side_b)):
            self.present[k, at] = side.present
            self.start[k, at] = side.start
            self.end[k, at] = side.end

        keep = self.recent_index >= lo - self.window
        block_repeats = np.flatnonzero(events.repeat)
        index = np.concatenate([self.recent_index[keep], lo + block_repeats])
        source = np.concatenate([self.recent_source[keep], events.source[block_repeats]])
        retained = np.concatenate([self.recent_retained[keep],
                                   np.ones(block_repeats.shape[0], dtype=bool)])
        earlier = int(np.count_nonzero(keep))
        undecided = np.zeros(index.shape[0], dtype=bool)
        undecided[earlier:] = True

        # siblings (repeats of one source) next to each other, in event order
        order = np.lexsort((index, source))
        s_index, s_source = index[order], source[order]
        group_start = np.ones(order.shape[0], dtype=bool)
        group_start[1:] = s_source[1:] != s_source[:-1]
        # round r decides every undecided repeat that has r undecided siblings before it
        while undecided.any():
            position = np.flatnonzero(undecided[order])
            # the first undecided repeat of each source in this round
            first_of_group = _first_undecided_per_group(undecided[order], group_start)
            pick = position[first_of_group[position]]
            conflict = self._conflicts_with_source(s_index[pick], s_source[pick])
            retained_sorted = retained[order]
            for back in range(1, pick.shape[0] + 1):
                before = pick - back
                valid = before >= 0
                valid[valid] &= s_source[before[valid]] == s_source[pick[valid]]
                if not valid.any():
                    break
                check = np.flatnonzero(valid & retained_sorted[np.maximum(before, 0)])
                if check.size:
                    conflict[check] |= self._conflict(s_index[pick[check]],
                                                      s_index[before[check]])
            retained[order[pick]] = ~conflict
            undecided[order[pick]] = False

        victims_global = index[earlier:][~retained[earlier:]]
        victims = victims_global - lo
        if victims.size:
            events.called[victims] = with_subscribers(
                events.called[victims], numbers.renumber(events.called_op[victims]))
        self.recent_index = index
        self.recent_source = source
        self.recent_retained = retained
        return victims

    def _conflicts_with_source(self, index: np.ndarray, source: np.ndarray) -> np.ndarray:
        """A repeat conflicts with its source when the source carries its own numbers
        (it is not a repeat itself) and their records come close."""
        own = ~self.is_repeat[source % self.capacity]
        out = np.zeros(index.shape[0], dtype=bool)
        where = np.flatnonzero(own)
        out[where] = self._conflict(index[where], source[where])
        return out

    def _conflict(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether events x and y (global indices, same numbers) share a service and have
        records on either side within the gap of each other."""
        ax, ay = x % self.capacity, y % self.capacity
        out = np.zeros(x.shape[0], dtype=bool)
        same = self.service[ax] == self.service[ay]
        gap = self.gap
        for i in (0, 1):
            for j in (0, 1):
                close = (self.present[i, ax] & self.present[j, ay]
                         & (self.start[i, ax] < self.end[j, ay] + gap)
                         & (self.start[j, ay] < self.end[i, ax] + gap))
                out |= close
        return out & same


def _first_undecided_per_group(undecided: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """Mask over sorted positions: the first undecided entry of its group."""
    n = undecided.shape[0]
    group = np.cumsum(group_start) - 1
    first = np.zeros(n, dtype=bool)
    where = np.flatnonzero(undecided)
    if where.size:
        g = group[where]
        lead = np.ones(where.shape[0], dtype=bool)
        lead[1:] = g[1:] != g[:-1]
        first[where[lead]] = True
    return first
