"""The Ray executor: an operator's bucket workers as actors on its own Ray cluster.

The only module of settlechain that imports Ray (an import-linter contract in
pyproject.toml keeps it so; install the ``settlechain[ray]`` extra).  Ray Core is used
inside one operator's cluster only — to place its workers on its nodes, start them, learn
that one died and start it again — and never between operators: each worker talks to its
counterpart over its own mutual-TLS gRPC channel (:mod:`engine.scale.pair`).

Placement: worker i goes to node i mod (alive nodes, in the order of their addresses),
pinned there (a hard node affinity), so that a worker started again after it died
listens on the same address and port the signed manifest names.  A's worker listens on
its node's address (the one ``ray start --node-ip-address`` gave).  Each worker
reserves one CPU of its node.  Environment variables ``SETTLECHAIN_*`` of the party go
to the workers (the tests' fault injection uses this).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from engine.scale.errors import WorkerError
from engine.scale.supervise import Handle, RunOutcome
from engine.scale.worker import BucketWorker, RangeTask, WorkerSetup

log = logging.getLogger(__name__)

NAMESPACE = "settlechain"
_ACTOR = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(BucketWorker)


def connect(address: str | None) -> list[dict[str, Any]]:
    """Join the operator's cluster as a driver; its alive nodes, ordered by address."""
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or "auto"
        env = {k: v for k, v in os.environ.items() if k.startswith("SETTLECHAIN_")}
        try:
            ray.init(address=target, namespace=NAMESPACE, log_to_driver=False,
                     configure_logging=False, runtime_env={"env_vars": env} if env else None)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise WorkerError(f"cannot join the Ray cluster at {target!r}: {exc}") from None
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
    if not nodes:
        raise WorkerError("the Ray cluster has no alive node with a CPU for a worker")
    return sorted(nodes, key=lambda n: (n["NodeManagerAddress"], n["NodeID"]))


def _unwrap(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class RayHandle(Handle):
    """One worker as a Ray actor pinned to a node."""

    def __init__(self, setup: WorkerSetup, node_id: str) -> None:
        self.setup = setup
        self.node_id = node_id
        self.info: dict[str, Any] = {}
        self._actor = None
        self._start = None
        self._run = None

    def launch(self) -> None:
        strategy = NodeAffinitySchedulingStrategy(node_id=self.node_id, soft=False)
        self._actor = _ACTOR.options(scheduling_strategy=strategy).remote(self.setup)
        self._start = self._actor.start.remote()

    def started(self, timeout_s: float) -> dict[str, Any]:
        try:
            self.info = ray.get(self._start, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise WorkerError(f"did not start within {timeout_s:.0f} s on Ray node "
                              f"{self.node_id[:12]} (a free CPU?)",
                              worker=self.setup.index) from None
        except ray.exceptions.RayActorError as exc:
            raise WorkerError(f"died while starting on Ray node {self.node_id[:12]}: {exc}",
                              worker=self.setup.index) from None
        except ray.exceptions.RayTaskError as exc:
            cause = _unwrap(exc)
            if isinstance(cause, WorkerError):
                raise cause from None
            raise WorkerError(f"could not start: {cause}", worker=self.setup.index) from None
        if self.setup.role == "A" and not self.setup.port:
            self.setup = replace(self.setup, port=int(self.info["port"]))
        return self.info

    def submit(self, task: RangeTask) -> None:
        self._run = self._actor.run.remote(task)

    def poll(self, timeout_s: float) -> RunOutcome | None:
        ready, _ = ray.wait([self._run], timeout=timeout_s)
        if not ready:
            return None
        try:
            return RunOutcome(result=ray.get(self._run))
        except ray.exceptions.RayActorError as exc:
            return RunOutcome(died=f"Ray actor died: {type(exc).__name__}")
        except ray.exceptions.RayTaskError as exc:
            cause = _unwrap(exc)
            if isinstance(cause, WorkerError):
                return RunOutcome(error=cause)
            return RunOutcome(error=WorkerError(f"failed: {cause}", worker=self.setup.index))

    def stop(self) -> None:
        if self._actor is None:
            return
        try:
            ray.get(self._actor.stop.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - it may be dead already
            pass
        ray.kill(self._actor)
        self._actor = None


def ray_handles(setups: list[WorkerSetup], address: str | None) -> list[Handle]:
    nodes = connect(address)
    handles: list[Handle] = []
    for setup in setups:
        node = nodes[setup.index % len(nodes)]
        host = node["NodeManagerAddress"]
        placed = replace(setup, listen_host=host, advertise_host=host,
                         node=f"ray:{node['NodeID'][:12]}@{host}")
        handles.append(RayHandle(placed, node["NodeID"]))
    log.info("Ray cluster: %d nodes; %d workers", len(nodes), len(handles))
    return handles


__all__ = ["RayHandle", "connect", "ray_handles"]
