"""Block-wise generation: the files do not depend on the block size, byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from datagen_scenarios import HIGH

from data_gen import blocks, dataset
from data_gen.config import GenConfig
from data_gen.dataset import generate, write_dataset
from data_gen.errors import DataGenError


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_files_whatever_the_block_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            fmt: str) -> None:
    # small chunks and row groups, so that 3000 events cross many of both
    monkeypatch.setattr(blocks, "CHUNK", 256)
    monkeypatch.setattr(dataset, "ROW_GROUP_ROWS", 700)
    knobs: dict[str, Any] = {**HIGH, "invalid_per_kind": 3}
    digests = []
    for block in (256, 700, 1024, 10**6):       # 700 rounds up to 768: three chunks
        folder = tmp_path / f"block-{block}"
        write_dataset(generate(GenConfig(records=3000, seed=13, **knobs), fmt), folder,
                      block_events=block)
        digests.append(_digests(folder))
    assert all(d == digests[0] for d in digests[1:]), digests
    truth = pq.ParquetFile(tmp_path / "block-256" / "truth.parquet").metadata
    assert truth.num_row_groups == -(-truth.num_rows // 700)
    assert all(truth.row_group(i).num_rows == 700 for i in range(truth.num_row_groups - 1))
    if fmt == "parquet":
        side = pq.ParquetFile(tmp_path / "block-256" / "a.parquet").metadata
        assert side.num_row_groups == -(-side.num_rows // 700) > 3


def test_same_files_with_the_real_chunk(tmp_path: Path) -> None:
    """Three real chunks of 2^16 events: one block each, or all in one block."""
    config = GenConfig(records=2 * blocks.CHUNK + 5000, seed=4)
    write_dataset(generate(config, "parquet"), tmp_path / "small", block_events=blocks.CHUNK)
    write_dataset(generate(config, "parquet"), tmp_path / "large", block_events=10**6)
    assert _digests(tmp_path / "small") == _digests(tmp_path / "large")


def test_other_seeds_and_chunks_change_the_data(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk is part of a scenario's definition; the seed too."""
    config = GenConfig(records=3000, seed=13)
    write_dataset(generate(config, "csv"), tmp_path / "one")
    write_dataset(generate(GenConfig(records=3000, seed=14), "csv"), tmp_path / "seed")
    monkeypatch.setattr(blocks, "CHUNK", 256)
    write_dataset(generate(config, "csv"), tmp_path / "chunk")
    one, seed, chunk = (_digests(tmp_path / d) for d in ("one", "seed", "chunk"))
    assert one["a.csv"] != seed["a.csv"] and one["a.csv"] != chunk["a.csv"]


def test_block_size_is_checked() -> None:
    with pytest.raises(DataGenError, match="bad block size"):
        next(generate(GenConfig(records=10), "csv").blocks(0))
    assert blocks.block_events(1) == blocks.CHUNK
    assert blocks.block_events(blocks.CHUNK + 1) == 2 * blocks.CHUNK
