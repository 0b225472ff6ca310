"""Client and server roles: state machines that turn PSI messages into messages.

Shape of Google's private-join-and-compute: a role has ``start()`` (its first messages),
``handle(message)`` (the messages it answers with) and ``finished``/``result()``.  Each
round is one private method.  The roles know nothing of the transport: the in-memory
sink (:mod:`protocols.psi.sink`) and the gRPC adapter (:mod:`protocols.psi.transport`)
drive the same objects.  ``handle`` returns a generator: outgoing messages are produced
lazily (a correction chunk is computed when the transport is ready to send it), and the
transport consumes each generator completely before delivering the next message.

Every message carries a sequence number per direction starting at 0; a message with the
wrong number or a type the current state does not expect raises
:class:`~protocols.psi.errors.PsiProtocolError`.  An ``Abort`` from the peer raises
:class:`~protocols.psi.errors.PeerAbortedError`.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import kernels, kkrt, mutual, rr22
from .elements import ElementSet, PsiResult
from .errors import InputBoundsError, PeerAbortedError, PsiProtocolError
from .primitives import POINT_BYTES, BaseOtReceiver, BaseOtSender, random_scalar
from .psi_pb2 import (Abort, ClientHello, Correction, Finish, Matches, OkvsCorrection, OprfValues,
                      PsiMessage, ServerHello, VoleReply, VoleSetup)

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2   #: 2: match positions name sender elements, not (element, hash function)

#: The PSI protocols a session can run; the client hello names one, both sides check it.
KKRT16 = "kkrt16"
RR22 = "rr22"
PROTOCOLS = (KKRT16, RR22)
#: The protocol a session runs unless the caller names one (bench/RESULTS-psi.md: the choice).
DEFAULT_PROTOCOL = KKRT16
SEED_BYTES = 16
MAX_SESSION_ID_BYTES = 256

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class PsiConfig:
    """Limits and timeouts of a PSI party.

    ``max_elements`` bounds both this party's and the announced peer set size (DESIGN.md
    circuit breaker ``max_records``); ``max_size_ratio`` (None: off) refuses a peer whose
    set is more than that factor larger or smaller than ours once the smaller side has at
    least ``min_size_for_ratio`` elements.  ``peer_timeout_s`` is the longest wait for
    any single message of the peer; ``max_message_bytes`` the payload size of chunked
    messages (kept well below gRPC's default 4 MiB receive limit).
    """

    peer_timeout_s: float = 60.0
    max_elements: int = 100_000_000
    max_size_ratio: float | None = None
    min_size_for_ratio: int = 1000
    max_message_bytes: int = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.peer_timeout_s > 0:
            raise InputBoundsError(f"peer_timeout_s: expected > 0, found {self.peer_timeout_s}")
        if not 0 <= self.max_elements <= kkrt.MAX_SET_SIZE:
            raise InputBoundsError(
                f"max_elements: expected 0..{kkrt.MAX_SET_SIZE}, found {self.max_elements}")
        if self.max_size_ratio is not None and not self.max_size_ratio >= 1:
            raise InputBoundsError(f"max_size_ratio: expected >= 1, found {self.max_size_ratio}")
        if not 4096 <= self.max_message_bytes <= 3 * 1024 * 1024:
            raise InputBoundsError(
                f"max_message_bytes: expected 4096..{3 * 1024 * 1024}, found {self.max_message_bytes}")

    def check_sizes(self, own: int, peer: int) -> None:
        if own > self.max_elements:
            raise InputBoundsError(f"own set: expected at most {self.max_elements} elements, found {own}")
        if peer > self.max_elements:
            raise InputBoundsError(
                f"peer set: expected at most {self.max_elements} elements, peer announced {peer}")
        small, large = min(own, peer), max(own, peer)
        if (self.max_size_ratio is not None and small >= self.min_size_for_ratio
                and large > self.max_size_ratio * small):
            raise InputBoundsError(
                f"set sizes {own} (own) and {peer} (peer): ratio above the allowed "
                f"{self.max_size_ratio}")


def check_session_id(session_id: bytes) -> bytes:
    if not isinstance(session_id, (bytes, bytearray)) or not 1 <= len(session_id) <= MAX_SESSION_ID_BYTES:
        raise InputBoundsError(
            f"session id: expected 1..{MAX_SESSION_ID_BYTES} bytes, found "
            f"{len(session_id) if isinstance(session_id, (bytes, bytearray)) else type(session_id).__name__}")
    return bytes(session_id)


def _transcript(client: ClientHello, server: ServerHello) -> bytes:
    """Unambiguous encoding of both hellos: every field length-prefixed."""
    fields = [
        struct.pack("<I", client.version), client.session_id, struct.pack("<Q", client.set_size),
        client.seed, client.ot_sender_point,
        struct.pack("<II", client.code_width, client.statistical_security),
        struct.pack("<I", server.version), server.session_id, struct.pack("<Q", server.set_size),
        server.seed, server.ot_receiver_points,
        client.protocol.encode(), server.protocol.encode(),
    ]
    return b"".join(struct.pack("<I", len(f)) + f for f in fields)


def _keystream_u64(rng: RandomBytes, count: int) -> np.ndarray:
    """count uniform 64-bit words: AES-128-CTR keystream under a fresh random key."""
    zeros = np.zeros(count * 8, np.uint8)
    if not count:
        return zeros.view(np.uint64)
    # A separate destination: cryptography >= 51 refuses overlapping input and output
    # buffers ("data and buf must not overlap"); it may also ask for one block of room.
    out = np.empty(count * 8 + 16, np.uint8)
    Cipher(algorithms.AES(rng(16)), modes.CTR(bytes(16))).encryptor().update_into(zeros, out)
    return out[: count * 8].view(np.uint64)


class _Role:
    """Sequence numbers, message-type checks and timing shared by both roles."""

    name = "party"

    def __init__(self, session_id: bytes, elements: ElementSet, config: PsiConfig,
                 rng: RandomBytes) -> None:
        self.session_id = check_session_id(session_id)
        self.elements = elements
        self.config = config
        self._rng = rng
        self._send_seq = 0
        self._recv_seq = 0
        self._state = "start"
        self._result: PsiResult | None = None
        self.seconds: dict[str, float] = {}
        self._t0 = time.perf_counter()
        config.check_sizes(len(elements), 0)

    # -- plumbing ----------------------------------------------------------------------
    def _msg(self, **body) -> PsiMessage:
        message = PsiMessage(seq=self._send_seq, **body)
        self._send_seq += 1
        return message

    def abort_message(self, reason: str) -> PsiMessage:
        return self._msg(abort=Abort(reason=reason[:1000]))

    #: state -> {message kind accepted in that state: the method that handles it}; a message
    #: in any other state, or of another kind, ends the run (``_accept`` raises)
    STEPS: dict[str, dict[str, str]] = {}

    def handle(self, message: PsiMessage) -> Iterator[PsiMessage]:
        step = self.STEPS.get(self._state, {})
        kind = self._accept(message, *step)
        return getattr(self, step[kind])(getattr(message, kind))

    def _check_hello(self, hello: ClientHello | ServerHello, what: str) -> None:
        """The hello's version, session and protocol are this run's."""
        if hello.version != PROTOCOL_VERSION or hello.session_id != self.session_id:
            raise PsiProtocolError(
                f"{what}: expected version {PROTOCOL_VERSION} and session "
                f"{self.session_id.hex()}, found version {hello.version} and session "
                f"{bytes(hello.session_id).hex()}")
        self._check_protocol(hello.protocol, what)

    def _accept(self, message: PsiMessage, *kinds: str) -> str:
        kind = message.WhichOneof("body")
        if kind == "abort":
            self._state = "failed"
            raise PeerAbortedError(message.abort.reason)
        if message.seq != self._recv_seq:
            raise PsiProtocolError(
                f"{self.name}: expected message #{self._recv_seq}, found #{message.seq} "
                "(replayed, reordered or lost message)")
        if kind not in kinds:
            raise PsiProtocolError(
                f"{self.name}: in state {self._state!r} expected {' or '.join(kinds)}, "
                f"found {kind or 'an empty message'}")
        self._recv_seq += 1
        return kind

    protocol = KKRT16

    def _check_protocol(self, found: str, what: str) -> None:
        if found != self.protocol:
            raise PsiProtocolError(
                f"{what}: this side runs PSI protocol {self.protocol!r}, the peer {found or '(none)'!r} "
                "(both sides must choose the same protocol)")

    def _timed(self, step: str, start: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - start

    @property
    def finished(self) -> bool:
        return self._result is not None

    def result(self) -> PsiResult:
        if self._result is None:
            raise PsiProtocolError(f"{self.name}: the run has not finished (state {self._state!r})")
        return self._result

    def _finish(self, local: np.ndarray, pair_ids: np.ndarray, peer_size: int) -> None:
        local, pair_ids = kkrt.common_order(local, pair_ids)
        self.seconds["total"] = time.perf_counter() - self._t0
        self._state = "done"
        self._result = PsiResult(local_indices=local, pair_ids=pair_ids, peer_size=peer_size,
                                 stats={"seconds": dict(self.seconds)})


class ClientRole(_Role):
    """The client: KKRT16 OPRF receiver (cuckoo table, base-OT sender)."""

    name = "psi client"

    def __init__(self, session_id: bytes, elements: ElementSet, config: PsiConfig | None = None,
                 rng: RandomBytes = os.urandom) -> None:
        super().__init__(session_id, elements, config or PsiConfig(), rng)
        self._hello: ClientHello | None = None
        self._ot: BaseOtSender | None = None
        self._receiver: kkrt.Receiver | None = None
        self._matcher: kkrt.Matcher | None = None
        self._peer_size = 0

    def start(self) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        self._ot = BaseOtSender(random_scalar_from(self._rng))
        self._hello = self._client_hello(kkrt.CODE_WIDTH, kkrt.STATISTICAL_SECURITY)
        self._state = "await_server_hello"
        self._timed("base_ot", t)
        yield self._msg(client_hello=self._hello)

    STEPS = {"await_server_hello": {"server_hello": "_on_server_hello"},
             "await_values": {"oprf_values": "_on_values"},
             "await_finish": {"finish": "_on_finish"}}

    def _client_hello(self, code_width: int, statistical_security: int) -> ClientHello:
        return ClientHello(
            version=PROTOCOL_VERSION, session_id=self.session_id, set_size=len(self.elements),
            seed=self._rng(SEED_BYTES), ot_sender_point=self._ot.point, code_width=code_width,
            statistical_security=statistical_security, protocol=self.protocol)

    def _accept_server_hello(self, hello: ServerHello) -> None:
        """The checks both protocols make of the server hello; the server's set size."""
        self._check_hello(hello, "server hello")
        if len(hello.seed) != SEED_BYTES:
            raise PsiProtocolError(f"server hello: expected a {SEED_BYTES}-byte seed, found {len(hello.seed)}")
        self.config.check_sizes(len(self.elements), hello.set_size)
        self._peer_size = int(hello.set_size)

    def _on_server_hello(self, hello: ServerHello) -> Iterator[PsiMessage]:
        self._accept_server_hello(hello)
        keys = kkrt.session_keys(_transcript(self._hello, hello))
        self._context = keys.context
        self._state = "sending_corrections"
        return self._corrections(hello, keys)

    def _corrections(self, hello: ServerHello, keys: kkrt.SessionKeys) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        ot_keys = self._ot.keys(hello.ot_receiver_points, kkrt.CODE_WIDTH, keys.context)
        self._timed("base_ot", t)
        t = time.perf_counter()
        walk_seed = int.from_bytes(self._rng(8), "little") >> 1  # int64 for numba
        receiver = kkrt.Receiver(self.elements.digests, self._peer_size, keys, ot_keys, walk_seed)
        receiver.place()
        self._receiver = receiver
        self._timed("cuckoo", t)
        t = time.perf_counter()
        for start, count, columns in receiver.corrections():
            self._timed("ot_extension", t)
            yield self._msg(correction=Correction(bin_start=start, bin_count=count,
                                                  columns=columns.tobytes()))
            t = time.perf_counter()
        self._matcher = receiver.matcher()
        self._timed("ot_extension", t)
        self._state = "await_values"
        if self._matcher.complete:  # the server has no elements: nothing to wait for
            yield from self._send_matches()

    def _on_values(self, values: OprfValues) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        if values.value_bytes != self._matcher.value_bytes or len(values.values) != values.count * values.value_bytes:
            raise PsiProtocolError(
                f"OPRF values: expected {values.count} values of {self._matcher.value_bytes} bytes, "
                f"found value_bytes={values.value_bytes} and {len(values.values)} bytes")
        self._matcher.add(int(values.offset), np.frombuffer(values.values, np.uint8))
        self._timed("match", t)
        if self._matcher.complete:
            return self._send_matches()
        return iter(())

    def _send_matches(self) -> Iterator[PsiMessage]:
        indices, local = self._matcher.element_matches(self._peer_size)
        mutual.check_distinct_increasing(indices, f"{self.name} matches")
        pair_ids, tags = mutual.pair_ids_and_tags(self._context, self.elements.digests[local])
        for positions, tag_bytes in mutual.encode_claims(indices, tags, self.config.max_message_bytes):
            yield self._msg(matches=Matches(positions=positions, tags=tag_bytes))
        self._state = "await_finish"
        self._matched = (local, pair_ids)
        yield self._msg(finish=Finish(match_count=indices.size))

    def _on_finish(self, finish: Finish) -> Iterator[PsiMessage]:
        elements, pair_ids = self._matched
        if finish.match_count != elements.size:
            raise PsiProtocolError(
                f"finish: we found {elements.size} matches, the server confirmed {finish.match_count}")
        self._finish(elements, pair_ids, self._peer_size)
        return iter(())


class ServerRole(_Role):
    """The server: KKRT16 OPRF sender (base-OT receiver with the secret choice bits s)."""

    name = "psi server"

    def __init__(self, session_id: bytes, elements: ElementSet, config: PsiConfig | None = None,
                 rng: RandomBytes = os.urandom) -> None:
        super().__init__(session_id, elements, config or PsiConfig(), rng)
        self._state = "await_client_hello"
        self._sender: kkrt.Sender | None = None
        self._peer_size = 0
        self._claims: mutual.ClaimChecker | None = None

    def start(self) -> Iterator[PsiMessage]:
        return iter(())

    STEPS = {"await_client_hello": {"client_hello": "_on_client_hello"},
             "await_corrections": {"correction": "_on_correction"},
             "await_matches": {"matches": "_on_matches", "finish": "_on_finish"}}

    def _base_ot_reply(self, hello: ClientHello,
                       count: int) -> tuple[np.ndarray, BaseOtReceiver, ServerHello]:
        """``count`` base OTs as receiver: the random choice bits, the receiver, and the
        server hello carrying its points; both protocols open this way."""
        t = time.perf_counter()
        choice_bits = np.unpackbits(np.frombuffer(self._rng(count // 8), np.uint8), bitorder="little")
        scalars = [random_scalar_from(self._rng) for _ in range(count)]
        ot = BaseOtReceiver(choice_bits, scalars, bytes(hello.ot_sender_point))
        reply = ServerHello(version=PROTOCOL_VERSION, session_id=self.session_id,
                            set_size=len(self.elements), seed=self._rng(SEED_BYTES),
                            ot_receiver_points=ot.points, protocol=self.protocol)
        self._timed("base_ot", t)
        return choice_bits, ot, reply

    def _on_client_hello(self, hello: ClientHello) -> Iterator[PsiMessage]:
        self._check_hello(hello, "client hello")
        if (hello.code_width != kkrt.CODE_WIDTH or hello.statistical_security != kkrt.STATISTICAL_SECURITY
                or len(hello.seed) != SEED_BYTES or len(hello.ot_sender_point) != POINT_BYTES):
            raise PsiProtocolError(
                f"client hello: expected code width {kkrt.CODE_WIDTH}, statistical security "
                f"{kkrt.STATISTICAL_SECURITY}, a {SEED_BYTES}-byte seed and a {POINT_BYTES}-byte point; "
                f"found {hello.code_width}, {hello.statistical_security}, {len(hello.seed)} and "
                f"{len(hello.ot_sender_point)} bytes")
        self.config.check_sizes(len(self.elements), hello.set_size)
        kkrt.value_bytes(int(hello.set_size), len(self.elements))  # both sizes supported?
        self._peer_size = int(hello.set_size)
        return self._reply_hello(hello)

    def _reply_hello(self, hello: ClientHello) -> Iterator[PsiMessage]:
        choice_bits, ot, reply = self._base_ot_reply(hello, kkrt.CODE_WIDTH)
        self._state = "await_corrections"
        yield self._msg(server_hello=reply)
        # Work done while the client computes its corrections.
        t = time.perf_counter()
        keys = kkrt.session_keys(_transcript(hello, reply))
        self._context = keys.context
        ot_keys = ot.keys(keys.context)
        self._timed("base_ot", t)
        t = time.perf_counter()
        n = len(self.elements)
        permutation = kernels.fisher_yates(_keystream_u64(self._rng, n))
        sender = kkrt.Sender(self.elements.digests, self._peer_size, keys, choice_bits, ot_keys,
                             permutation)
        sender.prepare()
        self._sender = sender
        self._claims = mutual.ClaimChecker(n)
        self._timed("bucketing", t)

    def _on_correction(self, correction: Correction) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        self._sender.absorb(int(correction.bin_start), int(correction.bin_count),
                            np.frombuffer(correction.columns, np.uint8))
        self._timed("ot_extension", t)
        if self._sender.complete:
            self._state = "sending_values"
            return self._send_values()
        return iter(())

    def _send_values(self) -> Iterator[PsiMessage]:
        nbytes = self._sender.value_bytes
        for offset, count, data in self._sender.value_chunks(self.config.max_message_bytes):
            yield self._msg(oprf_values=OprfValues(offset=offset, count=count, value_bytes=nbytes,
                                                   values=data))
        self._state = "await_matches"

    def _on_matches(self, matches: Matches) -> Iterator[PsiMessage]:
        self._claims.add(matches.positions, matches.tags)
        return iter(())

    def _on_finish(self, finish: Finish) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        if finish.match_count != self._claims.count:
            raise PsiProtocolError(
                f"finish: the client announced {finish.match_count} matches but sent {self._claims.count}")
        indices, pair_ids = self._claims.confirm(self._context, self._sender.digests)
        self._timed("confirm", t)
        self._finish(self._sender.local_indices(indices), pair_ids, self._peer_size)
        yield self._msg(finish=Finish(match_count=indices.size))


#: Bytes per message of an RR22 byte stream (all but the last part of a stream are exactly
#: this long), so that a truncated or padded part is an error at once, whatever the configs.
STREAM_PART_BYTES = 1 << 20


class _Stream:
    """One RR22 byte stream (VoleSetup, VoleReply, OkvsCorrection): parts arrive in order, name
    the total both sides computed, and are STREAM_PART_BYTES long except the last."""

    def __init__(self, what: str, total: int) -> None:
        self.what = what
        self.total = total
        self.data = np.empty(total, np.uint8)
        self.received = 0

    def add(self, part) -> None:
        size = len(part.data)
        want = min(STREAM_PART_BYTES, self.total - self.received)
        if part.total != self.total or part.offset != self.received or size != want or self.complete:
            raise PsiProtocolError(
                f"{self.what}: expected {want} bytes at offset {self.received} of {self.total}, "
                f"found {size} bytes at offset {part.offset} of {part.total}")
        self.data[self.received:self.received + size] = np.frombuffer(part.data, np.uint8)
        self.received += size

    @property
    def complete(self) -> bool:
        return self.received == self.total    # every RR22 stream has total > 0


def _parts(kind, data: np.ndarray, offset: int = 0, total: int | None = None):
    """The messages of (a piece of) one stream, cut at STREAM_PART_BYTES from ``offset``."""
    total = int(data.size) if total is None else total
    for at in range(0, int(data.size), STREAM_PART_BYTES):
        yield kind(offset=offset + at, total=total, data=data[at:at + STREAM_PART_BYTES].tobytes())


def _value_parts(values: np.ndarray, nbytes: int, max_bytes: int):
    """OprfValues messages: the first ``nbytes`` bytes of each value, in order."""
    total = values.shape[0]
    per = max(1, max_bytes // nbytes)
    for offset in range(0, total, per):
        count = min(per, total - offset)
        out = np.empty(count * nbytes, np.uint8)
        kernels.gather_prefixes(values, np.arange(offset, offset + count, dtype=np.int64), nbytes, out)
        yield OprfValues(offset=offset, count=count, value_bytes=nbytes, values=out.tobytes())


class Rr22ClientRole(ClientRole):
    """The client of RR22: OKVS encoder and VOLE receiver (base-OT sender)."""

    protocol = RR22

    def start(self) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        self._ot = BaseOtSender(random_scalar_from(self._rng))
        self._hello = self._client_hello(rr22.vole.BASE_OTS, rr22.STATISTICAL_SECURITY)
        self._state = "await_server_hello"
        self._timed("base_ot", t)
        yield self._msg(client_hello=self._hello)

    STEPS = {"await_server_hello": {"server_hello": "_on_server_hello"},
             "await_vole_reply": {"vole_reply": "_on_vole_reply"},
             "await_values": {"oprf_values": "_on_values"},
             "await_finish": {"finish": "_on_finish"}}

    def _on_server_hello(self, hello: ServerHello) -> Iterator[PsiMessage]:
        self._accept_server_hello(hello)
        self._params = rr22.Rr22Params.for_sizes(len(self.elements), self._peer_size)
        keys = rr22.session_keys(kkrt.session_keys(_transcript(self._hello, hello)).context)
        self._context = keys.context
        self._state = "sending_vole_setup"
        return self._vole_setup(hello, keys)

    def _vole_setup(self, hello: ServerHello, keys: rr22.SessionKeys) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        ot_keys = self._ot.keys(hello.ot_receiver_points, rr22.vole.BASE_OTS, keys.context)
        self._timed("base_ot", t)
        t = time.perf_counter()
        receiver = rr22.Receiver(self.elements.digests, self._params, keys, ot_keys, self._rng)
        setup = receiver.setup()
        self._receiver = receiver
        self._timed("vole", t)
        for part in _parts(VoleSetup, setup):
            yield self._msg(vole_setup=part)
        t = time.perf_counter()
        correction = receiver.correction()     # the OKVS and A', while the server computes its reply
        self._timed("okvs", t)
        for part in _parts(OkvsCorrection, correction):
            yield self._msg(okvs_correction=part)
        del correction
        t = time.perf_counter()
        receiver.prepare_reply()
        self._timed("vole", t)
        self._reply = _Stream("VOLE reply", self._params.vole.reply_bytes)
        self._reply_chunk = 0
        self._reply_used = 0
        self._state = "await_vole_reply"

    def _on_vole_reply(self, part: VoleReply) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        self._reply.add(part)
        chunks = self._params.vole.chunks
        # every VOLE chunk whose reply is complete is processed at once (pipelined with S)
        while self._reply_chunk < len(chunks):
            size = rr22.reply_chunk_bytes(chunks[self._reply_chunk])
            if self._reply.received < self._reply_used + size:
                break
            self._receiver.absorb(self._reply_chunk, self._reply.data[self._reply_used:self._reply_used + size])
            self._reply_used += size
            self._reply_chunk += 1
        self._timed("vole", t)
        if not self._reply.complete:
            return iter(())
        return self._own_values()

    def _own_values(self) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        values = self._receiver.oprf_values()
        owner = np.arange(values.shape[0], dtype=np.int32)
        self._matcher = kkrt.Matcher(values, owner, self._params.value_bytes, self._peer_size)
        self._timed("oprf", t)
        self._state = "await_values"
        if self._matcher.complete:
            yield from self._send_matches()


class Rr22ServerRole(ServerRole):
    """The server of RR22: VOLE sender (base-OT receiver with the bits of Delta)."""

    protocol = RR22

    STEPS = {"await_client_hello": {"client_hello": "_on_client_hello"},
             "await_vole_setup": {"vole_setup": "_on_vole_setup"},
             "await_okvs_correction": {"okvs_correction": "_on_okvs_correction"},
             "await_matches": {"matches": "_on_matches", "finish": "_on_finish"}}

    def _on_client_hello(self, hello: ClientHello) -> Iterator[PsiMessage]:
        self._check_hello(hello, "client hello")
        if (hello.code_width != rr22.vole.BASE_OTS or hello.statistical_security != rr22.STATISTICAL_SECURITY
                or len(hello.seed) != SEED_BYTES or len(hello.ot_sender_point) != POINT_BYTES):
            raise PsiProtocolError(
                f"client hello: expected {rr22.vole.BASE_OTS} base OTs, statistical security "
                f"{rr22.STATISTICAL_SECURITY}, a {SEED_BYTES}-byte seed and a {POINT_BYTES}-byte point; "
                f"found {hello.code_width}, {hello.statistical_security}, {len(hello.seed)} and "
                f"{len(hello.ot_sender_point)} bytes")
        self.config.check_sizes(len(self.elements), hello.set_size)
        self._peer_size = int(hello.set_size)
        self._params = rr22.Rr22Params.for_sizes(self._peer_size, len(self.elements))
        return self._reply_hello(hello)

    def _reply_hello(self, hello: ClientHello) -> Iterator[PsiMessage]:
        choice_bits, ot, reply = self._base_ot_reply(hello, rr22.vole.BASE_OTS)
        self._state = "await_vole_setup"
        yield self._msg(server_hello=reply)
        # work done while the client computes its VOLE setup
        t = time.perf_counter()
        keys = rr22.session_keys(kkrt.session_keys(_transcript(hello, reply)).context)
        self._context = keys.context
        ot_keys = ot.keys(keys.context)
        self._timed("base_ot", t)
        t = time.perf_counter()
        n = len(self.elements)
        permutation = kernels.fisher_yates(_keystream_u64(self._rng, n))
        sender = rr22.Sender(self.elements.digests, self._params, keys, choice_bits, ot_keys,
                             permutation, self._rng)
        self._sender = sender
        self._claims = mutual.ClaimChecker(n)
        self._setup = _Stream("VOLE setup", self._params.vole.setup_bytes)
        self._timed("prepare", t)

    def _on_vole_setup(self, part: VoleSetup) -> Iterator[PsiMessage]:
        self._setup.add(part)
        if not self._setup.complete:
            return iter(())
        self._state = "sending_vole_reply"
        return self._send_reply()

    def _send_reply(self) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        total = self._params.vole.reply_bytes
        pending = np.empty(0, np.uint8)   # the stream's parts are cut across VOLE chunks
        sent = 0
        for chunk in self._sender.reply_chunks(self._setup.data):
            self._timed("vole", t)
            pending = np.concatenate([pending, chunk])
            whole = pending.size // STREAM_PART_BYTES * STREAM_PART_BYTES
            if sent + pending.size == total:
                whole = pending.size
            if whole:
                for part in _parts(VoleReply, pending[:whole], sent, total):
                    yield self._msg(vole_reply=part)
                sent += whole
                pending = pending[whole:]
            t = time.perf_counter()
        self._timed("vole", t)
        self._setup = None
        t = time.perf_counter()
        self._sender.prepare()    # our elements' rows and Delta·H^B(y): off the client's path
        self._timed("prepare", t)
        self._correction = _Stream("OKVS correction", self._params.correction_bytes)
        self._state = "await_okvs_correction"

    def _on_okvs_correction(self, part: OkvsCorrection) -> Iterator[PsiMessage]:
        self._correction.add(part)
        if not self._correction.complete:
            return iter(())
        self._state = "sending_values"
        return self._send_values()

    def _send_values(self) -> Iterator[PsiMessage]:
        t = time.perf_counter()
        values = self._sender.oprf_values(self._correction.data)
        self._correction = None
        self._timed("oprf", t)
        for part in _value_parts(values, self._params.value_bytes, self.config.max_message_bytes):
            yield self._msg(oprf_values=part)
        self._state = "await_matches"


def client_role(protocol: str, session_id: bytes, elements: ElementSet, config: PsiConfig | None = None,
                rng: RandomBytes = os.urandom) -> ClientRole:
    """The client role of ``protocol`` ("kkrt16" or "rr22")."""
    return _role(protocol, (ClientRole, Rr22ClientRole))(session_id, elements, config, rng)


def server_role(protocol: str, session_id: bytes, elements: ElementSet, config: PsiConfig | None = None,
                rng: RandomBytes = os.urandom) -> ServerRole:
    """The server role of ``protocol`` ("kkrt16" or "rr22")."""
    return _role(protocol, (ServerRole, Rr22ServerRole))(session_id, elements, config, rng)


def _role(protocol: str, classes):
    try:
        return classes[PROTOCOLS.index(protocol)]
    except ValueError:
        raise InputBoundsError(f"PSI protocol: expected one of {', '.join(PROTOCOLS)}, found {protocol!r}") from None


def random_scalar_from(rng: RandomBytes) -> bytes:
    """A scalar mod the Ed25519 group order from 64 bytes of ``rng`` (os.urandom by default)."""
    if rng is os.urandom:
        return random_scalar()
    from nacl import bindings as sodium
    return sodium.crypto_core_ed25519_scalar_reduce(rng(64))
