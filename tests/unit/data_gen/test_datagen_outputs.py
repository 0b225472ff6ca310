"""The written files: exact schema and dtypes, every row accounted for, determinism."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from datagen_literal import read_rows
from datagen_scenarios import HIGH, Scenario

from data_gen.config import GenConfig
from data_gen.dataset import COLUMNS, generate, write_dataset
from data_gen.truth import STATUSES, TRUTH_SCHEMA

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\+08:00|\+00:00)$")


def _iso_with_offset(text: str) -> bool:
    if not _ISO.match(text):
        return False
    try:
        return dt.datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def _csv_text(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")


def test_csv_schema(scenario: Callable[..., Scenario]) -> None:
    _, folder = scenario("csv")
    for name in ("a.csv", "b.csv"):
        header = (folder / name).read_bytes().split(b"\n", 1)[0].decode()
        assert tuple(header.split(",")) == COLUMNS
        frame = _csv_text(folder / name)
        # start times: ISO-8601 with an offset (+08:00, or the wrong offset +00:00), except
        # the malformed_timestamp and missing_utc_offset rows
        bad = [s for s in frame["start_time"] if not _iso_with_offset(s)]
        assert len(bad) == 2 and any(s[5:7] == "13" for s in bad) and \
            any(len(s) == 19 for s in bad), bad
        assert set(frame["service"].drop_nulls().unique()) <= {"voice", "sms", "data", "video"}


def test_parquet_schema(scenario: Callable[..., Scenario]) -> None:
    _, folder = scenario("parquet")
    for name in ("a.parquet", "b.parquet"):
        schema = pl.read_parquet_schema(folder / name)
        assert list(schema) == list(COLUMNS)
        assert schema["start_time"] == pl.Datetime("us", "Asia/Shanghai")
        for column in ("record_id", "service", "calling", "called", "trunk_group"):
            assert schema[column] == pl.String
        for column in ("duration_s", "volume_kb", "part_seq", "charge"):
            assert schema[column] == pl.Int64


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_truth_accounts_for_every_row(scenario: Callable[..., Scenario], fmt: str) -> None:
    dataset, folder = scenario(fmt, **HIGH)
    truth = pl.read_parquet(folder / "truth.parquet")
    assert truth.schema == pl.Schema(TRUTH_SCHEMA)
    assert set(truth["expected_status"].unique()) <= set(STATUSES)
    manifest = json.loads((folder / "manifest.json").read_text())
    for side in ("A", "B"):
        rows = read_rows(folder / f"{side.lower()}.{fmt}")
        mine = truth.filter(pl.col("side") == side).sort("row")
        assert mine["row"].to_list() == list(range(1, len(rows) + 1))
        assert mine["record_id"].to_list() == [r.record_id for r in rows]
        assert manifest["rows"][side] == len(rows)
        assert sum(manifest["counts"][side].values()) == len(rows)
        counted = mine.group_by("expected_status").len()
        assert dict(counted.iter_rows()) == {k: v for k, v in manifest["counts"][side].items()
                                             if v}
    # record ids are unique per side, except the rows that deliberately reuse one
    for side in ("A", "B"):
        ids = truth.filter(pl.col("side") == side)
        reused = ids.filter(pl.col("expected_invalid_code") == "duplicate_record_id")
        assert ids["record_id"].n_unique() == ids.height - reused.height


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_deterministic_for_a_seed(tmp_path: Path, fmt: str) -> None:
    config = GenConfig(records=2000, seed=5, **HIGH)
    write_dataset(generate(config, fmt), tmp_path / "one")
    write_dataset(generate(config, fmt), tmp_path / "two")
    write_dataset(generate(GenConfig(records=2000, seed=6, **HIGH), fmt), tmp_path / "other")
    one, two, other = (_digests(tmp_path / d) for d in ("one", "two", "other"))
    assert one == two
    for name in (f"a.{fmt}", f"b.{fmt}", "truth.parquet"):
        assert one[name] != other[name], name
    assert one["rules.toml"] == other["rules.toml"]       # same knobs, same rules


def test_blocks_do_not_change_the_statistics_of_a_scenario() -> None:
    """A scenario bigger than one block (2^20 events) is generated block by block; every
    block must draw fresh randomness (not repeat the first block's)."""
    from data_gen import blocks

    first = blocks.stream(1, "skew", 0).random(8)
    assert not (first == blocks.stream(1, "skew", 1).random(8)).all()
    assert not (first == blocks.stream(1, "split", 0).random(8)).all()
    assert (first == blocks.stream(1, "skew", 0).random(8)).all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("records", [1, 7])
def test_tiny_scenarios_are_well_formed(tmp_path: Path, fmt: str, records: int) -> None:
    """A handful of events (some sides may have no row at all): valid files, every row
    in the truth, the invalid kinds that found no row only logged."""
    written = write_dataset(generate(GenConfig(records=records, seed=3), fmt), tmp_path)
    truth = pl.read_parquet(tmp_path / "truth.parquet")
    assert truth.schema == pl.Schema(TRUTH_SCHEMA)
    for side in ("A", "B"):
        rows = read_rows(tmp_path / f"{side.lower()}.{fmt}")
        assert len(rows) == written.manifest["rows"][side]
        assert truth.filter(pl.col("side") == side).height == len(rows)
