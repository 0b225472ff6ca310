"""The session of one worker pair: A's worker and B's worker for the same range of buckets.

In a job without workers the bucket steps go through A's job session, in lockstep.  With
workers, each pair has a small session of its own, hosted by A's worker next to its PSI
service on the pair's own mutual-TLS gRPC channel (``pair.proto``), so that pairs run in
parallel and the job session is not a bottleneck.  Its rules:

- **who**: :class:`PeerGate` lets through only a client whose certificate was issued by
  the consortium CA, names the member the signed manifest has as B, and is the very
  certificate (SHA-256) the manifest lists for B's worker of this range.  Everything
  else — the helper's certificate, another member's, another of B's workers — is refused
  before any protocol message (PSI included).
- **epochs**: B's worker opens an epoch (``Open``), each side saying which buckets of the
  range it kept and their digests; a bucket both kept with equal digests is skipped, the
  others are run (again).  The epoch's fresh nonce is part of every PSI session id in it,
  so no PSI session of an earlier epoch can be replayed.  ``Watch`` streams heartbeats:
  when either worker dies, the other sees the stream break, the epoch ends
  (:class:`~engine.scale.errors.PairLost`), and the pair goes on in a new epoch once the
  dead worker was restarted.
- **steps**: the job's bucket steps (:func:`engine.job.session.bucket_step`), as
  barriers: both post, both get both posts.  A step for a bucket outside the range, or
  one both already kept, a step out of lockstep or twice, or the wrong kind of message
  is a refusal (:class:`~engine.scale.errors.PeerRefused`): never retried, the job stops.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from engine.job import session_pb2
from engine.job.session import HEARTBEAT_S, parse_bucket_step
from engine.job.tls import peer_certificate, peer_member_id
from engine.names import OPERATOR_ROLES
from engine.scale import pair_pb2, pair_pb2_grpc
from engine.scale.errors import PairLost, PeerRefused
from engine.scale.manifest import BucketRange, Manifest

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 1 << 16


def digests_message(done: dict[int, bytes]) -> list[session_pb2.BucketDigest]:
    return [session_pb2.BucketDigest(bucket=b, digest=d) for b, d in sorted(done.items())]


def agreed_done(own: dict[int, bytes], peer: list[session_pb2.BucketDigest],
                bucket_range: BucketRange) -> set[int]:
    """Buckets of the range both sides kept with equal digests: not run again."""
    theirs = {d.bucket: bytes(d.digest) for d in peer}
    return {b for b, digest in own.items() if b in bucket_range and theirs.get(b) == digest}


# ---------------------------------------------------------------------------
# who may talk to A's worker


class PeerGate(grpc.ServerInterceptor):
    """Checks the client of every call on A's worker server against the signed manifest
    (set once the worker has one; until then calls wait for it, up to ``wait_s``)."""

    def __init__(self, wait_s: float) -> None:
        self._wait_s = wait_s
        self._ready = threading.Event()
        self._member: str | None = None
        self._cert_sha256: str | None = None
        self._what = ""
        self.refusals: list[str] = []

    def allow(self, member: str, cert_sha256: str, what: str) -> None:
        self._member, self._cert_sha256, self._what = member, cert_sha256, what
        self._ready.set()

    def check(self, context: grpc.ServicerContext) -> None:
        if not self._ready.wait(self._wait_s):
            context.abort(grpc.StatusCode.UNAVAILABLE, "this worker has no manifest yet")
        member = peer_member_id(context)
        subject, fingerprint = peer_certificate(context)
        if member != self._member or fingerprint != self._cert_sha256:
            reason = (f"refused a peer not in the worker manifest: certificate of {member!r} "
                      f"(subject {subject}, SHA-256 {fingerprint}); the manifest names "
                      f"{self._member!r} with certificate {self._cert_sha256} for {self._what}")
            log.error("%s", reason)
            self.refusals.append(reason)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        gate = self

        def guarded(behaviour):
            def call(request, context):
                gate.check(context)
                return behaviour(request, context)
            return call

        kinds = (("unary_unary", grpc.unary_unary_rpc_method_handler),
                 ("unary_stream", grpc.unary_stream_rpc_method_handler),
                 ("stream_unary", grpc.stream_unary_rpc_method_handler),
                 ("stream_stream", grpc.stream_stream_rpc_method_handler))
        for attribute, make in kinds:
            behaviour = getattr(handler, attribute)
            if behaviour is not None:
                return make(guarded(behaviour), request_deserializer=handler.request_deserializer,
                            response_serializer=handler.response_serializer)
        return handler


# ---------------------------------------------------------------------------
# A's side: the host of the pair's session


@dataclass
class _Open:
    name: str
    posts: dict[str, session_pb2.Post] = field(default_factory=dict)


class PairHost:
    """The pair session in A's worker.  Thread-safe: the gRPC handlers (B's calls) and the
    worker's own thread (A's posts, through :meth:`link`) call into it."""

    def __init__(self, manifest: Manifest, bucket_range: BucketRange, manifest_sm3: bytes,
                 stage_timeout_s: float) -> None:
        self.manifest = manifest
        self.range = bucket_range
        self.manifest_sm3 = manifest_sm3
        self.stage_timeout_s = stage_timeout_s
        self._cond = threading.Condition()
        self.epoch: bytes | None = None
        self.skip: set[int] = set()
        self.lost: str | None = None
        self.refused: str | None = None
        self.finished = False
        self._pending: pair_pb2.PairHello | None = None
        self._welcome: pair_pb2.PairWelcome | None = None
        self._welcome_for: pair_pb2.PairHello | None = None
        self._open: _Open | None = None
        self._results: dict[str, dict[str, session_pb2.Post]] = {}
        self.epochs = 0

    # -- epochs -------------------------------------------------------------------

    def _refuse_locked(self, reason: str) -> PeerRefused:
        if self.refused is None:
            log.error("worker pair %s: %s", self.range.describe(), reason)
            self.refused = reason
        self._cond.notify_all()
        return PeerRefused(self.refused, worker=self.range.index,
                           buckets=(self.range.first, self.range.end))

    def _lose_locked(self, reason: str) -> None:
        if self.epoch is not None and self.lost is None and not self.finished:
            log.warning("worker pair %s: epoch ends: %s", self.range.describe(), reason)
            self.lost = reason
        self._cond.notify_all()

    def open(self, hello: pair_pb2.PairHello, timeout_s: float) -> pair_pb2.PairWelcome:
        """B's worker opens an epoch; answered once A's worker is ready for it."""
        with self._cond:
            if self.refused is not None:
                return pair_pb2.PairWelcome(ok=False, reason=self.refused)
            for what, got, want in (("job", hello.job_id, self.manifest.job_id),
                                    ("manifest", bytes(hello.manifest_sm3).hex(),
                                     self.manifest_sm3.hex()),
                                    ("range", hello.range_index, self.range.index)):
                if got != want:
                    reason = (f"B's worker opened the pair with {what} {got!r}; this worker "
                              f"serves {what} {want!r} of the signed manifest")
                    self._refuse_locked(reason)
                    return pair_pb2.PairWelcome(ok=False, reason=reason)
            self._lose_locked("B's worker opened a new epoch")
            self._pending = hello
            self._cond.notify_all()
            deadline = time.monotonic() + timeout_s
            while True:
                if self.refused is not None:
                    return pair_pb2.PairWelcome(ok=False, reason=self.refused)
                if self._welcome_for is hello and self._welcome is not None:
                    return self._welcome
                if self._pending is not hello:
                    return pair_pb2.PairWelcome(ok=False, reason="superseded by another open")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if self._pending is hello:
                        self._pending = None
                    return pair_pb2.PairWelcome(ok=False, reason="A's worker was not ready")
                self._cond.wait(remaining)

    def await_open(self, own_done: dict[int, bytes], timeout_s: float) -> tuple[bytes, set[int]]:
        """A's worker: wait for B's worker to open an epoch; the epoch and the buckets both
        kept."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending is None:
                if self.refused is not None:
                    raise PeerRefused(self.refused, worker=self.range.index,
                                      buckets=(self.range.first, self.range.end))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PairLost(f"B's worker did not open the pair within {timeout_s:.0f} s",
                                   worker=self.range.index,
                                   buckets=(self.range.first, self.range.end))
                self._cond.wait(remaining)
            hello, self._pending = self._pending, None
            self.epoch = secrets.token_bytes(16)
            self.epochs += 1
            self.lost = None
            self.finished = False
            self._open = None
            self._results = {}
            self.skip = agreed_done(own_done, list(hello.done), self.range)
            self._welcome = pair_pb2.PairWelcome(ok=True, epoch=self.epoch,
                                                 done=digests_message(own_done))
            self._welcome_for = hello
            self._cond.notify_all()
            return self.epoch, set(self.skip)

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()

    def watcher_gone(self, epoch: bytes) -> None:
        with self._cond:
            if epoch == self.epoch:
                self._lose_locked("B's worker went away (its watch stream ended)")

    def watch(self, epoch: bytes, context: grpc.ServicerContext):
        while context.is_active():
            with self._cond:
                if epoch != self.epoch or self.lost is not None or self.refused is not None:
                    reason = self.refused or self.lost or "a newer epoch began"
                    yield session_pb2.Event(kind="abort", reason=reason)
                    return
                if self.finished:
                    yield session_pb2.Event(kind="finished")
                    return
                self._cond.wait(HEARTBEAT_S)
            yield session_pb2.Event(kind="heartbeat")

    # -- steps --------------------------------------------------------------------

    def post(self, role: str, epoch: bytes, post: session_pb2.Post) -> dict[str, session_pb2.Post]:
        deadline = time.monotonic() + self.stage_timeout_s
        with self._cond:
            if self.refused is not None:
                raise PeerRefused(self.refused, worker=self.range.index)
            if epoch != self.epoch or self.lost is not None:
                raise PairLost(self.lost or "a step of an epoch that is over",
                               worker=self.range.index)
            step = post.step
            parsed = parse_bucket_step(step)
            if post.ByteSize() > MAX_PAYLOAD_BYTES:
                raise self._refuse_locked(f"{role}'s worker posted {post.ByteSize()} bytes for "
                                          f"step {step!r}")
            if parsed is None:
                raise self._refuse_locked(f"{role}'s worker posted step {step!r}, which is not "
                                          "a bucket step")
            bucket, _attempt, _name, kind = parsed
            if bucket not in self.range:
                raise self._refuse_locked(
                    f"{role}'s worker posted step {step!r} for bucket {bucket}, outside "
                    f"{self.range.describe()} of the signed manifest")
            if bucket in self.skip:
                raise self._refuse_locked(f"{role}'s worker posted step {step!r} for bucket "
                                          f"{bucket}, which both sides kept already")
            if post.WhichOneof("body") != kind:
                raise self._refuse_locked(f"{role}'s worker posted step {step!r} with a "
                                          f"{post.WhichOneof('body')} message; expected {kind}")
            if post.role != role or post.job_id != self.manifest.job_id:
                raise self._refuse_locked(f"a post for role {post.role!r} of job "
                                          f"{post.job_id!r} came from {role}'s worker")
            if step in self._results:
                raise self._refuse_locked(f"{role}'s worker posted step {step!r} twice")
            if self._open is None:
                self._open = _Open(step)
            elif self._open.name != step:
                raise self._refuse_locked(f"{role}'s worker posted step {step!r} while step "
                                          f"{self._open.name!r} waits for it (out of lockstep)")
            if role in self._open.posts:
                raise self._refuse_locked(f"{role}'s worker posted step {step!r} twice")
            current = self._open
            current.posts[role] = post
            if len(current.posts) == len(OPERATOR_ROLES):
                self._results = {step: dict(current.posts)}  # one step at a time: keep the last
                self._open = None
                self._cond.notify_all()
            while step not in self._results:
                if self.refused is not None:
                    raise PeerRefused(self.refused, worker=self.range.index)
                if self.lost is not None or epoch != self.epoch:
                    raise PairLost(self.lost or "a newer epoch began", worker=self.range.index)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._lose_locked(f"step {step!r}: B's worker did not post within "
                                      f"{self.stage_timeout_s:.0f} s")
                    continue
                self._cond.wait(remaining)
            return self._results[step]

    def link(self, job_id: str) -> Callable[..., dict[str, session_pb2.Post]]:
        """A's own ``exchange(step, **body)`` in the current epoch."""
        epoch = self.epoch
        assert epoch is not None

        def exchange(step: str, **body) -> dict[str, session_pb2.Post]:
            return self.post("A", epoch, session_pb2.Post(job_id=job_id, role="A", step=step,
                                                          **body))
        return exchange


class PairServicer(pair_pb2_grpc.WorkerPairServicer):
    """gRPC adapter of :class:`PairHost` (behind the :class:`PeerGate`)."""

    def __init__(self, host_of: Callable[[], PairHost | None], connect_timeout_s: float) -> None:
        self._host_of = host_of
        self._connect_timeout_s = connect_timeout_s

    def _host(self, context) -> PairHost:
        host = self._host_of()
        if host is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "this worker runs no range yet")
        return host

    def Open(self, request, context):  # noqa: N802 - gRPC name
        return self._host(context).open(request, self._connect_timeout_s)

    def Step(self, request, context):  # noqa: N802
        host = self._host(context)
        try:
            posts = host.post("B", bytes(request.epoch), request.post)
        except PeerRefused as exc:
            return pair_pb2.PairReply(ok=False, refused=True, reason=exc.message)
        except PairLost as exc:
            return pair_pb2.PairReply(ok=False, reason=exc.message)
        return pair_pb2.PairReply(ok=True, posts=posts)

    def Watch(self, request, context):  # noqa: N802
        host = self._host(context)
        epoch = bytes(request.epoch)
        context.add_callback(lambda: host.watcher_gone(epoch))
        yield from host.watch(epoch, context)


# ---------------------------------------------------------------------------
# B's side: a client of A's worker


class PairClient:
    """B's worker's connection to A's worker of the same range."""

    def __init__(self, channel: grpc.Channel, *, job_id: str, manifest_sm3: bytes,
                 bucket_range: BucketRange, stage_timeout_s: float) -> None:
        self._channel = channel
        self._stub = pair_pb2_grpc.WorkerPairStub(channel)
        self.job_id = job_id
        self.manifest_sm3 = manifest_sm3
        self.range = bucket_range
        self.stage_timeout_s = stage_timeout_s
        self.epoch: bytes | None = None
        self.lost: str | None = None
        self._watch: grpc.Future | None = None

    def _where(self) -> dict:
        return {"worker": self.range.index, "buckets": (self.range.first, self.range.end)}

    def open(self, own_done: dict[int, bytes], timeout_s: float) -> set[int]:
        """Open a new epoch (waiting up to ``timeout_s`` for A's worker to be reachable and
        ready); the buckets both kept."""
        deadline = time.monotonic() + timeout_s
        last = "not reachable"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PairLost(f"A's worker of {self.range.describe()} could not be reached "
                               f"within {timeout_s:.0f} s ({last})", **self._where())
            try:
                grpc.channel_ready_future(self._channel).result(timeout=remaining)
                welcome = self._stub.Open(pair_pb2.PairHello(
                    job_id=self.job_id, manifest_sm3=self.manifest_sm3,
                    range_index=self.range.index, done=digests_message(own_done)),
                    timeout=max(1.0, remaining))
            except grpc.FutureTimeoutError:
                continue
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                    raise PeerRefused(f"A's worker refused this worker: {exc.details()}",
                                      **self._where()) from None
                last = f"{exc.code().name}: {exc.details()}"
                time.sleep(0.2)
                continue
            if not welcome.ok:
                if welcome.reason in ("A's worker was not ready", "superseded by another open"):
                    last = welcome.reason
                    continue
                raise PeerRefused(f"A's worker refused the pair: {welcome.reason}",
                                  **self._where())
            break
        self.epoch = bytes(welcome.epoch)
        self.lost = None
        self._start_watch(self.epoch)
        return agreed_done(own_done, list(welcome.done), self.range)

    def _start_watch(self, epoch: bytes) -> None:
        stream = self._stub.Watch(pair_pb2.PairWatch(epoch=epoch))

        def follow() -> None:
            try:
                for event in stream:
                    if event.kind == "abort":
                        self._mark_lost(epoch, f"A's worker ended the epoch: {event.reason}")
                        return
                    if event.kind == "finished":
                        return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    self._mark_lost(epoch, f"lost A's worker: {exc.details()}")

        if self._watch is not None:
            self._watch.cancel()
        self._watch = stream
        threading.Thread(target=follow, name="pair-watch", daemon=True).start()

    def _mark_lost(self, epoch: bytes, reason: str) -> None:
        if epoch == self.epoch and self.lost is None:
            log.warning("worker pair %s: %s", self.range.describe(), reason)
            self.lost = reason

    def exchange(self, step: str, **body) -> dict[str, session_pb2.Post]:
        if self.epoch is None:
            raise PairLost("no epoch open", **self._where())
        post = session_pb2.Post(job_id=self.job_id, role="B", step=step, **body)
        try:
            reply = self._stub.Step(pair_pb2.PairPost(epoch=self.epoch, post=post),
                                    timeout=self.stage_timeout_s + 5)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise PeerRefused(f"A's worker refused step {step!r}: {exc.details()}",
                                  **self._where()) from None
            raise PairLost(f"step {step!r}: {exc.code().name}: {exc.details()}",
                           **self._where()) from None
        if reply.refused:
            raise PeerRefused(reply.reason, **self._where())
        if not reply.ok:
            raise PairLost(reply.reason, **self._where())
        return dict(reply.posts)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._channel.close()


__all__ = ["PairClient", "PairHost", "PairServicer", "PeerGate", "agreed_done",
           "digests_message"]
