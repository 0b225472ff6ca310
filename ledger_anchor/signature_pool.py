"""Verify the author signatures of a batch on several cores.

Why: a gmssl verification is ~9 ms of pure Python that holds the GIL, and every
append verifies its authors' signatures, so with gmssl a batch of 100 entries costs
~1 s on one core however the rest of the append is tuned.  :class:`BatchVerifier`
spreads the signatures of one batch over worker processes and the calling thread.

What does not change: every signature is still checked by
:meth:`ledger_anchor.sm2.PublicKey.verify` with the same backend (for gmssl:
:meth:`~ledger_anchor.sm2.GmsslBackend.verify`, hardened), in a worker or in the
caller; the result is the set of signatures that failed with the backend's own
:class:`~ledger_anchor.errors.SignatureError` message, from which the log raises
exactly the error the serial path raises (the first failure in batch order).  The
log verifies the whole batch before it opens its write transaction.

How:

* The workers are ``python -P -c "...worker_main()"`` subprocesses of this
  package, talking over their stdin/stdout pipes (length-prefixed pickles; both ends
  are this module).  Not :mod:`multiprocessing`: its ``spawn`` start re-runs the
  caller's ``__main__`` script in every worker (a script without the ``if __name__ ==
  "__main__"`` guard would append again), ``fork`` is unsafe in a multi-threaded gRPC
  server, and ``ProcessPoolExecutor`` workers outlive a parent killed with SIGKILL.
* They start lazily, on the first batch with at least
  :attr:`ParallelVerification.gmssl_min_signatures` (16) gmssl signatures, or
  :attr:`~ParallelVerification.tongsuopy_min_signatures` (256) tongsuopy ones;
  importing this module, opening a ledger, reading and single appends start nothing.
  They are reused by later batches and stopped by :meth:`BatchVerifier.close`
  (``TransparencyLog.close``), or at interpreter exit for a log never closed.
* No orphans: a worker exits when its request pipe reaches end-of-file -- the parent
  holds the only write end, which the kernel closes however the parent dies -- and,
  as a second guard (a child forked from the parent would hold a copy of that end),
  when its parent process id changes.  Workers ignore SIGINT (a Ctrl-C reaches the
  whole process group; the parent decides).
* Scheduling: the batch is cut into contiguous chunks handed out in batch order
  (guided: large first, small at the end); each worker holds up to two chunks so it
  never waits for the caller, and the calling thread verifies chunks itself between
  looking for answers, so ``cores - 1`` workers use every core.  A worker gets
  chunks only once it has said it is ready, so the batch that starts the workers is
  not held up by their start.  After a failure no new chunk is handed out, so a bad
  batch costs little more than its bad signature; every chunk already handed out is
  finished, so all signatures before the first failure are verified and the
  reported failure is the one the serial path reports.
* Thread safety: one batch at a time uses the workers (a lock); the log's threads
  (e.g. the gRPC service's workers) may call :meth:`BatchVerifier.verify` at once.
* Failures of the machinery never weaken a check: a worker that dies or answers
  with an unexpected error has its chunks verified by the caller (the workers are
  then restarted on the next batch); if workers cannot start (three in a row die
  before they are ready), this log verifies serially from then on and says so.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

from ledger_anchor.errors import ConfigError, SignatureError
from ledger_anchor.sm2 import BACKEND_NAMES, SM2P256V1, GmsslBackend, PublicKey, TongsuoBackend, get_backend

log = logging.getLogger(__name__)

#: Chunks a worker holds at once (one being verified, one waiting in its pipe).
_DEPTH = 2
_MAX_CHUNK = 64
_HEADER = 8
_STOP_TIMEOUT_S = 5.0
_ORPHAN_POLL_S = 0.5
#: Workers in a row that die before they are ready, after which a log stays serial.
_MAX_EARLY_EXITS = 3


@dataclass(frozen=True)
class ParallelVerification:
    """When the signatures of a batch are verified in worker processes.

    ``workers``: worker processes besides the calling thread; ``None`` = usable cores
    minus one (1 on this 2-core machine; 0 on one core); 0 = always serial.

    ``gmssl_min_signatures`` / ``tongsuopy_min_signatures``: a batch goes to the
    workers when it has at least this many signatures of that backend (``None``: that
    backend never does); smaller batches are verified serially in the calling thread
    and never start a worker.  Starting a worker costs ~0.1 s of CPU on another core
    and ~25 MiB, so the thresholds are about that much serial work: 16 gmssl
    verifications (~9 ms each), 256 tongsuopy ones (~0.3 ms each).  Measured gains and
    the crossover: bench/RESULTS-ledger.md.
    """

    workers: int | None = None
    gmssl_min_signatures: int | None = 16
    tongsuopy_min_signatures: int | None = 256

    def __post_init__(self) -> None:
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise ConfigError(f"parallel verification workers: expected None or an integer >= 0, "
                              f"found {self.workers!r}")
        for name in BACKEND_NAMES:
            value = getattr(self, f"{name}_min_signatures")
            if value is not None and (not isinstance(value, int) or value < 2):
                raise ConfigError(f"parallel verification {name}_min_signatures: expected None or an "
                                  f"integer >= 2, found {value!r}")

    def min_signatures(self, backend_name: str | None) -> int | None:
        """The threshold for ``backend_name`` (None: never in workers)."""
        if backend_name not in BACKEND_NAMES:
            return None
        return getattr(self, f"{backend_name}_min_signatures")

    def worker_count(self) -> int:
        if self.workers is not None:
            return self.workers
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
        return max(0, cores - 1)


#: Never use worker processes.
SERIAL = ParallelVerification(workers=0)


@dataclass(frozen=True)
class SignatureCheck:
    """One signature to verify: ``key`` must have signed ``message``."""

    key: PublicKey
    message: bytes
    signature: bytes


def verify_serially(checks: Sequence[SignatureCheck]) -> dict[int, str]:
    """The serial path: {index: SignatureError message} of the first failure, or {}."""
    for index, check in enumerate(checks):
        message = _verify_one(check.key, check.message, check.signature)
        if message is not None:
            return {index: message}
    return {}


def _verify_one(key: PublicKey, message: bytes, signature: bytes) -> str | None:
    try:
        key.verify(message, signature)
    except SignatureError as exc:
        return str(exc)
    return None


def _standard_backend_name(key: PublicKey) -> str | None:
    """The name a worker can rebuild ``key``'s backend from (None for a non-standard one)."""
    backend = key.backend
    if isinstance(backend, (GmsslBackend, TongsuoBackend)) and backend.curve == SM2P256V1:
        return backend.name
    return None


# ---------------------------------------------------------------------------
# Framing: 8-byte big-endian length, then a pickle (both ends are this module)


class _WorkerGone(Exception):
    """A worker's pipe closed or carried something that is not a frame."""


def _write_frame(fd: int, value: object) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(len(payload).to_bytes(_HEADER, "big") + payload)
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, remaining = [], size
    while remaining:
        part = os.read(fd, min(remaining, 1 << 20))
        if not part:
            if remaining == size:
                return None
            raise _WorkerGone("pipe closed in the middle of a frame")
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _read_frame(fd: int) -> object | None:
    """The next value, or None at end-of-file."""
    header = _read_exactly(fd, _HEADER)
    if header is None:
        return None
    payload = _read_exactly(fd, int.from_bytes(header, "big"))
    if payload is None:
        raise _WorkerGone("pipe closed after a frame header")
    return pickle.loads(payload)


# ---------------------------------------------------------------------------
# The caller's side


class _Worker:
    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.requests = process.stdin.fileno()  # type: ignore[union-attr]
        self.responses = process.stdout.fileno()  # type: ignore[union-attr]
        self.ready = False
        self.outstanding: collections.deque[tuple[int, int]] = collections.deque()


def _stop_processes(processes: list[subprocess.Popen]) -> None:
    """Close the workers' request pipes (they exit at end-of-file), then reap them."""
    for process in processes:
        try:
            process.stdin.close()  # type: ignore[union-attr]
        except OSError:  # pragma: no cover - already gone
            pass
    for process in processes:
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - a worker stuck in a verification
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
    processes.clear()


class _StartFailed(Exception):
    pass


class BatchVerifier:
    """Verifies the signatures of a batch, in parallel when the batch is large enough.

    One per :class:`~ledger_anchor.log.TransparencyLog`; thread-safe; :meth:`close`
    stops the workers (idempotent).
    """

    def __init__(self, config: ParallelVerification | None = None) -> None:
        self.config = config or ParallelVerification()
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._processes: list[subprocess.Popen] = []  # the finaliser's view of the workers
        self._owner_pid = os.getpid()
        self._closed = False
        self._unavailable: str | None = None
        self._early_exits = 0  # workers in a row that died before they were ready
        self._finalizer = weakref.finalize(self, _stop_processes, self._processes)

    # -- public -------------------------------------------------------------

    def verify(self, checks: Sequence[SignatureCheck]) -> dict[int, str]:
        """{index: SignatureError message} of failed checks; {} when all verify.

        Every check before the smallest failed index has been verified (and passed);
        checks after it may not have been verified.  Serially, exactly as
        :func:`verify_serially`, unless the batch qualifies for the workers.
        """
        if not self._wants_workers(checks):
            return verify_serially(checks)
        with self._lock:
            if self._closed or self._unavailable is not None:
                return verify_serially(checks)
            try:
                workers = self._start()
            except _StartFailed as exc:
                self._unavailable = str(exc)
                log.warning("parallel signature verification unavailable, verifying serially: %s", exc)
                return verify_serially(checks)
            return self._verify_with(workers, checks)

    @property
    def running_workers(self) -> list[int]:
        """Process ids of the running workers (empty before the first large batch and after close)."""
        return [process.pid for process in self._processes]

    @property
    def unavailable(self) -> str | None:
        """Why this verifier stays serial for good (workers could not start), or None."""
        return self._unavailable

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop()

    # -- deciding and starting ----------------------------------------------

    def _wants_workers(self, checks: Sequence[SignatureCheck]) -> bool:
        if len(checks) < 2 or self.config.worker_count() < 1:
            return False
        if os.getpid() != self._owner_pid:  # a forked child does not own these workers
            return False
        thresholds = [self.config.min_signatures(name)
                      for name in {_standard_backend_name(check.key) for check in checks}]
        return None not in thresholds and len(checks) >= max(thresholds)  # type: ignore[type-var]

    def _start(self) -> list[_Worker]:
        if self._workers:
            return self._workers
        # This very package, whatever the caller's sys.path or working directory (-P:
        # the working directory is not put first on the worker's path).
        command = [sys.executable, "-P", "-c",
                   f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
                   "from ledger_anchor.signature_pool import worker_main; raise SystemExit(worker_main())"]
        if not sys.executable:
            raise _StartFailed("no Python executable (sys.executable is empty)")
        try:
            for _ in range(self.config.worker_count()):
                process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True)
                self._processes.append(process)
                self._workers.append(_Worker(process))
        except OSError as exc:
            self._stop()
            raise _StartFailed(f"cannot start a worker process: {exc}") from None
        log.debug("started %d signature verification workers: %s", len(self._workers), self.running_workers)
        return self._workers

    def _stop(self) -> None:
        self._workers.clear()
        _stop_processes(self._processes)

    # -- one batch ----------------------------------------------------------

    def _verify_with(self, workers: list[_Worker], checks: Sequence[SignatureCheck]) -> dict[int, str]:
        batch = _Batch(checks, participants=len(workers) + 1)
        live = list(workers)
        try:
            while True:
                if not batch.stopped:
                    for worker in list(live):
                        # Not before it is ready: meanwhile the caller verifies alone, so
                        # a cold start never makes a batch slower than the serial path.
                        while worker.ready and len(worker.outstanding) < _DEPTH and batch.has_next():
                            chunk = batch.next_chunk()
                            worker.outstanding.append(chunk)
                            if not self._send(worker, batch, chunk):
                                self._lose(worker, live, batch)
                                break
                self._collect(live, batch, timeout=0)
                if batch.verify_own_step():
                    continue
                if not any(worker.outstanding for worker in live):
                    if batch.stopped or not batch.has_next():
                        break
                    continue  # every worker was lost: the caller takes the rest
                self._collect(live, batch, timeout=None)
        except BaseException:
            self._stop()  # answers may still be in flight: never reuse these pipes
            raise
        if len(live) < len(workers):
            self._stop()  # restarted on the next large batch
        return batch.failures

    def _send(self, worker: _Worker, batch: _Batch, chunk: tuple[int, int]) -> bool:
        start, end = chunk
        items = [(_standard_backend_name(check.key), check.key.raw, check.message, check.signature)
                 for check in batch.checks[start:end]]
        try:
            _write_frame(worker.requests, (start, items))
        except OSError:
            return False
        return True

    def _collect(self, live: list[_Worker], batch: _Batch, timeout: float | None) -> None:
        waiting = {worker.responses: worker for worker in live if worker.outstanding or not worker.ready}
        if not waiting:
            return
        for fd in wait(list(waiting), timeout):
            worker = waiting[fd]
            try:
                answer = _read_frame(fd)
                if answer is None:
                    raise _WorkerGone("end of file")
                self._accept(worker, batch, answer)
            except (_WorkerGone, OSError, pickle.UnpicklingError, ValueError, TypeError, EOFError) as exc:
                if not worker.ready:
                    self._early_exits += 1
                    log.warning("signature verification worker %d exited before it was ready (%s)",
                                worker.process.pid, exc)
                    if self._early_exits >= _MAX_EARLY_EXITS:
                        self._unavailable = f"{self._early_exits} workers in a row exited before they were ready"
                        log.warning("parallel signature verification unavailable, verifying serially: %s",
                                    self._unavailable)
                else:
                    log.warning("signature verification worker %d failed (%s); its signatures are "
                                "verified here", worker.process.pid, exc)
                self._lose(worker, live, batch)

    def _accept(self, worker: _Worker, batch: _Batch, answer: object) -> None:
        if not worker.ready:
            if answer != ("ready", worker.process.pid):
                raise _WorkerGone(f"expected a ready message, found {answer!r:.80}")
            worker.ready = True
            self._early_exits = 0
            return
        if not worker.outstanding:
            raise _WorkerGone("an answer nobody asked for")
        start, end = worker.outstanding[0]
        if not (isinstance(answer, tuple) and len(answer) == 3 and answer[0] == start):
            raise _WorkerGone(f"expected the answer for the chunk at {start}, found {answer!r:.80}")
        _, status, payload = answer
        worker.outstanding.popleft()
        if status == "ok" and isinstance(payload, list) and len(payload) <= end - start:
            batch.record(start, end, payload)
        else:  # an unexpected error in the worker: verify here, where it surfaces as in the serial path
            log.warning("signature verification worker %d: %s", worker.process.pid,
                        payload if status == "error" else f"malformed answer {answer!r:.80}")
            batch.give_back(start, end)

    def _lose(self, worker: _Worker, live: list[_Worker], batch: _Batch) -> None:
        live.remove(worker)
        for start, end in worker.outstanding:
            batch.give_back(start, end)
        worker.outstanding.clear()


class _Batch:
    """The chunks of one batch, handed out in order, and the failures found so far."""

    def __init__(self, checks: Sequence[SignatureCheck], participants: int) -> None:
        self.checks = checks
        self.participants = participants
        self.failures: dict[int, str] = {}
        self._next = 0
        self._given_back: collections.deque[tuple[int, int]] = collections.deque()
        self._own: collections.deque[int] = collections.deque()

    @property
    def stopped(self) -> bool:
        return bool(self.failures)

    def has_next(self) -> bool:
        return not self.stopped and self._next < len(self.checks)

    def next_chunk(self) -> tuple[int, int]:
        remaining = len(self.checks) - self._next
        size = max(1, min(_MAX_CHUNK, math.ceil(remaining / (2 * self.participants))))
        chunk = (self._next, self._next + size)
        self._next += size
        return chunk

    def record(self, start: int, end: int, results: list[str | None]) -> None:
        for offset, message in enumerate(results):
            if message is not None:
                self.failures[start + offset] = message
                return
        if len(results) != end - start:
            self.give_back(start + len(results), end)  # pragma: no cover - a worker stops only at a failure

    def give_back(self, start: int, end: int) -> None:
        """A chunk handed out but not verified: the caller verifies it, even after a failure
        (it precedes every chunk not yet handed out)."""
        self._given_back.append((start, end))

    def verify_own_step(self) -> bool:
        """Verify one signature in the calling thread; False when there is nothing to do here."""
        if not self._own:
            if self._given_back:
                self._own.extend(range(*self._given_back.popleft()))
            elif self.has_next():
                self._own.extend(range(*self.next_chunk()))
            else:
                return False
        index = self._own.popleft()
        if self.failures and index > min(self.failures):
            self._own.clear()  # after a failure found elsewhere: not needed
            return True
        check = self.checks[index]
        message = _verify_one(check.key, check.message, check.signature)
        if message is not None:
            self.failures[index] = message
            self._own.clear()  # the rest of this chunk comes after the failure
        return True


# ---------------------------------------------------------------------------
# The worker's side


def _exit_when_orphaned(parent: int) -> None:
    event = threading.Event()
    while not event.wait(_ORPHAN_POLL_S):
        if os.getppid() != parent:
            os._exit(3)


def worker_main() -> int:
    """Serve chunks on stdin/stdout until end-of-file (the parent closed or died)."""
    try:
        return _serve()
    except (BrokenPipeError, _WorkerGone):  # the parent went away mid-answer or mid-request
        return 0


def _serve() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, responses = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # a stray print goes to stderr, never into the answers
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    _write_frame(responses, ("ready", os.getpid()))
    keys: dict[tuple[str, bytes], PublicKey] = {}
    while True:
        request = _read_frame(requests)
        if request is None:
            return 0
        start, items = request  # type: ignore[misc]
        try:
            results: list[str | None] = []
            for backend_name, raw, message, signature in items:
                key = keys.get((backend_name, raw))
                if key is None:
                    if len(keys) > 1024:
                        keys.clear()
                    key = keys[(backend_name, raw)] = PublicKey(raw, get_backend(backend_name))
                result = _verify_one(key, message, signature)
                results.append(result)
                if result is not None:
                    break
            answer: tuple[int, str, object] = (start, "ok", results)
        except Exception:  # noqa: BLE001 - reported to the parent, which verifies the chunk itself
            answer = (start, "error", traceback.format_exc(limit=5))
        _write_frame(responses, answer)
