"""``import settlechain`` is cheap, and every name it offers is what it says it is."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import settlechain
from settlechain import errors

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("polars", "numba", "mpyc", "numpy", "grpc", "cryptography", "pyarrow")


def _modules_after(code: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def test_import_settlechain_loads_nothing_heavy() -> None:
    loaded = _modules_after("import settlechain")
    assert "settlechain" in loaded
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    # nor our own heavy modules: only the error modules of the packages
    ours = sorted(m for m in loaded if m.split(".")[0] in (
        "engine", "protocols", "ledger_anchor", "governance", "billing", "data_gen"))
    assert all(m.endswith(".errors") or "." not in m for m in ours), ours


def test_catching_errors_and_reading_the_version_stay_cheap() -> None:
    loaded = _modules_after("import settlechain\n"
                            "try:\n    raise settlechain.InputError('x')\n"
                            "except settlechain.ERRORS as exc:\n    exc.diagnostics()\n"
                            "settlechain.__version__")
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]


def test_the_probe_sees_heavy_imports() -> None:
    # the check above could not pass by accident: a call that needs polars loads it
    loaded = _modules_after("import settlechain\nsettlechain.validate")
    assert "polars" not in loaded  # the function object itself is still cheap
    loaded = _modules_after("import settlechain\nsettlechain.IngestResult")
    assert "polars" in loaded


def test_every_name_resolves_to_the_object_of_its_package() -> None:
    for name, (module, attribute) in settlechain._LAZY.items():
        assert getattr(settlechain, name) is getattr(importlib.import_module(module), attribute)
    assert settlechain.governance_status is importlib.import_module("governance.api").status
    assert settlechain.open_ledger is importlib.import_module("ledger_anchor").open_ledger
    assert set(settlechain.__all__) == (set(settlechain._LAZY) | set(errors.__all__)
                                        | {"__version__"})
    assert set(dir(settlechain)) >= set(settlechain.__all__)
    assert isinstance(settlechain.__version__, str) and settlechain.__version__
    with pytest.raises(AttributeError, match="no attribute 'reconcile'"):
        settlechain.reconcile  # noqa: B018


def test_type_checkers_see_the_same_names() -> None:
    # the TYPE_CHECKING imports of __init__ are the lazy names, under the same names
    tree = ast.parse((ROOT / "settlechain" / "__init__.py").read_text("utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    seen: dict[str, tuple[str, str]] = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                seen[alias.asname or alias.name] = (str(node.module), alias.name)
    assert seen == settlechain._LAZY


def test_every_error_of_ours_derives_from_a_root_with_diagnostics() -> None:
    for root in settlechain.ERRORS:
        assert callable(root.diagnostics) and isinstance(root.exit_code, int)
        assert root("what went wrong").diagnostics() == "what went wrong"
    allowed = {"engine.ingest.pipeline.RowAccountingError"}  # an internal bug, not an input
    stray = []
    for package in ("engine", "protocols", "ledger_anchor", "governance", "billing",
                    "data_gen", "settlechain"):
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__,
                                          package + "."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (inspect.isclass(value) and issubclass(value, BaseException)
                        and value.__module__ == module.__name__ and not name.startswith("_")
                        and f"{module.__name__}.{name}" not in allowed
                        and not issubclass(value, settlechain.ERRORS)):
                    stray.append(f"{module.__name__}.{name}")
    assert not stray, f"errors outside every package root: {stray}"
