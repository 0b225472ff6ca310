"""The period run's plan: pair folders, helpers rotated, refusals naming the folder."""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.job.keys import MemberSpec, init_consortium
from engine.job.period_run import assign_helpers, plan_period


def test_helpers_are_third_members_rotated_to_the_least_used():
    members = ["W", "X", "Y", "Z"]
    pairs = [("W", "X"), ("W", "Y"), ("W", "Z"), ("X", "Y"), ("X", "Z"), ("Y", "Z")]
    helpers = assign_helpers(pairs, members)
    for (a, b), h in zip(pairs, helpers):
        assert h not in (a, b)
    counts = {m: helpers.count(m) for m in members}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    assert assign_helpers([("X", "Y")], ["X", "Y", "Z"]) == ["Z"]
    with pytest.raises(InputError, match="needs a third member"):
        assign_helpers([("X", "Y")], ["X", "Y"])


@pytest.fixture
def consortium(tmp_path):
    specs = [MemberSpec(m, m, 7000 + i, 7100 + i) for i, m in enumerate(("CMCC", "CUCC", "CTCC"))]
    return init_consortium(tmp_path / "c", specs, name="plan")


def test_plan_reads_pair_folders_and_refuses_strangers(consortium, tmp_path):
    data = tmp_path / "data"
    for name in ("CMCC+CUCC", "CUCC+CTCC"):
        (data / name).mkdir(parents=True)
    (data / "rules.toml").write_text("", encoding="utf-8")
    (data / "notes").mkdir()  # not a pair folder: ignored
    _, jobs = plan_period(consortium, "2026-10", data)
    assert [(j.a, j.b, j.h, j.job_id) for j in jobs] == [
        ("CMCC", "CUCC", "CTCC", "2026-10-CMCC-CUCC"), ("CUCC", "CTCC", "CMCC", "2026-10-CUCC-CTCC")]
    (data / "CMCC+CBN").mkdir()
    with pytest.raises(InputError, match="CMCC\\+CBN"):
        plan_period(consortium, "2026-10", data)
    (data / "CMCC+CBN").rmdir()
    (data / "CUCC+CMCC").mkdir()
    with pytest.raises(InputError, match="two folders"):
        plan_period(consortium, "2026-10", data)
    with pytest.raises(InputError):
        plan_period(consortium, "2026-13", data)
