"""Issue 11 item 3: the PSI endpoint serves a session only to the member it was offered to.

A third consortium member H holds a certificate from the same CA as A and B.  Against A's
endpoint, for a session A offered to B, H is refused with PERMISSION_DENIED before the
servicer reads any PSI message; A's log names H's certificate (subject and SHA-256
fingerprint); the caller's callback learns of it; B can still run the session.  On the
client side, B's channel names the member it expects (``secure_channel``): a server that
presents H's certificate fails the TLS handshake.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent import futures

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from psi_helpers import make_sets, plaintext_pairs
from psi_pki import make_pki

from protocols.psi import (ElementSet, PeerRefusedError, PsiConfig, PsiServicer, TransportError,
                           channel_credentials, run_psi_client, secure_channel, server_credentials)
from protocols.psi import transport
from protocols.psi.psi_pb2 import ClientHello, PsiMessage
from protocols.psi.psi_pb2_grpc import PsiStub
from protocols.psi.roles import PROTOCOL_VERSION
from protocols.psi.transport import GRPC_OPTIONS, SESSION_METADATA_KEY


@pytest.fixture(scope="module")
def pki():
    return make_pki(("A", "B", "H"))


@pytest.fixture(scope="module")
def data():
    a, b = make_sets(np.random.default_rng(5), 800, 700, 300)
    return a, b, ElementSet.from_fixed(a), ElementSet.from_fixed(b)


def _fingerprint(pem: bytes) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)).hexdigest()


def _server(servicer, pem, *, plaintext_too=False):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=GRPC_OPTIONS)
    servicer.add_to_server(server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pem.ca, pem.cert, pem.key))
    plain = server.add_insecure_port("127.0.0.1:0") if plaintext_too else None
    server.start()
    return server, port, plain


@pytest.fixture
def inboxes(monkeypatch):
    """Counts the message pumps the servicer starts: one per Run that reads PSI messages."""
    started = []
    original = transport._Inbox.__init__

    def counting(self, stream, peer):
        if peer == "PSI client":  # the servicer's pump (the client's own pump reads the server)
            started.append(peer)
        original(self, stream, peer)

    monkeypatch.setattr(transport._Inbox, "__init__", counting)
    return started


def test_third_member_is_refused_before_any_message_and_the_session_survives(pki, data, inboxes, caplog) -> None:
    a, b, ea, eb = data
    refusals: list[PeerRefusedError] = []
    servicer = PsiServicer(PsiConfig(peer_timeout_s=20))
    server, port, _ = _server(servicer, pki["A"])
    try:
        session = servicer.offer(b"job-7/S1", ea, timeout_s=60, peer="B", on_refused=refusals.append)
        h_creds = channel_credentials(pki["H"].ca, pki["H"].cert, pki["H"].key)
        sent = []

        def hello():  # H's first PSI message, if anything ever read it
            sent.append(True)
            yield PsiMessage(seq=0, client_hello=ClientHello(version=PROTOCOL_VERSION, session_id=b"job-7/S1",
                                                             set_size=10, seed=bytes(16)))

        caplog.set_level(logging.WARNING, logger="protocols.psi.transport")
        with secure_channel(f"localhost:{port}", h_creds, "A") as channel:
            call = PsiStub(channel).Run(hello(), timeout=20, metadata=((SESSION_METADATA_KEY, b"job-7/S1"),))
            with pytest.raises(grpc.RpcError) as info:
                replies = list(call)
                assert not replies
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "expects member 'B'" in info.value.details()
            # the high-level client raises the dedicated error
            with pytest.raises(PeerRefusedError, match="PERMISSION_DENIED"):
                run_psi_client(channel, b"job-7/S1", eb, timeout_s=20)
        assert inboxes == [], "the servicer read no PSI message from H"
        assert session.state == "offered", "the refusal did not consume the session"
        # A's log and the callback name H's certificate
        fingerprint = _fingerprint(pki["H"].cert)
        logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert logged and all("CN=H" in m and fingerprint in m for m in logged), logged
        assert len(refusals) == 2 and refusals[0].common_name == "H" and refusals[0].expected == "B"
        assert refusals[0].fingerprint_sha256 == fingerprint
        assert session.refusals == refusals
        # B still runs the session
        b_creds = channel_credentials(pki["B"].ca, pki["B"].cert, pki["B"].key)
        with secure_channel(f"localhost:{port}", b_creds, "A") as channel:
            rb = run_psi_client(channel, b"job-7/S1", eb, timeout_s=60)
        ra = session.result()
    finally:
        server.stop(0)
    assert set(zip(ra.local_indices.tolist(), rb.local_indices.tolist())) == plaintext_pairs(a, b)
    assert inboxes == ["PSI client"]


def test_plaintext_and_tls_sessions_do_not_mix(pki, data, inboxes) -> None:
    _, _, ea, eb = data
    servicer = PsiServicer(PsiConfig(peer_timeout_s=20))
    server, port, plain = _server(servicer, pki["A"], plaintext_too=True)
    try:
        tls_session = servicer.offer(b"tls-only", ea, timeout_s=30, peer="B")
        plain_session = servicer.offer(b"plain-only", ea, timeout_s=30, peer=None)
        with grpc.insecure_channel(f"127.0.0.1:{plain}", options=GRPC_OPTIONS) as channel:
            with pytest.raises(PeerRefusedError, match="presented no certificate"):
                run_psi_client(channel, b"tls-only", eb, timeout_s=20)
        b_creds = channel_credentials(pki["B"].ca, pki["B"].cert, pki["B"].key)
        with secure_channel(f"localhost:{port}", b_creds, "A") as channel:
            with pytest.raises(PeerRefusedError, match="expects a plaintext client"):
                run_psi_client(channel, b"plain-only", eb, timeout_s=20)
        assert inboxes == []
        assert (tls_session.state, plain_session.state) == ("offered", "offered")
    finally:
        server.stop(0)


def test_offer_requires_a_peer_argument(data) -> None:
    servicer = PsiServicer()
    with pytest.raises(TypeError):
        servicer.offer(b"s", data[2], timeout_s=5)  # type: ignore[call-arg]
    with pytest.raises(Exception, match="peer"):
        servicer.offer(b"s", data[2], timeout_s=5, peer="")


def test_client_refuses_a_server_that_is_not_the_expected_member(pki, data) -> None:
    """H serves with its own certificate and offers the session; B's channel expects A."""
    _, _, ea, eb = data
    servicer = PsiServicer(PsiConfig(peer_timeout_s=10))
    server, port, _ = _server(servicer, pki["H"])
    try:
        session = servicer.offer(b"job-7/S2", ea, timeout_s=30, peer="B")
        b_creds = channel_credentials(pki["B"].ca, pki["B"].cert, pki["B"].key)
        with secure_channel(f"localhost:{port}", b_creds, "A") as channel:
            with pytest.raises(TransportError, match="UNAVAILABLE"):
                run_psi_client(channel, b"job-7/S2", eb, timeout_s=10)
        assert session.state == "offered", "no PSI message reached H"
        # control: the same server, named as itself, is accepted (the name check made the difference)
        with secure_channel(f"localhost:{port}", b_creds, "H") as channel:
            run_psi_client(channel, b"job-7/S2", eb, timeout_s=30)
        assert session.result().peer_size == len(eb)
    finally:
        server.stop(0)
