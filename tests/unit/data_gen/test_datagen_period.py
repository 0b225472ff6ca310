"""Out-of-period calls and all-invalid exports: what the files say and what the truth says.

The truth's rule (module doc of data_gen.truth): a record whose start, as read (the
first part's, for merged partial records), falls outside [period start, period end)
in the rules' time zone is ``excluded`` with reason ``out_of_period``, before the
rules' own exclusions; invalid rows and duplicate copies keep those statuses.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from datagen_literal import reconcile, period_bounds
from datagen_scenarios import Scenario

from data_gen.config import GenConfig
from data_gen.events import OUTSIDE_KINDS
from engine.rules import load_rules

COMPARED = ["record_id", "expected_status", "expected_pair_record_id", "expected_reasons",
            "expected_stage", "expected_merged_into"]

#: Many calls outside the period, many zero-duration attempts among them, many wrong
#: offsets that move records across the period's end (-05:00: read 13 h late).
OUTSIDE: dict[str, Any] = {
    "out_of_period_share": 0.1, "zero_duration_share": 0.3, "utc_offset_error_share": 0.2,
    "wrong_utc_offset": "-05:00", "skew_share": 0.3, "duplicate_share": 0.02,
    "invalid_per_kind": 2,
}


def _starts(folder: Path, fmt: str, side: str) -> pl.DataFrame:
    """row, record_id and start (UTC epoch s) of a side's rows as a reader sees them."""
    if fmt == "parquet":
        frame = pl.read_parquet(folder / f"{side.lower()}.parquet")
        return frame.select("record_id", start=pl.col("start_time").dt.epoch("s")).with_row_index(
            "row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    frame = pl.read_csv(folder / f"{side.lower()}.csv", infer_schema=False,
                        encoding="utf8-lossy")
    starts = []
    for text in frame["start_time"].to_list():
        try:
            starts.append(int(dt.datetime.fromisoformat(text).timestamp()))
        except (ValueError, TypeError):
            starts.append(None)
    return frame.select("record_id").with_columns(
        start=pl.Series(starts, dtype=pl.Int64)).with_row_index("row", offset=1).with_columns(
        pl.col("row").cast(pl.Int64))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_out_of_period_records_are_excluded(scenario: Callable[..., Scenario], fmt: str) -> None:
    _, folder = scenario(fmt, records=5000, seed=31, **OUTSIDE)
    truth = pl.read_parquet(folder / "truth.parquet")
    manifest = json.loads((folder / "manifest.json").read_text())
    # every kind of place outside the period was drawn
    assert set(manifest["out_of_period_events"]) == set(OUTSIDE_KINDS)
    assert all(count > 0 for count in manifest["out_of_period_events"].values())
    first, end = period_bounds("2026-10", load_rules(folder / "rules.toml"))
    for side in ("A", "B"):
        rows = truth.filter(pl.col("side") == side).join(_starts(folder, fmt, side),
                                                         on=["row", "record_id"], how="left")
        outside = pl.col("perturbations").str.contains("out_of_period")
        # the calls outside the period: at least an hour away on both sides, excluded
        # unless invalid or a duplicate copy
        far = rows.filter(outside & pl.col("start").is_not_null())
        assert far.height > 100
        assert ((far["start"] <= first - 3600) | (far["start"] >= end + 3600)).all()
        statuses = set(far["expected_status"])
        assert statuses <= {"excluded", "invalid", "duplicate"} and "excluded" in statuses
        assert far.filter(pl.col("expected_status") == "excluded")["expected_reasons"] \
            .unique().to_list() == ["out_of_period"]
        # 9999-12-31 is there
        assert (far["start"] > 253_000_000_000).any()
        # zero-duration attempts outside the period: out_of_period comes first
        attempts = far.filter(pl.col("perturbations").str.contains("zero_duration")
                              & (pl.col("expected_status") == "excluded"))
        assert attempts.height > 5
        assert set(attempts["expected_reasons"]) == {"out_of_period"}
        # every excluded out_of_period record's first row reads outside, and nothing else
        # is excluded for the period
        excluded = rows.filter(pl.col("expected_reasons") == "out_of_period")
        heads = excluded.filter(pl.col("part_seq") <= 1)
        assert ((heads["start"] < first) | (heads["start"] >= end)).all()
        kept = rows.filter(pl.col("expected_status").is_in(
            ["matched_exact", "matched_tolerance", "disputed", "unmatched"])
            & (pl.col("part_seq") <= 1))
        assert ((kept["start"] >= first) & (kept["start"] < end)).all()
    # records of in-period calls that a wrong offset moved out of the period: excluded on
    # that side, so their counterparts are unmatched
    moved = truth.filter((pl.col("expected_reasons") == "out_of_period")
                         & ~pl.col("perturbations").str.contains("out_of_period"))
    assert moved.height > 0
    assert moved["perturbations"].str.contains("utc_offset_error").all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_out_of_period_truth_equals_literal_reconciliation(
        scenario: Callable[..., Scenario], fmt: str) -> None:
    _, folder = scenario(fmt, records=5000, seed=31, **OUTSIDE)
    literal = reconcile(folder, fmt)
    truth = pl.read_parquet(folder / "truth.parquet")
    joined = truth.join(literal, on=["side", "row"], how="full", suffix="_literal")
    assert joined.height == truth.height == literal.height
    differ = joined.filter(pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(f"{c}_literal")) for c in COMPARED]))
    assert differ.height == 0, differ.head(10)


def test_no_tariff_rows_are_inside_the_period(scenario: Callable[..., Scenario]) -> None:
    _, folder = scenario("csv", records=5000, seed=31, **OUTSIDE)
    truth = pl.read_parquet(folder / "truth.parquet")
    first, end = period_bounds("2026-10", load_rules(folder / "rules.toml"))
    for side in ("A", "B"):
        rows = truth.filter((pl.col("side") == side)
                            & (pl.col("expected_invalid_code") == "no_tariff"))
        assert rows.height == 2
        starts = rows.join(_starts(folder, "csv", side), on=["row", "record_id"])
        assert ((starts["start"] >= first) & (starts["start"] < end)).all()
        text = pl.read_csv(folder / f"{side.lower()}.csv", infer_schema=False,
                           encoding="utf8-lossy").join(rows.select("record_id"), on="record_id")
        assert text["called"].str.strip_prefix("+").str.starts_with("861740").all()


@pytest.mark.parametrize(("fmt", "yuan"), [("csv", "B"), ("parquet", "A"), ("csv", "both")])
def test_yuan_charges_make_a_whole_export_invalid(scenario: Callable[..., Scenario], fmt: str,
                                                  yuan: str) -> None:
    _, folder = scenario(fmt, records=3000, seed=32, yuan_charges=yuan)
    truth = pl.read_parquet(folder / "truth.parquet")
    bad_sides = ["A", "B"] if yuan == "both" else [yuan]
    for side in ("A", "B"):
        rows = truth.filter(pl.col("side") == side)
        if side in bad_sides:
            assert rows.height > 2900
            assert set(rows["expected_status"]) == {"invalid"}
            assert set(rows["expected_reasons"]) == {"wrong_type:charge"}
            assert set(rows["expected_invalid_code"]) == {"wrong_type"}
            assert set(rows["expected_invalid_column"]) == {"charge"}
            if fmt == "csv":
                charges = pl.read_csv(folder / f"{side.lower()}.csv", infer_schema=False,
                                      encoding="utf8-lossy")["charge"]
                assert charges.str.contains(r"^[0-9]+\.[0-9]{2}$").all()
                assert "0.06" in set(charges)        # a 1-minute peak call at 6 fen/min
            else:
                schema = pl.read_parquet_schema(folder / f"{side.lower()}.parquet")
                assert schema["charge"] == pl.Float64
        else:
            # nothing can pair with an all-invalid counterpart
            assert not set(rows["expected_status"]) & {"matched_exact", "matched_tolerance",
                                                        "disputed"}
            assert "unmatched" in set(rows["expected_status"])
    literal = reconcile(folder, fmt)
    joined = truth.join(literal, on=["side", "row"], how="full", suffix="_literal")
    assert joined.height == truth.height == literal.height
    differ = joined.filter(pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(f"{c}_literal")) for c in COMPARED]))
    assert differ.height == 0, differ.head(10)


def test_the_demo_scenario_is_well_formed(tmp_path: Path) -> None:
    """The demo's 20,000 events, seed 1, csv: every row accounted for, the literal
    reconciler agrees, a few calls outside the period."""
    from data_gen.dataset import generate, write_dataset

    config = GenConfig(records=20_000, seed=1, operator_a="CUCC", operator_b="CMCC")
    written = write_dataset(generate(config, "csv"), tmp_path)
    truth = pl.read_parquet(tmp_path / "truth.parquet")
    assert truth.height == written.manifest["rows"]["A"] + written.manifest["rows"]["B"]
    assert 20 < sum(written.manifest["out_of_period_events"].values()) < 80
    literal = reconcile(tmp_path, "csv")
    joined = truth.join(literal, on=["side", "row"], how="full", suffix="_literal")
    differ = joined.filter(pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(f"{c}_literal")) for c in COMPARED]))
    assert joined.height == truth.height and differ.height == 0, differ.head(10)
