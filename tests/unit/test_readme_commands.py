"""The README's test command is what CI runs, verbatim; its demo command names real things."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _code_lines(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line)
    return lines


def test_ci_runs_the_readme_test_command():
    readme = _code_lines((ROOT / "README.md").read_text(encoding="utf-8"))
    test_command = next(line for line in readme if "pytest" in line and "pip install" in line)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci


def test_demo_command_installs_and_runs_the_console_script():
    readme = _code_lines((ROOT / "README.md").read_text(encoding="utf-8"))
    demo = next(line for line in readme if line.endswith("settlechain demo"))
    # installs the tested versions from the lock file (with hashes), then the package itself
    assert "pip install -q --require-hashes -r requirements/run.txt" in demo
    assert "--no-deps -e ." in demo
    assert (ROOT / "requirements" / "run.txt").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'settlechain = "engine.cli:main"' in pyproject and "fast = [" in pyproject


def test_test_command_installs_from_the_test_lock():
    readme = _code_lines((ROOT / "README.md").read_text(encoding="utf-8"))
    test_command = next(line for line in readme if "pytest" in line and "pip install" in line)
    assert "--require-hashes -r requirements/test.txt" in test_command
