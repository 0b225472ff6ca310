"""True call events: what really happened on the interconnect, block by block.

Event i of a scenario is the i-th call of the period in order of start time,
except the few that happened outside the period (``out_of_period_share``), which
keep their place in the order but carry a start before or after the period.
:class:`EventSource` makes the events of one block at a time; every property comes
from its own random stream per chunk (``blocks.stream``), so that a knob of one
property does not reshuffle the others and the perturbations of the two views
(``views.py``) leave the true events untouched.  What looks across events is carried
from block to block and so does not depend on the block size:

- start times: the number of events of every second of the period is drawn once
  (a multinomial over (day, hour) bins, then over the seconds of each hour, a few
  MB); event i starts at the second where the running count passes i;
- called numbers: unique per called operator, drawn in event order
  (:class:`~data_gen.numbers.CalledNumbers`);
- repeat calls: event i may reuse the numbers of an event up to
  :func:`repeat_window` events earlier (about a day of traffic), read from a ring of
  the recent events' original numbers.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

import numpy as np

from data_gen.blocks import chunks, stream
from data_gen.config import LOCAL_OFFSET_S, GenConfig
from data_gen.numbers import CalledNumbers, categorical_table, draw_prefixes, random_subscribers
from data_gen.tariff import DATA, VOICE

#: Relative call volume per local hour of the day (a typical mobile daily cycle:
#: a night trough, morning and evening peaks).
HOURLY_PROFILE = np.array([1.2, 0.7, 0.45, 0.35, 0.35, 0.55, 1.4, 3.2, 5.2, 6.4, 6.9, 6.8,
                           6.0, 6.1, 6.5, 6.6, 6.5, 6.3, 6.2, 6.6, 6.9, 6.2, 4.4, 2.4])
#: Weekend days carry less traffic (Saturday, Sunday).
WEEKEND_FACTOR = 0.85
#: Interconnect trunk groups between the two operators and their relative load.
TRUNK_GROUPS = 16

VOICE_MEDIAN_S, VOICE_SIGMA = 50.0, 1.0
LONG_CALL_MEDIAN_S, LONG_CALL_SIGMA = 1500.0, 0.7
MAX_CALL_S = 5 * 3600
DATA_SESSION_MEDIAN_S, DATA_SESSION_SIGMA = 600.0, 1.2
DATA_VOLUME_MEDIAN_KB, DATA_VOLUME_SIGMA = 4096.0, 1.6
MAX_DATA_KB = 10_000_000

#: How a repeat call's source is chosen: up to about this long before it (in events: the
#: period's average traffic over this span).
REPEAT_SPAN_S = 86_400

#: Where an out-of-period event happened (``Events.outside`` = 1 + index), each as likely:
#: 1-2 h before the period's first second, 1-2 h after its end, in the 27 days before
#: or after that, or on 9999-12-31 (local time, before noon).  Every one is at least an
#: hour away from the period, so that no skew or rounding brings it back.
OUTSIDE_KINDS: tuple[str, ...] = ("hour_before", "hour_after", "month_before", "month_after",
                                  "year_9999")
#: 9999-12-31T00:00:00+08:00 in UTC epoch seconds.
YEAR_9999_S = calendar.timegm((9999, 12, 31, 0, 0, 0)) - LOCAL_OFFSET_S


@dataclass
class Events:
    """The events lo..hi-1 of a scenario (index i here is event lo + i)."""

    lo: int
    service: np.ndarray    # uint8: 0 voice, 1 sms, 2 data
    calling: np.ndarray    # int64 E.164 digits
    called: np.ndarray     # int64 E.164 digits
    called_op: np.ndarray  # uint8: 0 a subscriber of operator A is called, 1 of operator B
    start: np.ndarray      # int64 UTC epoch seconds
    duration: np.ndarray   # int32 seconds (0 for sms and unanswered attempts)
    volume: np.ndarray     # int32 KB (data only)
    trunk: np.ndarray      # uint8 trunk group index
    repeat: np.ndarray     # bool: numbers copied from an earlier event
    source: np.ndarray     # int64: the event whose original numbers a repeat copies, else -1
    outside: np.ndarray    # uint8: 0 in the period, else 1 + index into OUTSIDE_KINDS

    def __len__(self) -> int:
        return int(self.service.shape[0])

    @property
    def index(self) -> np.ndarray:
        """The global event index of each event."""
        return np.arange(self.lo, self.lo + len(self), dtype=np.int64)


def repeat_window(config: GenConfig) -> int:
    """How many events back a repeat call's source may lie (about REPEAT_SPAN_S)."""
    first, end = config.period_bounds()
    return max(1, min(config.records, -(-config.records * REPEAT_SPAN_S // (end - first))))


class _NumberRing:
    """The original numbers of the most recent ``capacity`` events, by event index."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.calling = np.zeros(capacity, dtype=np.int64)
        self.called = np.zeros(capacity, dtype=np.int64)
        self.called_op = np.zeros(capacity, dtype=np.uint8)

    def put(self, lo: int, calling: np.ndarray, called: np.ndarray, op: np.ndarray) -> None:
        at = np.arange(lo, lo + calling.shape[0], dtype=np.int64) % self.capacity
        self.calling[at] = calling
        self.called[at] = called
        self.called_op[at] = op

    def get(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        at = index % self.capacity
        return self.calling[at], self.called[at], self.called_op[at]


class EventSource:
    """Makes the true events block by block, in order (blocks of at most ``block_events``)."""

    def __init__(self, config: GenConfig, block_events: int) -> None:
        self.config = config
        self.first, self.end = config.period_bounds()
        self.window = repeat_window(config)
        self.numbers = CalledNumbers(stream(config.seed, "subscribers"))
        self.ring = _NumberRing(self.window + block_events)
        self.trunk_table = categorical_table(1.0 / np.arange(1, TRUNK_GROUPS + 1))
        self.next_lo = 0
        self._running = _start_counts(config, self.first, self.end)

    def block(self, lo: int, hi: int) -> Events:
        if lo != self.next_lo:
            raise ValueError(f"blocks must come in order: expected {self.next_lo}, got {lo}")
        self.next_lo = hi
        config = self.config
        m = hi - lo
        index = np.arange(lo, hi, dtype=np.int64)
        events = Events(
            lo=lo, service=np.empty(m, dtype=np.uint8), calling=np.empty(m, dtype=np.int64),
            called=np.empty(m, dtype=np.int64), called_op=np.empty(m, dtype=np.uint8),
            start=self.first + np.searchsorted(self._running, index, side="right") - 1,
            duration=np.zeros(m, dtype=np.int32), volume=np.zeros(m, dtype=np.int32),
            trunk=np.empty(m, dtype=np.uint8), repeat=np.zeros(m, dtype=bool),
            source=np.full(m, -1, dtype=np.int64), outside=np.zeros(m, dtype=np.uint8),
        )
        for chunk, clo, chi in chunks(lo, hi):
            part = slice(clo - lo, chi - lo)
            self._traffic(events, chunk, part)
            self._outside(events, chunk, part)
            rng = stream(config.seed, "repeats", chunk)
            k = chi - clo
            repeat = rng.random(k) < config.repeat_pair_share
            source = index[part] - 1 - (rng.random(k) * self.window).astype(np.int64)
            repeat &= source >= 0
            events.repeat[part] = repeat
            events.source[part] = np.where(repeat, source, -1)
        # a repeat call reuses the numbers its source had before any repeat was applied
        self.ring.put(lo, events.calling, events.called, events.called_op)
        at = np.flatnonzero(events.repeat)
        calling, called, op = self.ring.get(events.source[at])
        events.calling[at] = calling
        events.called[at] = called
        events.called_op[at] = op
        return events

    def _traffic(self, events: Events, chunk: int, part: slice) -> None:
        """Service, duration, volume, numbers and trunk of one chunk's events."""
        config = self.config
        service_all = events.service[part]
        m = service_all.shape[0]
        rng = stream(config.seed, "service", chunk)
        u = rng.random(m)
        service = ((u >= config.voice_share).astype(np.uint8)
                   + (u >= config.voice_share + config.sms_share).astype(np.uint8))
        events.service[part] = service

        rng = stream(config.seed, "duration", chunk)
        voice = np.flatnonzero(service == VOICE)
        seconds = rng.lognormal(np.log(VOICE_MEDIAN_S), VOICE_SIGMA, voice.shape[0])
        is_long = np.flatnonzero(rng.random(voice.shape[0]) < config.long_call_share)
        seconds[is_long] = rng.lognormal(np.log(LONG_CALL_MEDIAN_S), LONG_CALL_SIGMA,
                                         is_long.shape[0])
        seconds = np.clip(np.ceil(seconds), 1, MAX_CALL_S)
        seconds[rng.random(voice.shape[0]) < config.zero_duration_share] = 0
        duration = events.duration[part]
        volume = events.volume[part]
        duration[voice] = seconds
        data = np.flatnonzero(service == DATA)
        duration[data] = np.clip(np.ceil(rng.lognormal(np.log(DATA_SESSION_MEDIAN_S),
                                                       DATA_SESSION_SIGMA, data.shape[0])),
                                 1, 86_400)
        volume[data] = np.clip(np.ceil(rng.lognormal(np.log(DATA_VOLUME_MEDIAN_KB),
                                                     DATA_VOLUME_SIGMA, data.shape[0])),
                               1, MAX_DATA_KB)

        # numbers: each event goes from a subscriber of one operator to one of the other.
        # Called numbers never repeat (numbers.CalledNumbers), so two events share their
        # (calling, called) only when one is a deliberate repeat of the other.
        rng = stream(config.seed, "numbers", chunk)
        a_calls = rng.random(m) < 0.5
        head_a = draw_prefixes(rng, config.operator_a, m)
        head_b = draw_prefixes(rng, config.operator_b, m)
        op = a_calls.astype(np.uint8)          # A calls: a subscriber of B is called
        events.called_op[part] = op
        events.calling[part] = np.where(a_calls, head_a, head_b) + random_subscribers(rng, m)
        events.called[part] = np.where(a_calls, head_b, head_a) + self.numbers.fresh(op)

        rng = stream(config.seed, "trunk", chunk)
        events.trunk[part] = self.trunk_table[rng.integers(0, self.trunk_table.shape[0], size=m,
                                                           dtype=np.uint16)]

    def _outside(self, events: Events, chunk: int, part: slice) -> None:
        """Move the chunk's out-of-period events outside the period (module doc)."""
        m = events.service[part].shape[0]
        rng = stream(self.config.seed, "out_of_period", chunk)
        u = rng.random(m)
        kind = np.minimum((rng.random(m) * len(OUTSIDE_KINDS)).astype(np.int64),
                          len(OUTSIDE_KINDS) - 1)
        offset = rng.random(m)
        at = np.flatnonzero(u < self.config.out_of_period_share)
        if at.size == 0:
            return
        kind, offset = kind[at], offset[at]
        hour, month = 3600, 27 * 86_400
        start = np.select(
            [kind == 0, kind == 1, kind == 2, kind == 3],
            [self.first - hour - (offset * hour).astype(np.int64),
             self.end + hour + (offset * hour).astype(np.int64),
             self.first - 2 * hour - (offset * month).astype(np.int64),
             self.end + 2 * hour + (offset * month).astype(np.int64)],
            YEAR_9999_S + (offset * 12 * hour).astype(np.int64))
        events.start[part][at] = start
        events.outside[part][at] = kind + 1


def _start_counts(config: GenConfig, first: int, end: int) -> np.ndarray:
    """running[s] = number of events that start before second s of the period (s = 0 ..
    seconds): a multinomial over (day, hour) bins, then uniformly over the seconds of
    each hour."""
    days = (end - first) // 86_400
    rng = stream(config.seed, "start")
    weekday = (np.arange(days) + _weekday_of(first + LOCAL_OFFSET_S)) % 7
    day_weight = np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)
    bins = (day_weight[:, None] * HOURLY_PROFILE[None, :]).ravel()
    per_hour = rng.multinomial(config.records, bins / bins.sum())
    per_second = rng.multinomial(per_hour, np.full(3600, 1.0 / 3600)).ravel()
    running = np.zeros(per_second.shape[0] + 1, dtype=np.int64)
    np.cumsum(per_second, out=running[1:])
    return running


def _weekday_of(local_epoch: int) -> int:
    """Monday = 0 … Sunday = 6 of a local epoch second (1970-01-01 was a Thursday)."""
    return int((local_epoch // 86_400 + 3) % 7)
