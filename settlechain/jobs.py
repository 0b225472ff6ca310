"""Running parties: one party of a job (:func:`run_party`), or a whole job on this machine
(:func:`run_local_job`).

- :func:`run_party` is :func:`engine.job.party.run_party` (``settlechain party``): this
  member's part of a job, in this process, with a progress callback;
- :func:`run_local_job` drives :class:`engine.job.local.LocalJob` (what ``settlechain
  demo`` and the integration tests use): a fresh consortium with the rules adopted by
  vote (or the one given), a job file, and the three parties as separate processes over
  mutual-TLS gRPC on loopback.

Both return the parties' outputs as :mod:`settlechain.outputs` objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Required, TypedDict, cast

if TYPE_CHECKING:
    from engine.job.local import LocalJob

    from settlechain.outputs import HelperOutputs, OperatorOutputs

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class Status(TypedDict, total=False):
    """The status document of a party (its ``status`` file, docs/job.md), as handed to an
    ``on_status`` callback at every change."""

    stage: Required[str]
    """The stage running (``agree``, ``ingest``, ``commit``, ``psi_exact``, ``psi_key``,
    ``mpc``, ``report``, ``anchor``), or the end: ``done``, ``stopped``, ``failed``;
    ``starting`` before a party of a local job wrote its first status."""
    done: int
    """Progress within the stage: items done so far ..."""
    total: int
    """... of this many ..."""
    unit: str
    """... counted in these units (``rows``, ``elements``, ``buckets``, ``pairs``)."""
    eta_s: float | None
    """Estimated seconds left in the stage (None until something is done)."""
    elapsed_s: float
    """Seconds since the party started."""
    time: float
    """Unix time of the document."""
    detail: str
    """Why the job stopped or failed (with ``stopped`` / ``failed``)."""


def _shielded(on_status: Callable[[Status], None]) -> Callable[[Status], None]:
    """The callback, such that an error in it is logged instead of stopping the job (in
    :func:`run_party`, on all three parties)."""
    failures = [0]

    def call(status: Status) -> None:
        try:
            on_status(status)
        except Exception:  # noqa: BLE001 - the integrator's callback must not stop a job
            failures[0] += 1
            if failures[0] == 1:
                log.exception("the on_status callback failed (the job goes on; further "
                              "failures are counted, not logged)")

    return call


def run_party(config: PathLike, job: PathLike, member: str, *, out: PathLike,
              data: PathLike | None = None, on_status: Callable[[Status], None] | None = None,
              recover: bool = False) -> OperatorOutputs | HelperOutputs:
    """Run ``member``'s part of the job in ``job`` (a job file, ``settlechain job init``)
    with the consortium file ``config``, in this process; return its outputs from ``out``.

    ``data``: the billing export (operators A and B; the helper H takes none).
    ``on_status(status)``: called at every change of the party's :class:`Status` (stage,
    progress within it, estimated time left), from the party's threads: keep it quick.
    An exception in it is logged and does not stop the job.  ``recover``: rebuild the
    outputs of a job already settled (all three parties with ``recover``).

    The party logs through :mod:`logging` (logger names ``engine.*``, ``protocols.*``,
    ``ledger_anchor.*``, ``governance.*``); configure handlers as you like
    (:class:`settlechain.JsonFormatter` gives the ``--log-format json`` lines).

    Raises :class:`~engine.errors.InputError` (bad input or configuration on this party:
    exit code 2 of ``settlechain party``) or :class:`~engine.errors.JobError` (the job
    was stopped: a peer refused, failed or vanished; exit code 3), each with
    ``diagnostics()``.  Like ``settlechain party``, it ends the process with exit code 3
    when the job is stopped elsewhere while this party stays blocked in a protocol for
    more than 5 s: run it in a process of its own where that matters.
    """
    from engine.job.party import run_party as run

    from settlechain.outputs import read_outputs

    run(Path(config), Path(job), member, None if data is None else Path(data), Path(out),
        on_status=None if on_status is None else cast(Callable[[dict[str, Any]], None],
                                                      _shielded(on_status)),
        recover=recover)
    return read_outputs(out)


@dataclass(frozen=True)
class LocalJobResult:
    """A local job's three output folders and the files it made."""

    folder: Path
    config: Path
    """The consortium file (``consortium/consortium.toml`` unless one was given)."""
    job_file: Path
    job_id: str
    a: OperatorOutputs
    b: OperatorOutputs
    h: HelperOutputs


def run_local_job(folder: PathLike, data: Mapping[str, PathLike], rules: PathLike, *,
                  period: str, job_id: str = "local-job", config: PathLike | None = None,
                  timeout_s: float = 600.0,
                  on_status: Callable[[str, Status], None] | None = None) -> LocalJobResult:
    """Run a whole private job on this machine: parties A (CMCC), B (CUCC) and H (CTCC)
    as three processes (``settlechain party``) over mutual TLS on loopback.

    ``data``: ``{"A": export, "B": export}``; ``rules``: the rules file; ``period``: the
    settlement month (``YYYY-MM``).  Without ``config`` a fresh consortium is created in
    ``folder/consortium`` (CA, TLS certificates, SM2 keys, the ledger) and the rules are
    adopted by every member's vote, in force from ``period``; with ``config`` the
    consortium's members must be CMCC, CUCC and CTCC and the rules already in force.  The
    parties write into ``folder/A``, ``folder/B``, ``folder/H`` (each also keeps its
    terminal output in ``console.log`` there).

    ``on_status(role, status)``: called from this thread whenever a party's ``status``
    file changes; an exception in it is logged and does not stop the job.  A party still
    running after ``timeout_s``, or when this call is interrupted, is killed.  Raises
    :class:`~engine.errors.JobError` naming each party that did not finish, with its
    exit code, last status and the end of its output.
    """
    from engine.errors import JobError
    from engine.job.demo import warm_up_psi
    from engine.job.local import LocalJob

    from settlechain.outputs import read_helper_outputs, read_operator_outputs

    # absolute: the parties run in their own folders
    root = Path(folder).resolve()
    job = LocalJob.prepare(root, {role: Path(path).resolve() for role, path in data.items()},
                           Path(rules).resolve(), job_id=job_id, period=period,
                           config=None if config is None else Path(config).resolve())
    warm_up_psi()  # compile (or load) the PSI kernels once, not in A and B at the same time
    seen: dict[str, Status] = {}
    report = {role: _shielded(partial(on_status, role)) for role in job.parties} \
        if on_status is not None else {}

    def tick(local: LocalJob) -> None:
        for role, call in report.items():
            status = cast(Status, local.parties[role].status())
            if status != seen.get(role):
                seen[role] = status
                call(status)

    job.start()
    try:
        codes = job.wait(timeout_s, on_tick=tick)
    finally:  # interrupted (KeyboardInterrupt, ...): leave no party running
        for party in job.parties.values():
            if party.process is not None and party.process.poll() is None:
                party.process.kill()
                party.process.wait()
    failed = {role: code for role, code in codes.items() if code != 0}
    if failed:
        lines = []
        for role, code in sorted(failed.items()):
            party = job.parties[role]
            status = party.status()
            tail = party.console_text().strip().splitlines()[-3:]
            lines.append(f"party {role} exited with {code} ({status.get('stage')}"
                         + (f": {status['detail']}" if status.get("detail") else "")
                         + f"); the end of {party.console}:\n    " + "\n    ".join(tail))
        raise JobError(f"the local job {job_id!r} did not finish:\n" + "\n".join(lines))
    return LocalJobResult(folder=root, config=job.config, job_file=job.job_path, job_id=job_id,
                          a=read_operator_outputs(root / "A"),
                          b=read_operator_outputs(root / "B"), h=read_helper_outputs(root / "H"))


__all__ = ["LocalJobResult", "Status", "run_local_job", "run_party"]
