"""The generated traffic looks like a month of interconnect traffic (loose bounds)."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen.config import LOCAL_OFFSET_S, GenConfig
from data_gen.dataset import Collected, generate
from data_gen.numbers import OPERATOR_SEGMENTS
from data_gen.tariff import DATA, SMS, VOICE
from data_gen.truth import MATCHED_EXACT, STAGE_KEY


@pytest.fixture(scope="module")
def dataset() -> Collected:
    return generate(GenConfig(records=60_000, seed=21)).collect()


def test_service_mix(dataset: Collected) -> None:
    share = np.bincount(dataset.events.service, minlength=3) / len(dataset.events)
    assert 0.68 < share[VOICE] < 0.72 and 0.23 < share[SMS] < 0.27 and 0.04 < share[DATA] < 0.06


def test_daily_cycle_and_period(dataset: Collected) -> None:
    first, end = dataset.dataset.config.period_bounds()
    inside = dataset.events.outside == 0
    start = dataset.events.start[inside]
    assert start.min() >= first and start.max() < end
    assert (np.diff(start) >= 0).all()
    assert 0.001 < 1 - inside.mean() < 0.003           # out_of_period_share 0.2 %
    hour = (start + LOCAL_OFFSET_S) // 3600 % 24
    per_hour = np.bincount(hour, minlength=24) / start.shape[0]
    assert per_hour[3:5].sum() < 0.02 and per_hour[10:12].sum() > 0.09
    day = (start - first) // 86_400
    assert np.bincount(day).min() > 0                 # every day of the month has traffic


def test_durations_and_volumes(dataset: Collected) -> None:
    events = dataset.events
    voice = events.duration[events.service == VOICE]
    answered = voice[voice > 0]
    assert 0.015 < np.mean(voice == 0) < 0.025        # unanswered attempts
    assert 35 <= np.median(answered) <= 70            # log-normal body
    assert 0.003 < np.mean(answered > 1800) < 0.01    # the long-call tail
    assert (events.duration[events.service == SMS] == 0).all()
    data = events.service == DATA
    assert (events.volume[data] > 0).all() and (events.volume[~data] == 0).all()


def test_numbers_are_chinese_mobiles_of_the_two_operators(dataset: Collected) -> None:
    config = dataset.dataset.config
    segments = {op: set(segs) for op, segs in OPERATOR_SEGMENTS.items()}
    for numbers in (dataset.events.calling, dataset.events.called):
        assert ((numbers >= 86 * 10**11) & (numbers < 87 * 10**11)).all()   # 86 1xx xxxx xxxx
        segment = numbers // 10**8 % 1000
        assert set(np.unique(segment)) <= segments[config.operator_a] | segments[config.operator_b]
    a_calls = np.isin(dataset.events.calling // 10**8 % 1000, list(segments[config.operator_a]))
    b_called = np.isin(dataset.events.called // 10**8 % 1000, list(segments[config.operator_b]))
    assert (a_calls == b_called).all()                # every call crosses the interconnect
    assert 0.45 < a_calls.mean() < 0.55


def test_perturbation_shares(dataset: Collected) -> None:
    n = len(dataset.events)
    canonical, rows = dataset.canonical, dataset.rows
    assert 0.008 < 1 - canonical["A"].present.mean() < 0.012
    assert 0.008 < 1 - canonical["B"].present.mean() < 0.012
    copies = (rows["A"]["copy_of"] >= 0).mean()
    assert 0.001 < copies < 0.003
    split_calls = (canonical["B"].parts > 1).sum()
    assert split_calls > 0 and (rows["B"]["part_seq"] > 0).sum() >= 2 * split_calls
    assert 0 < dataset.renumbered.size < n * 0.01
    repeats = dataset.events.repeat
    assert 0.045 < repeats.mean() < 0.055


def test_defaults_give_a_few_percent_of_differing_pairs(dataset: Collected) -> None:
    rows = sum(dataset.truth[s].status.shape[0] for s in ("A", "B"))
    key_rows = sum(int((dataset.truth[s].stage == STAGE_KEY).sum()) for s in ("A", "B"))
    exact_rows = sum(int((dataset.truth[s].status == MATCHED_EXACT).sum()) for s in ("A", "B"))
    assert 0.015 < key_rows / rows < 0.035           # evaluated by MPC: about 2-3 %
    assert exact_rows / rows > 0.85                  # most of the rest matched_exact
