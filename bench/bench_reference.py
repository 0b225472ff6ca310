"""Benchmark of the plaintext reference reconciler (engine.reference).

Run (on the shared machine, always under the global lock)::

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_reference.py \
        -o python_files='bench_*.py' --benchmark-enable -s \
        --benchmark-columns=min,median,max,rounds

    # 10^7 per side as well (about 10 GiB peak):
    SETTLECHAIN_BENCH_1E7=1 flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest \
        bench/bench_reference.py -o python_files='bench_*.py' --benchmark-enable -s -k 1e7

Input: canonical frames (docs/records.md) made directly with numpy/polars, no
ingest: n records per side with a realistic shape of differences — 1 % missing on
each side, 3 % start-time skew within δ, 0.3 % skew beyond δ (within W), 0.5 %
duration ±1-3 s, 0.5 % charge differences (half of them rated alike, half not).
Each test reports the stage seconds of summary.json and the process's peak RSS.
No peer exists for a plaintext reconciler, so none is measured.
"""

from __future__ import annotations

import os
import resource
import time
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from engine.reference import reconcile_plain
from engine.rules import load_rules

RULES_PATH = os.path.join(os.path.dirname(__file__), "..", "docs", "example_rules.toml")


def synthetic_pair(n: int, seed: int = 7) -> tuple[SimpleNamespace, SimpleNamespace]:
    """Canonical frames of A and B for ``n`` true calls (see module docstring)."""
    rng = np.random.default_rng(seed)
    service = rng.choice(3, n, p=[0.70, 0.25, 0.05]).astype(np.uint8)
    calling = 8613000000000 + rng.integers(0, 10**10, n)
    called = 8613000000000 + rng.integers(0, 10**10, n)
    start = 1_790_000_000 + rng.integers(0, 30 * 86_400, n)
    duration = np.where(service == 1, 0,
                        np.minimum(rng.lognormal(4.0, 1.0, n).astype(np.int64) + 1, 20_000))
    charge = np.where(service == 1, 1, (duration + 59) // 60 * 6)
    truth = {"service": service, "calling": calling, "called": called, "start": start,
             "duration_s": duration, "charge": charge, "rated_charge": charge.copy()}

    b = {k: v.copy() for k, v in truth.items()}
    u = rng.random(n)
    skew = rng.integers(-5, 6, n)
    b["start"] += np.where(u < 0.03, skew, 0)
    far = (u >= 0.03) & (u < 0.033)
    b["start"] += np.where(far, rng.choice([-11, -8, -6, 6, 8, 11], n), 0)
    v = rng.random(n)
    b["duration_s"] += np.where((v < 0.005) & (service != 1), rng.integers(1, 4, n), 0)
    w = rng.random(n)
    bump = (w < 0.005)
    b["charge"] += np.where(bump, 3, 0)
    b["rated_charge"] += np.where(bump & (w < 0.0025), 3, 0)

    keep_a = rng.random(n) >= 0.01
    keep_b = rng.random(n) >= 0.01
    return (_frames({k: v[keep_a] for k, v in truth.items()}, rng),
            _frames({k: v[keep_b] for k, v in b.items()}, rng))


def _frames(cols: dict[str, np.ndarray], rng: np.random.Generator) -> SimpleNamespace:
    m = len(cols["start"])
    order = rng.permutation(m)  # files are not sorted
    cols = {k: v[order] for k, v in cols.items()}
    unit = np.arange(m, dtype=np.int64)
    record_id = pl.Series(unit).cast(pl.String)
    records = pl.DataFrame({
        "unit": unit, "record_id": record_id, "row": unit + 1,
        "service": cols["service"],
        "calling": pl.Series(cols["calling"]).cast(pl.String),
        "called": pl.Series(cols["called"]).cast(pl.String),
        "start": cols["start"], "duration_s": cols["duration_s"],
        "volume_kb": np.zeros(m, np.int64), "trunk_group": pl.repeat("TG1", m, eager=True),
        "charge": cols["charge"], "rated_charge": cols["rated_charge"],
        "parts": np.ones(m, np.int32), "excluded": np.zeros(m, bool),
    })
    rows = pl.DataFrame({"row": unit + 1, "record_id": record_id,
                         "status": pl.repeat("ok", m, eager=True),
                         "reason": pl.repeat(None, m, dtype=pl.String, eager=True),
                         "unit": unit})
    return SimpleNamespace(rows=rows, records=records)


SIZES = [pytest.param(10**5, id="1e5"), pytest.param(10**6, id="1e6")]
if os.environ.get("SETTLECHAIN_BENCH_1E7"):
    SIZES.append(pytest.param(10**7, id="1e7"))


@pytest.mark.parametrize("n", SIZES)
def test_reference(benchmark, n: int) -> None:
    rules = load_rules(RULES_PATH)
    made = time.perf_counter()
    a, b = synthetic_pair(n)
    made = time.perf_counter() - made
    rounds = 5 if n <= 10**6 else 1
    cpu_seconds: list[float] = []

    def run():
        cpu = time.process_time()  # all threads of the process (polars is multithreaded)
        out = reconcile_plain(a, b, rules, job_id="bench")
        cpu_seconds.append(time.process_time() - cpu)
        return out

    result = benchmark.pedantic(run, rounds=rounds, iterations=1)
    summary = result.a.summary
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stages = {k: v["seconds"] for k, v in summary["stages"].items() if isinstance(v, dict)}
    cpu_median = sorted(cpu_seconds)[len(cpu_seconds) // 2]
    benchmark.extra_info.update({"records_a": a.rows.height, "records_b": b.rows.height,
                                 "pairs": summary["pairs"], "stages_s": stages,
                                 "cpu_s_median": round(cpu_median, 3),
                                 "peak_rss_mib": round(peak)})
    print(f"\nn={n}: A {a.rows.height} B {b.rows.height} rows (made in {made:.1f} s); "
          f"pairs {summary['pairs']}; last round stages {stages}; "
          f"CPU s per round {[round(c, 2) for c in cpu_seconds]}; peak RSS {peak:.0f} MiB")
    assert summary["totals"]["local_charge"] == (
        summary["totals"]["agreed_local_charge"] + summary["totals"]["disputed_local_charge"]
        + summary["totals"]["unmatched_local_charge"])
    assert summary["pairs"]["matched_exact"] > 0.9 * n
