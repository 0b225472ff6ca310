"""Knobs: defaults, validation errors naming the knob, documentation of every knob."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from data_gen.config import GenConfig, knob_help
from data_gen.errors import DataGenError


def test_defaults_are_valid_and_documented() -> None:
    config = GenConfig()
    helps = knob_help()
    for f in dataclasses.fields(GenConfig):
        assert helps[f.name].strip(), f.name
        assert getattr(config, f.name) == f.default


@pytest.mark.parametrize(("knobs", "named"), [
    ({"records": 0}, "records"),
    ({"records": 10**9}, "records"),
    ({"seed": -1}, "seed"),
    ({"skew_share": 1.5}, "skew_share"),
    ({"missing_share_a": -0.1}, "missing_share_a"),
    ({"voice_share": 0.8, "sms_share": 0.3}, "sms_share"),
    ({"missing_share_a": 0.6, "missing_share_b": 0.6}, "missing_share_b"),
    ({"period": "2026-13"}, "period"),
    ({"period": "October"}, "period"),
    ({"operator_a": "CUCC"}, "operator_b"),
    ({"operator_b": "ATT"}, "operator_b"),
    ({"time_tolerance_s": 5, "time_window_s": 9}, "time_window_s"),
    ({"period": "2026-02", "rate_change_day": 29}, "rate_change_day"),
    ({"wrong_utc_offset": "+08:00"}, "wrong_utc_offset"),
    ({"wrong_utc_offset": "8h"}, "wrong_utc_offset"),
    ({"partial_interval_s": 10}, "partial_interval_s"),
    ({"skew_beyond_max_s": 3}, "skew_beyond_max_s"),
    ({"invalid_per_kind": 1.5}, "invalid_per_kind"),
    ({"records": 150_000_001}, "records"),
    ({"out_of_period_share": 1.2}, "out_of_period_share"),
    ({"yuan_charges": "a"}, "yuan_charges"),
    ({"yuan_charges": ""}, "yuan_charges"),
])
def test_bad_knob_names_itself(knobs: dict[str, Any], named: str) -> None:
    with pytest.raises(DataGenError, match=f"bad knob {named}: expected"):
        GenConfig(**knobs)


def test_period_bounds_are_local_midnights() -> None:
    first, end = GenConfig(period="2026-10").period_bounds()
    # 2026-10-01T00:00:00+08:00 and 2026-11-01T00:00:00+08:00
    assert first == 1_790_812_800 - 8 * 3600   # calendar.timegm of 2026-10-01 00:00 UTC
    assert end - first == 31 * 86_400
    assert GenConfig(period="2026-10", rate_change_day=15).rate_change_epoch() == \
        first + 14 * 86_400


def test_yuan_sides() -> None:
    assert [GenConfig(yuan_charges=v).yuan_side(s) for v in ("none", "A", "B", "both")
            for s in ("A", "B")] == [False, False, True, False, False, True, True, True]
