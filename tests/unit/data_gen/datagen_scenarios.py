"""Knob sets and types shared by the data_gen tests (a uniquely named module: another
area's conftest.py may also be importable as ``conftest``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_gen.dataset import Dataset

#: Every perturbation at a high rate (and the tolerances at their defaults).
HIGH: dict[str, Any] = {
    "missing_share_a": 0.1, "missing_share_b": 0.15, "duplicate_share": 0.1,
    "skew_share": 0.4, "skew_tail_share": 0.5, "skew_beyond_share": 0.2,
    "duration_diff_share": 0.3, "duration_beyond_share": 0.1, "increment_quirk_share": 0.3,
    "stale_rate_hours": 200, "utc_offset_error_share": 0.1, "invalid_per_kind": 5,
    "repeat_pair_share": 0.5, "long_call_share": 0.2, "zero_duration_share": 0.1,
    "out_of_period_share": 0.05,
}
#: Every perturbation off: both files tell the same story.
NONE: dict[str, Any] = {
    "missing_share_a": 0.0, "missing_share_b": 0.0, "duplicate_share": 0.0,
    "skew_share": 0.0, "skew_beyond_share": 0.0, "duration_diff_share": 0.0,
    "duration_beyond_share": 0.0, "increment_quirk_share": 0.0, "stale_rate_hours": 0,
    "split_share": 0.0, "utc_offset_error_share": 0.0, "invalid_per_kind": 0,
    "zero_duration_share": 0.0, "out_of_period_share": 0.0,
}
#: Other rules and calendar: a smaller tolerance, a half-hour wrong offset, a leap-year
#: February with the rate change on its last day, other operators, shorter partials.
OTHER: dict[str, Any] = {
    **HIGH, "time_tolerance_s": 2, "time_window_s": 5, "wrong_utc_offset": "+09:30",
    "period": "2024-02", "rate_change_day": 29, "operator_a": "CTCC", "operator_b": "CMCC",
    "partial_interval_s": 600, "skew_beyond_max_s": 20,
}

Scenario = tuple[Dataset, Path]
