"""Benchmark of the ingest stage: read + validate + normalise + rate 10^6 rows.

Run (under the machine-wide lock, as every timing on the shared machine):

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_ingest.py \
        --benchmark-enable --benchmark-columns=min,median,max,rounds -p no:cacheprovider

Budgets (issue 2): 10^6 rows in <= 3 s from Parquet and <= 6 s from CSV; each case
fails when its median is above its budget.  ``SETTLECHAIN_BENCH_ROWS`` changes the
size (default 1,000,000).

The data are made here with numpy (the project's generator is separate): a
realistic mix (voice 70 %, sms 25 %, data 5 %; Chinese mobile numbers in E.164,
half written with '+'; start times over October 2026 with a daily cycle, written
with a +08:00 offset; log-normal durations), about 1 % of voice calls split into
two partial records, 0.2 % exact duplicates under a new record_id, and 0.1 % rows
with one bad field.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.ingest import ingest
from engine.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
ROWS = int(os.environ.get("SETTLECHAIN_BENCH_ROWS", "1000000"))
BUDGET_S = {"parquet": 3.0, "csv": 6.0, "csv-long-row": 6.0}
MOBILE_PREFIXES = np.array(["134", "135", "136", "137", "138", "139", "150", "151", "152",
                            "157", "158", "159", "182", "187", "188", "130", "131", "132",
                            "155", "156", "185", "186", "133", "153", "180", "189"])


def make_export(n: int, seed: int) -> pl.DataFrame:
    """A billing export of ``n`` rows in the canonical schema (start_time as tz-aware
    Datetime; CSV writing turns it into ISO-8601 with +08:00)."""
    rng = np.random.default_rng(seed)
    service = rng.choice(np.array(["voice", "sms", "data"]), size=n, p=[0.70, 0.25, 0.05])

    def numbers() -> np.ndarray:
        prefix = rng.choice(MOBILE_PREFIXES, size=n)
        tail = rng.integers(0, 10**8, size=n).astype(str)
        digits = np.char.add(np.char.add("86", prefix), np.char.zfill(tail, 8))
        return np.where(rng.random(n) < 0.5, np.char.add("+", digits), digits)

    calling, called = numbers(), numbers()
    month_start = 1790784000  # 2026-10-01T00:00:00+08:00
    day = rng.integers(0, 31, size=n)
    # daily cycle: local hour drawn from a busy-day profile
    hour_weight = np.array([1, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 10, 9, 9, 10, 10, 10, 10, 9,
                            9, 8, 6, 4, 2], dtype=float)
    hour = rng.choice(24, size=n, p=hour_weight / hour_weight.sum())
    start = month_start + day * 86400 + hour * 3600 + rng.integers(0, 3600, size=n)
    duration = np.where(service == "voice",
                        np.minimum(rng.lognormal(4.0, 1.1, size=n), 7200).astype(np.int64), 0)
    duration = np.where(service == "data", rng.integers(1, 3600, size=n), duration)
    volume = np.where(service == "data", rng.lognormal(7.0, 1.5, size=n).astype(np.int64), 0)
    part_seq = np.zeros(n, dtype=np.int64)
    trunk_group = np.char.add("TG", rng.integers(0, 40, size=n).astype(str))
    # ~1 % of voice calls split in two parts: row i is part 1, row i+1 part 2
    split = np.flatnonzero((service[:-1] == "voice") & (rng.random(n - 1) < 0.01))
    split = split[np.diff(np.concatenate([[-2], split])) > 1]  # no overlapping pairs
    second = split + 1
    service[second] = "voice"
    calling[second], called[second] = calling[split], called[split]
    trunk_group[second] = trunk_group[split]
    part_seq[split], part_seq[second] = 1, 2
    start[second] = start[split] + duration[split] + 1
    volume[second] = 0
    charge = np.select([service == "voice", service == "sms"],
                       [-(-duration // 60) * 6, np.ones(n, dtype=np.int64)],
                       default=(volume * 3 + 512) // 1024)
    # 0.2 % exact duplicates under their own record_id: row d copies an earlier complete row
    dup = np.flatnonzero((part_seq == 0) & (rng.random(n) < 0.002))
    source = dup - rng.integers(1, 100, size=len(dup))
    keep = (source >= 0) & (part_seq[np.maximum(source, 0)] == 0)
    dup, source = dup[keep], source[keep]
    for column in (service, calling, called, start, duration, volume, trunk_group, charge):
        column[dup] = column[source]
    return pl.DataFrame({
        "record_id": np.char.add("A", np.char.zfill(np.arange(n).astype(str), 10)),
        "service": service,
        "calling": calling,
        "called": called,
        "start_time": pl.Series(start * 1_000_000).cast(pl.Datetime("us", "UTC"))
        .dt.convert_time_zone("Asia/Shanghai"),
        "duration_s": duration,
        "volume_kb": volume,
        "trunk_group": trunk_group,
        "part_seq": part_seq,
        "charge": charge,
    })


def as_text_with_bad_rows(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """All columns as text (start_time ISO-8601 +08:00), 0.1 % of rows with one bad field."""
    rng = np.random.default_rng(seed + 1)
    n = frame.height
    text = frame.with_columns(
        pl.col("start_time").dt.strftime("%Y-%m-%dT%H:%M:%S%:z"),
        *(pl.col(c).cast(pl.String) for c in ("duration_s", "volume_kb", "part_seq", "charge")),
    )
    bad = np.flatnonzero(rng.random(n) < 0.001)
    kinds = {
        "calling": "12ab34", "start_time": "2026-10-32T10:00:00+08:00", "duration_s": "-5",
        "service": "video", "charge": "12.5",
    }
    which = rng.integers(0, len(kinds), size=len(bad))
    for k, (column, value) in enumerate(kinds.items()):
        rows = bad[which == k]
        if len(rows):
            text = text.with_columns(
                pl.when(pl.int_range(pl.len()).is_in(rows)).then(pl.lit(value))
                .otherwise(pl.col(column)).alias(column))
    return text


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("ingest-bench")
    frame = make_export(ROWS, seed=7)
    text = as_text_with_bad_rows(frame, seed=7)
    csv_path, parquet_path = directory / "a.csv", directory / "a.parquet"
    text.write_csv(csv_path)
    # the same CSV with one row longer than the header (polars refuses the file as it is)
    long_path = directory / "a-long-row.csv"
    lines = csv_path.read_bytes().split(b"\n")
    lines[ROWS // 2] += b",surplus"
    long_path.write_bytes(b"\n".join(lines))
    # Parquet keeps typed columns: tz-aware timestamps and Int64 integers
    typed = frame.with_columns(pl.col("start_time").dt.convert_time_zone("Asia/Shanghai"))
    typed.write_parquet(parquet_path)
    return {"csv": csv_path, "parquet": parquet_path, "csv-long-row": long_path}


PEAK_RSS_SCRIPT = """
import sys
from engine.ingest import ingest
from engine.rules import load_rules

def status(field):  # kB, this process only (ru_maxrss would include a forking parent)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

rules = load_rules(sys.argv[2])
before = status("VmRSS")
ingest(sys.argv[1], rules)
print(before, status("VmHWM"))
"""


def peak_rss_mib(path: Path) -> tuple[float, float]:
    """(resident MiB before, peak resident MiB) of a fresh process ingesting ``path``."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, str(path),
         str(ROOT / "docs" / "example_rules.toml")],
        capture_output=True, text=True, check=True, cwd=ROOT)
    before, peak = (int(v) / 1024 for v in out.stdout.split())
    return before, peak


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_read_only_baseline(benchmark, exports: dict[str, Path], fmt: str) -> None:
    """The floor: polars reading the same file (CSV as all-text columns), nothing else."""
    path = exports[fmt]
    if fmt == "csv":
        frame = benchmark.pedantic(pl.read_csv, args=(path,), kwargs={"infer_schema": False},
                                   rounds=5, iterations=1, warmup_rounds=1)
    else:
        frame = benchmark.pedantic(pl.read_parquet, args=(path,), rounds=5, iterations=1,
                                   warmup_rounds=1)
    benchmark.extra_info.update({"rows": frame.height, "bytes": path.stat().st_size})
    assert frame.height == ROWS


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv-long-row"])
def test_ingest_1e6(benchmark, exports: dict[str, Path], fmt: str) -> None:
    rules = load_rules(ROOT / "docs" / "example_rules.toml")
    path = exports[fmt]
    result = benchmark.pedantic(ingest, args=(path, rules), rounds=5, iterations=1,
                                warmup_rounds=1)
    counts = result.counts
    benchmark.extra_info.update({
        "rows": counts["rows"], "bytes": path.stat().st_size, "invalid": counts["invalid"],
        "duplicate": counts["duplicate"], "excluded": counts["excluded"],
        "records": counts["records"], "chains": counts["chains"],
        "stage_seconds_last_round": {k: round(v, 3) for k, v in result.seconds.items()},
        "rss_before_mib_peak_mib": [round(v, 1) for v in peak_rss_mib(path)],
    })
    assert counts["rows"] == ROWS
    assert counts["chains"] > 0 and counts["duplicate"] > 0
    if fmt.startswith("csv"):
        assert counts["invalid"] > 0
    if fmt == "csv-long-row":
        assert result.invalid_by_reason["wrong_field_count"] == 1
    median = benchmark.stats.stats.median
    assert median <= BUDGET_S[fmt] * ROWS / 1_000_000, (
        f"{fmt}: median {median:.2f} s above the budget of {BUDGET_S[fmt]} s per 10^6 rows")
