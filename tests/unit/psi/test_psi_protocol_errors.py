"""Protocol-error probes: each malformed, truncated, replayed or out-of-order message ends the
run with a clear error on the party that sees it, and the other party receives its Abort."""

from __future__ import annotations

import numpy as np
import pytest
from psi_helpers import make_sets

from protocols.psi import (ClientRole, ElementSet, InputBoundsError, PeerAbortedError, PsiConfig,
                           PsiError, PsiProtocolError, ServerRole)
from protocols.psi.psi_pb2 import Finish, PsiMessage
from protocols.psi.sink import run_in_memory

C2S, S2C = "client->server", "server->client"


def _edit(change):
    def apply(data: bytes) -> bytes:
        message = PsiMessage.FromString(data)
        change(message)
        return message.SerializeToString()
    return apply


def _flip_last_tag_byte(m):
    tags = bytearray(m.matches.tags)
    tags[-1] ^= 1
    m.matches.tags = bytes(tags)


# (description, direction, message index, mutation, expected error, text in the error)
PROBES = [
    ("replayed client hello", C2S, 0, lambda d: [d, d], PsiProtocolError, "expected message #1, found #0"),
    ("replayed correction", C2S, 1, lambda d: [d, d], PsiProtocolError, "found #1"),
    ("dropped correction (truncated run)", C2S, 1, lambda d: None, PsiProtocolError, "both roles wait"),
    ("dropped OPRF values (truncated run)", S2C, 1, lambda d: None, PsiProtocolError, "both roles wait"),
    ("finish instead of correction", C2S, 1,
     _edit(lambda m: (m.ClearField("correction"), m.finish.CopyFrom(Finish(match_count=0)))),
     PsiProtocolError, "expected correction, found finish"),
    ("empty message", C2S, 1, _edit(lambda m: m.ClearField("correction")), PsiProtocolError,
     "found an empty message"),
    ("undecodable bytes", C2S, 1, lambda d: b"\xff\xff\xff", PsiProtocolError, "undecodable"),
    ("correction one byte short", C2S, 1,
     _edit(lambda m: setattr(m.correction, "columns", m.correction.columns[:-1])),
     PsiProtocolError, "correction chunk"),
    ("correction for the wrong bins", C2S, 1,
     _edit(lambda m: setattr(m.correction, "bin_start", 128)), PsiProtocolError, "expected bins 0"),
    ("hello for another session", C2S, 0,
     _edit(lambda m: setattr(m.client_hello, "session_id", b"other")), PsiProtocolError, "session"),
    ("hello of another version", C2S, 0,
     _edit(lambda m: setattr(m.client_hello, "version", 9)), PsiProtocolError, "version"),
    ("hello with another code width", C2S, 0,
     _edit(lambda m: setattr(m.client_hello, "code_width", 256)), PsiProtocolError, "code width"),
    ("invalid base-OT point A", C2S, 0,
     _edit(lambda m: setattr(m.client_hello, "ot_sender_point", bytes(32))), PsiProtocolError,
     "base-OT point A"),
    ("invalid base-OT points B", S2C, 0,
     _edit(lambda m: setattr(m.server_hello, "ot_receiver_points", bytes(len(m.server_hello.ot_receiver_points)))),
     PsiProtocolError, "base-OT point B_0"),
    ("base-OT points truncated", S2C, 0,
     _edit(lambda m: setattr(m.server_hello, "ot_receiver_points", m.server_hello.ot_receiver_points[:-32])),
     PsiProtocolError, "expected 512 points"),
    ("server hello echoes another session", S2C, 0,
     _edit(lambda m: setattr(m.server_hello, "session_id", b"x")), PsiProtocolError, "session"),
    ("values with another width", S2C, 1,
     _edit(lambda m: setattr(m.oprf_values, "value_bytes", m.oprf_values.value_bytes + 1)),
     PsiProtocolError, "OPRF values"),
    ("values truncated", S2C, 1,
     _edit(lambda m: setattr(m.oprf_values, "values", m.oprf_values.values[:-3])), PsiProtocolError,
     "OPRF values"),
    ("values at the wrong offset", S2C, 1,
     _edit(lambda m: setattr(m.oprf_values, "offset", 5)), PsiProtocolError, "expected offset 0"),
    ("match position out of range", C2S, 2,
     _edit(lambda m: setattr(m.matches, "positions", b"\xff\xff\xff\xff" + m.matches.positions[4:])),
     PsiProtocolError, "strictly increasing positions"),
    ("forged confirmation tag", C2S, 2, _edit(_flip_last_tag_byte), PsiProtocolError, "confirmation tag"),
    ("finish announces more matches than sent", C2S, 3,
     _edit(lambda m: setattr(m.finish, "match_count", m.finish.match_count + 1)), PsiProtocolError,
     "announced"),
    ("server confirms another count", S2C, 2,
     _edit(lambda m: setattr(m.finish, "match_count", m.finish.match_count + 1)), PsiProtocolError,
     "confirmed"),
]


@pytest.fixture(scope="module")
def elements():
    a, b = make_sets(np.random.default_rng(21), 300, 280, 120)
    return ElementSet.from_fixed(a), ElementSet.from_fixed(b)


@pytest.mark.parametrize("description, direction, index, mutation, error, text", PROBES,
                         ids=[p[0] for p in PROBES])
def test_probe(elements, description, direction, index, mutation, error, text) -> None:
    client, server = ClientRole(b"probe", elements[0]), ServerRole(b"probe", elements[1])
    hit = []

    def mutate(d: str, i: int, data: bytes):
        if (d, i) == (direction, index):
            hit.append(True)
            return mutation(data)
        return data

    with pytest.raises(error) as info:
        run_in_memory(client, server, mutate=mutate)
    assert hit, f"probe {description!r} never saw its message"
    assert text in str(info.value), str(info.value)
    if "both roles wait" not in text:
        # the party that detected the problem sent Abort; the other one ended too
        assert "failed" in (client._state, server._state), (client._state, server._state)
    assert not client.finished or not server.finished


def test_abort_from_peer_raises_with_its_reason(elements) -> None:
    server = ServerRole(b"s", elements[1])
    client = ClientRole(b"s", elements[0])
    list(client.start())
    with pytest.raises(PeerAbortedError, match="operator said no"):
        client.handle(PsiMessage.FromString(server.abort_message("operator said no").SerializeToString()))


def test_message_after_the_end_is_refused(elements) -> None:
    client, server = ClientRole(b"e", elements[0]), ServerRole(b"e", elements[1])
    run_in_memory(client, server)
    with pytest.raises(PsiProtocolError, match="expected"):
        list(server.handle(PsiMessage(seq=4, finish=Finish(match_count=0))))


def test_size_bounds_are_enforced(elements) -> None:
    small = PsiConfig(max_elements=250)
    with pytest.raises(InputBoundsError, match="own set"):
        ClientRole(b"b", elements[0], small)
    server = ServerRole(b"b", elements[1], PsiConfig(max_elements=290))
    client = ClientRole(b"b", elements[0])  # 300 elements: above the server's bound
    with pytest.raises(InputBoundsError, match="peer set"):
        run_in_memory(client, server)
    assert client._state == "failed"
    ratio = PsiConfig(max_size_ratio=1.01, min_size_for_ratio=10)
    with pytest.raises(InputBoundsError, match="ratio"):
        run_in_memory(ClientRole(b"r", elements[0]), ServerRole(b"r", elements[1], ratio))


@pytest.mark.parametrize("session_id", [b"", b"x" * 257, "text"])
def test_session_id_is_checked(elements, session_id) -> None:
    with pytest.raises(PsiError, match="session id"):
        ClientRole(session_id, elements[0])
