"""One party's run of a private reconciliation job (DESIGN.md, "Data flow of one job").

``settlechain party --config CONSORTIUM --job JOB --as MEMBER [--data FILE] --out DIR``

Stages, in order (A and B do all of them; H only joins, computes in the MPC and
cosigns):

1. ``ingest``   read, validate, normalise and rate the party's billing export.
2. ``agree``    join A's session: same job, same rules hash, sizes within the
                circuit breaker — or every party stops with the same reason.
3. ``commit``   compute the SM3 Merkle commitment to the canonical records, sign it,
                and exchange it with the counterparty before any PSI message.
4. ``psi_exact`` pass S1 over all records; ``psi_key`` passes S2a..S3b over the rest
                (docs/matching.md), each a fresh PSI session bound to this run.
5. ``mpc``      the three-party evaluation of the S3 candidate pairs.
6. ``report``   exchange the unmatched totals, build and sign the settlement
                statement, write records.parquet, statement.json, report.html.
7. ``anchor``   A appends both commitments and the co-signed statement to the ledger
                in one transaction; every member checks it and cosigns the checkpoint.

A job that stops before stage 7 anchors nothing, so the same job id can simply be
run again.  Any failure on one party stops the others through the session (with
the failing party's reason); a party that dies is noticed by the others at once
through the session's watch stream.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from engine.errors import InputError, JobError
from engine.job import session_pb2, session_pb2_grpc
from engine.job.agreement import check_agreement
from engine.job.consortium import Consortium, Member, load_consortium
from engine.job.jobfile import Job, load_job
from engine.job.session import (
    PROTOCOL_VERSION, JobSessionServicer, RemoteLink, SessionAborted, SessionHost,
)
from engine.job.tls import TlsIdentity, keepalive_options
from engine.rules import Rules, load_rules
from ledger_anchor import canonical_entry_bytes, sm2
from ledger_anchor.sm3 import sm3

log = logging.getLogger(__name__)

FAULT_ENV = "SETTLECHAIN_FAULT_AT"
"""Fault injection for the tests: a party whose environment names a stage here
SIGKILLs itself when it enters that stage, as if it had crashed."""

ABORT_GRACE_S = 5.0
"""After an abort, how long the main thread may take to unwind before the process exits."""

#: summary.json stage of each PSI pass (docs/records.md: the passes over values, S1 and
#: S2, are ``psi_exact``; the key-only passes S3 are ``psi_key``), as in the reference.
PASS_STAGE = {"S1": "psi_exact", "S2a": "psi_exact", "S2b": "psi_exact", "S3a": "psi_key",
              "S3b": "psi_key"}


@dataclass
class StageClock:
    """Wall seconds and items per stage (summary.json ``stages``), and progress notes."""

    status_path: Path | None = None
    listener: Any = None
    """Called with (stage, detail) at every stage change (the CLI's progress display)."""
    seconds: dict[str, float] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    peaks: dict[str, float] = field(default_factory=dict)
    """Peak resident memory (MiB) while each stage ran (see :meth:`memory_stage`)."""
    _memory_stage: str = "start"
    _peak: float = 0.0

    def add(self, stage: str, seconds: float, items: int = 0) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.items[stage] = self.items.get(stage, 0) + items

    def memory_stage(self, stage: str) -> None:
        """From now on, peak memory counts towards ``stage``: the peak so far goes to the
        stage that ran until now, and the kernel's high-water mark is reset (Linux
        ``/proc/self/clear_refs``; where that is refused, each stage reports the peak
        since the process started)."""
        peak = peak_memory_mib()
        previous = self._memory_stage
        self.peaks[previous] = max(self.peaks.get(previous, 0.0), peak)
        self._peak = max(self._peak, peak)
        self._memory_stage = stage
        reset_peak_memory()

    def peak_mib(self) -> float:
        """The process's peak resident memory (MiB) since it started."""
        self.memory_stage(self._memory_stage)
        return self._peak

    def note(self, stage: str, detail: str = "") -> None:
        log.info("stage %s %s", stage, detail)
        self.memory_stage(stage)
        if os.environ.get(FAULT_ENV) == stage:
            # fault injection for the tests (engine.job.local.FAULT_ENV): die like a crash
            log.warning("fault injection: killing this party at stage %s", stage)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)
        if self.listener is not None:
            self.listener(stage, detail)
        if self.status_path is not None:
            tmp = self.status_path.with_suffix(".tmp")
            tmp.write_text(f"{stage}\t{detail}\t{time.time():.3f}\n", encoding="utf-8")
            os.replace(tmp, self.status_path)

    def timed(self, stage: str):
        clock = self

        class _Timer:
            def __enter__(self_inner):
                clock.note(stage)
                self_inner.t0 = time.perf_counter()
                return self_inner

            def __exit__(self_inner, *exc):
                clock.add(stage, time.perf_counter() - self_inner.t0)
                return False

        return _Timer()


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

    The main thread normally notices an abort itself (its next session step fails);
    but it may be blocked in a protocol waiting for a peer that will never answer.
    Then, after a grace period, the reason is printed and the process exits with
    the job-stopped exit code.
    """

    def __init__(self, role: str) -> None:
        self.role = role
        self.reason: str | None = None
        self._done = threading.Event()

    def __call__(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        threading.Thread(target=self._enforce, daemon=True).start()

    def _enforce(self) -> None:
        if self._done.wait(ABORT_GRACE_S):
            return
        print(f"settlechain party {self.role}: error: the job was stopped: {self.reason}",
              file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(JobError.exit_code)

    def finished(self) -> None:
        self._done.set()


@dataclass
class PartyRun:
    consortium: Consortium
    job: Job
    rules: Rules
    role: str
    member: Member
    data_path: Path | None
    out_dir: Path
    clock: StageClock
    tls: TlsIdentity
    sm2_key: Any = None


def psi_session_id(nonce: bytes, job_id: str, label: str) -> bytes:
    """The PSI session of one pass: bound to this run (A's fresh nonce), the job and the pass."""
    return sm3(b"settlechain/psi-session/v1\n" + nonce + job_id.encode() + b"\n"
               + label.encode())[:16]


def run_party(config_path: str | Path, job_path: str | Path, member_id: str,
              data_path: str | Path | None, out_dir: str | Path, *,
              on_stage: Any = None) -> dict[str, Any]:
    """Run this member's part of the job; returns its summary document."""
    consortium = load_consortium(config_path)
    job = load_job(job_path)
    role = job.role_of(member_id)
    member = consortium.member(member_id)
    if role in ("A", "B") and data_path is None:
        raise InputError(f"party {role} needs its billing export (--data)")
    if role == "H" and data_path is not None:
        raise InputError("the helper H holds no data; do not pass --data")
    rules = load_rules(job.rules_path)
    if job.disclosure is not None and job.disclosure != rules.disclosure:
        raise InputError("the job file's disclosure policy differs from the rules' (the policy "
                         "is part of the rules and of their hash)", file=str(job.path),
                         column="job.disclosure", expected=repr(rules.disclosure),
                         found=repr(job.disclosure))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = PartyRun(
        consortium=consortium, job=job, rules=rules, role=role, member=member,
        data_path=Path(data_path) if data_path is not None else None, out_dir=out,
        clock=StageClock(status_path=out / "status", listener=on_stage),
        tls=TlsIdentity.load(member.id, consortium.ca_cert, member.tls_cert, member.tls_key),
        sm2_key=sm2.load_private_key(member.sm2_key),
    )
    if rules.sm3_hash() != job.rules_sm3:
        # Still join: the others must stop with the same reason, which agreement gives.
        log.error("rules file %s has SM3 %s, the job expects %s", job.rules_path,
                  rules.sm3_hash(), job.rules_sm3)
    from engine.job.pipeline import run_pipeline  # heavy imports (polars, numba, MPyC)

    return run_pipeline(run)


def start_host(run: PartyRun, extra_services, *,
               rules_adopted: bool, settled_at: int | None = None) -> tuple[grpc.Server, SessionHost]:
    """A's gRPC server: the job session and the PSI service, mutual TLS."""
    job = run.job
    host = SessionHost(
        job.id, job.parties,
        lambda hellos: check_agreement(hellos, job_id=job.id, rules_sm3=job.rules_sm3,
                                       members=job.parties, rules=run.rules,
                                       rules_adopted=rules_adopted, settled_at=settled_at),
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="job"),
                         options=keepalive_options(job.timeouts.peer_silence_s))
    session_pb2_grpc.add_JobSessionServicer_to_server(
        JobSessionServicer(host, job.timeouts.connect_s, job.timeouts.stage_s), server)
    for add in extra_services:
        add(server)
    endpoint = run.member.grpc_endpoint
    host_part, _, port = endpoint.rpartition(":")
    try:
        bound = server.add_secure_port(f"{host_part}:{port}", run.tls.server_credentials())
    except RuntimeError as exc:
        raise JobError(f"cannot listen on {endpoint}: {exc}") from None
    if bound == 0:
        raise JobError(f"cannot listen on {endpoint} (address in use?)")
    server.start()
    log.info("party A listening on %s", endpoint)
    return server, host


def hello_of(run: PartyRun, input_rows: int, considered: int) -> session_pb2.Hello:
    return session_pb2.Hello(
        job_id=run.job.id, role=run.role, member_id=run.member.id,
        rules_sm3=run.rules.sm3_hash(), protocol_version=PROTOCOL_VERSION,
        input_rows=input_rows, considered_records=considered,
    )


def connect_link(run: PartyRun, on_abort) -> tuple[Any, grpc.Channel | None]:
    """B's and H's link to A's session (and the channel PSI reuses)."""
    host_member = run.consortium.member(run.job.member_of("A"))
    channel = run.tls.channel(host_member.grpc_endpoint, host_member.id,
                              run.job.timeouts.peer_silence_s)
    link = RemoteLink(channel, run.job.id, run.role, run.job.timeouts.stage_s,
                      run.job.timeouts.connect_s, on_abort)
    return link, channel


def sign_entry(run: PartyRun, entry: dict) -> bytes:
    return sm2.sign(run.sm2_key, canonical_entry_bytes(entry))


def verify_entry(run: PartyRun, member_id: str, entry: dict, signature_hex: str) -> None:
    """Raise :class:`SessionAborted` unless ``member_id`` signed ``entry``."""
    try:
        signature = bytes.fromhex(signature_hex)
        sm2.verify(run.consortium.member(member_id).sm2_public_key,
                   canonical_entry_bytes(entry), signature)
    except Exception as exc:  # noqa: BLE001 - any failure is a bad signature here
        raise SessionAborted(f"{member_id}'s signature on its {entry.get('kind')} does not "
                             f"verify: {exc}") from None
