"""A bucket worker: one process of an operator that runs the passes of a range of buckets.

A worker is started by its operator's party (:mod:`engine.scale.driver`), in a local
process (:mod:`engine.scale.local`) or as a Ray actor on a node of the operator's own
cluster (:mod:`engine.scale.ray_cluster`); the code here is the same for both and imports
nothing of Ray.  Its life:

1. :meth:`BucketWorker.start`: load its TLS identity; A's worker binds its gRPC server
   (PSI service and pair session, behind the :class:`~engine.scale.pair.PeerGate`) and
   says where it listens; each says the SHA-256 of its certificate.  The party puts these
   in its offer at the job session's ``workers`` step.
2. :meth:`BucketWorker.run` with a :class:`RangeTask`: verify the signed manifest (both
   SM2 signatures under the consortium's keys; this job, run and partition; this worker
   named for the range), then run the range's buckets with the counterpart worker in
   epochs (:mod:`engine.scale.pair`): a bucket whose PSI fails is tried again (up to
   :data:`engine.job.buckets.MAX_ATTEMPTS`), a lost pair starts a new epoch (up to
   :data:`MAX_EPOCHS`) that goes on with the buckets not yet kept by both sides.

The work folder (``<out>/.work/<job>``: the bucket files of ingest, the kept passes) must
be the same path on every node of the operator (a shared file system): the worker reads a
bucket's records from it and writes what the passes found back to it, where the party
reads them for the MPC and the outputs (docs/scale-out.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import time
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.job.buckets import BucketPasses, PsiPeer, forget_bucket, kept_digest
from engine.job.job_secrets import JobSecrets
from engine.job.session import SessionAborted
from engine.scale.errors import ManifestError, PairLost, PeerRefused, WorkerError
from engine.scale.manifest import SignedManifest

log = logging.getLogger(__name__)

MAX_EPOCHS = 4
"""Epochs of one worker pair (its first, and one after each lost connection) before the
range fails."""

FAULT_ENV = "SETTLECHAIN_WORKER_FAULT"
"""Fault injection for the tests: ``<role>:<bucket>:<step>`` (e.g. ``A:3:S2a``) SIGKILLs the
worker of that role when it is about to post that step of that bucket, once: the file
named by :data:`FAULT_ONCE_ENV` is created first, and a worker that finds it goes on."""
FAULT_ONCE_ENV = "SETTLECHAIN_WORKER_FAULT_ONCE"


def cert_sha256(pem: bytes) -> str:
    """Hex SHA-256 of the DER encoding of the first certificate in ``pem``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class WorkerSetup:
    """How a worker starts (picklable: it crosses to a process or a Ray node)."""

    index: int
    role: str                       # "A" or "B"
    member_id: str
    consortium: str                 # the consortium file (CA, members' SM2 keys)
    listen_host: str                # A: where the server binds
    port: int = 0                   # A: 0 = any free port (a restarted worker takes the same)
    advertise_host: str = ""        # A: the host B's worker dials (default: listen_host)
    tls_cert: str = ""              # default: the member's certificate and key
    tls_key: str = ""
    connect_timeout_s: float = 60.0
    stage_timeout_s: float = 600.0
    peer_silence_s: float = 10.0
    log_file: str = ""
    node: str = ""


@dataclass(frozen=True)
class RangeTask:
    """One range of buckets for a started worker."""

    signed: dict[str, Any]          # SignedManifest.to_json()
    range_index: int
    job_id: str
    session_nonce: bytes
    job_secret: bytes               # JobSecrets.secret (stays inside the operator)
    plan: Any                       # engine.side.SidePlan


@dataclass
class RangeResult:
    range_index: int
    worker: int
    run: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    attempts: int = 0
    epochs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    pid: int = 0
    node: str = ""


def _maybe_fault(role: str, step: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    want_role, _, rest = spec.partition(":")
    bucket, _, name = rest.partition(":")
    parts = step.split(":")  # bucket:<b>:<attempt>:<name>[:end]
    if want_role != role or len(parts) < 4 or parts[1] != bucket or ":".join(parts[3:]) != name:
        return
    marker = os.environ.get(FAULT_ONCE_ENV)
    if marker:
        try:
            with open(marker, "x", encoding="ascii") as once:
                once.write(f"{os.getpid()}\n")
        except FileExistsError:
            return
    log.warning("fault injection: killing worker (pid %d) at %s", os.getpid(), step)
    logging.shutdown()
    os.kill(os.getpid(), signal.SIGKILL)


class _Tally:
    """A worker's own stage clock: seconds and items per job stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        began = time.perf_counter()
        try:
            yield self
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began


class BucketWorker:
    """See the module docstring."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        self._server = None
        self._gate = None
        self._host = None
        self._psi = None
        self.endpoint = ""
        self.cert_sha256 = ""
        self._tls = None
        self._consortium = None

    # -- start ----------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Load the identity, bind A's server; what goes into the operator's offer."""
        import grpc

        from engine.job.consortium import load_consortium
        from engine.job.tls import TlsIdentity, keepalive_options
        from engine.scale import pair_pb2_grpc
        from engine.scale.pair import PairServicer, PeerGate
        from protocols.psi import PsiServicer

        setup = self.setup
        if setup.log_file:
            handler = logging.FileHandler(setup.log_file, encoding="utf-8")
            handler.setFormatter(logging.Formatter(
                f"%(asctime)s %(levelname)s worker {setup.role}{setup.index} %(name)s: %(message)s"))
            root = logging.getLogger()
            root.addHandler(handler)
            root.setLevel(logging.INFO)
        self._consortium = load_consortium(setup.consortium)
        member = self._consortium.member(setup.member_id)
        self._tls = TlsIdentity.load(member.id, self._consortium.ca_cert,
                                     Path(setup.tls_cert) if setup.tls_cert else member.tls_cert,
                                     Path(setup.tls_key) if setup.tls_key else member.tls_key)
        self.cert_sha256 = cert_sha256(self._tls.cert_chain)
        if setup.role == "A":
            self._gate = PeerGate(setup.connect_timeout_s)
            self._psi = PsiServicer()
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=16,
                                                            thread_name_prefix="worker"),
                                 interceptors=[self._gate],
                                 options=keepalive_options(setup.peer_silence_s))
            self._psi.add_to_server(server)
            pair_pb2_grpc.add_WorkerPairServicer_to_server(
                PairServicer(lambda: self._host, setup.connect_timeout_s), server)
            address = f"{setup.listen_host}:{setup.port}"
            try:
                port = server.add_secure_port(address, self._tls.server_credentials())
            except RuntimeError as exc:
                raise WorkerError(f"cannot listen on {address}: {exc}",
                                  worker=setup.index) from None
            if port == 0:
                raise WorkerError(f"cannot listen on {address} (address in use?)",
                                  worker=setup.index)
            server.start()
            self._server = server
            self.endpoint = f"{setup.advertise_host or setup.listen_host}:{port}"
            log.info("worker A%d listening on %s", setup.index, self.endpoint)
        return {"endpoint": self.endpoint, "cert_sha256": self.cert_sha256,
                "node": setup.node or socket.gethostname(), "pid": os.getpid(),
                "port": int(self.endpoint.rpartition(":")[2]) if self.endpoint else 0}

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=2).wait()
            self._server = None

    # -- run ------------------------------------------------------------------------

    def _verified(self, task: RangeTask):
        setup = self.setup
        assert self._consortium is not None
        signed = SignedManifest.from_json(task.signed)
        manifest = signed.manifest
        signed.verify({m.id: m.sm2_public_key for m in self._consortium.members})
        partition = task.plan.partition.fingerprint()
        manifest.check_run(job_id=task.job_id, session_nonce=task.session_nonce,
                           partition=partition, members=manifest.members)
        if manifest.members[setup.role] != setup.member_id:
            raise ManifestError(f"the worker manifest names {manifest.members[setup.role]!r} as "
                                f"{setup.role}; this worker belongs to {setup.member_id!r}")
        bucket_range = manifest.range(task.range_index)
        slot = bucket_range.workers[setup.role]
        if slot.cert_sha256 != self.cert_sha256:
            raise ManifestError(f"the worker manifest names certificate {slot.cert_sha256} for "
                                f"{setup.role}'s worker of {bucket_range.describe()}; this "
                                f"worker's is {self.cert_sha256}")
        if setup.role == "A" and slot.endpoint != self.endpoint:
            raise ManifestError(f"the worker manifest has A's worker of "
                                f"{bucket_range.describe()} at {slot.endpoint}; this worker "
                                f"listens on {self.endpoint}")
        return signed, bucket_range

    def run(self, task: RangeTask) -> RangeResult:
        """Run the task's range to the end; raises a :class:`WorkerError` (a
        :class:`PeerRefused` or :class:`ManifestError` when something is not in the
        manifest)."""
        from engine.side import OperatorSide

        setup = self.setup
        signed, bucket_range = self._verified(task)
        manifest_sm3 = signed.manifest.sm3()
        side = OperatorSide(task.plan, None)
        secrets = JobSecrets(job_id=task.job_id, secret=task.job_secret)
        result = RangeResult(range_index=bucket_range.index, worker=setup.index, pid=os.getpid(),
                             node=setup.node or socket.gethostname())
        tally = _Tally()
        items: dict[str, int] = {"psi_exact": 0, "psi_key": 0}
        where = {"worker": setup.index, "buckets": (bucket_range.first, bucket_range.end)}
        client = None
        if setup.role == "A":
            from engine.scale.pair import PairHost

            host = PairHost(signed.manifest, bucket_range, manifest_sm3, setup.stage_timeout_s)
            self._host = host
            assert self._gate is not None
            self._gate.allow(signed.manifest.members["B"],
                             bucket_range.workers["B"].cert_sha256,
                             f"B's worker of {bucket_range.describe()}")
        else:
            from engine.scale.pair import PairClient

            assert self._tls is not None
            channel = self._tls.channel(bucket_range.workers["A"].endpoint,
                                        signed.manifest.members["A"], setup.peer_silence_s)
            client = PairClient(channel, job_id=task.job_id, manifest_sm3=manifest_sm3,
                                bucket_range=bucket_range,
                                stage_timeout_s=setup.stage_timeout_s)
        try:
            for epoch_try in range(MAX_EPOCHS):
                own = {b: d for b in bucket_range.buckets()
                       if (d := kept_digest(side, b)) is not None}
                try:
                    if setup.role == "A":
                        epoch, skip = host.await_open(own, setup.connect_timeout_s)
                        exchange = host.link(task.job_id)
                        peer = PsiPeer("A", servicer=self._psi)
                    else:
                        skip = client.open(own, setup.connect_timeout_s)
                        epoch = client.epoch
                        exchange = client.exchange
                        peer = PsiPeer("B", channel=client._channel)
                    result.epochs += 1
                    for b in bucket_range.buckets():
                        if b not in skip:
                            forget_bucket(side, b)  # not kept by both: run it again
                    role = setup.role

                    def checked(step: str, **body):
                        _maybe_fault(role, step)
                        return exchange(step, **body)

                    passes = BucketPasses(
                        side=side, role=setup.role, secrets=secrets,
                        nonce=task.session_nonce + epoch, exchange=checked, psi=peer,
                        timeout_s=setup.stage_timeout_s, stage=tally.stage, items=items)
                    for b in bucket_range.buckets():
                        if b in skip:
                            if b not in result.skipped:
                                result.skipped.append(b)
                            continue
                        result.attempts += passes.run(b)
                        if b not in result.run:
                            result.run.append(b)
                    if setup.role == "A":
                        host.finish()
                    break
                except PairLost as exc:
                    log.warning("worker %s%d, %s: %s; a new epoch (%d of %d)", setup.role,
                                setup.index, bucket_range.describe(), exc.message,
                                epoch_try + 2, MAX_EPOCHS)
                    continue
                except PeerRefused:
                    raise
                except SessionAborted as exc:
                    raise WorkerError(exc.reason, **where) from None
            else:
                raise WorkerError(f"the pair lost its connection {MAX_EPOCHS} times", **where)
        finally:
            if client is not None:
                client.close()
        result.seconds = dict(tally.seconds)
        result.items = dict(items)
        log.info("worker %s%d: %s done (%d run, %d kept from before, %d epochs)", setup.role,
                 setup.index, bucket_range.describe(), len(result.run), len(result.skipped),
                 result.epochs)
        return result


__all__ = ["BucketWorker", "FAULT_ENV", "FAULT_ONCE_ENV", "MAX_EPOCHS", "RangeResult",
           "RangeTask", "WorkerSetup", "cert_sha256"]
