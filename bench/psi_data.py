"""Canonical-looking record files for the PSI benchmarks (bench/bench_psi.py).

``write_pair(directory, n, overlap=0.5, seed=...)`` writes ``a.parquet`` and
``b.parquet`` with n records each, of which ``overlap * n`` are the same calls on both
sides (same service, numbers, start time, duration and charge) under different
``record_id`` values, and returns the expected number of matches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

COLUMNS = ("service", "calling", "called", "start_time", "duration_s", "charge")


def _records(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    service = rng.choice(np.array(["voice", "sms", "data"]), size=n, p=[0.7, 0.2, 0.1])
    calling = rng.integers(13_000_000_000, 13_999_999_999, size=n)
    called = rng.integers(13_000_000_000, 18_999_999_999, size=n)
    start = 1_748_736_000 + rng.integers(0, 30 * 86_400, size=n)   # June 2025, seconds
    duration = np.where(service == "sms", 0, rng.integers(1, 3_600, size=n))
    charge = duration * 2 + rng.integers(0, 5, size=n)
    return {"service": service, "calling": calling, "called": called, "start": start,
            "duration_s": duration, "charge": charge}


def _frame(parts: dict[str, np.ndarray], prefix: str) -> pl.DataFrame:
    n = parts["service"].shape[0]
    return pl.DataFrame({
        "record_id": pl.Series("record_id", np.arange(n)).cast(pl.String),
        "service": parts["service"],
        "calling": pl.Series(parts["calling"]).cast(pl.String),
        "called": pl.Series(parts["called"]).cast(pl.String),
        "start_time": pl.Series(parts["start"] * 1_000_000).cast(pl.Datetime("us", "UTC")),
        "duration_s": parts["duration_s"].astype(np.int64),
        "charge": parts["charge"].astype(np.int64),
    }).with_columns((pl.lit(prefix) + pl.col("record_id")).alias("record_id"))


def write_pair(directory: Path, n: int, overlap: float = 0.5, seed: int = 7) -> int:
    rng = np.random.default_rng(seed)
    common = int(n * overlap)
    shared = _records(rng, common)
    only_a = _records(rng, n - common)
    only_b = _records(rng, n - common)
    side_a = {k: np.concatenate([shared[k], only_a[k]]) for k in shared}
    side_b = {k: np.concatenate([shared[k], only_b[k]]) for k in shared}
    order_a, order_b = rng.permutation(n), rng.permutation(n)
    side_a = {k: v[order_a] for k, v in side_a.items()}
    side_b = {k: v[order_b] for k, v in side_b.items()}
    a, b = _frame(side_a, "A"), _frame(side_b, "B")
    # the random parts could collide by chance: count the true intersection
    key = list(COLUMNS)
    expected = a.select(key).unique().join(b.select(key).unique(), on=key, how="inner").height
    if a.select(key).is_duplicated().any() or b.select(key).is_duplicated().any():
        raise ValueError("generated a duplicate record; use another seed")
    directory.mkdir(parents=True, exist_ok=True)
    a.write_parquet(directory / "a.parquet")
    b.write_parquet(directory / "b.parquet")
    return expected
