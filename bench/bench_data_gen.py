"""Benchmarks of data_gen: generation and file writing measured separately, and the peak
memory of a whole `settlechain gen` run at 10^7 rows per side.

Run under the global lock (it needs ~5 GB at 10^7):

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_data_gen.py \\
        -o python_files='bench_*.py' --benchmark-enable --benchmark-columns=min,median,max,rounds -s

No peer: no installed or registry tool generates paired billing exports with their
true reconciliation; generic fake-data libraries (Faker, mimesis) make one value
per Python call and would measure something else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from data_gen.config import GenConfig
from data_gen.dataset import Dataset, generate, write_dataset

#: Events per scenario; each side has about as many rows (10.1M events: >= 10^7 rows per side).
SIZES = [1_000_000, 10_100_000]


def _rows(dataset: Dataset) -> int:
    return len(dataset.views.a) + len(dataset.views.b)


@pytest.mark.parametrize("records", SIZES, ids=["1e6", "1e7"])
def test_generate(benchmark: Any, records: int) -> None:
    config = GenConfig(records=records, seed=1)
    dataset = benchmark.pedantic(generate, args=(config, "parquet"), rounds=3, iterations=1)
    median = benchmark.stats.stats.median
    rows = _rows(dataset)
    benchmark.extra_info.update(events=records, rows_a=len(dataset.views.a),
                                rows_b=len(dataset.views.b),
                                events_per_s=round(records / median),
                                rows_per_s=round(rows / median))
    print(f"\ngenerate {records} events ({rows} rows): median {median:.2f} s, "
          f"{records / median / 1e6:.2f} M events/s, {rows / median / 1e6:.2f} M rows/s")
    assert rows / median >= 1_000_000


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("records", SIZES, ids=["1e6", "1e7"])
def test_write(benchmark: Any, tmp_path: Path, records: int, fmt: str) -> None:
    dataset = generate(GenConfig(records=records, seed=1), fmt)
    rounds = 3 if records <= 1_000_000 else 2
    seconds = benchmark.pedantic(write_dataset, args=(dataset, tmp_path), rounds=rounds,
                                 iterations=1)
    median = benchmark.stats.stats.median
    rows = _rows(dataset)
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    benchmark.extra_info.update(events=records, rows=rows, rows_per_s=round(rows / median),
                                seconds_last_round=seconds, bytes=sizes)
    print(f"\nwrite {fmt} {records} events ({rows} rows + truth): median {median:.2f} s, "
          f"{rows / median / 1e6:.2f} M rows/s; last round {seconds}; bytes {sizes}")


_PEAK = """
import sys
from data_gen.config import GenConfig
from data_gen.dataset import generate, write_dataset
dataset = generate(GenConfig(records={records}, seed=1), "{fmt}")
write_dataset(dataset, sys.argv[1])
rows = (len(dataset.views.a), len(dataset.views.b))
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(rows[0], rows[1], hwm)
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_peak_memory_at_1e7_per_side(tmp_path: Path, fmt: str) -> None:
    """Generate and write 10^7+ rows per side in a fresh process; its peak RSS."""
    code = _PEAK.format(records=SIZES[-1], fmt=fmt)
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=1800, check=True)
    rows_a, rows_b, hwm_kib = (int(x) for x in proc.stdout.split())
    print(f"\npeak memory {fmt}: {hwm_kib / 2**20:.2f} GiB for {rows_a} + {rows_b} rows")
    assert min(rows_a, rows_b) >= 10_000_000
    assert hwm_kib < 8 * 2**20
