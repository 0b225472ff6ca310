"""MPyC, started from library code.  The only module of settlechain that imports ``mpyc``.

Importing ``mpyc`` parses ``sys.argv`` (MPyC owns the flags -M -I -P -C -T -B -L -K
-W -V -H and every unambiguous prefix of its long options; an ambiguous prefix such as
``--n`` makes it exit), may spawn child processes (``-M`` without ``-I``), configures
the root logger to print on stdout, and builds a process-wide default runtime.  This
module imports MPyC once with ``sys.argv`` reduced to the program name and the root
logger shielded, and then never uses the default runtime: every job builds its own
:class:`mpyc.runtime.Runtime` (party index, addresses, threshold t = 1) on a fresh
event loop and sets up its own connections:

- listening starts when the job starts and the listening socket is closed as soon as
  the three parties are connected; nothing listens outside a running job;
- with TLS, MPyC's ``.config/party_<i>.crt`` layout is replaced by the job's own
  :class:`~protocols.mpc.params.MpcTls`: every connection is mutual TLS (>= 1.2)
  with certificates issued by the consortium CA; a client checks the server's
  subjectAltName against the expected party name, a server checks the client's
  certificate against the name of the party index the client claims.  A peer that
  the CA did not authenticate never gets to send a protocol message;
- a peer whose connection drops, or that stays silent for ``timeout_s`` while a message
  is awaited, ends the job on the others with :class:`PeerLostError` /
  :class:`PeerTimeoutError` (MPyC itself would wait forever).

Pickle.  MPyC's own ``input``/``output``/``_reshare`` of secure NumPy arrays and its
``transfer`` unmarshal peers' data with ``pickle.loads``: a peer that can send bytes can
make the receiver execute code.  The discrepancy protocol does not use those paths:
its messages are fixed-width field elements (``protocols.mpc.field.decode``, which
rejects any wrong size or out-of-range value) or ASCII decimal integers, framed by
:class:`_Exchanger` with ``struct`` (every frame's size checked against
:data:`MAX_MESSAGE_BYTES` before it is buffered), and peers are mutually authenticated
before the first message; a test asserts that no ``pickle.loads`` runs during a job.
Anyone adding MPyC secure-array operations to this package reintroduces the risk and
must keep the peers restricted to CA-authenticated consortium members.

MPyC provides: the runtime and its party table, the connections and the frame
format (program-counter tagged frames, ``asyncoro.MessageExchanger``), and the
pairwise PRSS keys exchanged at connection time.  The pseudorandom secret sharing
and zero sharing over those keys [Cramer, Damgard, Ishai, TCC 2005] are computed by
protocols.mpc.field on vectorised field arrays, with MPyC's formulas (a test checks
them against ``mpyc.thresha.np_pseudorandom_share``/``_0``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import struct
import sys
from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocols.mpc import field as F
from protocols.mpc.errors import (
    MalformedMessageError,
    MpcConfigError,
    MpcError,
    PeerAuthenticationError,
    PeerLostError,
    PeerTimeoutError,
)
from protocols.mpc.params import PARTY_NAMES, MpcParties


def _import_mpyc():
    saved_argv = sys.argv
    root = logging.getLogger()
    shield = None
    if not root.handlers:
        # logging.basicConfig() inside mpyc is a no-op when the root logger has a handler
        shield = logging.NullHandler()
        root.addHandler(shield)
    sys.argv = [saved_argv[0] if saved_argv else "settlechain"]
    try:
        import mpyc  # noqa: F401
        import mpyc.runtime as mpyc_runtime
        from mpyc import asyncoro
    finally:
        sys.argv = saved_argv
        if shield is not None:
            root.removeHandler(shield)
    return mpyc, mpyc_runtime, asyncoro


_mpyc, _mpyc_runtime, _asyncoro = _import_mpyc()

logger = logging.getLogger(__name__)

MPYC_VERSION = _mpyc.__version__

MAX_MESSAGE_BYTES = 512 << 20
"""Largest payload of one frame a party accepts; a larger announced size ends the job."""
_FRAME_HEADER = struct.Struct("<qI")
_TAG_BASE = 1 << 48
_BYE_TAG = (1 << 62) + 7


# ---------------------------------------------------------------------------
# randomness


class PseudorandomSource:
    """Randomness for one party: pairwise pseudorandom values from the PRSS keys it
    holds (MPyC: one 128-bit key per pair of parties, the key of {i, j} known to i and
    j only, exchanged when the connections are made), PRSS shares of random values and
    of zero (protocols.mpc.field.prss_share / przs_share over those values), pairwise
    permutations, and private randomness from ``os.urandom``.

    Each stream is AES-128-CTR (zero initial counter) under a key derived as the first 16
    bytes of SHAKE-128(pair key || domain || label): MPyC's PRF construction
    (``thresha.PRF`` is SHAKE-128 of key || input) used as a key derivation, with AES-CTR
    as the generator because SHAKE-128 was the largest CPU cost of a job (NIST SP 800-108
    style derivation, SP 800-90A CTR generation; every derived key is used for one stream
    only).  A domain separates the four uses.  Private randomness is AES-CTR under a key
    from ``os.urandom``, one key per call."""

    def __init__(self, pid: int, keys: Mapping[tuple[int, ...], bytes]) -> None:
        self.pid = pid
        self.keys = {tuple(sorted(k)): bytes(v) for k, v in keys.items() if pid in k}
        if len(self.keys) != 2:
            raise MpcConfigError(f"party {pid}: expected two pairwise keys, found {sorted(self.keys)}")

    def _stream(self, peers: tuple[int, int], domain: bytes, label: bytes, nbytes: int) -> bytes:
        subset = tuple(sorted(peers))
        if subset not in self.keys:
            raise MpcError(f"party {self.pid} holds no key for the pair {subset}")
        key = hashlib.shake_128(self.keys[subset] + b"|settlechain|" + domain + b"|" + label).digest(16)
        return keystream(key, nbytes)

    def pair(self, peers: tuple[int, int], label: bytes, count: int) -> np.ndarray:
        """``count`` pseudorandom field elements known to the two ``peers`` only."""
        return F.from_random_bytes(self._stream(peers, b"pair", label, F.RANDOM_BYTES * count), count)

    def _streams(self, domain: bytes, label: bytes, count: int) -> dict[tuple[int, int], np.ndarray]:
        return {subset: F.from_random_bytes(self._stream(subset, domain, label, F.RANDOM_BYTES * count), count)
                for subset in self.keys}

    def random_shares(self, label: bytes, count: int) -> np.ndarray:
        """This party's shares of ``count`` pseudorandom values (degree 1), for free."""
        return F.prss_share(self.pid, self._streams(b"prss", label, count))

    def zero_shares(self, label: bytes, count: int) -> np.ndarray:
        """This party's shares of ``count`` pseudorandom degree-2 sharings of zero."""
        return F.przs_share(self.pid, self._streams(b"przs", label, count))

    def permutation(self, peers: tuple[int, int], label: bytes, count: int) -> np.ndarray:
        """A pseudorandom permutation of range(count) known to the two ``peers`` only."""
        keys = np.frombuffer(self._stream(peers, b"perm", label, 8 * count), dtype="<u8")
        return np.argsort(keys, kind="stable")

    def private(self, count: int, *, nonzero: bool = False) -> np.ndarray:
        """``count`` field elements known to this party only."""
        return F.from_random_bytes(keystream(os.urandom(16), F.RANDOM_BYTES * count), count, nonzero=nonzero)


def keystream(key: bytes, nbytes: int) -> bytes:
    """The first ``nbytes`` of AES-128-CTR under ``key`` with a zero initial counter block."""
    out = bytearray(nbytes + 15)
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    length = encryptor.update_into(bytes(nbytes), out)
    return bytes(memoryview(out)[:length])


def local_sources(keys: Mapping[tuple[int, int], bytes] | None = None) -> list[PseudorandomSource]:
    """The three parties' sources from one set of pairwise keys (tests, one process)."""
    if keys is None:
        keys = {(0, 1): os.urandom(16), (0, 2): os.urandom(16), (1, 2): os.urandom(16)}
    return [PseudorandomSource(pid, keys) for pid in (0, 1, 2)]


# ---------------------------------------------------------------------------
# TLS


def _tls_contexts(parties: MpcParties) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
    tls = parties.tls
    if tls is None:
        return None
    try:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca_cert))
        server.load_cert_chain(str(tls.cert), keyfile=str(tls.key))
        server.verify_mode = ssl.CERT_REQUIRED
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_cert))
        client.load_cert_chain(str(tls.cert), keyfile=str(tls.key))
        client.check_hostname = True
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise MpcConfigError(f"TLS material of party {parties.name}: cannot be loaded ({exc})") from exc
    for context in (server, client):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return server, client


def _retrieve(future: asyncio.Future) -> None:
    """Mark a failed future's exception as seen (the error is raised elsewhere)."""
    if not future.cancelled():
        future.exception()


def _cert_dns_names(transport) -> list[str]:
    cert = transport.get_extra_info("peercert") or {}
    return [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]


# ---------------------------------------------------------------------------
# connections


class _Exchanger(_asyncoro.MessageExchanger):
    """MPyC's message exchanger with our own framing of what arrives: peer authentication
    by party index, a size limit on every frame, activity tracking and a clean failure
    instead of an exception in a callback.

    MPyC's frame is an 8-byte signed program counter, a 4-byte unsigned payload size and
    the payload (``asyncoro.MessageExchanger.send``); a client's first bytes are its party
    index (2 bytes) and its PRSS keys.  Each frame header is checked as soon as its 12
    bytes are here, wherever the reads split: a header cut across two reads, several
    frames in one read, a header right after the handshake or after another frame."""

    def __init__(self, session: "MpcSession", peer_pid: int | None = None) -> None:
        super().__init__(session.rt, peer_pid)
        self.session = session
        self.claimed: int | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.peer_pid is not None:
            self.session.note_connected(self, self.peer_pid)
        super().connection_made(transport)

    def _refuse(self, error: MpcError) -> None:
        self.session.fail(error)
        self.bytes.clear()
        self.transport.abort()

    def _handshake(self) -> bool:
        """A client's party index and PRSS keys; True once they are complete."""
        buffer = self.bytes
        if len(buffer) < 2:
            return False
        rt = self.session.rt
        if self.claimed is None:
            claimed = int.from_bytes(buffer[:2], "little")
            problem = self.session.check_incoming(self, claimed)
            if problem is not None:
                self._refuse(problem)
                return False
            self.claimed = claimed
            self.session.note_connected(self, claimed)
        keys_length = rt._prss_keys_from_peer(self.claimed)
        if len(buffer) < 2 + keys_length:
            return False
        del buffer[:2]
        rt._prss_keys_from_peer(self.claimed, buffer)
        del buffer[:keys_length]
        self.peer_pid = self.claimed
        rt.set_protocol(self.peer_pid, self)
        return True

    def data_received(self, data) -> None:
        session = self.session
        if session.failed is not None:
            return
        self.bytes.extend(data)
        if self.peer_pid is None and not self._handshake():
            return
        buffer = self.bytes
        offset = 0
        while len(buffer) - offset >= _FRAME_HEADER.size:
            pc, size = _FRAME_HEADER.unpack_from(buffer, offset)
            if size > MAX_MESSAGE_BYTES:
                self._refuse(MalformedMessageError(
                    f"party {session.name_of(self.peer_pid)} announced a message of {size} bytes, "
                    f"more than the limit of {MAX_MESSAGE_BYTES}"))
                return
            end = offset + _FRAME_HEADER.size + size
            if len(buffer) < end:
                break
            payload = bytes(buffer[offset + _FRAME_HEADER.size:end])
            offset = end
            waiting = self.buffers.get(pc)
            if waiting is None:
                self.buffers[pc] = payload
            elif isinstance(waiting, asyncio.Future) and not waiting.done():
                del self.buffers[pc]
                waiting.set_result(payload)
            else:
                self._refuse(MalformedMessageError(
                    f"party {session.name_of(self.peer_pid)} sent two messages with the same tag {pc}"))
                return
        del buffer[:offset]

    def connection_lost(self, exc) -> None:
        self.session.note_lost(self, exc)


class MpcSession:
    """One job's MPyC runtime, connections and message layer for one party."""

    def __init__(self, parties: MpcParties, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise MpcConfigError(f"timeout_s: expected a positive number of seconds, found {timeout_s!r}")
        self.parties = parties
        self.timeout_s = float(timeout_s)
        self.contexts = _tls_contexts(parties)
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        options = _mpyc._get_arg_parser().parse_args([])
        options.threshold = 1
        options.no_log = True
        options.ssl = self.contexts is not None
        party_table = [_mpyc_runtime.Party(i, *parties.endpoint(i)) for i in range(3)]
        self.rt = _mpyc_runtime.Runtime(parties.index, party_table, options)
        self.pid = parties.index
        self.failed: MpcError | None = None
        self.closing = False
        self.exchangers: dict[int, _Exchanger] = {}
        self.goodbyes: dict[int, object] = {}
        self.tag = 0

    # -- bookkeeping ------------------------------------------------------------

    def name_of(self, pid: int | None) -> str:
        return PARTY_NAMES[pid] if pid in (0, 1, 2) else "?"

    def check_incoming(self, exchanger: _Exchanger, claimed: int) -> MpcError | None:
        """A client connecting to this party claims a party index; check it."""
        if not 0 <= claimed < self.pid:
            return PeerAuthenticationError(
                f"a peer connecting to {self.name_of(self.pid)} claimed party index {claimed}; expected one of "
                + ", ".join(PARTY_NAMES[:self.pid]))
        if claimed in self.exchangers and self.exchangers[claimed] is not exchanger:
            return PeerAuthenticationError(f"a second connection claims to be party {self.name_of(claimed)}")
        tls = self.parties.tls
        if tls is not None:
            names = _cert_dns_names(exchanger.transport)
            expected = tls.peer_names[claimed]
            if expected not in names:
                return PeerAuthenticationError(
                    f"a peer claiming to be party {self.name_of(claimed)} presented a certificate for "
                    f"{', '.join(names) or 'no DNS name'}; expected {expected}")
        return None

    def note_connected(self, exchanger: _Exchanger, pid: int) -> None:
        self.exchangers[pid] = exchanger

    def note_lost(self, exchanger: _Exchanger, exc) -> None:
        if exchanger.peer_pid is not None and self.rt.parties[exchanger.peer_pid].protocol is exchanger:
            self.rt.parties[exchanger.peer_pid].protocol = None
        if self.closing or self.failed is not None:
            return
        if self._said_goodbye(exchanger):
            return  # the peer finished and closed first: expected
        who = self.name_of(exchanger.peer_pid)
        cause = f": {exc}" if exc else ""
        self.fail(PeerLostError(f"party {self.name_of(self.pid)}: the connection to party {who} was lost "
                                f"before the computation finished{cause}"))

    def _said_goodbye(self, exchanger: _Exchanger) -> bool:
        item = self.goodbyes.get(exchanger.peer_pid)
        if isinstance(item, asyncio.Future):
            return item.done() and not item.cancelled() and item.exception() is None
        if item is not None:
            return True
        return _BYE_TAG in exchanger.buffers and not isinstance(exchanger.buffers[_BYE_TAG], asyncio.Future)

    def fail(self, error: MpcError) -> None:
        if self.failed is not None:
            return
        self.failed = error
        logger.debug("job failed: %s", error)
        for exchanger in list(self.exchangers.values()):
            for value in exchanger.buffers.values():
                if isinstance(value, asyncio.Future) and not value.done():
                    value.set_exception(error)
                    value.add_done_callback(_retrieve)
        own = self.rt.parties[self.pid].protocol
        if isinstance(own, asyncio.Future) and not own.done():
            own.set_exception(error)
            own.add_done_callback(_retrieve)

    def raise_if_failed(self) -> None:
        if self.failed is not None:
            raise self.failed

    # -- connecting ------------------------------------------------------------

    async def connect(self) -> None:
        loop = self.loop
        rt = self.rt
        deadline = loop.time() + self.timeout_s
        for peer in rt.parties:
            peer.protocol = asyncio.Future(loop=loop) if peer.pid == self.pid else None
        server_ctx, client_ctx = self.contexts if self.contexts else (None, None)
        server = None
        if self.pid > 0:
            host, port = self.parties.endpoint(self.pid)
            try:
                server = await loop.create_server(lambda: _Exchanger(self), host=host, port=port,
                                                  ssl=server_ctx, reuse_address=True)
            except OSError as exc:
                raise MpcConfigError(f"party {self.name_of(self.pid)} cannot listen on {host}:{port}: {exc}") from exc
        try:
            for peer in rt.parties[self.pid + 1:]:
                name = self.parties.tls.peer_names[peer.pid] if self.parties.tls else None
                while True:
                    self.raise_if_failed()
                    try:
                        await asyncio.wait_for(
                            loop.create_connection(lambda pid=peer.pid: _Exchanger(self, pid), peer.host, peer.port,
                                                   ssl=client_ctx, server_hostname=name),
                            max(0.1, deadline - loop.time()))
                        break
                    except ssl.SSLCertVerificationError as exc:
                        raise PeerAuthenticationError(
                            f"party {self.name_of(self.pid)} refused party {self.name_of(peer.pid)} at "
                            f"{peer.host}:{peer.port}: its certificate is not a consortium certificate for "
                            f"{name} ({exc.verify_message})") from exc
                    except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
                        if loop.time() >= deadline:
                            raise PeerTimeoutError(
                                f"party {self.name_of(self.pid)} could not connect to party "
                                f"{self.name_of(peer.pid)} at {peer.host}:{peer.port} within "
                                f"{self.timeout_s:g} s ({exc})") from exc
                        await asyncio.sleep(0.05)
            try:
                await asyncio.wait_for(rt.parties[self.pid].protocol, max(0.01, deadline - loop.time()))
            except asyncio.TimeoutError as exc:
                missing = [self.name_of(p) for p in range(self.pid) if p not in self.exchangers]
                raise PeerTimeoutError(
                    f"party {self.name_of(self.pid)}: party {', '.join(missing) or '?'} did not connect "
                    f"within {self.timeout_s:g} s") from exc
        finally:
            if server is not None:
                server.close()
        self.raise_if_failed()
        logger.info("party %s: connected to the other two parties%s", self.name_of(self.pid),
                    " over mutual TLS" if self.contexts else " (local demo, no TLS)")

    def pairwise_keys(self) -> dict[tuple[int, ...], bytes]:
        return {subset: bytes(key) for subset, key in self.rt._prss_keys.items()}

    # -- messages --------------------------------------------------------------

    async def _await(self, item, what: str, peer: int):
        if not isinstance(item, asyncio.Future):
            return item
        try:
            return await asyncio.wait_for(item, self.timeout_s)
        except asyncio.TimeoutError as exc:
            error = PeerTimeoutError(f"party {self.name_of(self.pid)}: {what}: no message from party "
                                     f"{self.name_of(peer)} within {self.timeout_s:g} s")
            self.fail(error)
            raise error from exc

    async def exchange(self, sends, receive_from, what: str, tag: int | None = None) -> dict[int, bytes]:
        """One message round: ``tag`` (or the next one of a session-wide counter) pairs the
        messages up; MPyC's exchanger buffers them by this program-counter value."""
        self.raise_if_failed()
        if tag is None:
            self.tag += 1
            tag = self.tag
        if not 0 < tag < (1 << 40):
            raise MpcError(f"message tag {tag} out of range")
        pc = _TAG_BASE + tag
        for peer, payload in sends.items():
            protocol = self.rt.parties[peer].protocol
            if protocol is None:
                raise PeerLostError(f"{what}: party {self.name_of(peer)} is not connected")
            protocol.send(pc, payload)
        out = {}
        for peer in receive_from:
            protocol = self.rt.parties[peer].protocol
            if protocol is None:
                self.raise_if_failed()
                raise PeerLostError(f"{what}: party {self.name_of(peer)} is not connected")
            out[peer] = bytes(await self._await(protocol.receive(pc), what, peer))
        return out

    def bytes_sent(self) -> int:
        return sum(ex.nbytes_sent for ex in self.exchangers.values())

    # -- closing ---------------------------------------------------------------

    async def finish(self) -> None:
        """Barrier (every party has received everything), then close the connections."""
        peers = [p for p in range(3) if p != self.pid]
        for peer in peers:
            self.rt.parties[peer].protocol.send(_BYE_TAG, b"bye")
        for peer in peers:  # register every wait first: a peer may close as soon as it has all
            self.goodbyes[peer] = self.rt.parties[peer].protocol.receive(_BYE_TAG)
        for peer in peers:
            got = await self._await(self.goodbyes[peer], "closing", peer)
            if bytes(got) != b"bye":
                raise MalformedMessageError(f"closing: unexpected message from party {self.name_of(peer)}")
        self.closing = True
        self.close()
        await asyncio.sleep(0)

    def close(self) -> None:
        self.closing = True
        for exchanger in list(self.exchangers.values()):
            if exchanger.transport is not None and not exchanger.transport.is_closing():
                if self.failed is not None:
                    exchanger.transport.abort()
                else:
                    exchanger.transport.close()

    def shutdown_loop(self) -> None:
        loop = self.loop
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0.01))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class SessionNet:
    """:class:`protocols.mpc.protocol.Net` over an :class:`MpcSession`."""

    def __init__(self, session: MpcSession) -> None:
        self.session = session
        self.pid = session.pid

    async def exchange(self, sends, receive_from, what, tag=None):
        return await self.session.exchange(sends, receive_from, what, tag)

    def bytes_sent(self) -> int:
        return self.session.bytes_sent()


def run_session(parties: MpcParties, timeout_s: float, job) -> object:
    """Start a runtime for this party, connect, run ``job(net, randomness)`` (a coroutine
    function), pass the barrier and close everything; errors end the job on this party
    with an :class:`MpcError` and drop the connections so that the peers stop too."""
    session = MpcSession(parties, timeout_s)
    try:
        async def main():
            await session.connect()
            rand = PseudorandomSource(session.pid, session.pairwise_keys())
            result = await job(SessionNet(session), rand)
            await session.finish()
            return result
        try:
            return session.loop.run_until_complete(main())
        except MpcError as exc:
            session.fail(exc)
            raise
        except BaseException as exc:
            session.fail(MpcError(f"party {session.name_of(session.pid)} stopped: {exc!r}"))
            raise
    finally:
        session.close()
        session.shutdown_loop()
