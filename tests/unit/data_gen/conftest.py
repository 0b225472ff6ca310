"""Small generated scenarios, written once per test session and shared by the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from datagen_scenarios import Scenario

from data_gen.config import GenConfig
from data_gen.dataset import generate, write_dataset


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Scenario]:
    """scenario(fmt, records=..., seed=..., **knobs) -> (dataset, folder), cached."""
    cache: dict[tuple[Any, ...], Scenario] = {}

    def make(fmt: str = "csv", **knobs: Any) -> Scenario:
        knobs.setdefault("records", 3000)
        knobs.setdefault("seed", 11)
        key = (fmt, tuple(sorted(knobs.items())))
        if key not in cache:
            dataset = generate(GenConfig(**knobs), fmt)
            folder = tmp_path_factory.mktemp(f"gen-{fmt}")
            write_dataset(dataset, folder)
            cache[key] = (dataset, folder)
        return cache[key]

    return make
