"""The RR22 protocol end to end: message-corruption probes for every message type, protocol
selection (a mismatch is a clean error on both sides, never a wrong answer), gRPC, sizes."""

from __future__ import annotations

from concurrent import futures

import grpc
import numpy as np
import pytest
from psi_helpers import make_sets, plaintext_pairs, run_pair

from protocols.psi import (ElementSet, PeerAbortedError, PsiConfig, PsiProtocolError, PsiServicer,
                           Rr22ClientRole, Rr22ServerRole, client_role, run_psi_client, server_role)
from protocols.psi.psi_pb2 import Finish, PsiMessage
from protocols.psi.roles import STREAM_PART_BYTES
from protocols.psi.sink import run_in_memory
from protocols.psi.transport import GRPC_OPTIONS

C2S, S2C = "client->server", "server->client"


def _edit(change):
    def apply(data: bytes) -> bytes:
        message = PsiMessage.FromString(data)
        change(message)
        return message.SerializeToString()
    return apply


def _set(kind: str, field: str, value):
    return _edit(lambda m: setattr(getattr(m, kind), field, value(getattr(getattr(m, kind), field))
                                   if callable(value) else value))


def _to_finish(kind: str):
    return _edit(lambda m: (m.ClearField(kind), m.finish.CopyFrom(Finish(match_count=0))))


def _flip_tag(m):
    tags = bytearray(m.matches.tags)
    tags[-1] ^= 1
    m.matches.tags = bytes(tags)


# RR22 with 300 x 280 elements: C2S #0 client_hello, #1 vole_setup, #2 okvs_correction,
# #3 matches, #4 finish; S2C #0 server_hello, #1 vole_reply, #2 oprf_values, #3 finish.
# (description, direction, index, mutation, error, text in the error)
PROBES = [
    ("client hello replayed", C2S, 0, lambda d: [d, d], PsiProtocolError, "expected message #1, found #0"),
    ("client hello for kkrt16", C2S, 0, _set("client_hello", "protocol", "kkrt16"), PsiProtocolError,
     "runs PSI protocol 'rr22', the peer 'kkrt16'"),
    ("client hello with 512 base OTs", C2S, 0, _set("client_hello", "code_width", 512), PsiProtocolError,
     "expected 128 base OTs"),
    ("server hello echoes kkrt16", S2C, 0, _set("server_hello", "protocol", "kkrt16"), PsiProtocolError,
     "runs PSI protocol 'rr22', the peer 'kkrt16'"),
    ("server hello one base-OT point short", S2C, 0,
     _set("server_hello", "ot_receiver_points", lambda v: v[:-32]), PsiProtocolError, "expected 128 points"),
    ("VOLE setup truncated", C2S, 1, _set("vole_setup", "data", lambda v: v[:-1]), PsiProtocolError,
     "VOLE setup: expected"),
    ("VOLE setup with an extra byte", C2S, 1, _set("vole_setup", "data", lambda v: v + b"x"),
     PsiProtocolError, "VOLE setup: expected"),
    ("VOLE setup claims another total", C2S, 1, _set("vole_setup", "total", lambda v: v + 1),
     PsiProtocolError, "VOLE setup: expected"),
    ("VOLE setup at the wrong offset", C2S, 1, _set("vole_setup", "offset", 16), PsiProtocolError,
     "expected"),
    ("VOLE setup replayed", C2S, 1, lambda d: [d, d], PsiProtocolError, "expected message #2, found #1"),
    ("VOLE setup out of order", C2S, 1, _edit(lambda m: setattr(m, "seq", 2)), PsiProtocolError,
     "expected message #1, found #2"),
    ("finish instead of VOLE setup", C2S, 1, _to_finish("vole_setup"), PsiProtocolError,
     "expected vole_setup, found finish"),
    ("VOLE setup dropped", C2S, 1, lambda d: None, PsiProtocolError, "expected message #1, found #2"),
    ("VOLE reply truncated", S2C, 1, _set("vole_reply", "data", lambda v: v[:-1]), PsiProtocolError,
     "VOLE reply: expected"),
    ("VOLE reply with an extra byte", S2C, 1, _set("vole_reply", "data", lambda v: v + b"x"),
     PsiProtocolError, "VOLE reply: expected"),
    ("VOLE reply replayed", S2C, 1, lambda d: [d, d], PsiProtocolError, "expected message #2, found #1"),
    ("VOLE reply out of order", S2C, 1, _edit(lambda m: setattr(m, "seq", 2)), PsiProtocolError,
     "expected message #1, found #2"),
    ("finish instead of VOLE reply", S2C, 1, _to_finish("vole_reply"), PsiProtocolError,
     "expected vole_reply, found finish"),
    ("OKVS correction truncated", C2S, 2, _set("okvs_correction", "data", lambda v: v[:-1]),
     PsiProtocolError, "OKVS correction: expected"),
    ("OKVS correction with an extra byte", C2S, 2, _set("okvs_correction", "data", lambda v: v + b"x"),
     PsiProtocolError, "OKVS correction: expected"),
    ("OKVS correction at the wrong offset", C2S, 2, _set("okvs_correction", "offset", 10),
     PsiProtocolError, "OKVS correction: expected"),
    ("OKVS correction replayed", C2S, 2, lambda d: [d, d], PsiProtocolError, "expected message #3, found #2"),
    ("OKVS correction out of order", C2S, 2, _edit(lambda m: setattr(m, "seq", 3)), PsiProtocolError,
     "expected message #2, found #3"),
    ("finish instead of OKVS correction", C2S, 2, _to_finish("okvs_correction"), PsiProtocolError,
     "expected okvs_correction, found finish"),
    ("OPRF values truncated", S2C, 2, _set("oprf_values", "values", lambda v: v[:-3]), PsiProtocolError,
     "OPRF values"),
    ("OPRF values with an extra byte", S2C, 2, _set("oprf_values", "values", lambda v: v + b"x"),
     PsiProtocolError, "OPRF values"),
    ("OPRF values of another width", S2C, 2, _set("oprf_values", "value_bytes", lambda v: v + 1),
     PsiProtocolError, "OPRF values"),
    ("OPRF values at the wrong offset", S2C, 2, _set("oprf_values", "offset", 5), PsiProtocolError,
     "expected offset 0"),
    ("OPRF values replayed", S2C, 2, lambda d: [d, d], PsiProtocolError, "expected message #3, found #2"),
    ("OPRF values dropped", S2C, 2, lambda d: None, PsiProtocolError, "both roles wait"),
    ("match position out of range", C2S, 3,
     _set("matches", "positions", lambda v: b"\xff\xff\xff\xff" + v[4:]), PsiProtocolError,
     "strictly increasing positions"),
    ("matches with a truncated tag", C2S, 3, _set("matches", "tags", lambda v: v[:-1]), PsiProtocolError,
     "4-byte tags"),
    ("forged confirmation tag", C2S, 3, _edit(_flip_tag), PsiProtocolError, "confirmation tag"),
    ("matches replayed", C2S, 3, lambda d: [d, d], PsiProtocolError, "expected message #4, found #3"),
    ("finish announces more matches", C2S, 4, _set("finish", "match_count", lambda v: v + 1),
     PsiProtocolError, "announced"),
    ("server confirms another count", S2C, 3, _set("finish", "match_count", lambda v: v + 1),
     PsiProtocolError, "confirmed"),
]


@pytest.fixture(scope="module")
def elements():
    a, b = make_sets(np.random.default_rng(21), 300, 280, 120)
    return ElementSet.from_fixed(a), ElementSet.from_fixed(b)


@pytest.mark.parametrize("description, direction, index, mutation, error, text", PROBES,
                         ids=[p[0] for p in PROBES])
def test_probe(elements, description, direction, index, mutation, error, text) -> None:
    client, server = Rr22ClientRole(b"probe", elements[0]), Rr22ServerRole(b"probe", elements[1])
    hit = []

    def mutate(d: str, i: int, data: bytes):
        if (d, i) == (direction, index):
            hit.append(PsiMessage.FromString(data).WhichOneof("body"))
            return mutation(data)
        return data

    with pytest.raises(error) as info:
        run_in_memory(client, server, mutate=mutate)
    assert hit, f"probe {description!r} never saw its message"
    assert text in str(info.value), str(info.value)
    if "both roles wait" not in text:
        assert "failed" in (client._state, server._state), (client._state, server._state)
    assert not client.finished or not server.finished


def test_probe_indices_name_the_intended_messages(elements) -> None:
    """The probe table's message numbers are the RR22 message sequence (guards the table)."""
    seen = {C2S: [], S2C: []}
    run_in_memory(Rr22ClientRole(b"s", elements[0]), Rr22ServerRole(b"s", elements[1]),
                  tap=lambda d, data: seen[d].append(PsiMessage.FromString(data).WhichOneof("body")))
    assert seen[C2S] == ["client_hello", "vole_setup", "okvs_correction", "matches", "finish"]
    assert seen[S2C] == ["server_hello", "vole_reply", "oprf_values", "finish"]


@pytest.mark.parametrize(("client", "server"), [("rr22", "kkrt16"), ("kkrt16", "rr22")])
def test_protocol_mismatch_is_a_clean_error_on_both_sides(elements, client, server) -> None:
    c, s = client_role(client, b"m", elements[0]), server_role(server, b"m", elements[1])
    with pytest.raises(PsiProtocolError, match=f"runs PSI protocol '{server}', the peer '{client}'"):
        run_in_memory(c, s)
    assert c._state == "failed" and not c.finished and not s.finished


def _server(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=GRPC_OPTIONS)
    servicer.add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_grpc_run_and_mismatch() -> None:
    a, b = make_sets(np.random.default_rng(7), 20_000, 15_000, 6_000)
    ea, eb = ElementSet.from_fixed(a), ElementSet.from_fixed(b)
    servicer = PsiServicer(PsiConfig(peer_timeout_s=30))
    server, port = _server(servicer)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
            session = servicer.offer(b"rr22-run", ea, timeout_s=60, peer=None, protocol="rr22")
            rb = run_psi_client(channel, b"rr22-run", eb, timeout_s=60, protocol="rr22")
            ra = session.result()
            wrong = servicer.offer(b"mismatch", ea, timeout_s=60, peer=None, protocol="kkrt16")
            with pytest.raises(PeerAbortedError, match="runs PSI protocol 'kkrt16', the peer 'rr22'"):
                run_psi_client(channel, b"mismatch", eb, timeout_s=60, protocol="rr22")
            with pytest.raises(PsiProtocolError, match="the peer 'rr22'"):
                wrong.result()
    finally:
        server.stop(0)
    assert set(zip(ra.local_indices.tolist(), rb.local_indices.tolist())) == plaintext_pairs(a, b)
    assert np.array_equal(ra.pair_ids, rb.pair_ids)
    assert ra.stats["bytes_sent"] == rb.stats["bytes_received"]
    for step in ("base_ot", "vole", "okvs", "oprf", "match", "total"):
        assert step in rb.stats["seconds"], step
    with pytest.raises(Exception, match="protocol"):
        PsiServicer().offer(b"x", ea, timeout_s=5, peer=None, protocol="rr23")


def test_streams_span_several_messages() -> None:
    """A run whose OKVS correction takes several 1 MiB parts (every part but the last full)."""
    a, b = make_sets(np.random.default_rng(8), 200_000, 150_000, 60_000, width=16)
    sizes = {}

    def tap(direction, data):
        kind = PsiMessage.FromString(data).WhichOneof("body")
        sizes.setdefault(kind, []).append(len(data))

    ra, rb = run_pair(ElementSet.from_fixed(a), ElementSet.from_fixed(b), protocol="rr22", tap=tap)
    assert len(ra) == len(rb) == 60_000
    assert len(sizes["okvs_correction"]) >= 3
    for kind in ("vole_setup", "vole_reply", "okvs_correction"):
        assert max(sizes[kind]) < STREAM_PART_BYTES + 64, kind


def test_rr22_sends_fewer_bytes_than_kkrt16() -> None:
    """The communication the protocol is chosen for: at 10^5 x 10^5, under 40 bytes per element."""
    a, b = make_sets(np.random.default_rng(9), 100_000, 100_000, 50_000, width=16)
    ea, eb = ElementSet.from_fixed(a), ElementSet.from_fixed(b)
    r_rr22, _ = run_pair(ea, eb, protocol="rr22")
    r_kkrt, _ = run_pair(ea, eb, protocol="kkrt16")
    per_element = (r_rr22.stats["bytes_sent"] + r_rr22.stats["bytes_received"]) / 100_000
    assert per_element < 40, per_element
    assert r_kkrt.stats["bytes_sent"] + r_kkrt.stats["bytes_received"] > 3 * per_element * 100_000
