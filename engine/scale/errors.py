"""Errors of the scale-out (a kind of :class:`engine.errors.JobError`: the job stops)."""

from __future__ import annotations

from engine.errors import JobError


class WorkerError(JobError):
    """A bucket worker could not do its part: its range failed every try, its worker died
    more often than allowed, or the cluster could not be used.  ``diagnostics()`` names the
    worker, its range and what happened."""

    def __init__(self, message: str, *, worker: int | None = None,
                 buckets: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.worker = worker
        self.buckets = buckets

    def diagnostics(self) -> str:
        where = []
        if self.worker is not None:
            where.append(f"worker {self.worker}")
        if self.buckets is not None:
            where.append(f"buckets {self.buckets[0]}..{self.buckets[1] - 1}")
        return (", ".join(where) + ": " if where else "") + self.message

    def __str__(self) -> str:
        return self.diagnostics()


class ManifestError(WorkerError):
    """A worker manifest that does not hold: malformed, a signature that does not verify,
    or another job's, run's or partition's."""


class PeerRefused(WorkerError):
    """A worker refused its peer: a certificate, range, bucket or step the signed manifest
    does not allow.  Never retried: the job stops with the reason on every party."""


class PairLost(WorkerError):
    """The connection to the counterpart worker broke (it died or the network failed);
    the pair starts a new epoch and goes on with the buckets not done on both sides."""
