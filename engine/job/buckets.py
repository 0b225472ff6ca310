"""One bucket's PSI passes, in lockstep with the counterparty (docs/job.md, docs/scale-out.md).

:class:`BucketPasses` is the per-bucket work of an operator: read the bucket's records,
run the passes S1..S3b (docs/matching.md), each one PSI session, and keep what they found
(:meth:`engine.side.OperatorSide.save_psi`, also the bucket's resume checkpoint).  Two
places run it, with the same code:

- the party's own process (:meth:`engine.job.roles.OperatorRun.psi`, no workers): the
  lockstep goes through A's job session and the PSI through A's main server;
- a bucket worker (:mod:`engine.scale.worker`, a local process or a Ray actor of the
  operator's own cluster): the lockstep goes through the worker pair's own session
  (:mod:`engine.scale.pair`) and the PSI through the pair's own mutual-TLS channel.

The lockstep of one attempt at bucket ``b`` (steps named by
:func:`engine.job.session.bucket_step`)::

    per pass:  A offers the PSI session        (A's servicer)
               bucket:b:attempt:<pass>          both: PassReady (A's offer exists now)
               B runs the PSI client; A waits for the run
               bucket:b:attempt:<pass>:end      both: BucketDone ok / the kind of failure
    then:      bucket:b:attempt:done            both: the SM3 of what each side kept

A pass that failed on either side ends the attempt on both (neither records it); the
bucket is tried again with a fresh PSI session id, up to :data:`MAX_ATTEMPTS` times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.job import session_pb2
from engine.job.job_secrets import JobSecrets
from engine.job.session import SessionAborted, bucket_step
from engine.matching.elements import common_order
from engine.names import OPERATOR_ROLES, PASSES
from ledger_anchor.sm3 import sm3
from protocols.psi import ElementSet, PsiServicer, run_psi_client
from protocols.psi.errors import PeerAbortedError, PsiTimeoutError, TransportError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Tries of one bucket's passes before the job stops (a failed PSI session is retried)."""
RETRYABLE = (TransportError, PsiTimeoutError, PeerAbortedError)

Exchange = Callable[..., "dict[str, session_pb2.Post]"]
"""``exchange(step, **body)``: post this side's typed message, get both sides' posts."""


def psi_digest(path: Path) -> bytes:
    """The SM3 of a bucket's kept pass results (this side's own: A's and B's differ)."""
    return sm3(path.read_bytes())


AGREED_FILE = "psi.agreed"
_AGREED_LABEL = b"settlechain/bucket-kept/v1\n"


def _agreed_path(side: Any, b: int) -> Path:
    return side.psi_file(b).with_name(AGREED_FILE)


def kept_digest(side: Any, b: int) -> bytes | None:
    """What this side says of bucket ``b`` when a job resumes: the digest both sides
    derived at the bucket's ``done`` step, SM3 of (A's digest, B's digest) of what each
    kept, if this side still holds exactly what it kept then; else None.  A bucket is
    skipped when both sides say the same (each side's own digests differ, so comparing
    those would never skip anything)."""
    path = _agreed_path(side, b)
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) != 64 or not side.psi_done(b) or psi_digest(side.psi_file(b)) != raw[32:]:
        return None
    return raw[:32]


def forget_bucket(side: Any, b: int) -> None:
    """Drop what this side kept of bucket ``b`` (it runs again)."""
    for path in (side.psi_file(b), side.values_file(b), _agreed_path(side, b)):
        path.unlink(missing_ok=True)


@dataclass
class PsiPeer:
    """How this side reaches the counterparty's PSI: A offers sessions on its servicer, B
    runs the client over its channel (both of the job's main server, or of a worker pair)."""

    role: str
    servicer: PsiServicer | None = None
    channel: Any = None

    def offer(self, session_id: bytes, elements: ElementSet, timeout_s: float):
        if self.role == "A":
            assert self.servicer is not None
            return self.servicer.offer(session_id, elements, timeout_s)
        return None

    def run(self, offered, session_id: bytes, elements: ElementSet, timeout_s: float):
        if self.role == "A":
            return offered.result()
        return run_psi_client(self.channel, session_id, elements, timeout_s)


class _NoStage(AbstractContextManager):
    def __exit__(self, *exc):
        return False


@dataclass
class BucketPasses:
    """The passes of one side's buckets.  ``stage(name)`` times a job stage (the party's
    clock, or a worker's own tally); ``items`` counts PSI elements per stage."""

    side: Any                      # engine.side.OperatorSide
    role: str
    secrets: JobSecrets
    nonce: bytes
    exchange: Exchange
    psi: PsiPeer
    timeout_s: float
    stage: Callable[[str], AbstractContextManager] = lambda name: _NoStage()
    items: dict[str, int] = field(default_factory=lambda: {"psi_exact": 0, "psi_key": 0})

    def run(self, b: int) -> int:
        """All of bucket ``b``'s passes, tried up to :data:`MAX_ATTEMPTS` times; returns the
        attempts it took.  Raises :class:`SessionAborted` when every attempt failed."""
        error = None
        for attempt in range(MAX_ATTEMPTS):
            error = self.attempt(b, attempt)
            if error is None:
                return attempt + 1
            log.warning("bucket %d, attempt %d failed: %s", b, attempt + 1, error)
        raise SessionAborted(f"bucket {b}: the PSI failed {MAX_ATTEMPTS} times (last: {error})")

    def attempt(self, b: int, attempt: int) -> str | None:
        """One attempt at bucket ``b``'s passes; None when it succeeded on both sides, else
        what failed (each side's kind of failure)."""
        side = self.side
        matcher = side.matcher(b)
        done_items = {"psi_exact": 0, "psi_key": 0}
        for spec in PASSES:
            with self.stage(spec.job_stage):
                elements = matcher.build_pass(spec)
                session_id = self.secrets.psi_session_id(self.nonce, b, spec.name, attempt)
                element_set = ElementSet.from_fixed(elements.elements)
                error = ""
                local = None
                offered = self.psi.offer(session_id, element_set, self.timeout_s)
                self.exchange(bucket_step(b, attempt, spec.name),
                              pass_ready=session_pb2.PassReady(
                                  bucket=b, pass_name=spec.name, attempt=attempt,
                                  elements=len(elements)))
                try:
                    result = self.psi.run(offered, session_id, element_set, self.timeout_s)
                    local = result.local_indices
                except RETRYABLE as exc:
                    error = type(exc).__name__
                    log.warning("bucket %d pass %s: %s", b, spec.name, exc)
                ends = self.exchange(bucket_step(b, attempt, f"{spec.name}:end"),
                                     bucket_done=session_pb2.BucketDone(
                                         bucket=b, attempt=attempt, ok=not error, error=error))
                failed = [f"{r}: {ends[r].bucket_done.error}" for r in OPERATOR_ROLES
                          if not ends[r].bucket_done.ok]
                if failed:
                    return "; ".join(failed)
                ordered, ids = common_order(elements.elements, local, self.secrets.pair_key, b)
                matcher.record_pass(elements, ordered, ids)
                done_items[spec.job_stage] += len(elements)
        side.save_psi(matcher)
        digest = psi_digest(side.psi_file(b))
        dones = self.exchange(bucket_step(b, attempt, "done"), bucket_done=session_pb2.BucketDone(
            bucket=b, attempt=attempt, ok=True, digest=digest))
        agreed = sm3(_AGREED_LABEL + b"".join(bytes(dones[r].bucket_done.digest)
                                              for r in OPERATOR_ROLES))
        path = _agreed_path(side, b)
        tmp = path.with_name(AGREED_FILE + ".tmp")
        tmp.write_bytes(agreed + digest)
        tmp.replace(path)
        for stage, n in done_items.items():
            self.items[stage] = self.items.get(stage, 0) + n
        return None


__all__ = ["BucketPasses", "MAX_ATTEMPTS", "PsiPeer", "RETRYABLE", "forget_bucket", "kept_digest",
           "psi_digest"]
