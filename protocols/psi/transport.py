"""gRPC adapter: the PSI roles over one bidirectional stream (``Psi.Run``).

Server side: :class:`PsiServicer` is added to any ``grpc.Server`` (the engine adds it
beside its own services); :meth:`PsiServicer.offer` registers a session and returns a
:class:`PsiSession` whose :meth:`~PsiSession.result` waits for the run.  Client side:
:func:`run_psi_client` opens the stream on a channel the caller made (with mutual TLS:
:func:`channel_credentials` / :func:`server_credentials`).

Failure handling:

- every wait for a peer message is bounded by ``PsiConfig.peer_timeout_s`` and by the
  session deadline (``timeout_s``); a vanished or stalled peer raises
  :class:`~protocols.psi.errors.PsiTimeoutError`;
- a protocol error on one side is sent to the other as ``Abort`` (the other side raises
  :class:`~protocols.psi.errors.PeerAbortedError`), then the stream is closed;
- a broken stream raises :class:`~protocols.psi.errors.TransportError`;
- a session id runs once: a second ``Run`` with the same id, an unknown id, or a session
  whose deadline passed before a client came is refused with an ``Abort``;
- a session is served only to the member it was offered to: ``offer(..., peer=member_id)``
  names the common name the client's TLS certificate must carry.  ``Run`` reads the
  client's certificate from the gRPC auth context and the session id from the call
  metadata (``settlechain-psi-session-bin``) *before reading any PSI message*; another
  member is refused with gRPC status PERMISSION_DENIED, logged with its certificate's
  subject and SHA-256 fingerprint, reported to the session's ``on_refused`` callback, and
  the session stays open for the right peer.  ``peer=None`` means a plaintext connection
  (tests, loopback debugging): any TLS client is refused then.
- the client checks the server's identity through TLS itself: a channel made with
  :func:`secure_channel` (``grpc.ssl_target_name_override`` = the member id) completes
  its handshake only with a certificate whose subject alternative names contain that
  member id, so another member's server fails before any PSI message
  (tests/unit/psi/test_psi_peer_identity.py).

Messages are at most ``PsiConfig.max_message_bytes`` (2 MiB) of payload, under gRPC's
default 4 MiB receive limit, so the servicer works on a server with default options.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from .elements import ElementSet, PsiResult
from .errors import (PeerAbortedError, PeerRefusedError, PsiError, PsiProtocolError,
                     PsiTimeoutError, SessionError, TransportError)
from .psi_pb2 import Abort, PsiMessage
from .psi_pb2_grpc import PsiServicer as _GeneratedServicer
from .psi_pb2_grpc import PsiStub, add_PsiServicer_to_server
from .roles import (DEFAULT_PROTOCOL, PROTOCOLS, PsiConfig, RandomBytes, ServerRole, check_session_id,
                    client_role, server_role)

log = logging.getLogger(__name__)

#: Channel/server options for standalone use (CLI, tests, benchmarks): keepalive pings
#: detect a dead TCP peer even while a side is busy computing.
GRPC_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    # a client started together with its server retries within 0.1 s, not gRPC's default 1 s
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)

_GRACE_S = 5.0

#: gRPC metadata key that carries the session id, so that the server can check the peer
#: against the session before it reads any PSI message (binary: the key ends in -bin).
SESSION_METADATA_KEY = "settlechain-psi-session-bin"

RefusalCallback = Callable[[PeerRefusedError], None]


def server_credentials(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> grpc.ServerCredentials:
    """Mutual TLS for the server: its certificate, and clients must present one from ``ca_pem``."""
    return grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem,
                                       require_client_auth=True)


def channel_credentials(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> grpc.ChannelCredentials:
    """Mutual TLS for the client: trust only ``ca_pem``, present our certificate."""
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem,
                                        certificate_chain=cert_pem)


def secure_channel(target: str, credentials: grpc.ChannelCredentials, server_member_id: str,
                   options=GRPC_OPTIONS) -> grpc.Channel:
    """A channel to ``target`` whose TLS handshake succeeds only if the server's certificate
    names ``server_member_id`` (a DNS subject alternative name; the consortium CA issues one
    per member, engine.job.tls.issue_member_cert).  Without the override, gRPC checks the
    certificate against the host in ``target`` — and a consortium certificate that lists
    "localhost" or a shared address would let another member pose as the server."""
    if not server_member_id:
        raise PeerRefusedError("secure_channel: expected the member id of the server, found none")
    return grpc.secure_channel(target, credentials,
                               options=[*options, ("grpc.ssl_target_name_override", server_member_id)])


@dataclass(frozen=True)
class PeerIdentity:
    """Who is at the other end of a call, from its verified TLS certificate (or plaintext)."""

    tls: bool
    common_name: str | None = None       #: the certificate's CN if it has exactly one
    subject: str | None = None           #: the subject as gRPC reports it (RFC 2253)
    fingerprint_sha256: str | None = None  #: SHA-256 of the certificate's DER encoding, hex

    @classmethod
    def from_context(cls, context: grpc.ServicerContext) -> PeerIdentity:
        auth = context.auth_context() or {}
        kind = b"".join(auth.get("transport_security_type") or [])
        pems = auth.get("x509_pem_cert") or []
        if kind in (b"", b"insecure") and not pems:
            return cls(tls=False)
        names = auth.get("x509_common_name") or []
        subjects = auth.get("x509_subject") or []
        fingerprint = None
        if len(pems) == 1:
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding
            try:
                der = x509.load_pem_x509_certificate(pems[0]).public_bytes(Encoding.DER)
                fingerprint = hashlib.sha256(der).hexdigest()
            except ValueError:
                fingerprint = None
        return cls(tls=True,
                   common_name=names[0].decode("utf-8", "replace") if len(names) == 1 else None,
                   subject=subjects[0].decode("utf-8", "replace") if len(subjects) == 1 else None,
                   fingerprint_sha256=fingerprint)

    def describe(self) -> str:
        if not self.tls:
            return "a plaintext client (no certificate)"
        return (f"certificate subject {self.subject or '(none)'!s}, common name "
                f"{self.common_name!r}, SHA-256 fingerprint {self.fingerprint_sha256 or '(unknown)'}")


class _Inbox:
    """Messages of the peer, pumped by a thread so that every wait can time out."""

    def __init__(self, stream: Iterator[PsiMessage], peer: str) -> None:
        self._stream = stream
        self._peer = peer
        self._queue: queue.Queue = queue.Queue()
        self._pending: collections.deque = collections.deque()
        self.bytes = 0
        self.messages = 0
        self._thread = threading.Thread(target=self._pump, name=f"psi-inbox-{peer}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for message in self._stream:
                self._queue.put(("message", message))
            self._queue.put(("eof", None))
        except grpc.RpcError as exc:
            self._queue.put(("error", exc))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting thread
            self._queue.put(("error", exc))

    def get(self, timeout: float) -> PsiMessage:
        if timeout <= 0:
            raise PsiTimeoutError(f"PSI session deadline passed while waiting for the {self._peer}")
        try:
            kind, value = self._pending.popleft() if self._pending else self._queue.get(timeout=timeout)
        except queue.Empty:
            raise PsiTimeoutError(
                f"no message from the {self._peer} within {timeout:.1f} s "
                "(expected the next protocol message; the peer vanished or stalled)") from None
        if kind == "eof":
            raise TransportError(f"the {self._peer} closed the stream before the run finished")
        if kind == "error":
            raise self._stream_error(value)
        self.bytes += value.ByteSize()
        self.messages += 1
        return value

    def _stream_error(self, exc: BaseException) -> PsiError:
        if _code(exc) == grpc.StatusCode.PERMISSION_DENIED:
            return PeerRefusedError(f"the {self._peer} refused this peer: {_describe(exc)}")
        return TransportError(f"stream to the {self._peer} failed: {_describe(exc)}")

    def check_abort(self) -> None:
        """While we are still sending: raise at once if the peer aborted or the stream ended
        (instead of blocking until the send times out).  Other messages are kept for get()."""
        while True:
            try:
                kind, value = self._queue.get_nowait()
            except queue.Empty:
                return
            if kind == "message" and value.WhichOneof("body") == "abort":
                raise PeerAbortedError(value.abort.reason)
            if kind == "error":
                raise self._stream_error(value)
            if kind == "eof":
                raise TransportError(f"the {self._peer} closed the stream while we were sending")
            self._pending.append((kind, value))

    def find_abort(self) -> str | None:
        """The reason of an Abort the peer sent, if one arrived (non-blocking)."""
        items = list(self._pending)
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for kind, value in items:
            if kind == "message" and value.WhichOneof("body") == "abort":
                return value.abort.reason
        return None

    def drain(self, timeout: float) -> None:
        """Wait (bounded) until the peer closes its side, e.g. so that an Abort is delivered."""
        end = time.monotonic() + timeout
        while (remaining := end - time.monotonic()) > 0:
            try:
                kind, _ = self._queue.get(timeout=remaining)
            except queue.Empty:
                return
            if kind != "message":
                return


def _code(exc: BaseException):
    try:
        return exc.code() if isinstance(exc, grpc.RpcError) and hasattr(exc, "code") else None
    except Exception:  # noqa: BLE001
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        try:
            return f"{exc.code().name}: {exc.details()}"
        except Exception:  # noqa: BLE001
            pass
    return f"{type(exc).__name__}: {exc}"


class PsiSession:
    """A session offered by the server side; :meth:`result` waits for its run."""

    def __init__(self, servicer: PsiServicer, session_id: bytes, elements: ElementSet,
                 timeout_s: float, peer: str | None, on_refused: RefusalCallback | None,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        self._servicer = servicer
        self.session_id = session_id
        self.protocol = protocol
        self.peer = peer
        self.on_refused = on_refused
        self.refusals: list[PeerRefusedError] = []
        self.elements: ElementSet | None = elements
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.state = "offered"   # offered -> running -> done | failed; offered -> expired
        self._done = threading.Event()
        self._result: PsiResult | None = None
        self._error: BaseException | None = None

    def _complete(self, result: PsiResult | None, error: BaseException | None) -> None:
        with self._servicer._lock:
            if self._done.is_set():
                return
            self._result, self._error = result, error
            self.state = "done" if error is None else "failed"
            self.elements = None
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def check_peer(self, identity: PeerIdentity) -> PeerRefusedError | None:
        """None if ``identity`` is the member this session was offered to, else the refusal."""
        if self.peer is None:
            if not identity.tls:
                return None
            problem = "expects a plaintext client (offered with peer=None)"
        elif not identity.tls:
            problem = f"expects member {self.peer!r}, the client presented no certificate"
        elif identity.common_name == self.peer:
            return None
        else:
            problem = f"expects member {self.peer!r}"
        return PeerRefusedError(
            f"PSI session {self.session_id.hex()} {problem}; refused {identity.describe()}",
            expected=self.peer, common_name=identity.common_name, subject=identity.subject,
            fingerprint_sha256=identity.fingerprint_sha256, session_id=self.session_id)

    def result(self) -> PsiResult:
        """The run's result; raises its error, or PsiTimeoutError after the deadline."""
        remaining = self.deadline - time.monotonic()
        if not self._done.wait(max(0.0, remaining)):
            with self._servicer._lock:
                never_came = self.state == "offered"
            if never_came:
                self._complete(None, PsiTimeoutError(
                    f"no PSI client ran session {self.session_id.hex()} within {self.timeout_s:.1f} s"))
            elif not self._done.wait(_GRACE_S + self._servicer.config.peer_timeout_s):
                self._complete(None, PsiTimeoutError(
                    f"PSI session {self.session_id.hex()} did not finish within {self.timeout_s:.1f} s"))
        if self._error is not None:
            raise self._error
        with self._servicer._lock:
            result, self._result = self._result, None
        if result is None:
            raise SessionError(f"the result of PSI session {self.session_id.hex()} was already "
                               "taken (it is handed over once)")
        # the servicer keeps the session (its id runs once), not its result: a job of many
        # buckets would otherwise hold every pass's indices and pair ids to the end
        return result


class PsiServicer(_GeneratedServicer):
    """Server side of the PSI; add it to a ``grpc.Server`` with :meth:`add_to_server`."""

    def __init__(self, config: PsiConfig | None = None, *, rng: RandomBytes = os.urandom) -> None:
        self.config = config or PsiConfig()
        self._rng = rng
        self._lock = threading.Lock()
        self._sessions: dict[bytes, PsiSession] = {}

    def add_to_server(self, server: grpc.Server) -> None:
        add_PsiServicer_to_server(self, server)

    def offer(self, session_id: bytes, elements: ElementSet, timeout_s: float, *,
              peer: str | None, on_refused: RefusalCallback | None = None,
              protocol: str = DEFAULT_PROTOCOL) -> PsiSession:
        """Register a session: the next client that runs ``session_id`` intersects with ``elements``.

        ``peer`` (required) is the member id the client's TLS certificate must name (its
        common name); ``None`` accepts only a plaintext connection (tests, debugging).  A
        client presenting another certificate is refused before any PSI message, the
        session stays open, and ``on_refused`` (if given) is called with the
        :class:`~protocols.psi.errors.PeerRefusedError` from the gRPC thread.  ``protocol``
        ("kkrt16" or "rr22") must equal the client's: the client hello names it, and a
        mismatch ends the run with a clear error on both sides.
        """
        session_id = check_session_id(session_id)
        if protocol not in PROTOCOLS:
            raise SessionError(f"protocol: expected one of {', '.join(PROTOCOLS)}, found {protocol!r}")
        if peer is not None and (not isinstance(peer, str) or not peer):
            raise SessionError(f"peer: expected a member id (non-empty text) or None, found {peer!r}")
        if not timeout_s > 0:
            raise SessionError(f"timeout_s: expected > 0, found {timeout_s}")
        self.config.check_sizes(len(elements), 0)
        with self._lock:
            if session_id in self._sessions:
                raise SessionError(
                    f"session {session_id.hex()} was already offered (a session id runs once)")
            session = PsiSession(self, session_id, elements, timeout_s, peer, on_refused, protocol)
            self._sessions[session_id] = session
        return session

    def _claim(self, session_id: bytes) -> PsiSession:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise SessionError(f"unknown PSI session {session_id.hex()}")
            if session.state != "offered":
                raise SessionError(
                    f"PSI session {session_id.hex()} is {session.state}, not open "
                    "(a session id runs once: replay refused)")
            if time.monotonic() > session.deadline:
                session.state = "expired"
                raise SessionError(f"PSI session {session_id.hex()} expired before the client came")
            session.state = "running"
            return session

    def _refuse(self, session: PsiSession, refusal: PeerRefusedError, context) -> None:
        log.warning("PSI peer refused: %s", refusal)
        session.refusals.append(refusal)
        if session.on_refused is not None:
            try:
                session.on_refused(refusal)
            except Exception:  # noqa: BLE001 - the caller's callback must not break the servicer
                log.exception("on_refused callback of PSI session %s failed", session.session_id.hex())
        context.abort(grpc.StatusCode.PERMISSION_DENIED, str(refusal))

    def Run(self, request_iterator, context) -> Iterator[PsiMessage]:  # noqa: N802 - gRPC name
        # Who is calling, and for which session: both before any PSI message is read.
        identity = PeerIdentity.from_context(context)
        metadata = dict(context.invocation_metadata() or ())
        claimed = metadata.get(SESSION_METADATA_KEY)
        session: PsiSession | None = None
        role: ServerRole | None = None
        sent_bytes = 0
        sent_messages = 0
        inbox: _Inbox | None = None
        try:
            if not isinstance(claimed, bytes) or not claimed:
                raise SessionError(f"psi server: expected the session id in call metadata "
                                   f"{SESSION_METADATA_KEY!r}, found none")
            with self._lock:
                offered = self._sessions.get(claimed)
            if offered is not None and (refusal := offered.check_peer(identity)) is not None:
                self._refuse(offered, refusal, context)  # raises: the stream ends here
            session = self._claim(claimed)
            inbox = _Inbox(request_iterator, "PSI client")
            first = inbox.get(self.config.peer_timeout_s)
            if first.WhichOneof("body") != "client_hello" or first.seq != 0:
                raise PsiProtocolError(
                    f"psi server: expected client_hello #0 first, found "
                    f"{first.WhichOneof('body') or 'an empty message'} #{first.seq}")
            if bytes(first.client_hello.session_id) != session.session_id:
                raise PsiProtocolError(
                    f"psi server: client hello names session {bytes(first.client_hello.session_id).hex()}, "
                    f"the call metadata {session.session_id.hex()}")
            role = server_role(session.protocol, session.session_id, session.elements, self.config, self._rng)
            message = first
            while True:
                for out in role.handle(message):
                    sent_bytes += out.ByteSize()
                    sent_messages += 1
                    yield out
                if role.finished:
                    break
                timeout = min(self.config.peer_timeout_s, session.deadline - time.monotonic())
                message = inbox.get(timeout)
            result = role.result()
            result.stats.update(bytes_sent=sent_bytes, bytes_received=inbox.bytes,
                                messages_sent=sent_messages, messages_received=inbox.messages)
            session._complete(result, None)
        except PeerAbortedError as exc:
            log.warning("PSI client aborted: %s", exc.reason)
            if session is not None:
                session._complete(None, exc)
        except PsiError as exc:
            log.warning("PSI server error: %s", exc)
            if session is not None:
                session._complete(None, exc)
            abort = role.abort_message(str(exc)) if role is not None else \
                PsiMessage(seq=0, abort=Abort(reason=str(exc)[:1000]))
            yield abort
        except Exception as exc:
            if session is not None:
                session._complete(None, exc)
            raise
        finally:
            if session is not None and not session.done():
                # the generator was closed: the client went away while we were sending
                reason = inbox.find_abort() if inbox is not None else None
                session._complete(None, PeerAbortedError(reason) if reason is not None else
                                  TransportError("the PSI client went away during the run"))


def run_psi_client(channel: grpc.Channel, session_id: bytes, elements: ElementSet,
                   timeout_s: float, config: PsiConfig | None = None, *,
                   rng: RandomBytes = os.urandom, protocol: str = DEFAULT_PROTOCOL) -> PsiResult:
    """Run the client side of session ``session_id`` over ``channel``; return our result.

    ``protocol`` ("kkrt16" or "rr22") must be the one the server offered the session with."""
    config = config or PsiConfig()
    role = client_role(protocol, session_id, elements, config, rng)
    deadline = time.monotonic() + timeout_s
    outbox: queue.Queue = queue.Queue(maxsize=4)
    closed = threading.Event()

    def requests() -> Iterator[PsiMessage]:
        while True:
            item = outbox.get()
            if item is None:
                closed.set()
                return
            yield item

    call = PsiStub(channel).Run(requests(), timeout=timeout_s,
                                metadata=((SESSION_METADATA_KEY, role.session_id),))
    inbox = _Inbox(call, "PSI server")
    sent = {"bytes": 0, "messages": 0}

    def send(message: PsiMessage) -> None:
        timeout = min(config.peer_timeout_s, deadline - time.monotonic())
        give_up = time.monotonic() + max(0.001, timeout)
        while True:
            inbox.check_abort()
            try:
                outbox.put(message, timeout=min(0.2, max(0.001, give_up - time.monotonic())))
                break
            except queue.Full:
                if time.monotonic() >= give_up:
                    raise PsiTimeoutError(
                        f"the PSI server did not accept messages for {timeout:.1f} s "
                        "(it vanished or stalled)") from None
        sent["bytes"] += message.ByteSize()
        sent["messages"] += 1

    def close() -> None:
        try:
            outbox.put(None, timeout=1.0)
        except queue.Full:
            pass

    try:
        for message in role.start():
            send(message)
        while not role.finished:
            message = inbox.get(min(config.peer_timeout_s, deadline - time.monotonic()))
            for out in role.handle(message):
                send(out)
        close()
        inbox.drain(min(config.peer_timeout_s, _GRACE_S))
    except PeerAbortedError:
        close()
        call.cancel()
        raise
    except PsiError as exc:
        try:
            outbox.put(role.abort_message(str(exc)), timeout=1.0)
        except queue.Full:
            pass
        close()
        inbox.drain(1.0)
        call.cancel()
        raise
    except BaseException:
        call.cancel()
        raise
    result = role.result()
    result.stats.update(bytes_sent=sent["bytes"], bytes_received=inbox.bytes,
                        messages_sent=sent["messages"], messages_received=inbox.messages)
    return result
