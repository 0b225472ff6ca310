"""The committed ledger_pb2*.py are what grpc_tools generates from ledger.proto now,
and every message round-trips through serialize/parse."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from ledger_anchor import ledger_pb2

ROOT = Path(__file__).resolve().parents[3]
GENERATED = ("ledger_anchor/ledger_pb2.py", "ledger_anchor/ledger_pb2_grpc.py")
# Lines that only stamp the generator's version: a newer grpcio-tools changes them
# without changing the protocol, so they are compared with the version numbers blanked.
_VERSION = re.compile(r"\d+\.\d+\.\d+|^\s*\d+,\s*$", re.MULTILINE)


def _normalise(text: str) -> str:
    return _VERSION.sub("<v>", text)


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    (tmp_path / "ledger_anchor").mkdir()
    shutil.copy(ROOT / "ledger_anchor/ledger.proto", tmp_path / "ledger_anchor/ledger.proto")
    # The regeneration command of ledger_anchor/service.py's docstring, run in a copy.
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--grpc_python_out=.",
                           "ledger_anchor/ledger.proto"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in GENERATED:
        fresh = (tmp_path / name).read_text()
        committed = (ROOT / name).read_text()
        assert _normalise(fresh) == _normalise(committed), f"{name} is stale: regenerate it (see ledger_anchor/service.py)"
    assert "grpc_tools.protoc -I. --python_out=. --grpc_python_out=. ledger_anchor/ledger.proto" in (
        ROOT / "ledger_anchor/service.py").read_text()


def test_messages_round_trip() -> None:
    messages = [
        ledger_pb2.AppendRequest(entries=[ledger_pb2.SignedEntry(
            entry_json=b'{"kind":"invoice"}', signatures=[ledger_pb2.Signature(signer="A", signature=b"\x01" * 64)])]),
        ledger_pb2.AppendResponse(receipts=[ledger_pb2.AppendReceipt(index=7, leaf_hash=b"\x02" * 32,
                                                                     checkpoint="o\n8\nAA==\n\n")]),
        ledger_pb2.GetEntriesRequest(start=3, end=9),
        ledger_pb2.GetEntriesResponse(start=3, leaf_data=[b"{}", b"[]"], tree_size=10),
        ledger_pb2.GetCheckpointRequest(size=5, has_size=True),
        ledger_pb2.CheckpointResponse(checkpoint="x", tree_size=5, final_size=4, has_final=True),
        ledger_pb2.InclusionProofRequest(index=1, tree_size=2),
        ledger_pb2.ConsistencyProofRequest(first_size=1, second_size=2),
        ledger_pb2.ProofResponse(hashes=[b"\x03" * 32]),
        ledger_pb2.AddCosignatureRequest(member_id="B", tree_size=4, signature_line="\u2014 n AAAA\n"),
        ledger_pb2.ReportForkRequest(reason="r", first_checkpoint="a", second_checkpoint="b"),
        ledger_pb2.GetGovernanceEntriesRequest(start=4),
        ledger_pb2.GetGovernanceEntriesResponse(indices=[4, 9], leaf_data=[b"{}", b"[]"], complete=True),
    ]
    for message in messages:
        parsed = type(message).FromString(message.SerializeToString())
        assert parsed == message
