"""The isolation fix: no two events of one triple within the gap, wrong offsets included."""

from __future__ import annotations

import numpy as np

from data_gen.blocks import stream
from data_gen.config import GenConfig
from data_gen.events import Events
from data_gen.numbers import UniqueSubscribers
from data_gen.views import BIT, SideEvents, _isolate

T0 = 1_790_000_000


def _events(calling: list[int], called: list[int], repeat: list[bool]) -> Events:
    n = len(calling)
    return Events(service=np.zeros(n, dtype=np.uint8), calling=np.array(calling, dtype=np.int64),
                  called=np.array(called, dtype=np.int64), start=np.full(n, T0, dtype=np.int64),
                  duration=np.full(n, 60, dtype=np.int32), volume=np.zeros(n, dtype=np.int32),
                  trunk=np.zeros(n, dtype=np.uint8), repeat=np.array(repeat),
                  subscribers=UniqueSubscribers(stream(0, "test")))


def _side(starts: list[int], durations: list[int]) -> SideEvents:
    n = len(starts)
    present = np.ones(n, dtype=bool)
    return SideEvents(present=present, first_row=np.arange(n), parts=np.ones(n, dtype=np.int16),
                      start=np.array(starts, dtype=np.int64),
                      duration=np.array(durations, dtype=np.int32),
                      charge=np.zeros(n, dtype=np.int32), rated=np.zeros(n, dtype=np.int32),
                      invalid=np.zeros(n, dtype=bool), excluded=np.zeros(n, dtype=bool),
                      exclusion=np.full(n, -1, dtype=np.int8), considered=present)


A, B, C = 8613800000001, 8613000000002, 8613000000003


def test_close_repeat_is_renumbered_far_repeat_is_not() -> None:
    config = GenConfig()
    gap = config.isolation_gap_s()
    # events 0 and 1: same numbers 100 s apart; events 2 and 3: same numbers far apart
    events = _events([A, A, A, A], [B, B, C, C], [False, True, False, True])
    starts = [T0, T0 + 100, T0, T0 + 60 + gap + 1]
    flags = np.zeros(4, dtype=np.uint32)
    renumbered = _isolate(config, events, _side(starts, [60] * 4), _side(starts, [60] * 4), flags)
    assert renumbered == 1
    assert events.called[0] == B and events.called[1] != B
    assert events.called[1] // 10**8 == B // 10**8          # same segment: same operator
    assert flags[1] & BIT["renumbered"] and not flags[0] & BIT["renumbered"]
    assert (events.called[2:] == C).all()


def test_a_wrong_offset_can_bring_a_record_next_to_another_event() -> None:
    config = GenConfig()
    # event 1 repeats event 0's numbers 8 h later; event 0's record on B was written with a
    # wrong offset and reads 8 h late, right next to event 1
    events = _events([A, A], [B, B], [False, True])
    side_a = _side([T0, T0 + 8 * 3600 + 3], [60, 60])
    side_b = _side([T0 + 8 * 3600, T0 + 8 * 3600 + 3], [60, 60])
    flags = np.zeros(2, dtype=np.uint32)
    assert _isolate(config, events, side_a, side_b, flags) == 1
    assert events.called[1] != B and events.called[0] == B


def test_long_record_counts_by_its_end() -> None:
    config = GenConfig()
    gap = config.isolation_gap_s()
    # event 0 lasts 2 h; event 1 starts an hour in: within the first record's span
    events = _events([A, A], [B, B], [False, True])
    side = _side([T0, T0 + 3600], [7200, 60])
    assert _isolate(config, events, side, side, np.zeros(2, dtype=np.uint32)) == 1
    # after the end plus the gap it is fine
    events = _events([A, A], [B, B], [False, True])
    side = _side([T0, T0 + 7200 + gap], [7200, 60])
    assert _isolate(config, events, side, side, np.zeros(2, dtype=np.uint32)) == 0
