"""The default bucket executor: a pool of local worker processes (no Ray).

Each worker is a process of its own (``multiprocessing`` with ``spawn``: a fresh
interpreter, nothing inherited from the party's threads or gRPC state) running a
:class:`~engine.scale.worker.BucketWorker`, driven over a pipe: ``start`` → its offer,
``run`` → its range's result, ``stop``.  A worker process that dies (killed, out of
memory) is started again on the same port and given its range again, up to
:data:`engine.scale.supervise.MAX_RESTARTS` times; its counterpart sees the pair's
connection break and waits for it (a new epoch).
"""

from __future__ import annotations

import logging
import multiprocessing
import traceback
from dataclasses import replace
from typing import Any

from engine.scale.errors import ManifestError, PeerRefused, WorkerError
from engine.scale.supervise import Handle, RunOutcome
from engine.scale.worker import BucketWorker, RangeResult, RangeTask, WorkerSetup

log = logging.getLogger(__name__)

_ERRORS = {cls.__name__: cls for cls in (WorkerError, PeerRefused, ManifestError)}


def _exit_with_parent(parent: int) -> None:
    """A worker outlives no party: when the party process is gone (killed; its pipe may
    not even close), the worker ends too."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _process_main(setup: WorkerSetup, conn, parent: int) -> None:
    _exit_with_parent(parent)
    worker = BucketWorker(setup)
    try:
        conn.send(("started", worker.start()))
    except BaseException as exc:  # noqa: BLE001 - reported to the party
        conn.send(("error", type(exc).__name__, _message(exc)))
        return
    while True:
        try:
            command = conn.recv()
        except EOFError:
            break
        if command[0] == "stop":
            break
        try:
            conn.send(("done", worker.run(command[1])))
        except BaseException as exc:  # noqa: BLE001 - reported to the party
            log.exception("worker %s%d failed", setup.role, setup.index)
            conn.send(("error", type(exc).__name__, _message(exc)))
    worker.stop()


def _message(exc: BaseException) -> str:
    diagnose = getattr(exc, "diagnostics", None)
    if callable(diagnose):
        return diagnose()
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class LocalHandle(Handle):
    """One worker process of the pool."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        self.info: dict[str, Any] = {}
        self._process = None
        self._conn = None

    def launch(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        import os

        process = context.Process(target=_process_main, args=(self.setup, child, os.getpid()),
                                  name=f"settlechain-worker-{self.setup.role}{self.setup.index}",
                                  daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent

    def started(self, timeout_s: float) -> dict[str, Any]:
        assert self._conn is not None and self._process is not None
        if not self._conn.poll(timeout_s):
            raise WorkerError(f"did not start within {timeout_s:.0f} s", worker=self.setup.index)
        try:
            message = self._conn.recv()
        except EOFError:
            raise WorkerError(f"died while starting (exit code {self._process.exitcode})",
                              worker=self.setup.index) from None
        if message[0] != "started":
            raise _ERRORS.get(message[1], WorkerError)(message[2], worker=self.setup.index)
        self.info = message[1]
        if self.setup.role == "A" and not self.setup.port:
            # a restarted worker must listen where the manifest says
            self.setup = replace(self.setup, port=int(self.info["port"]))
        return self.info

    def submit(self, task: RangeTask) -> None:
        assert self._conn is not None
        self._conn.send(("run", task))

    def poll(self, timeout_s: float) -> RunOutcome | None:
        assert self._conn is not None and self._process is not None
        try:
            ready = self._conn.poll(timeout_s)
        except (EOFError, OSError):
            ready = False
        if ready:
            try:
                message = self._conn.recv()
            except EOFError:
                return RunOutcome(died=f"exit code {self._process.exitcode}")
            if message[0] == "done":
                return RunOutcome(result=message[1])
            return RunOutcome(error=_ERRORS.get(message[1], WorkerError)(
                message[2], worker=self.setup.index))
        if not self._process.is_alive():
            return RunOutcome(died=f"exit code {self._process.exitcode}")
        return None

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            if self._process.is_alive() and self._conn is not None:
                self._conn.send(("stop",))
            self._process.join(5)
        except (OSError, BrokenPipeError):
            pass
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._process = None


def local_handles(setups: list[WorkerSetup]) -> list[Handle]:
    return [LocalHandle(setup) for setup in setups]


__all__ = ["LocalHandle", "RangeResult", "local_handles"]
