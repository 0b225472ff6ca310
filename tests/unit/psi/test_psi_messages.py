"""Every wire message round-trips through serialize/parse (freshness of the generated modules:
tests/unit/test_protos.py)."""

from __future__ import annotations


from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.psi.psi_pb2 import (Abort, ClientHello, Correction, Finish, Matches, OkvsCorrection,
                                   OprfValues, PsiMessage, ServerHello, VoleReply, VoleSetup)


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
