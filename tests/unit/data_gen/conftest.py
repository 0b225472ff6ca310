"""Small generated scenarios, written once per test session and shared by the tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from data_gen.config import GenConfig
from data_gen.dataset import Dataset, generate, write_dataset

#: Every perturbation at a high rate (and the tolerances at their defaults).
HIGH: dict[str, Any] = {
    "missing_share_a": 0.1, "missing_share_b": 0.15, "duplicate_share": 0.1,
    "skew_share": 0.4, "skew_tail_share": 0.5, "skew_beyond_share": 0.2,
    "duration_diff_share": 0.3, "duration_beyond_share": 0.1, "increment_quirk_share": 0.3,
    "stale_rate_hours": 200, "utc_offset_error_share": 0.1, "invalid_per_kind": 5,
    "repeat_pair_share": 0.5, "long_call_share": 0.2, "zero_duration_share": 0.1,
}
#: Every perturbation off: both files tell the same story.
NONE: dict[str, Any] = {
    "missing_share_a": 0.0, "missing_share_b": 0.0, "duplicate_share": 0.0,
    "skew_share": 0.0, "skew_beyond_share": 0.0, "duration_diff_share": 0.0,
    "duration_beyond_share": 0.0, "increment_quirk_share": 0.0, "stale_rate_hours": 0,
    "split_share": 0.0, "utc_offset_error_share": 0.0, "invalid_per_kind": 0,
    "zero_duration_share": 0.0,
}
#: Other rules and calendar: a smaller tolerance, a half-hour wrong offset, a leap-year
#: February with the rate change on its last day, other operators, shorter partials.
OTHER: dict[str, Any] = {
    **HIGH, "time_tolerance_s": 2, "time_window_s": 5, "wrong_utc_offset": "+09:30",
    "period": "2024-02", "rate_change_day": 29, "operator_a": "CTCC", "operator_b": "CMCC",
    "partial_interval_s": 600, "skew_beyond_max_s": 20,
}

Scenario = tuple[Dataset, Path]


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Scenario]:
    """scenario(fmt, records=..., seed=..., **knobs) -> (dataset, folder), cached."""
    cache: dict[tuple[Any, ...], Scenario] = {}

    def make(fmt: str = "csv", **knobs: Any) -> Scenario:
        knobs.setdefault("records", 3000)
        knobs.setdefault("seed", 11)
        key = (fmt, tuple(sorted(knobs.items())))
        if key not in cache:
            dataset = generate(GenConfig(**knobs), fmt)
            folder = tmp_path_factory.mktemp(f"gen-{fmt}")
            write_dataset(dataset, folder)
            cache[key] = (dataset, folder)
        return cache[key]

    return make
