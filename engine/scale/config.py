"""How one operator runs its buckets: in its own process, a local pool, or its Ray cluster.

This is the operator's own deployment choice (``settlechain party --workers N --executor
local|ray …``), not part of the job file: each operator decides for its side, and the
two offers decide the number of worker pairs at the job session's ``workers`` step
(docs/scale-out.md).  Light module: nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InputError

EXECUTORS = ("local", "ray")
MAX_WORKERS = 256


@dataclass(frozen=True)
class ScaleConfig:
    workers: int = 0
    """Bucket workers this operator offers; 0: the buckets run in the party's own process."""
    executor: str = "local"
    """``local``: a pool of local processes (the default; nothing of Ray is imported);
    ``ray``: actors on the operator's own Ray cluster (the ``settlechain[ray]`` extra)."""
    ray_address: str | None = None
    """The operator's Ray cluster (``ray start --head`` prints it); None: ``RAY_ADDRESS``
    or ``auto``."""
    listen_host: str | None = None
    """Where A's workers listen (local pool; default: the host of the member's gRPC
    endpoint).  On Ray each worker listens on its node's address."""
    ports: tuple[int, ...] = ()
    """A's workers' ports, one per worker (for firewalls); empty: any free port."""
    worker_certs: str | None = None
    """A folder with ``worker-<i>.crt`` and ``.key`` per worker (``settlechain keys worker``);
    None: every worker uses the member's own TLS certificate."""

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or \
                not 0 <= self.workers <= MAX_WORKERS:
            raise InputError("bad number of bucket workers", column="--workers",
                             expected=f"0..{MAX_WORKERS}", found=repr(self.workers))
        if self.executor not in EXECUTORS:
            raise InputError("unknown executor", column="--executor",
                             expected=" | ".join(EXECUTORS), found=repr(self.executor))
        if self.ports and len(self.ports) != self.workers:
            raise InputError("one port per worker", column="--worker-ports",
                             expected=f"{self.workers} ports", found=repr(self.ports))
        if any(not 0 < p < 65536 for p in self.ports) or len(set(self.ports)) != len(self.ports):
            raise InputError("ports must be distinct, 1..65535", column="--worker-ports",
                             found=repr(self.ports))
        if self.executor == "local" and self.ray_address:
            raise InputError("--ray-address needs --executor ray", column="--ray-address",
                             found=repr(self.ray_address))


def parse_ports(text: str | None) -> tuple[int, ...]:
    """``7600,7601`` or ``7600-7603``."""
    if not text:
        return ()
    try:
        if "-" in text:
            low, high = (int(x) for x in text.split("-", 1))
            return tuple(range(low, high + 1))
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InputError("ports as 7600,7601 or 7600-7603", column="--worker-ports",
                         found=repr(text)) from None
