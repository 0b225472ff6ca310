"""Every committed *_pb2.py / *_pb2_grpc.py is what grpc_tools generates from its .proto
now: one parametrised check for every .proto file of the project (found, not listed, so
a new one cannot be forgotten)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOS = sorted(p.relative_to(ROOT) for p in ROOT.glob("*/**/*.proto")
                if ".venv" not in p.parts and "build" not in p.parts)
# Lines that only stamp the generator's version: a newer grpcio-tools changes them
# without changing the protocol, so they are compared with the version numbers blanked.
_VERSION = re.compile(r"\d+\.\d+\.\d+|^\s*\d+,\s*$", re.MULTILINE)


def test_every_area_has_its_proto():
    assert {str(p) for p in PROTOS} >= {"engine/job/session.proto", "ledger_anchor/ledger.proto",
                                        "protocols/psi/psi.proto"}


@pytest.mark.parametrize("proto", PROTOS, ids=[str(p) for p in PROTOS])
def test_generated_code_is_fresh(proto: Path, tmp_path: Path) -> None:
    for each in PROTOS:  # a .proto may import another
        (tmp_path / each.parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / each, tmp_path / each)
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.",
                           "--grpc_python_out=.", str(proto)], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    stem = proto.with_suffix("")
    generated = [Path(f"{stem}_pb2.py")]
    if "service " in (ROOT / proto).read_text():
        generated.append(Path(f"{stem}_pb2_grpc.py"))
    for name in generated:
        fresh = _VERSION.sub("<v>", (tmp_path / name).read_text())
        committed = _VERSION.sub("<v>", (ROOT / name).read_text())
        assert fresh == committed, (f"{name} is stale: regenerate it with python -m "
                                    f"grpc_tools.protoc -I. --python_out=. "
                                    f"--grpc_python_out=. {proto}")
