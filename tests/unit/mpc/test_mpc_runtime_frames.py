"""The MPC transport's framing (protocols.mpc.runtime._Exchanger): every frame header is
checked against MAX_MESSAGE_BYTES wherever the reads split."""

import asyncio
import struct

import pytest

from protocols.mpc import runtime
from protocols.mpc.errors import MalformedMessageError, PeerAuthenticationError
from protocols.mpc.params import MpcParties

ADDRESSES = ("127.0.0.1:17501", "127.0.0.1:17502", "127.0.0.1:17503")
LIMIT = runtime.MAX_MESSAGE_BYTES


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False
        self.written = []

    def abort(self) -> None:
        self.aborted = True

    def write(self, data) -> None:
        self.written.append(bytes(data))

    def writelines(self, lines) -> None:
        self.written.extend(bytes(x) for x in lines)

    def is_closing(self) -> bool:
        return self.aborted

    def get_extra_info(self, name, default=None):
        return default


@pytest.fixture
def session():
    s = runtime.MpcSession(MpcParties(ADDRESSES, 2), 5.0)
    for peer in s.rt.parties:
        peer.protocol = asyncio.Future(loop=s.loop) if peer.pid == s.pid else None
    yield s
    s.shutdown_loop()


def client_link(session, peer=0):
    """The exchanger of a connection this party (H) accepted from ``peer``, after its
    handshake."""
    session.exchangers.pop(peer, None)  # a fresh connection each time
    exchanger = runtime._Exchanger(session)
    exchanger.transport = FakeTransport()
    keys = session.rt._prss_keys_from_peer(peer)
    exchanger.data_received(peer.to_bytes(2, "little") + bytes(range(keys)))
    assert exchanger.peer_pid == peer and session.failed is None
    return exchanger


def frame(pc: int, payload: bytes) -> bytes:
    return struct.pack("<qI", pc, len(payload)) + payload


def oversized_header(pc: int = 77) -> bytes:
    return struct.pack("<qI", pc, LIMIT + 1)


def test_a_frame_split_at_every_byte_is_delivered(session) -> None:
    data = frame(5, b"payload") + frame(6, b"") + frame(7, b"x" * 40)
    for cut in range(1, len(data)):
        exchanger = client_link(session)
        exchanger.data_received(data[:cut])
        exchanger.data_received(data[cut:])
        assert exchanger.buffers == {5: b"payload", 6: b"", 7: b"x" * 40}, cut
        assert not exchanger.transport.aborted and session.failed is None
        assert len(exchanger.bytes) == 0


def test_frames_byte_by_byte_and_a_waiting_receive(session) -> None:
    exchanger = client_link(session)
    waiting = exchanger.receive(9)
    for byte in frame(8, b"ab") + frame(9, b"cd"):
        exchanger.data_received(bytes([byte]))
    assert waiting.done() and waiting.result() == b"cd"
    assert exchanger.buffers == {8: b"ab"}


@pytest.mark.parametrize("cut", range(1, 12))
def test_oversized_header_split_across_reads(session, cut) -> None:
    exchanger = client_link(session)
    header = oversized_header()
    exchanger.data_received(header[:cut])
    assert session.failed is None  # nothing to check before the 12 header bytes are here
    exchanger.data_received(header[cut:])
    assert isinstance(session.failed, MalformedMessageError)
    assert f"party A announced a message of {LIMIT + 1} bytes" in str(session.failed)
    assert exchanger.transport.aborted and len(exchanger.bytes) == 0


@pytest.mark.parametrize("cut", [0, 3, 11])
def test_oversized_header_after_another_frame_in_the_same_read(session, cut) -> None:
    exchanger = client_link(session)
    data = frame(1, b"first") + oversized_header()
    exchanger.data_received(data[:len(data) - cut])
    if cut:
        assert session.failed is None
        exchanger.data_received(data[len(data) - cut:])
    assert isinstance(session.failed, MalformedMessageError)
    assert exchanger.buffers == {1: b"first"} and exchanger.transport.aborted


def test_oversized_header_in_the_read_that_completes_the_handshake(session) -> None:
    exchanger = runtime._Exchanger(session)
    exchanger.transport = FakeTransport()
    keys = session.rt._prss_keys_from_peer(1)
    exchanger.data_received((1).to_bytes(2, "little") + bytes(keys - 1))
    assert session.failed is None and exchanger.peer_pid is None
    exchanger.data_received(bytes(1) + frame(3, b"ok") + oversized_header())
    assert exchanger.peer_pid == 1 and exchanger.buffers == {3: b"ok"}
    assert isinstance(session.failed, MalformedMessageError) and "party B announced" in str(session.failed)


def test_a_frame_at_the_limit_is_accepted(session) -> None:
    exchanger = client_link(session)
    exchanger.data_received(struct.pack("<qI", 4, LIMIT))
    exchanger.data_received(b"z" * 1000)  # the rest is on its way: buffered, not refused
    assert session.failed is None and not exchanger.transport.aborted


def test_the_same_tag_twice_is_refused(session) -> None:
    exchanger = client_link(session)
    exchanger.data_received(frame(11, b"a") + frame(11, b"b"))
    assert isinstance(session.failed, MalformedMessageError) and "same tag 11" in str(session.failed)


def test_a_client_claiming_a_later_party_index_is_refused(session) -> None:
    exchanger = runtime._Exchanger(session)
    exchanger.transport = FakeTransport()
    exchanger.data_received((2).to_bytes(2, "little"))
    assert isinstance(session.failed, PeerAuthenticationError) and exchanger.transport.aborted


def test_nothing_is_read_after_a_failure(session) -> None:
    exchanger = client_link(session)
    exchanger.data_received(oversized_header())
    exchanger.data_received(frame(2, b"late"))
    assert 2 not in exchanger.buffers
