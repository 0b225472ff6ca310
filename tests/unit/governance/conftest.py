"""A three-member consortium (A, B, C) with an empty ledger, for the governance tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_anchor import open_ledger
from tests.unit.ledger.ledger_consortium import Consortium, make_consortium


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    return make_consortium(tmp_path / "c")


@pytest.fixture
def ledger(consortium: Consortium):
    with open_ledger(consortium.config_path, create=True) as client:
        yield client
