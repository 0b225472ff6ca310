"""Supervising an operator's bucket workers, whatever runs them (local processes, Ray).

A :class:`Handle` is one worker as its executor sees it; :func:`start_all` launches them
and collects their offers; :func:`run_ranges` gives worker i range i of the manifest and
waits for all, starting a worker that died again (same node, same port, same
certificate: still the worker the manifest names) and giving it its range again, up to
:data:`MAX_RESTARTS` times per worker.  A worker that *fails* (its range failed every
try, or it refused its peer) is not restarted: the job stops with its reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.scale.errors import WorkerError
from engine.scale.worker import RangeResult, RangeTask, WorkerSetup

log = logging.getLogger(__name__)

MAX_RESTARTS = 2
"""Times one worker may die and be started again within a job."""
POLL_S = 0.05


@dataclass
class RunOutcome:
    result: RangeResult | None = None
    error: WorkerError | None = None
    died: str | None = None


class Handle:
    """One worker under an executor."""

    setup: WorkerSetup
    info: dict[str, Any]

    def launch(self) -> None:
        raise NotImplementedError

    def started(self, timeout_s: float) -> dict[str, Any]:
        """Wait for the worker's offer (endpoint, certificate SHA-256, node)."""
        raise NotImplementedError

    def submit(self, task: RangeTask) -> None:
        raise NotImplementedError

    def poll(self, timeout_s: float) -> RunOutcome | None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def relaunch(self) -> None:
        self.stop()
        self.launch()


def start_all(handles: list[Handle], timeout_s: float) -> list[dict[str, Any]]:
    for handle in handles:
        handle.launch()
    return [handle.started(timeout_s) for handle in handles]


def run_ranges(handles: list[Handle], tasks: list[RangeTask], *, start_timeout_s: float,
               stopped: Callable[[], str | None] = lambda: None,
               on_range_done: Callable[[RangeResult], None] = lambda r: None) -> list[RangeResult]:
    """Run ``tasks[i]`` on ``handles[i]``; see the module docstring."""
    for handle, task in zip(handles, tasks):
        handle.submit(task)
    results: dict[int, RangeResult] = {}
    restarts = [0] * len(tasks)
    pending = set(range(len(tasks)))
    while pending:
        reason = stopped()
        if reason is not None:
            raise WorkerError(f"the job was stopped: {reason}")
        for i in sorted(pending):
            outcome = handles[i].poll(POLL_S / max(1, len(pending)))
            if outcome is None:
                continue
            if outcome.result is not None:
                results[i] = outcome.result
                pending.discard(i)
                on_range_done(outcome.result)
                continue
            if outcome.error is not None:
                raise outcome.error
            restarts[i] += 1
            first, end = (tasks[i].signed["manifest"]["ranges"][tasks[i].range_index][k]
                          for k in ("first", "end"))
            if restarts[i] > MAX_RESTARTS:
                raise WorkerError(f"died {restarts[i]} times ({outcome.died}); not started "
                                  "again", worker=handles[i].setup.index, buckets=(first, end))
            log.warning("worker %s%d (buckets %d..%d) died (%s); starting it again (%d of %d)",
                        handles[i].setup.role, handles[i].setup.index, first, end - 1,
                        outcome.died, restarts[i], MAX_RESTARTS)
            before = dict(handles[i].info)
            handles[i].relaunch()
            info = handles[i].started(start_timeout_s)
            for key in ("endpoint", "cert_sha256"):
                if info.get(key) != before.get(key):
                    raise WorkerError(f"started again with {key} {info.get(key)!r}, but the "
                                      f"manifest has {before.get(key)!r}",
                                      worker=handles[i].setup.index, buckets=(first, end))
            handles[i].submit(tasks[i])
        time.sleep(0)  # let the pipes' threads run
    return [results[i] for i in range(len(tasks))]


def stop_all(handles: list[Handle]) -> None:
    for handle in handles:
        try:
            handle.stop()
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            log.warning("stopping worker %d: %s", handle.setup.index, exc)


__all__ = ["Handle", "MAX_RESTARTS", "RunOutcome", "run_ranges", "start_all", "stop_all"]
