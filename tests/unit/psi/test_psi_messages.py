"""Every wire message round-trips through serialize/parse; the generated modules are fresh."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.psi import psi_pb2
from protocols.psi.psi_pb2 import (Abort, ClientHello, Correction, Finish, Matches, OkvsCorrection,
                                   OprfValues, PsiMessage, ServerHello, VoleReply, VoleSetup)

ROOT = Path(__file__).resolve().parents[3]

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
blob = st.binary(max_size=300)

BODIES = {
    "client_hello": st.builds(ClientHello, version=u32, session_id=blob, set_size=u64, seed=blob,
                              ot_sender_point=blob, code_width=u32, statistical_security=u32,
                              protocol=st.text(max_size=20)),
    "server_hello": st.builds(ServerHello, version=u32, session_id=blob, set_size=u64, seed=blob,
                              ot_receiver_points=blob, protocol=st.text(max_size=20)),
    "correction": st.builds(Correction, bin_start=u64, bin_count=u32, columns=blob),
    "oprf_values": st.builds(OprfValues, offset=u64, count=u32, value_bytes=u32, values=blob),
    "matches": st.builds(Matches, positions=blob, tags=blob),
    "finish": st.builds(Finish, match_count=u64),
    "abort": st.builds(Abort, reason=st.text(max_size=200)),
    "vole_setup": st.builds(VoleSetup, offset=u64, total=u64, data=blob),
    "vole_reply": st.builds(VoleReply, offset=u64, total=u64, data=blob),
    "okvs_correction": st.builds(OkvsCorrection, offset=u64, total=u64, data=blob),
}


def test_every_body_kind_is_covered() -> None:
    kinds = {f.name for f in PsiMessage.DESCRIPTOR.oneofs_by_name["body"].fields}
    assert kinds == set(BODIES)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(BODIES)).flatmap(
    lambda kind: st.tuples(st.just(kind), BODIES[kind], u64)))
def test_round_trip(case) -> None:
    kind, body, seq = case
    message = PsiMessage(seq=seq, **{kind: body})
    data = message.SerializeToString()
    parsed = PsiMessage.FromString(data)
    assert parsed == message
    assert parsed.WhichOneof("body") == kind
    assert parsed.SerializeToString() == data


def _without_tool_versions(text: str) -> str:
    """The generated code minus the generator's version stamps (a newer grpcio-tools/protobuf
    changes those lines only); the descriptor and the service code must match exactly."""
    text = re.sub(r"# Protobuf Python Version: .*", "", text)
    text = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)", "", text)
    text = re.sub(r"GRPC_GENERATED_VERSION = '[^']*'", "", text)
    return text


def test_generated_modules_are_fresh(tmp_path) -> None:
    """Regenerate from psi.proto (command in protocols/psi/__init__.py) and compare."""
    proc = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT}", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", str(ROOT / "protocols/psi/psi.proto")],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("psi_pb2.py", "psi_pb2_grpc.py"):
        fresh = _without_tool_versions((tmp_path / "protocols" / "psi" / name).read_text())
        committed = _without_tool_versions((ROOT / "protocols" / "psi" / name).read_text())
        assert fresh == committed, f"{name} is stale: regenerate it"
    assert psi_pb2.DESCRIPTOR.package == "settlechain.psi.v1"
