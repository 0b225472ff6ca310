"""The coordination session of a job, hosted by party A (``session.proto``).

The session does four things and nothing else; the heavy protocols (PSI, MPC) run
on their own channels:

- **join**: each party says who it is, which job and rules it runs and how big its
  input is; the host waits for all three, runs the agreement check (same job,
  same rules hash, circuit-breaker bounds) once, and gives every party the same
  answer — go, with everyone's sizes and a fresh session nonce, or stop, with one
  reason.
- **exchange**: the job's small steps (commitments, candidate count, unmatched
  totals, statement signatures, anchor receipt) as a barrier: each participant of
  a step posts a canonical-JSON payload and receives everyone's once all have
  posted.  Steps must come in the order of :data:`STEPS`; anything else aborts the
  job on every party.
- **abort**: any party can stop the job with a reason, which every party then
  reports.
- **watch**: a heartbeat stream from the host to B and H.  When a client's stream
  breaks (the process died), the host aborts the job; when the host dies, the
  clients' streams break and they stop.

Peer identity comes from mutual TLS: the host accepts a role only from the member
whose certificate (CN) the job names for it.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from engine.errors import JobError
from engine.job import session_pb2, session_pb2_grpc
from engine.job.tls import peer_member_id

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_PAYLOAD_BYTES = 1 << 20
HEARTBEAT_S = 1.0

# The job's steps, in order, with the roles that take part in each.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("commitments", ("A", "B")),
    # one per PSI pass: A has offered the pass's session before B connects to it
    ("psi_S1", ("A", "B")),
    ("psi_S2a", ("A", "B")),
    ("psi_S2b", ("A", "B")),
    ("psi_S3a", ("A", "B")),
    ("psi_S3b", ("A", "B")),
    ("candidates", ("A", "B", "H")),
    ("unmatched", ("A", "B")),
    ("statement", ("A", "B")),
    # everyone is still there: only now does A append, so a job that stops earlier
    # leaves nothing on the ledger
    ("anchor_ready", ("A", "B", "H")),
    ("anchored", ("A", "B", "H")),
    ("cosigned", ("A", "B", "H")),
)
ROLES = ("A", "B", "H")


class SessionAborted(JobError):
    """The job was stopped; ``reason`` is the same on every party."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_payload(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_payload(role: str, step: str, data: bytes) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionAborted(f"malformed payload from {role} at step {step!r}: {exc}") from None
    if not isinstance(value, dict):
        raise SessionAborted(f"malformed payload from {role} at step {step!r}: not an object")
    return value


@dataclass
class _StepState:
    name: str
    roles: tuple[str, ...]
    payloads: dict[str, bytes]


class SessionHost:
    """The host's state of one job session.  Thread-safe; gRPC handlers call into it."""

    def __init__(
        self,
        job_id: str,
        members: dict[str, str],
        agree: Callable[[dict[str, session_pb2.Hello]], str | None],
        *,
        steps: tuple[tuple[str, tuple[str, ...]], ...] = STEPS,
    ) -> None:
        self.job_id = job_id
        self.members = dict(members)
        self._agree = agree
        self._steps = list(steps)
        self._cond = threading.Condition()
        self._hellos: dict[str, session_pb2.Hello] = {}
        self._join_reply: session_pb2.JoinReply | None = None
        self._step_index = 0
        self._current = _StepState(*self._steps[0], payloads={}) if self._steps else None
        self._results: dict[str, dict[str, bytes]] = {}
        self._role_next: dict[str, int] = {}
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
                self._abort_locked(
                    f"{hello.role} joined job {hello.job_id!r} but the session is for "
                    f"job {self.job_id!r}")
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
                    self._abort_locked(
                        f"{', '.join(missing)} did not join within {timeout_s:.0f} s")
                    break
                self._cond.wait(remaining)
            if self.abort_reason is not None:
                return session_pb2.JoinReply(ok=False, abort_reason=self.abort_reason)
            assert self._join_reply is not None
            return self._join_reply

    # -- exchange -------------------------------------------------------------

    def post(self, role: str, step: str, payload: bytes, timeout_s: float) -> dict[str, bytes]:
        """Post ``role``'s payload for ``step``; return everyone's once all have posted.

        A role may post its next step early (it waits until the steps before it are
        done); any other step — one it has no part in, one it already posted, one it
        skipped to — aborts the job.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if self.abort_reason is not None:
                raise SessionAborted(self.abort_reason)
            expected = self._next_step_of(role)
            if expected is None or self._steps[expected][0] != step:
                wanted = repr(self._steps[expected][0]) if expected is not None \
                    else "nothing (its part is over)"
                self._abort_locked(f"{role} posted step {step!r} out of order; expected {wanted}")
                raise SessionAborted(self.abort_reason or "")
            if len(payload) > MAX_PAYLOAD_BYTES:
                self._abort_locked(f"{role} sent {len(payload)} bytes at step {step!r}; "
                                   f"the limit is {MAX_PAYLOAD_BYTES}")
                raise SessionAborted(self.abort_reason or "")
            self._role_next[role] = expected + 1
            while self._step_index < expected and self.abort_reason is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._abort_locked(f"step {step!r}: the steps before it did not finish "
                                       f"within {timeout_s:.0f} s")
                    break
                self._cond.wait(remaining)
            if self.abort_reason is not None:
                raise SessionAborted(self.abort_reason)
            current = self._current
            assert current is not None and current.name == step
            current.payloads[role] = payload
            if len(current.payloads) == len(current.roles):
                self._results[step] = dict(current.payloads)
                self._step_index += 1
                self._current = (_StepState(*self._steps[self._step_index], payloads={})
                                 if self._step_index < len(self._steps) else None)
                if self._current is None:
                    self.finished = True
                self._cond.notify_all()
            while step not in self._results and self.abort_reason is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = [r for r in current.roles if r not in current.payloads]
                    self._abort_locked(f"step {step!r}: {', '.join(missing)} did not answer "
                                       f"within {timeout_s:.0f} s")
                    break
                self._cond.wait(remaining)
            if self.abort_reason is not None:
                raise SessionAborted(self.abort_reason)
            return self._results[step]

    def _next_step_of(self, role: str) -> int | None:
        for index in range(self._role_next.get(role, 0), len(self._steps)):
            if role in self._steps[index][1]:
                return index
        return None

    # -- abort / watch ----------------------------------------------------------

    def _abort_locked(self, reason: str) -> None:
        if self.abort_reason is None and not self.finished:
            log.error("job %s aborted: %s", self.job_id, reason)
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
                # Not the member the job names: refused, without disturbing the job.
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
            payloads = self._host.post(request.role, request.step, request.payload,
                                       self._stage_timeout_s)
        except SessionAborted as exc:
            self._host.mark_informed(request.role)
            return session_pb2.PostReply(ok=False, abort_reason=exc.reason)
        return session_pb2.PostReply(ok=True, payloads=payloads)

    def Abort(self, request, context):
        self._check_identity(request.role, request.job_id, context)
        self._host.abort(f"party {request.role} stopped: {request.reason}")
        self._host.mark_informed(request.role)
        return session_pb2.AbortReply()

    def Watch(self, request, context):
        self._check_identity(request.role, request.job_id, context)
        role = request.role
        context.add_callback(lambda: self._host.watcher_gone(role))
        yield from self._host.watch(role)


# ---------------------------------------------------------------------------
# the parties' side


class HostLink:
    """Party A's own access to the session it hosts."""

    def __init__(self, host: SessionHost, role: str, stage_timeout_s: float,
                 connect_timeout_s: float) -> None:
        self._host = host
        self.role = role
        self._stage_timeout_s = stage_timeout_s
        self._connect_timeout_s = connect_timeout_s

    def join(self, hello: session_pb2.Hello) -> session_pb2.JoinReply:
        reply = self._host.join(hello, self._connect_timeout_s)
        if not reply.ok:
            raise SessionAborted(reply.abort_reason)
        return reply

    def exchange(self, step: str, payload: dict) -> dict[str, dict]:
        raw = self._host.post(self.role, step, encode_payload(payload), self._stage_timeout_s)
        return {role: decode_payload(role, step, data) for role, data in raw.items()}

    def abort(self, reason: str) -> None:
        self._host.abort(f"party {self.role} stopped: {reason}")

    @property
    def abort_reason(self) -> str | None:
        return self._host.abort_reason

    def close(self) -> None:
        pass


class RemoteLink:
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

    def exchange(self, step: str, payload: dict) -> dict[str, dict]:
        if self.abort_reason is not None:
            raise SessionAborted(self.abort_reason)
        try:
            reply = self._stub.Exchange(
                session_pb2.Post(job_id=self.job_id, role=self.role, step=step,
                                 payload=encode_payload(payload)),
                timeout=self._stage_timeout_s + 5)
        except grpc.RpcError as exc:
            raise self._rpc_error(f"step {step!r}", exc) from None
        if not reply.ok:
            raise self._fail(reply.abort_reason)
        return {role: decode_payload(role, step, data) for role, data in reply.payloads.items()}

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
