"""What a party's run is made of: its context, clock, abort watch, session endpoints.

Shared by the entry point (:mod:`engine.job.party`), the starter
(:mod:`engine.job.pipeline`) and the role objects (:mod:`engine.job.roles`), which import
it and never each other's importers.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from engine.errors import JobError
from engine.job import session_pb2_grpc
from engine.job.consortium import Consortium, Member
from engine.job.jobfile import Job
from engine.job.session import (
    RECOVERY_STEPS, STEPS, JobSessionServicer, RemoteLink, SessionHost,
)
from engine.job.tls import TlsIdentity, keepalive_options
from engine.names import JOB_STAGES
from engine.outputs import StageTime, stages_json
from engine.period import PeriodWindow
from engine.rules import Rules

log = logging.getLogger(__name__)

FAULT_ENV = "SETTLECHAIN_FAULT_AT"
"""Fault injection for the tests: a party whose environment names a stage here (or
``stage:event``, e.g. ``report:records``) SIGKILLs itself there, as if it had crashed."""

ABORT_GRACE_S = 5.0
"""After an abort, how long the main thread may take to unwind before the process exits."""
STATUS_FILE = "status"
WORK_FOLDER = ".work"


def fault_point(name: str) -> None:
    """Die like a crash when the tests ask for it here (:data:`FAULT_ENV`)."""
    if os.environ.get(FAULT_ENV) == name:
        log.warning("fault injection: killing this party at %s", name)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------
# the clock


@dataclass
class StageClock:
    """Wall seconds, items, waiting and peak memory per stage (summary.json ``stages``), and
    the progress a supervisor reads (the ``status`` file, one JSON object)."""

    status_path: Path | None = None
    listener: Callable[[dict[str, Any]], None] | None = None
    """Called with the status document at every change (the CLI's progress display)."""
    seconds: dict[str, float] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    current: str = "start"
    _entered: float = 0.0
    _left: bool = True
    _progress: dict[str, Any] = field(default_factory=dict)
    _last_write: float = 0.0
    _writing_allowed: bool = False

    def allow_status(self) -> None:
        """From now on the status file may be written (not into a settled job's folder)."""
        self._writing_allowed = True
        self._write(force=True)

    def enter(self, stage: str) -> None:
        self._memory(stage)
        self.current = stage
        self._entered = time.perf_counter()
        self._left = False
        self._progress = {}
        fault_point(stage)
        log.info("stage %s", stage)
        self._write(force=True)

    def leave(self, stage: str) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - self._entered
        self._left = True

    def waited(self, seconds: float) -> None:
        self.waiting[self.current] = self.waiting.get(self.current, 0.0) + seconds

    def count(self, stage: str, items: int) -> None:
        self.items[stage] = self.items.get(stage, 0) + int(items)

    def progress(self, stage: str, done: int, total: int, unit: str) -> None:
        elapsed = time.perf_counter() - self._entered
        eta = (elapsed / done * (total - done)) if done and total >= done else None
        self._progress = {"done": int(done), "total": int(total), "unit": unit,
                          "eta_s": None if eta is None else round(eta, 1)}
        self._write()

    def stage_time(self, stage: str) -> StageTime:
        """Seconds so far (a stage still running counts until now: the frozen clock of an
        output written during it)."""
        seconds = self.seconds.get(stage, 0.0)
        if stage == self.current and self._entered and not self._left:
            seconds += time.perf_counter() - self._entered
        return StageTime(seconds, self.items.get(stage, 0),
                         peak_memory_mib=self.peaks.get(stage),
                         waiting_seconds=self.waiting.get(stage, 0.0))

    def stages_json(self) -> dict[str, Any]:
        """The ``stages`` of summary.json, frozen now (the anchor is timed in anchor.json)."""
        self._memory(self.current)
        stages = {name: self.stage_time(name) for name in JOB_STAGES}
        total = StageTime(time.perf_counter() - self.started, self.items.get("ingest", 0))
        return stages_json(stages, total, max(self.peaks.values(), default=0.0))

    def finish(self, state: str, detail: str = "") -> None:
        self.current = state
        self._progress = {"detail": detail} if detail else {}
        self._write(force=True)

    def status(self) -> dict[str, Any]:
        return {"stage": self.current, **self._progress, "elapsed_s":
                round(time.perf_counter() - self.started, 1), "time": round(time.time(), 3)}

    def _write(self, force: bool = False) -> None:
        document = self.status()
        if self.listener is not None:
            self.listener(document)
        now = time.perf_counter()
        if not force and now - self._last_write < 0.5:
            return  # the file at most twice a second
        self._last_write = now
        if self.status_path is not None and self._writing_allowed:
            tmp = self.status_path.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps(document) + "\n", encoding="utf-8")
                os.replace(tmp, self.status_path)
            except OSError as exc:
                log.warning("cannot write %s: %s", self.status_path, exc)

    def _memory(self, next_stage: str) -> None:
        peak = peak_memory_mib()
        self.peaks[self.current] = max(self.peaks.get(self.current, 0.0), peak)
        if next_stage != self.current:
            reset_peak_memory()


def peak_memory_mib() -> float:
    """This process's peak resident memory (VmHWM).  Not ``ru_maxrss``: on Linux a child
    inherits its parent's maximum at fork, so a party started by a large process would
    report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_memory() -> bool:
    """Reset this process's VmHWM to its current resident size (``5`` to
    ``/proc/self/clear_refs``, Linux 4.0+).  False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class AbortWatch:
    """Ends the process if the job was aborted elsewhere and this party is stuck.

    The main thread normally notices an abort itself (its next session step fails); but it
    may be blocked in a protocol waiting for a peer that will never answer.  Then, after a
    grace period, the reason is written and the process exits with the job-stopped code.
    """

    def __init__(self, role: str, clock: StageClock) -> None:
        self.role = role
        self.clock = clock
        self.reason: str | None = None
        self._done = threading.Event()

    def __call__(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        threading.Thread(target=self._enforce, daemon=True).start()

    def _enforce(self) -> None:
        if self._done.wait(ABORT_GRACE_S):
            return
        log.error("the job was stopped: %s", self.reason)
        self.clock.finish("stopped", str(self.reason))
        print(f"settlechain party {self.role}: error: the job was stopped: {self.reason}",
              file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(JobError.exit_code)

    def finished(self) -> None:
        self._done.set()


# ---------------------------------------------------------------------------
# the context a role runs in


@dataclass
class PartyContext:
    consortium: Consortium
    job: Job
    rules: Rules
    role: str
    member: Member
    data_path: Path | None
    out_dir: Path
    work_dir: Path
    period: PeriodWindow
    clock: StageClock
    tls: TlsIdentity
    sm2_key: Any
    recover: bool = False
    joined: Callable[[], None] = lambda: None
    scale: Any = None
    """engine.scale.config.ScaleConfig: this operator's bucket workers (None: none)."""
    kernels_ready: Callable[[], None] = lambda: None
    """Waits until the numba kernels are loaded (engine.job.pipeline warms them up in a
    thread while the parties join): numba's default threading layer aborts the process
    when two threads launch parallel kernels at once."""

    def on_joined(self) -> None:
        """The session accepted this party: from now on it may write into its folder."""
        self.clock.allow_status()
        self.joined()

    def write_report(self, summary: dict[str, Any], statement: dict[str, Any], side: Any) -> None:
        """report.html (engine.report) from the side's buckets and records.parquet."""
        from engine.report import StatusFile, write_bucketed_report
        from engine.side import report_parts

        whole = StatusFile(self.out_dir / "records.parquet", self.out_dir / "quarantine.parquet")
        write_bucketed_report(self.out_dir, summary, whole, report_parts(side), self.rules,
                              statement=statement)


def start_host(ctx: PartyContext, extra_services, agree, checks) -> tuple[grpc.Server, SessionHost]:
    """A's gRPC server: the job session and the PSI service, mutual TLS."""
    job = ctx.job
    host = SessionHost(job.id, job.parties, agree,
                       steps=RECOVERY_STEPS if ctx.recover else STEPS, checks=checks)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="job"),
                         options=keepalive_options(job.timeouts.peer_silence_s))
    session_pb2_grpc.add_JobSessionServicer_to_server(
        JobSessionServicer(host, job.timeouts.connect_s, job.timeouts.stage_s), server)
    for add in extra_services:
        add(server)
    endpoint = ctx.member.grpc_listen  # B and H dial grpc_endpoint; the two differ behind NAT or a relay
    host_part, _, port = endpoint.rpartition(":")
    try:
        bound = server.add_secure_port(f"{host_part}:{port}", ctx.tls.server_credentials())
    except RuntimeError as exc:
        raise JobError(f"cannot listen on {endpoint}: {exc}") from None
    if bound == 0:
        raise JobError(f"cannot listen on {endpoint} (address in use?)")
    server.start()
    log.info("party A listening on %s", endpoint)
    return server, host


def connect_link(ctx: PartyContext, on_abort) -> tuple[RemoteLink, grpc.Channel]:
    """B's and H's link to A's session (and the channel PSI reuses)."""
    host_member = ctx.consortium.member(ctx.job.member_of("A"))
    channel = ctx.tls.channel(host_member.grpc_endpoint, host_member.id,
                              ctx.job.timeouts.peer_silence_s)
    link = RemoteLink(channel, ctx.job.id, ctx.role, ctx.job.timeouts.stage_s,
                      ctx.job.timeouts.connect_s, on_abort)
    return link, channel
