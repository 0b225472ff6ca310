"""The documented examples, run once per test session (docblocks.py): docs/api.md in one
folder, the README's API example in another.  The tests compare each block's output with
the document and reuse the real outputs the examples made."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from docblocks import Outcome, Session, parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
API_DOC = ROOT / "docs" / "api.md"
README = ROOT / "README.md"


class DocRun:
    def __init__(self, folder: Path, outcomes: list[Outcome]) -> None:
        self.folder = folder
        self.outcomes = outcomes


def _run(path: Path, folder: Path) -> DocRun:
    from engine.job.demo import warm_up_psi

    warm_up_psi()  # as the integration tests: compile the PSI kernels once, up front
    session = Session(folder)
    return DocRun(folder, [session.run(block) for block in parse(path.read_text("utf-8"))])


@pytest.fixture(scope="session")
def api_doc_run(tmp_path_factory: pytest.TempPathFactory) -> DocRun:
    return _run(API_DOC, tmp_path_factory.mktemp("api-doc"))


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> DocRun:
    return _run(README, tmp_path_factory.mktemp("readme"))
