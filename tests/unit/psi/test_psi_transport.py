"""The gRPC adapter on loopback: mutual TLS, replays, unknown sessions, timeouts, stalled peers."""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
from psi_helpers import make_sets, plaintext_pairs
from psi_pki import make_pki

from protocols.psi import (ElementSet, PeerAbortedError, PsiConfig, PsiServicer, PsiTimeoutError,
                           SessionError, TransportError, channel_credentials, run_psi_client,
                           secure_channel, server_credentials)
from protocols.psi.psi_pb2 import ClientHello, PsiMessage
from protocols.psi.psi_pb2_grpc import PsiServicer as GeneratedServicer
from protocols.psi.psi_pb2_grpc import PsiStub, add_PsiServicer_to_server
from protocols.psi.roles import PROTOCOL_VERSION
from protocols.psi.transport import GRPC_OPTIONS, SESSION_METADATA_KEY


@pytest.fixture(scope="module")
def pki():
    return make_pki(("A", "B"))


@pytest.fixture(scope="module")
def data():
    a, b = make_sets(np.random.default_rng(31), 3000, 2500, 1200)
    return a, b, ElementSet.from_fixed(a), ElementSet.from_fixed(b)


def _server(servicer, pem=None):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=GRPC_OPTIONS)
    if isinstance(servicer, PsiServicer):
        servicer.add_to_server(server)
    else:
        add_PsiServicer_to_server(servicer, server)
    if pem is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", server_credentials(pem.ca, pem.cert, pem.key))
    server.start()
    return server, port


def test_mutual_tls_run(pki, data) -> None:
    a, b, ea, eb = data
    servicer = PsiServicer(PsiConfig(peer_timeout_s=20))
    server, port = _server(servicer, pki["A"])
    try:
        session = servicer.offer(b"job/S1", ea, timeout_s=60, peer="B")
        creds = channel_credentials(pki["B"].ca, pki["B"].cert, pki["B"].key)
        with secure_channel(f"localhost:{port}", creds, "A") as channel:
            rb = run_psi_client(channel, b"job/S1", eb, timeout_s=60)
        ra = session.result()
    finally:
        server.stop(0)
    assert set(zip(ra.local_indices.tolist(), rb.local_indices.tolist())) == plaintext_pairs(a, b)
    assert np.array_equal(ra.pair_ids, rb.pair_ids)
    assert ra.stats["bytes_sent"] == rb.stats["bytes_received"] > 0
    assert ra.stats["bytes_received"] == rb.stats["bytes_sent"] > 0
    assert session.state == "done" and session.elements is None


def test_unknown_certificate_authority_is_refused(pki, data) -> None:
    _, _, ea, eb = data
    stranger = make_pki(("X",))["X"]  # another CA
    servicer = PsiServicer()
    server, port = _server(servicer, pki["A"])
    try:
        session = servicer.offer(b"tls", ea, timeout_s=5, peer="B")
        creds = channel_credentials(pki["B"].ca, stranger.cert, stranger.key)
        with secure_channel(f"localhost:{port}", creds, "A") as channel:
            with pytest.raises(TransportError):
                run_psi_client(channel, b"tls", eb, timeout_s=5)
        assert session.state == "offered", "no protocol message reached the servicer"
    finally:
        server.stop(0)


def test_replay_and_unknown_session_are_refused(data) -> None:
    _, _, ea, eb = data
    servicer = PsiServicer()
    server, port = _server(servicer)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
            session = servicer.offer(b"once", ea, timeout_s=30, peer=None)
            run_psi_client(channel, b"once", eb, timeout_s=30)
            session.result()
            with pytest.raises(PeerAbortedError, match="replay refused"):
                run_psi_client(channel, b"once", eb, timeout_s=30)
            with pytest.raises(PeerAbortedError, match="unknown PSI session"):
                run_psi_client(channel, b"never-offered", eb, timeout_s=30)
        with pytest.raises(SessionError, match="already offered"):
            servicer.offer(b"once", ea, timeout_s=30, peer=None)
    finally:
        server.stop(0)


def test_session_without_client_times_out(data) -> None:
    servicer = PsiServicer()
    session = servicer.offer(b"lonely", data[2], timeout_s=0.5, peer=None)
    start = time.monotonic()
    with pytest.raises(PsiTimeoutError, match="no PSI client"):
        session.result()
    assert time.monotonic() - start < 3
    assert session.state == "failed"


def test_stalled_client_is_detected_by_the_server(data) -> None:
    """A client that sends its hello and then goes silent: the server gives up after peer_timeout_s."""
    servicer = PsiServicer(PsiConfig(peer_timeout_s=1.0))
    server, port = _server(servicer)
    release = threading.Event()
    try:
        session = servicer.offer(b"stall", data[2], timeout_s=30, peer=None)

        def requests():
            yield PsiMessage(seq=0, client_hello=ClientHello(
                version=PROTOCOL_VERSION, session_id=b"stall", set_size=10, seed=bytes(16),
                ot_sender_point=bytes.fromhex(
                    "5866666666666666666666666666666666666666666666666666666666666666"),
                code_width=512, statistical_security=40, protocol="kkrt16"))
            release.wait(20)

        with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
            call = PsiStub(channel).Run(requests(), timeout=20,
                                        metadata=((SESSION_METADATA_KEY, b"stall"),))
            start = time.monotonic()
            with pytest.raises(PsiTimeoutError, match="within 1.0 s"):
                session.result()
            assert time.monotonic() - start < 8
            replies = []
            for message in call:  # server hello, then the server's Abort
                replies.append(message.WhichOneof("body"))
            assert replies[-1] == "abort"
    finally:
        release.set()
        server.stop(0)


class _SilentServicer(GeneratedServicer):
    """Reads everything, answers nothing: a stalled server."""

    def __init__(self):
        self.release = threading.Event()

    def Run(self, request_iterator, context):  # noqa: N802
        next(request_iterator)
        self.release.wait(20)
        return
        yield  # pragma: no cover


def test_stalled_server_is_detected_by_the_client(data) -> None:
    silent = _SilentServicer()
    server, port = _server(silent)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
            start = time.monotonic()
            with pytest.raises(PsiTimeoutError):
                run_psi_client(channel, b"x", data[3], timeout_s=30, config=PsiConfig(peer_timeout_s=1.0))
            assert time.monotonic() - start < 8
    finally:
        silent.release.set()
        server.stop(0)


def test_unreachable_server(data) -> None:
    with grpc.insecure_channel("127.0.0.1:1", options=GRPC_OPTIONS) as channel:
        with pytest.raises(TransportError, match="UNAVAILABLE"):
            run_psi_client(channel, b"x", data[3], timeout_s=5)


def test_server_abort_during_corrections_reaches_the_client_at_once(monkeypatch) -> None:
    """A malformed correction: the server aborts; the client, still sending, stops with the
    server's reason right away (not after the peer timeout), and the session fails on both sides."""
    from protocols.psi import kkrt

    rng = np.random.default_rng(41)
    a, b = make_sets(rng, 150_000, 150_000, 1000, width=16)
    ea, eb = ElementSet.from_fixed(a), ElementSet.from_fixed(b)
    original = kkrt.Receiver.corrections

    def corrupted(self):
        for i, (start, count, columns) in enumerate(original(self)):
            yield (start + 128 if i == 0 else start), count, columns

    monkeypatch.setattr(kkrt.Receiver, "corrections", corrupted)
    servicer = PsiServicer(PsiConfig(peer_timeout_s=30))
    server, port = _server(servicer)
    try:
        session = servicer.offer(b"corrupt", ea, timeout_s=60, peer=None)
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
            start = time.monotonic()
            with pytest.raises(PeerAbortedError, match="correction chunk"):
                run_psi_client(channel, b"corrupt", eb, timeout_s=60, config=PsiConfig(peer_timeout_s=30))
            assert time.monotonic() - start < 15
        with pytest.raises(Exception, match="correction chunk"):
            session.result()
    finally:
        server.stop(0)


def test_the_servicer_hands_a_result_over_once_and_keeps_none(tmp_path):
    """A job offers thousands of sessions (buckets x passes) on one servicer: it must not
    keep their results (at 10^8 rows they held GiBs on A until the end of the job)."""
    import gc
    import weakref
    from concurrent import futures

    from protocols.psi.errors import SessionError

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = PsiServicer()
    servicer.add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        a = ElementSet.from_fixed(np.arange(64, dtype=np.uint64).view(np.uint8).reshape(64, 8))
        b = ElementSet.from_fixed(np.arange(32, 96, dtype=np.uint64).view(np.uint8).reshape(64, 8))
        session_id = os.urandom(16)
        session = servicer.offer(session_id, a, 30.0, peer=None)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            theirs = run_psi_client(channel, session_id, b, 30.0)
        result = session.result()
        assert len(result.local_indices) == len(theirs.local_indices) == 32
        kept = weakref.ref(result.local_indices)
        del result
        gc.collect()
        assert kept() is None, "the servicer still holds the session's result"
        with pytest.raises(SessionError, match="already taken"):
            session.result()
        # and the id still runs once
        with pytest.raises(SessionError, match="already offered"):
            servicer.offer(session_id, a, 30.0, peer=None)
    finally:
        server.stop(None)
