"""The coordination session of a job, hosted by party A (``session.proto``).

The session does four things and nothing else; the heavy protocols (PSI, MPC) run on
their own channels:

- **join**: each party says who it is, which job and rules it runs; the host waits for
  all three, runs the agreement check once, and gives every party the same answer — go,
  with everyone's hello and a fresh session nonce, or stop, with one reason.
- **exchange**: the job's steps as barriers: each participant of a step posts one typed
  message (``Post``) and receives everyone's once all have posted.  The steps come in the
  order of :data:`STEPS`; between ``commitments`` and ``candidates`` A and B go through
  their buckets, one step per pass and one per bucket (:func:`bucket_step`), in lockstep.
  A step out of order, twice, with the wrong kind of message, or from a member the job
  does not name stops the job on every party.  The host may check a completed step
  (:class:`SessionHost` ``checks``) and stop the job with the reason every party prints.
- **abort**: any party can stop the job with a reason, which every party then reports.
- **watch**: a heartbeat stream from the host to B and H.  When a client's stream breaks
  (the process died), the host aborts the job; when the host dies, the clients' streams
  break and they stop.

Peer identity comes from mutual TLS: the host accepts a role only from the member whose
certificate (CN) the job names for it.  Another member's certificate is refused, logged
with its subject and fingerprint, and stops the job on every party at once.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import grpc

from engine.errors import JobError
from engine.job import session_pb2, session_pb2_grpc
from engine.job.tls import peer_certificate, peer_member_id

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 3  # 3: the workers and manifest steps (engine.scale)
MAX_PAYLOAD_BYTES = 1 << 20
HEARTBEAT_S = 1.0
ROLES = ("A", "B", "H")
OPERATORS = ("A", "B")
BUCKETS = "<buckets>"
"""Marks where A and B go through their buckets in :data:`STEPS`."""

#: The job's steps, in order: (name, roles, kind of message).
STEPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("partition", OPERATORS, "partition"),
    ("sizes", ROLES, "sizes"),
    ("commitments", OPERATORS, "commitment"),
    # the bucket workers (engine.scale): what each operator offers, then the manifest both
    # sign; with no workers the buckets run in the parties' own processes
    ("workers", OPERATORS, "workers"),
    ("manifest", OPERATORS, "manifest"),
    (BUCKETS, OPERATORS, ""),
    ("candidates", ROLES, "candidates"),
    ("facts", OPERATORS, "facts"),
    ("statement", OPERATORS, "signature"),
    # everyone is still there and every output is durable: only now does A append, so a
    # job that stops earlier leaves nothing on the ledger
    ("anchor_ready", ROLES, "anchor_ready"),
    ("anchored", ROLES, "anchored"),
    ("cosigned", ROLES, "cosigned"),
)
#: A recovery run (``--recover``) ends after the statement: it anchors nothing.
RECOVERY_STEPS: tuple[tuple[str, tuple[str, ...], str], ...] = STEPS[:[s[0] for s in STEPS].index("statement") + 1] + (
    ("recovered", ROLES, "empty"),
)

_BUCKET_STEP = re.compile(r"^bucket:(\d+):(\d+):(?:(S1|S2a|S2b|S3a|S3b)(:end)?|done)$")


def bucket_step(bucket: int, attempt: int, name: str) -> str:
    """A step of a bucket's attempt: ``<pass>`` before the pass's PSI (PassReady),
    ``<pass>:end`` after it (BucketDone: did it succeed), ``done`` at the end (BucketDone:
    the digest of what was kept)."""
    return f"bucket:{bucket}:{attempt}:{name}"


def parse_bucket_step(step: str) -> tuple[int, int, str, str] | None:
    """``(bucket, attempt, name, kind)`` of a bucket step (:func:`bucket_step`), the kind of
    message it carries (``pass_ready`` or ``bucket_done``); None for any other step."""
    match = _BUCKET_STEP.match(step)
    if match is None:
        return None
    name = match.group(3) + (match.group(4) or "") if match.group(3) else "done"
    kind = "pass_ready" if match.group(3) and not match.group(4) else "bucket_done"
    return int(match.group(1)), int(match.group(2)), name, kind


def _kind_of(step: str, fixed: Mapping[str, str]) -> str:
    if step in fixed:
        return fixed[step]
    match = _BUCKET_STEP.match(step)
    if match is None:
        return ""
    return "pass_ready" if match.group(3) and not match.group(4) else "bucket_done"


class SessionAborted(JobError):
    """The job was stopped; ``reason`` is the same on every party."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _OpenStep:
    name: str
    roles: tuple[str, ...]
    posts: dict[str, session_pb2.Post]


Check = Callable[[dict[str, session_pb2.Post]], "str | None"]


class SessionHost:
    """The host's state of one job session.  Thread-safe; gRPC handlers call into it."""

    def __init__(self, job_id: str, members: dict[str, str],
                 agree: Callable[[dict[str, session_pb2.Hello]], str | None], *,
                 steps: tuple[tuple[str, tuple[str, ...], str], ...] = STEPS,
                 checks: Mapping[str, Check] | None = None) -> None:
        self.job_id = job_id
        self.members = dict(members)
        self._agree = agree
        self._steps = list(steps)
        self._kinds = {name: kind for name, _, kind in steps if name != BUCKETS}
        self._checks = dict(checks or {})
        self._cond = threading.Condition()
        self._hellos: dict[str, session_pb2.Hello] = {}
        self._join_reply: session_pb2.JoinReply | None = None
        self._fixed = 0                      # index of the next fixed step to complete
        self._open: _OpenStep | None = None
        self._results: dict[str, dict[str, session_pb2.Post]] = {}
        self._done_order: list[str] = []
        self._role_fixed: dict[str, int] = {}
        self.abort_reason: str | None = None
        self.finished = False
        self._abort_listeners: list[Callable[[str], None]] = []
        self._informed: set[str] = set()

    def on_abort(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(reason)`` (from another thread) when the job is aborted."""
        self._abort_listeners.append(listener)

    # -- join ---------------------------------------------------------------

    def join(self, hello: session_pb2.Hello, timeout_s: float) -> session_pb2.JoinReply:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if self.abort_reason is not None:
                return session_pb2.JoinReply(ok=False, abort_reason=self.abort_reason)
            if hello.job_id != self.job_id:
                self._abort_locked(f"{hello.role} joined job {hello.job_id!r} but the session "
                                   f"is for job {self.job_id!r}")
                return session_pb2.JoinReply(ok=False, abort_reason=self.abort_reason or "")
            if hello.role in self._hellos:
                self._abort_locked(f"{hello.role} joined twice")
                return session_pb2.JoinReply(ok=False, abort_reason=self.abort_reason or "")
            self._hellos[hello.role] = hello
            if len(self._hellos) == len(ROLES):
                reason = self._agree(dict(self._hellos))
                if reason is not None:
                    self._abort_locked(reason)
                else:
                    self._join_reply = session_pb2.JoinReply(
                        ok=True, parties=[self._hellos[r] for r in ROLES],
                        session_nonce=secrets.token_bytes(16))
                self._cond.notify_all()
            while self._join_reply is None and self.abort_reason is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = [r for r in ROLES if r not in self._hellos]
                    self._abort_locked(f"{', '.join(missing)} did not join within "
                                       f"{timeout_s:.0f} s")
                    break
                self._cond.wait(remaining)
            if self.abort_reason is not None:
                return session_pb2.JoinReply(ok=False, abort_reason=self.abort_reason)
            assert self._join_reply is not None
            return self._join_reply

    # -- exchange -------------------------------------------------------------

    def _next_fixed_of(self, role: str) -> int | None:
        for index in range(self._role_fixed.get(role, 0), len(self._steps)):
            name, roles, _ = self._steps[index]
            if name != BUCKETS and role in roles:
                return index
        return None

    def _in_bucket_zone(self) -> bool:
        return self._fixed < len(self._steps) and self._steps[self._fixed][0] == BUCKETS

    def _refuse(self, role: str, step: str, why: str) -> SessionAborted:
        self._abort_locked(f"{role} posted step {step!r} {why}")
        return SessionAborted(self.abort_reason or "")

    def post(self, post: session_pb2.Post, timeout_s: float) -> dict[str, session_pb2.Post]:
        """Post ``post`` (its role's message for its step); return everyone's once all have
        posted.  A role may post its next step early (it waits until the steps before it
        are done); anything else stops the job."""
        role, step = post.role, post.step
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if self.abort_reason is not None:
                raise SessionAborted(self.abort_reason)
            if post.ByteSize() > MAX_PAYLOAD_BYTES:
                raise self._refuse(role, step, f"of {post.ByteSize()} bytes; the limit is "
                                   f"{MAX_PAYLOAD_BYTES}")
            kind = _kind_of(step, self._kinds)
            if step == "anchored" and role != "A":
                kind = "empty"  # only A has the receipt; B and H post that they wait for it
            if not kind:
                raise self._refuse(role, step, "that the job does not have")
            if post.WhichOneof("body") != kind:
                raise self._refuse(role, step, f"with a {post.WhichOneof('body')} message; "
                                   f"expected {kind}")
            is_bucket = _BUCKET_STEP.match(step) is not None
            expected = self._next_fixed_of(role)
            if is_bucket:
                if role not in OPERATORS:
                    raise self._refuse(role, step, "but only A and B go through buckets")
                commit_index = next(i for i, s in enumerate(self._steps) if s[0] == BUCKETS)
                if self._role_fixed.get(role, 0) < commit_index:
                    raise self._refuse(role, step, "before the commitments")
                if expected is not None and expected < commit_index:
                    raise self._refuse(role, step, "before the commitments")
            elif expected is None or self._steps[expected][0] != step:
                wanted = repr(self._steps[expected][0]) if expected is not None \
                    else "nothing (its part is over)"
                raise self._refuse(role, step, f"out of order; expected {wanted}")
            # wait until the step can be taken: it is open, or nothing is open and it is next
            while self.abort_reason is None:
                if self._open is not None:
                    if self._open.name == step:
                        if role in self._open.posts:
                            raise self._refuse(role, step, "twice")
                        break
                    if role in self._open.roles and role not in self._open.posts:
                        raise self._refuse(role, step, f"while step {self._open.name!r} "
                                           "waits for it")
                elif is_bucket:
                    if self._in_bucket_zone():
                        self._open = _OpenStep(step, OPERATORS, {})
                        break
                else:
                    assert expected is not None
                    zone = self._in_bucket_zone()
                    if self._fixed == expected or (zone and self._fixed + 1 == expected
                                                   and role in OPERATORS):
                        if zone and self._fixed + 1 == expected:
                            self._fixed += 1  # A or B leaves the buckets
                        _, roles, _ = self._steps[expected]
                        self._open = _OpenStep(step, roles, {})
                        break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._abort_locked(f"step {step!r}: the steps before it did not finish "
                                       f"within {timeout_s:.0f} s")
                    break
                self._cond.wait(remaining)
            if self.abort_reason is not None:
                raise SessionAborted(self.abort_reason)
            current = self._open
            assert current is not None
            current.posts[role] = post
            self._cond.notify_all()  # a party waiting for this step to open may join it now
            if not is_bucket:
                self._role_fixed[role] = self._steps.index(
                    next(s for s in self._steps if s[0] == step)) + 1
            if len(current.posts) == len(current.roles):
                self._complete_locked(current, is_bucket)
            while step not in self._results and self.abort_reason is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = [r for r in current.roles if r not in current.posts]
                    self._abort_locked(f"step {step!r}: {', '.join(missing)} did not answer "
                                       f"within {timeout_s:.0f} s")
                    break
                self._cond.wait(remaining)
            if self.abort_reason is not None:
                raise SessionAborted(self.abort_reason)
            return self._results[step]

    def _complete_locked(self, current: _OpenStep, is_bucket: bool) -> None:
        check = self._checks.get(current.name)
        if check is not None:
            try:
                reason = check(dict(current.posts))
            except Exception as exc:  # noqa: BLE001 - a check that fails stops the job
                reason = f"step {current.name!r}: {type(exc).__name__}: {exc}"
            if reason is not None:
                self._abort_locked(reason)
                return
        if current.name in self._results:
            self._abort_locked(f"step {current.name!r} taken twice")
            return
        self._results[current.name] = dict(current.posts)
        self._open = None
        if not is_bucket:
            self._fixed = self._steps.index(next(s for s in self._steps
                                                 if s[0] == current.name)) + 1
            if self._fixed == len(self._steps):
                self.finished = True
        self._cond.notify_all()

    # -- abort / watch ----------------------------------------------------------

    def _abort_locked(self, reason: str) -> None:
        if self.abort_reason is None and not self.finished:
            log.error("job %s stopped: %s", self.job_id, reason)
            self.abort_reason = reason
            for listener in self._abort_listeners:
                threading.Thread(target=listener, args=(reason,), daemon=True).start()
        self._cond.notify_all()

    def abort(self, reason: str) -> None:
        with self._cond:
            self._abort_locked(reason)

    def mark_informed(self, role: str) -> None:
        """``role`` has been told that the job stopped (or told us so itself)."""
        with self._cond:
            self._informed.add(role)
            self._cond.notify_all()

    def wait_informed(self, roles: tuple[str, ...], timeout_s: float) -> bool:
        """After an abort, wait (at most ``timeout_s``) until every one of ``roles`` has
        heard the reason, so that a party that joins late still learns why the job
        stopped instead of finding nobody listening."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not set(roles) <= self._informed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def watcher_gone(self, role: str) -> None:
        """Called when a party's watch stream ends for any reason."""
        with self._cond:
            if not self.finished:
                self._abort_locked(f"lost the connection to party {role}")

    def watch(self, role: str) -> Iterator[session_pb2.Event]:
        """Heartbeats until the job ends (then one "abort" or "finished" event)."""
        yield session_pb2.Event(kind="heartbeat")  # tells the client its watch is in place
        while True:
            with self._cond:
                if self.abort_reason is not None:
                    event = session_pb2.Event(kind="abort", reason=self.abort_reason)
                elif self.finished:
                    event = session_pb2.Event(kind="finished")
                else:
                    self._cond.wait(HEARTBEAT_S)
                    event = None
            if event is not None:
                if event.kind == "abort":
                    self.mark_informed(role)
                yield event
                return
            yield session_pb2.Event(kind="heartbeat")


class JobSessionServicer(session_pb2_grpc.JobSessionServicer):
    """gRPC adapter: identity checks, then :class:`SessionHost`."""

    def __init__(self, host: SessionHost, connect_timeout_s: float, stage_timeout_s: float,
                 *, require_identity: bool = True) -> None:
        self._host = host
        self._connect_timeout_s = connect_timeout_s
        self._stage_timeout_s = stage_timeout_s
        self._require_identity = require_identity

    def _check_identity(self, role: str, job_id: str, context: grpc.ServicerContext, *,
                        joining: bool = False) -> None:
        expected = self._host.members.get(role)
        if expected is None or role == "A":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no remote role {role!r} in this job")
        if self._require_identity:
            member = peer_member_id(context)
            if member != expected:
                subject, fingerprint = peer_certificate(context)
                reason = (f"a peer claimed role {role} (member {expected!r}) with the "
                          f"certificate of {member!r} (subject {subject}, SHA-256 "
                          f"{fingerprint}); refused before any protocol message")
                log.error("%s", reason)
                self._host.abort(reason)
                context.abort(grpc.StatusCode.PERMISSION_DENIED,
                              f"role {role} belongs to member {expected!r}; "
                              f"your certificate names {member!r}")
        if job_id != self._host.job_id and not joining:
            # The right member talking about another job: a protocol error that stops it.
            reason = f"{role} sent a message for job {job_id!r} in job {self._host.job_id!r}"
            self._host.abort(reason)
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)

    def Join(self, request, context):
        # A join for another job stops the session with that reason (SessionHost.join).
        self._check_identity(request.role, request.job_id, context, joining=True)
        reply = self._host.join(request, self._connect_timeout_s)
        if not reply.ok:
            self._host.mark_informed(request.role)
        return reply

    def Exchange(self, request, context):
        self._check_identity(request.role, request.job_id, context)
        try:
            posts = self._host.post(request, self._stage_timeout_s)
        except SessionAborted as exc:
            self._host.mark_informed(request.role)
            return session_pb2.PostReply(ok=False, abort_reason=exc.reason)
        return session_pb2.PostReply(ok=True, posts=posts)

    def Abort(self, request, context):
        self._check_identity(request.role, request.job_id, context)
        self._host.abort(request.reason)
        self._host.mark_informed(request.role)
        return session_pb2.AbortReply()

    def Watch(self, request, context):
        self._check_identity(request.role, request.job_id, context)
        role = request.role
        context.add_callback(lambda: self._host.watcher_gone(role))
        yield from self._host.watch(role)


# ---------------------------------------------------------------------------
# the parties' side: one link interface


class Link:
    """What a party's job runs over: A's own session (:class:`HostLink`) or a connection
    to it (:class:`RemoteLink`).  ``exchange(step, **body)`` posts this role's typed message
    (``body``: one field of ``Post``'s oneof) and returns every role's post."""

    role: str
    job_id: str
    abort_reason: str | None

    def join(self, hello: session_pb2.Hello) -> session_pb2.JoinReply:
        raise NotImplementedError

    def exchange(self, step: str, **body) -> dict[str, session_pb2.Post]:
        raise NotImplementedError

    def abort(self, reason: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _post(self, step: str, body: dict) -> session_pb2.Post:
        if len(body) != 1:
            raise ValueError("one message per post")
        return session_pb2.Post(job_id=self.job_id, role=self.role, step=step, **body)


class HostLink(Link):
    """Party A's own access to the session it hosts."""

    def __init__(self, host: SessionHost, role: str, stage_timeout_s: float,
                 connect_timeout_s: float) -> None:
        self._host = host
        self.role = role
        self.job_id = host.job_id
        self._stage_timeout_s = stage_timeout_s
        self._connect_timeout_s = connect_timeout_s

    def join(self, hello: session_pb2.Hello) -> session_pb2.JoinReply:
        reply = self._host.join(hello, self._connect_timeout_s)
        if not reply.ok:
            raise SessionAborted(reply.abort_reason)
        return reply

    def exchange(self, step: str, **body) -> dict[str, session_pb2.Post]:
        return self._host.post(self._post(step, body), self._stage_timeout_s)

    def abort(self, reason: str) -> None:
        self._host.abort(reason)

    @property
    def abort_reason(self) -> str | None:  # type: ignore[override]
        return self._host.abort_reason


class RemoteLink(Link):
    """Party B's or H's connection to A's session, with a watch thread."""

    def __init__(self, channel: grpc.Channel, job_id: str, role: str, stage_timeout_s: float,
                 connect_timeout_s: float, on_abort: Callable[[str], None]) -> None:
        self._stub = session_pb2_grpc.JobSessionStub(channel)
        self._channel = channel
        self.job_id = job_id
        self.role = role
        self._stage_timeout_s = stage_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._on_abort = on_abort
        self._closing = threading.Event()
        self._watch_started = threading.Event()
        self.abort_reason: str | None = None
        self._watcher: threading.Thread | None = None

    def _fail(self, reason: str) -> SessionAborted:
        if self.abort_reason is None:
            self.abort_reason = reason
        return SessionAborted(self.abort_reason)

    def _rpc_error(self, what: str, exc: grpc.RpcError) -> SessionAborted:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code == grpc.StatusCode.UNAVAILABLE:
            return self._fail(f"lost the connection to party A during {what}: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return self._fail(f"party A did not answer {what} in time")
        return self._fail(f"party A refused {what}: {details}")

    def join(self, hello: session_pb2.Hello) -> session_pb2.JoinReply:
        # Wait for A's server to come up (it may start after us), then join.
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self._connect_timeout_s)
        except grpc.FutureTimeoutError:
            raise self._fail(f"could not reach party A within {self._connect_timeout_s:.0f} s "
                             "(not running, wrong address, or TLS refused)") from None
        try:
            reply = self._stub.Join(hello, timeout=self._connect_timeout_s + 5)
        except grpc.RpcError as exc:
            raise self._rpc_error("the join", exc) from None
        if not reply.ok:
            raise self._fail(reply.abort_reason)
        self._watcher = threading.Thread(target=self._watch, name="session-watch", daemon=True)
        self._watcher.start()
        # Only once the host sees our watch stream can it notice if we die.
        if not self._watch_started.wait(self._connect_timeout_s):
            raise self._fail("party A did not open the session's watch stream")
        if self.abort_reason is not None:
            raise SessionAborted(self.abort_reason)
        return reply

    def _watch(self) -> None:
        try:
            for event in self._stub.Watch(
                    session_pb2.WatchRequest(job_id=self.job_id, role=self.role)):
                self._watch_started.set()
                if event.kind == "abort":
                    self._fail(event.reason)
                    self._on_abort(event.reason)
                    return
                if event.kind == "finished":
                    return
        except grpc.RpcError as exc:
            if self._closing.is_set():
                return
            details = exc.details() if hasattr(exc, "details") else str(exc)
            reason = f"lost the connection to party A: {details}"
            self._fail(reason)
            self._watch_started.set()
            self._on_abort(reason)

    def exchange(self, step: str, **body) -> dict[str, session_pb2.Post]:
        if self.abort_reason is not None:
            raise SessionAborted(self.abort_reason)
        try:
            reply = self._stub.Exchange(self._post(step, body), timeout=self._stage_timeout_s + 5)
        except grpc.RpcError as exc:
            raise self._rpc_error(f"step {step!r}", exc) from None
        if not reply.ok:
            raise self._fail(reply.abort_reason)
        return dict(reply.posts)

    def abort(self, reason: str) -> None:
        """Tell A's session; if A is not up yet, wait a little for it (it may be starting)."""
        if self.abort_reason is None:
            self.abort_reason = reason
        try:
            grpc.channel_ready_future(self._channel).result(
                timeout=min(self._connect_timeout_s, 30))
        except grpc.FutureTimeoutError:
            return
        try:
            self._stub.Abort(session_pb2.AbortRequest(job_id=self.job_id, role=self.role,
                                                      reason=reason), timeout=5)
        except grpc.RpcError:
            pass  # A is gone already: nothing to tell

    def close(self) -> None:
        self._closing.set()
        self._channel.close()
