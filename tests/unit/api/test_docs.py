"""The API is called exactly as documented: every code block of docs/api.md and the README's
API example runs, prints what the document shows, and type-checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import API_DOC, README, ROOT, DocRun
from docblocks import matches, parse

import settlechain

API_BLOCKS = parse(API_DOC.read_text("utf-8"))
README_BLOCKS = [b for b in parse(README.read_text("utf-8")) if "settlechain" in b.code]


def _check(run: DocRun, index: int) -> None:
    outcome = run.outcomes[index]
    assert outcome.error is None, f"{outcome.block.name} failed:\n{outcome.error}"
    if outcome.block.expected is not None:
        assert matches(outcome.block.expected, outcome.output), (
            f"{outcome.block.name} printed something else than the document shows "
            "(python tests/unit/api/docblocks.py FILE rewrites the outputs):\n"
            f"{outcome.output}")


@pytest.mark.parametrize("index", range(len(API_BLOCKS)),
                         ids=[b.name for b in API_BLOCKS])
def test_api_doc_block(api_doc_run: DocRun, index: int) -> None:
    _check(api_doc_run, index)


@pytest.mark.parametrize("index", range(len(README_BLOCKS)),
                         ids=[b.name for b in README_BLOCKS])
def test_readme_example(readme_run: DocRun, index: int) -> None:
    _check(readme_run, index)


def test_documents_show_real_output_for_every_example() -> None:
    # a python or sh block without its output would be run but not compared
    assert len(API_BLOCKS) >= 10 and len(README_BLOCKS) == 1
    for block in API_BLOCKS + README_BLOCKS:
        assert block.program is not None or block.expected is not None, block.name
        if block.expected is not None:
            assert block.expected.strip(), f"{block.name}: empty output"


def test_the_examples_cover_the_api() -> None:
    # every call the brief names is exercised by a documented example that runs
    code = "\n".join(b.code for b in API_BLOCKS)
    for name in ("generate_data", "load_rules", "validate", "reconcile_plain", "run_party",
                 "run_local_job", "read_outputs", "read_operator_outputs", "records()",
                 "quarantine()", "export_lists", "verify_ledger", "open_ledger",
                 "check_against", "rules_in_force", "propose", "vote", "inspect_proposal",
                 "certify", "approvals", "sign_approval", "statement_approval",
                 "generate_keypair", "load_private_key", "JsonFormatter", "ERRORS",
                 "diagnostics()"):
        assert name in code, f"no documented example calls {name}"


def test_the_reference_lists_every_name() -> None:
    text = API_DOC.read_text("utf-8")
    reference = text[text.index("## Reference"):]
    missing = [name for name in settlechain.__all__ if name != "__version__"
               and not re.search(rf"\b{re.escape(name)}\b", reference)]
    assert not missing, f"docs/api.md does not mention {missing}"


def test_the_facade_and_the_documented_examples_pass_mypy_strict(tmp_path: Path) -> None:
    # the facade, and the examples (as one session, the program, the README's) against its
    # type hints; one run, as mypy takes most of its time loading what they import
    session = "\n\n".join(b.code for b in API_BLOCKS if b.lang == "python" and not b.program)
    (tmp_path / "api_session.py").write_text(session + "\n", encoding="utf-8")
    for block in API_BLOCKS:
        if block.program:
            (tmp_path / block.program).write_text(block.code + "\n", encoding="utf-8")
    (tmp_path / "readme_example.py").write_text(README_BLOCKS[0].code + "\n", encoding="utf-8")
    examples = sorted(str(p) for p in tmp_path.glob("*.py"))
    assert len(examples) == 3
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--strict",
                           "--follow-imports=silent", "settlechain", *examples],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found in" in proc.stdout
