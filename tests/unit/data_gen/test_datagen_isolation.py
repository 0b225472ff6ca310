"""Isolation: no two events of one triple within the gap, wrong offsets included, decided
in event order and the same whatever the blocks."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen.blocks import stream
from data_gen.config import GenConfig
from data_gen.events import Events
from data_gen.isolation import Isolation, Records
from data_gen.numbers import CalledNumbers

T0 = 1_790_000_000
A, B, C = 8613800000001, 8613000000002, 8613000000003


def _events(lo: int, called: list[int], source: list[int], service: list[int] | None = None
            ) -> Events:
    n = len(called)
    source_array = np.array(source, dtype=np.int64)
    return Events(lo=lo, service=np.array(service or [0] * n, dtype=np.uint8),
                  calling=np.full(n, A, dtype=np.int64), called=np.array(called, dtype=np.int64),
                  called_op=np.zeros(n, dtype=np.uint8), start=np.full(n, T0, dtype=np.int64),
                  duration=np.full(n, 60, dtype=np.int32), volume=np.zeros(n, dtype=np.int32),
                  trunk=np.zeros(n, dtype=np.uint8), repeat=source_array >= 0,
                  source=source_array, outside=np.zeros(n, dtype=np.uint8))


def _records(starts: list[int], durations: list[int], present: list[bool] | None = None
             ) -> Records:
    start = np.array(starts, dtype=np.int64)
    return Records(present=np.array(present or [True] * len(starts)), start=start,
                   end=start + np.array(durations, dtype=np.int64))


def _run(events: Events, side_a: Records, side_b: Records, window: int = 10) -> np.ndarray:
    isolation = Isolation(GenConfig(), window, len(events))
    return isolation.block(events, side_a, side_b, CalledNumbers(stream(0, "test")))


def test_close_repeat_is_renumbered_far_repeat_is_not() -> None:
    gap = GenConfig().isolation_gap_s()
    # event 1 repeats event 0 100 s later; event 3 repeats event 2 far later
    events = _events(0, [B, B, C, C], [-1, 0, -1, 2])
    starts = [T0, T0 + 100, T0, T0 + 60 + gap + 1]
    side = _records(starts, [60] * 4)
    victims = _run(events, side, side)
    assert victims.tolist() == [1]
    assert events.called[0] == B and events.called[1] != B
    assert events.called[1] // 10**8 == B // 10**8          # same segment: same operator
    assert (events.called[2:] == C).all()


def test_exactly_the_gap_apart_is_isolated() -> None:
    gap = GenConfig().isolation_gap_s()
    events = _events(0, [B, B], [-1, 0])
    side = _records([T0, T0 + 60 + gap], [60, 60])
    assert _run(events, side, side).size == 0
    events = _events(0, [B, B], [-1, 0])
    side = _records([T0, T0 + 60 + gap - 1], [60, 60])
    assert _run(events, side, side).tolist() == [1]


def test_a_wrong_offset_can_bring_a_record_next_to_another_event() -> None:
    # event 1 repeats event 0's numbers 8 h later; event 0's record on B was written with a
    # wrong offset and reads 8 h late, right next to event 1
    events = _events(0, [B, B], [-1, 0])
    side_a = _records([T0, T0 + 8 * 3600 + 3], [60, 60])
    side_b = _records([T0 + 8 * 3600, T0 + 8 * 3600 + 3], [60, 60])
    assert _run(events, side_a, side_b).tolist() == [1]
    # without B's record of event 0 (missing on B) the repeat is far from everything
    events = _events(0, [B, B], [-1, 0])
    side_b = _records([T0 + 8 * 3600, T0 + 8 * 3600 + 3], [60, 60], present=[False, True])
    assert _run(events, side_a, side_b).size == 0


def test_long_record_counts_by_its_end() -> None:
    gap = GenConfig().isolation_gap_s()
    # event 0 lasts 2 h; event 1 starts an hour in: within the first record's span
    events = _events(0, [B, B], [-1, 0])
    side = _records([T0, T0 + 3600], [7200, 60])
    assert _run(events, side, side).tolist() == [1]
    events = _events(0, [B, B], [-1, 0])
    side = _records([T0, T0 + 7200 + gap], [7200, 60])
    assert _run(events, side, side).size == 0


def test_another_service_is_another_triple() -> None:
    events = _events(0, [B, B], [-1, 0], service=[0, 1])
    side = _records([T0, T0 + 10], [60, 0])
    assert _run(events, side, side).size == 0


def test_siblings_conflict_with_each_other_not_with_a_repeat_source() -> None:
    gap = GenConfig().isolation_gap_s()
    far = 60 + gap + 1
    # events 1 and 2 both repeat event 0 (far from it) and are close to each other: the
    # later one is renumbered
    events = _events(0, [B, B, B], [-1, 0, 0])
    side = _records([T0, T0 + far, T0 + far + 100], [60] * 3)
    assert _run(events, side, side).tolist() == [2]
    # a renumbered sibling no longer counts: event 3 is close to event 2 only
    events = _events(0, [B, B, B, B], [-1, 0, 0, 0])
    side = _records([T0, T0 + far, T0 + far + 100, T0 + far + 200 + 60 + gap], [60] * 4)
    assert _run(events, side, side).tolist() == [2]
    # event 2 repeats event 1, itself a repeat (carrying event 0's numbers): event 2 gets
    # event 1's original numbers, which no earlier event carries, so it is never in conflict
    events = _events(0, [B, B, C], [-1, 0, 1])
    side = _records([T0, T0 + far, T0 + far + 5], [60] * 3)
    assert _run(events, side, side).size == 0


@pytest.mark.parametrize("split", [1, 2, 3, 5])
def test_the_same_decisions_whatever_the_blocks(split: int) -> None:
    """Random repeat groups decided in one block or in several give the same victims and
    the same new numbers."""
    rng = np.random.default_rng(5)
    n, window = 400, 40
    source = np.where(rng.random(n) < 0.5, np.arange(n) - 1 - rng.integers(0, window, n), -1)
    source[source < 0] = -1
    service = rng.integers(0, 2, n).tolist()
    called = np.where(source >= 0, B, np.arange(n) + C).tolist()
    starts = (T0 + np.sort(rng.integers(0, 40_000, n))).tolist()
    durations = rng.integers(0, 900, n).tolist()

    def run(parts: int) -> tuple[list[int], list[int]]:
        isolation = Isolation(GenConfig(), window, n)
        numbers = CalledNumbers(stream(0, "test"))
        victims, numbers_out = [], []
        bounds = np.linspace(0, n, parts + 1).astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            events = _events(int(lo), called[lo:hi], source[lo:hi].tolist(), service[lo:hi])
            side = _records(starts[lo:hi], durations[lo:hi])
            victims += (lo + isolation.block(events, side, side, numbers)).tolist()
            numbers_out += events.called.tolist()
        return victims, numbers_out

    whole = run(1)
    assert len(whole[0]) > 10
    assert run(split) == whole
