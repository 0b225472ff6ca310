"""The lock files the README installs from agree with pyproject.toml's ranges, and pin
every package with hashes (scripts/lock.sh writes them)."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _locked(path: Path) -> dict[str, tuple[Version, list[str]]]:
    text = path.read_text(encoding="utf-8")
    pins: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=[a-z0-9])", text):
        head = re.match(r"([a-z0-9][a-z0-9_.\-]*)==(\S+)", block)
        if head:
            pins[head.group(1)] = (Version(head.group(2)), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("lock, extras", [("run.txt", ("fast",)), ("test.txt", ("fast", "test"))])
def test_lock_satisfies_pyproject(lock, extras):
    pins = {_norm(k): v for k, v in _locked(ROOT / "requirements" / lock).items()}
    requirements = [Requirement(r) for r in PYPROJECT["dependencies"]]
    for extra in extras:
        requirements += [Requirement(r) for r in PYPROJECT["optional-dependencies"][extra]]
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate({"platform_machine": "x86_64"}):
            continue
        name = _norm(req.name)
        assert name in pins, f"{lock}: {req.name} is required by pyproject.toml but not locked"
        version, hashes = pins[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{lock}: {req.name}=={version} is outside pyproject.toml's {req.specifier}")
    for name, (version, hashes) in pins.items():
        assert hashes, f"{lock}: {name}=={version} has no hash"


def test_every_runtime_dependency_has_an_upper_bound():
    for text in PYPROJECT["dependencies"]:
        req = Requirement(text)
        assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
            f"{req.name} has no upper bound in pyproject.toml: {req.specifier}")
