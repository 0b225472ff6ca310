"""truth.parquet against an independent literal reconciler, and its internal consistency.

datagen_literal reads the written files and follows docs/records.md and
docs/matching.md step by step (validation, duplicates, partial chains, exclusions,
rating through engine.rules, the five passes with ranks, tolerance evaluation);
data_gen computes the truth analytically from what it knows of the true pairs.
They must agree on every row.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from datagen_literal import reconcile
from datagen_scenarios import HIGH, NONE, OTHER, Scenario

from data_gen import blocks
from data_gen.config import GenConfig
from data_gen.dataset import generate, write_dataset
from data_gen.views import kinds_for

COMPARED = ["expected_status", "expected_pair_record_id", "expected_reasons", "expected_stage",
            "expected_merged_into"]

SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "defaults-csv": ("csv", {"records": 4000, "seed": 1}),
    "defaults-parquet": ("parquet", {"records": 4000, "seed": 2}),
    "high-csv": ("csv", {"records": 3000, "seed": 3, **HIGH}),
    "other-rules-parquet": ("parquet", {"records": 3000, "seed": 4, **OTHER}),
    "other-rules-csv": ("csv", {"records": 2000, "seed": 5, **OTHER, "wrong_utc_offset": "-05:00"}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_truth_equals_literal_reconciliation(scenario: Callable[..., Scenario], name: str) -> None:
    fmt, knobs = SCENARIOS[name]
    _, folder = scenario(fmt, **knobs)
    literal = reconcile(folder, fmt)
    truth = pl.read_parquet(folder / "truth.parquet")
    joined = truth.join(literal, on=["side", "row"], how="full", suffix="_literal")
    assert joined.height == truth.height == literal.height
    differ = joined.filter(pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(f"{c}_literal")) for c in COMPARED + ["record_id"]]))
    assert differ.height == 0, differ.head(10)
    # the scenario exercises what it should
    statuses = set(truth["expected_status"])
    assert {"matched_exact", "matched_tolerance", "unmatched", "duplicate", "invalid",
            "excluded"} <= statuses
    if name != "defaults-parquet":
        assert "disputed" in statuses


def test_no_perturbation_means_all_exact(scenario: Callable[..., Scenario]) -> None:
    _, folder = scenario("csv", records=3000, seed=6, **NONE)
    truth = pl.read_parquet(folder / "truth.parquet")
    assert set(truth["expected_status"]) == {"matched_exact"}
    assert truth.filter(pl.col("side") == "A").height == 3000
    assert truth["perturbations"].drop_nulls().str.contains("skew|missing|duration").sum() == 0
    assert reconcile(folder, "csv")["expected_status"].unique().to_list() == ["matched_exact"]


@pytest.mark.parametrize(("fmt", "knobs"), [("csv", {}), ("parquet", HIGH), ("csv", OTHER)])
def test_truth_is_internally_consistent(scenario: Callable[..., Scenario], fmt: str,
                                        knobs: dict[str, Any]) -> None:
    _, folder = scenario(fmt, **knobs)
    truth = pl.read_parquet(folder / "truth.parquet")
    paired_statuses = ["matched_exact", "matched_tolerance", "disputed"]
    a = truth.filter(pl.col("side") == "A")
    b = truth.filter(pl.col("side") == "B")

    # a row has a counterpart exactly when its status is a paired one
    has_pair = truth["expected_pair_record_id"].is_not_null()
    assert (has_pair == truth["expected_status"].is_in(paired_statuses)).all()

    # paired rows point at each other: the counterpart's canonical record (its first row)
    # points back, with the same status, stage and reasons
    for local, remote in ((a, b), (b, a)):
        # (rows of kind duplicate_record_id reuse an earlier row's id: not a record's id)
        remote = remote.filter(pl.col("expected_invalid_code").ne_missing("duplicate_record_id"))
        paired = local.filter(pl.col("expected_pair_record_id").is_not_null())
        back = paired.join(remote, left_on="expected_pair_record_id", right_on="record_id",
                           how="left", suffix="_remote")
        assert back["row_remote"].null_count() == 0
        assert (back["expected_pair_record_id_remote"] ==
                back["expected_merged_into"].fill_null(back["record_id"])).all()
        for column in ("expected_status", "expected_stage", "expected_reasons"):
            assert back[column].eq_missing(back[f"{column}_remote"]).all(), column
        # charges and differences are those of the pair, seen from each side
        assert (back["diff_charge"] == -back["diff_charge_remote"]).all()
        assert (back["diff_start_s"] == -back["diff_start_s_remote"]).all()

    # merged parts share their call's status, pair and reasons
    parts = truth.filter(pl.col("expected_merged_into").is_not_null())
    if parts.height:
        per_call = parts.group_by("side", "expected_merged_into").agg(
            pl.col("expected_status").n_unique(), pl.col("expected_pair_record_id").n_unique(),
            pl.col("part_seq").sort().alias("seq"))
        assert (per_call["expected_status"] == 1).all()
        assert (per_call["expected_pair_record_id"] == 1).all()
        assert all(seq.to_list() == list(range(1, len(seq) + 1)) for seq in per_call["seq"])

    # pairs are one-to-one: as many paired canonical records on each side, per status
    def units(frame: pl.DataFrame) -> dict[str, int]:
        first_rows = frame.filter(pl.col("expected_status").is_in(paired_statuses)
                                  & (pl.col("expected_merged_into").is_null()
                                     | (pl.col("expected_merged_into") == pl.col("record_id"))))
        return dict(first_rows.group_by("expected_status").len().iter_rows())
    assert units(a) == units(b)

    # disputed pairs carry reasons; nothing else outside invalid/duplicate/excluded does
    assert truth.filter(pl.col("expected_status") == "disputed")["expected_reasons"] \
        .null_count() == 0
    plain = truth.filter(pl.col("expected_status").is_in(
        ["matched_exact", "matched_tolerance", "unmatched"]))
    assert plain["expected_reasons"].null_count() == plain.height

    # duplicates name an earlier row of the same side, which is not itself a duplicate
    dups = truth.filter(pl.col("expected_status") == "duplicate").with_columns(
        of=pl.col("expected_reasons").str.strip_prefix("duplicate_of:").cast(pl.Int64))
    assert (dups["of"] < dups["row"]).all()
    originals = dups.join(truth, left_on=["side", "of"], right_on=["side", "row"],
                          suffix="_of")
    assert originals.height == dups.height
    assert (originals["expected_status_of"] != "duplicate").all()
    assert (originals["event_id"] == originals["event_id_of"]).all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_truth_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """Real scenarios span many chunks and blocks (repeat calls, isolation, invalid rows
    and duplicate copies look across them); small chunks and blocks make a small
    scenario go through all of it."""
    monkeypatch.setattr(blocks, "CHUNK", 250)
    dataset = generate(GenConfig(records=3000, seed=9, **HIGH), fmt)
    write_dataset(dataset, tmp_path, block_events=500)
    literal = reconcile(tmp_path, fmt)
    truth = pl.read_parquet(tmp_path / "truth.parquet")
    joined = truth.join(literal, on=["side", "row"], how="full", suffix="_literal")
    assert joined.height == truth.height == literal.height
    differ = joined.filter(pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(f"{c}_literal")) for c in COMPARED + ["record_id"]]))
    assert differ.height == 0, differ.head(10)
    # the cross-block paths really ran: copies written in a later block than their
    # original, invalid rows in several blocks, repeats of (and renumbering against)
    # events of earlier blocks
    collected = dataset.collect(block_events=500)
    rows_a = collected.rows["A"]
    copies = rows_a["copy_of"] >= 0
    assert np.count_nonzero(rows_a["chunk"][copies] // 2 > rows_a["event"][copies] // 500) > 2
    invalid_events = rows_a["event"][rows_a["invalid"] >= 0]
    assert len(set((invalid_events // 500).tolist())) > 2
    assert sum(collected.invalid_placed["A"].values()) == 5 * len(kinds_for(fmt))
    events = collected.events
    assert np.count_nonzero(events.repeat & (events.source // 500 < events.index // 500)) > 10
    assert collected.renumbered.size > 0


def test_reused_record_ids_belong_to_earlier_valid_rows(scenario: Callable[..., Scenario]) -> None:
    _, folder = scenario("csv", records=1500, seed=8, **{**HIGH, "invalid_per_kind": 40})
    truth = pl.read_parquet(folder / "truth.parquet")
    for side in ("A", "B"):
        rows = truth.filter(pl.col("side") == side)
        reusing = rows.filter(pl.col("expected_invalid_code") == "duplicate_record_id")
        assert reusing.height == 40
        owners = reusing.join(rows.filter(pl.col("expected_status") != "invalid"),
                              on="record_id", suffix="_owner")
        assert owners.height == reusing.height
        assert (owners["row_owner"] < owners["row"]).all()
