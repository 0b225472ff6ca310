"""StageClock: seconds and items per stage, and the peak memory of each stage."""

from __future__ import annotations

import numpy as np
import pytest

from engine.job.party import StageClock, peak_memory_mib, reset_peak_memory

MIB = 1 << 20


def _resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_seconds_and_items_add_up():
    clock = StageClock()
    clock.add("psi_exact", 1.5, 10)
    clock.add("psi_exact", 0.5, 5)
    assert clock.seconds == {"psi_exact": 2.0} and clock.items == {"psi_exact": 15}


@pytest.mark.skipif(not reset_peak_memory(), reason="this kernel refuses /proc/self/clear_refs")
def test_each_stage_reports_its_own_peak():
    clock = StageClock()
    clock.note("large")
    before = _resident_mib()  # the high-water mark was just reset to about this
    block = np.ones(400 * MIB // 8)  # touched: resident
    block_sum = float(block.sum())
    del block
    clock.note("small")
    assert block_sum == 400 * MIB // 8
    overall = clock.peak_mib()
    # the 400 MiB counted towards the stage that held them, not the one after
    assert clock.peaks["large"] >= before + 350
    assert clock.peaks["small"] < clock.peaks["large"] - 300
    assert overall == max(clock.peaks.values())
    assert overall >= clock.peaks["large"]
    # the process's high-water mark now only covers what came after the last stage change
    assert peak_memory_mib() < clock.peaks["large"] - 300
