"""True call events: what really happened on the interconnect during the period.

Every array has one entry per event, events in order of start time.  Each
property comes from its own random stream per block (``blocks.stream``), so that
a knob of one property does not reshuffle the others, and the perturbations of
the two views (``views.py``) leave the true events untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_gen.blocks import spans, stream
from data_gen.config import LOCAL_OFFSET_S, GenConfig
from data_gen.numbers import (
    UniqueSubscribers,
    categorical_table,
    draw_prefixes,
    random_subscribers,
)
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


@dataclass
class Events:
    service: np.ndarray   # uint8: 0 voice, 1 sms, 2 data
    calling: np.ndarray   # int64 E.164 digits
    called: np.ndarray    # int64 E.164 digits
    start: np.ndarray     # int64 UTC epoch seconds, non-decreasing
    duration: np.ndarray  # int32 seconds (0 for sms and unanswered attempts)
    volume: np.ndarray    # int32 KB (data only)
    trunk: np.ndarray     # uint8 trunk group index
    repeat: np.ndarray    # bool: numbers copied from another event
    subscribers: UniqueSubscribers  # the source of fresh called numbers (renumbering)

    def __len__(self) -> int:
        return int(self.service.shape[0])


def generate_events(config: GenConfig) -> Events:
    n = config.records
    seed = config.seed
    first, end = config.period_bounds()
    days = (end - first) // 86_400

    # start times: multinomial over (day, hour) bins, then uniformly over the seconds
    # of each hour; emitting the seconds in order gives sorted starts without a sort.
    rng = stream(seed, "start")
    weekday = (np.arange(days) + _weekday_of(first + LOCAL_OFFSET_S)) % 7
    day_weight = np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)
    bins = (day_weight[:, None] * HOURLY_PROFILE[None, :]).ravel()
    per_hour = rng.multinomial(n, bins / bins.sum())
    per_second = rng.multinomial(per_hour, np.full(3600, 1.0 / 3600)).ravel()
    start = first + np.repeat(np.arange(days * 24 * 3600, dtype=np.int64), per_second)
    del per_second

    events = Events(
        service=np.empty(n, dtype=np.uint8), calling=np.empty(n, dtype=np.int64),
        called=np.empty(n, dtype=np.int64), start=start,
        duration=np.zeros(n, dtype=np.int32), volume=np.zeros(n, dtype=np.int32),
        trunk=np.empty(n, dtype=np.uint8), repeat=np.zeros(n, dtype=bool),
        subscribers=UniqueSubscribers(stream(seed, "subscribers")),
    )
    trunk_table = categorical_table(1.0 / np.arange(1, TRUNK_GROUPS + 1))
    repeats, sources = [], []
    for block, lo, hi in spans(n):
        _traffic(config, events, block, lo, hi, trunk_table)
        rng = stream(seed, "repeats", block)
        repeat = rng.random(hi - lo) < config.repeat_pair_share
        source = rng.integers(0, n, size=hi - lo)
        chosen = np.flatnonzero(repeat & (source != np.arange(lo, hi)))
        repeats.append(lo + chosen)
        sources.append(source[chosen])
    # a repeat call reuses the numbers its source had before any repeat was applied
    repeat_at, source_at = np.concatenate(repeats), np.concatenate(sources)
    calling, called = events.calling[source_at], events.called[source_at]
    events.calling[repeat_at] = calling
    events.called[repeat_at] = called
    events.repeat[repeat_at] = True
    return events


def _traffic(config: GenConfig, events: Events, block: int, lo: int, hi: int,
             trunk_table: np.ndarray) -> None:
    """Service, duration, volume, numbers and trunk of events lo..hi."""
    m = hi - lo
    rng = stream(config.seed, "service", block)
    u = rng.random(m)
    service = ((u >= config.voice_share).astype(np.uint8)
               + (u >= config.voice_share + config.sms_share).astype(np.uint8))
    events.service[lo:hi] = service

    rng = stream(config.seed, "duration", block)
    voice = np.flatnonzero(service == VOICE)
    seconds = rng.lognormal(np.log(VOICE_MEDIAN_S), VOICE_SIGMA, voice.shape[0])
    is_long = np.flatnonzero(rng.random(voice.shape[0]) < config.long_call_share)
    seconds[is_long] = rng.lognormal(np.log(LONG_CALL_MEDIAN_S), LONG_CALL_SIGMA, is_long.shape[0])
    seconds = np.clip(np.ceil(seconds), 1, MAX_CALL_S)
    seconds[rng.random(voice.shape[0]) < config.zero_duration_share] = 0
    duration = events.duration[lo:hi]
    volume = events.volume[lo:hi]
    duration[voice] = seconds
    data = np.flatnonzero(service == DATA)
    duration[data] = np.clip(np.ceil(rng.lognormal(np.log(DATA_SESSION_MEDIAN_S),
                                                   DATA_SESSION_SIGMA, data.shape[0])), 1, 86_400)
    volume[data] = np.clip(np.ceil(rng.lognormal(np.log(DATA_VOLUME_MEDIAN_KB), DATA_VOLUME_SIGMA,
                                                 data.shape[0])), 1, MAX_DATA_KB)

    # numbers: each event goes from a subscriber of one operator to one of the other.
    # Called numbers never repeat (numbers.UniqueSubscribers), so two events share their
    # (calling, called) only when one is a deliberate repeat of the other.
    rng = stream(config.seed, "numbers", block)
    a_calls = rng.random(m) < 0.5
    head_a = draw_prefixes(rng, config.operator_a, m)
    head_b = draw_prefixes(rng, config.operator_b, m)
    events.calling[lo:hi] = np.where(a_calls, head_a, head_b) + random_subscribers(rng, m)
    events.called[lo:hi] = np.where(a_calls, head_b, head_a) + events.subscribers.take(m)

    rng = stream(config.seed, "trunk", block)
    events.trunk[lo:hi] = trunk_table[rng.integers(0, trunk_table.shape[0], size=m,
                                                   dtype=np.uint16)]


def _weekday_of(local_epoch: int) -> int:
    """Monday = 0 … Sunday = 6 of a local epoch second (1970-01-01 was a Thursday)."""
    return int((local_epoch // 86_400 + 3) % 7)

