"""Benchmarks of data_gen: `settlechain gen` end to end (generate and write every file),
wall time and peak memory of the process, at 10^6, 10^7 and (on request) 10^8 events.

Run under the global lock:

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_data_gen.py \\
        -o python_files='bench_*.py' --benchmark-enable \\
        --benchmark-columns=min,median,max,rounds -s

Each run is a fresh `settlechain gen` process under `/usr/bin/time -f "%e s %M KiB"`
(its wall time and peak resident set).  Options, by environment variable:

- ``SETTLECHAIN_BENCH_GEN_BEFORE=DIR``: also run the same commands with the code of
  another checkout (``git worktree add DIR <commit>``): the "before" of a change, in
  the same run.  A checkout without a given format or size limit is skipped for it.
- ``SETTLECHAIN_BENCH_GEN_1E8=1``: also 10^8 events (Parquet), written under
  ``SETTLECHAIN_BENCH_DATA`` (default /work/bench-data; about 7.5 GB, deleted after).

No other peer: no installed or registry tool generates paired billing exports with
their true reconciliation; generic fake-data libraries (Faker, mimesis) make one value
per Python call and would measure something else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BEFORE = os.environ.get("SETTLECHAIN_BENCH_GEN_BEFORE")
DATA = Path(os.environ.get("SETTLECHAIN_BENCH_DATA", "/work/bench-data"))
CASES = [pytest.param(1_000_000, "parquet", id="1e6-parquet"),
         pytest.param(1_000_000, "csv", id="1e6-csv"),
         pytest.param(10_000_000, "parquet", id="1e7-parquet"),
         pytest.param(10_000_000, "csv", id="1e7-csv")]
if os.environ.get("SETTLECHAIN_BENCH_GEN_1E8") == "1":
    CASES.append(pytest.param(100_000_000, "parquet", id="1e8-parquet"))
CODE = {"after": ROOT, **({"before": Path(BEFORE).resolve()} if BEFORE else {})}
_TIME = re.compile(r"^([0-9.]+) s ([0-9]+) KiB$", re.M)
#: The peak memory target: 2 GiB whatever the size.
PEAK_LIMIT_KIB = 2 * 2**20


def gen(code: Path, records: int, fmt: str, out: Path) -> dict[str, Any]:
    """One `settlechain gen` process with the code of checkout ``code``."""
    command = ["/usr/bin/time", "-f", "%e s %M KiB", sys.executable, "-c",
               "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))",
               "gen", "--records", str(records), "--seed", "1", "--format", fmt,
               "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=7200,
                          cwd=code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    match = _TIME.findall(proc.stderr)[-1]
    manifest = json.loads((out / "manifest.json").read_text())
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    return {"wall_s": float(match[0]), "peak_kib": int(match[1]), "rows": manifest["rows"],
            "events": manifest["events"], "bytes": sizes, "stdout": proc.stdout.strip()}


@pytest.mark.parametrize("code", list(CODE))
@pytest.mark.parametrize(("records", "fmt"), CASES)
def test_gen(benchmark: Any, tmp_path: Path, records: int, fmt: str, code: str) -> None:
    if code == "before" and records > 50_000_000:
        pytest.skip("the code before block-wise generation allowed at most 5 * 10^7 events")
    folder = DATA if records >= 100_000_000 else tmp_path
    runs: list[dict[str, Any]] = []

    def one() -> None:
        out = folder / f"gen-{code}-{records}-{fmt}-{len(runs)}"
        try:
            runs.append(gen(CODE[code], records, fmt, out))
        finally:
            shutil.rmtree(out, ignore_errors=True)

    rounds = 3 if records <= 1_000_000 else 2 if records <= 10_000_000 else 1
    benchmark.pedantic(one, rounds=rounds, iterations=1)
    walls = sorted(r["wall_s"] for r in runs)
    peaks = sorted(r["peak_kib"] for r in runs)
    last = runs[-1]
    benchmark.extra_info.update(code=code, events=records, format=fmt, rows=last["rows"],
                                wall_s=walls, peak_kib=peaks, bytes=last["bytes"])
    print(f"\n{code} gen {records} {fmt}: wall {walls} s (median "
          f"{walls[len(walls) // 2]:.1f} s), peak {[round(p / 2**20, 2) for p in peaks]} GiB, "
          f"rows {last['rows']}, bytes {last['bytes']}\n{last['stdout']}")
    if code == "after":
        assert max(peaks) < PEAK_LIMIT_KIB
