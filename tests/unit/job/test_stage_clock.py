"""StageClock: seconds, items and waiting per stage, the peak memory of each stage, the
frozen clock of a running stage, and the status file a supervisor reads."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from engine.job.party import StageClock, peak_memory_mib, reset_peak_memory

MIB = 1 << 20


def _resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_seconds_items_and_waiting_add_up():
    clock = StageClock()
    for _ in range(2):
        clock.enter("psi_exact")
        clock.waited(0.25)
        time.sleep(0.05)
        clock.leave("psi_exact")
    clock.count("psi_exact", 10)
    clock.count("psi_exact", 5)
    t = clock.stage_time("psi_exact")
    assert t.items == 15 and t.waiting_seconds == 0.5 and t.seconds >= 0.1
    assert clock.stage_time("mpc").seconds == 0.0


def test_a_running_stage_is_timed_until_now():
    """The frozen clock of outputs written during the report: the report is not 0 s."""
    clock = StageClock()
    clock.enter("report")
    time.sleep(0.05)
    stages = clock.stages_json()
    assert stages["report"]["seconds"] >= 0.05
    assert stages["total"]["seconds"] >= stages["report"]["seconds"]
    assert list(stages) == ["ingest", "agree", "commit", "psi_exact", "psi_key", "mpc",
                            "report", "total", "peak_memory_mib"]


def test_status_file_is_json_with_progress_and_time_left(tmp_path):
    seen = []
    clock = StageClock(status_path=tmp_path / "status", listener=seen.append)
    clock.enter("ingest")
    assert not (tmp_path / "status").exists()  # not before the session accepted the party
    clock.allow_status()
    clock.enter("ingest")
    time.sleep(0.02)
    clock.progress("ingest", 25, 100, "rows")
    clock.finish("failed", "data.csv: file not found")
    status = json.loads((tmp_path / "status").read_text())
    assert status["stage"] == "failed" and status["detail"] == "data.csv: file not found"
    progress = [s for s in seen if s.get("done") == 25]
    assert progress and progress[0]["total"] == 100 and progress[0]["unit"] == "rows"
    assert progress[0]["eta_s"] is not None and progress[0]["eta_s"] > 0


@pytest.mark.skipif(not reset_peak_memory(), reason="this kernel refuses /proc/self/clear_refs")
def test_each_stage_reports_its_own_peak():
    clock = StageClock()
    clock.enter("large")
    before = _resident_mib()  # the high-water mark was just reset to about this
    block = np.ones(400 * MIB // 8)  # touched: resident
    block_sum = float(block.sum())
    del block
    clock.leave("large")
    clock.enter("small")
    assert block_sum == 400 * MIB // 8
    clock.leave("small")
    clock.enter("done")
    # the 400 MiB counted towards the stage that held them, not the one after
    assert clock.peaks["large"] >= before + 350
    assert clock.peaks["small"] < clock.peaks["large"] - 300
    # the process's high-water mark now only covers what came after the last stage change
    assert peak_memory_mib() < clock.peaks["large"] - 300
