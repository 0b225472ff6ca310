"""One party's run of a private reconciliation job (DESIGN.md, "Data flow of one job").

``settlechain party --config CONSORTIUM --job JOB --as MEMBER [--data FILE] --out DIR``

:func:`run_party` checks what it can alone (the files, its ports, a folder that already
holds this settled job), then starts the session (A hosts it; B and H connect), and
hands over to the role object of :mod:`engine.job.roles` (:class:`OperatorRun` for A
and B, :class:`HelperRun` for H), which has one method per stage.  Whatever fails stops
every party with one reason: this party's own error goes to its log and its ``status``
file ("failed: …"), the others learn its kind.

A job that stops before the anchor anchors nothing, so the same job id can run again;
an interrupted job resumes its finished buckets (the work folder, ``<out>/.work``).
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import InputError, JobError, SettlechainError
from engine.job.consortium import load_consortium
from engine.job.context import (  # noqa: F401 - FAULT_ENV, StageClock … re-exported
    FAULT_ENV, STATUS_FILE, WORK_FOLDER, PartyContext, StageClock, fault_point,
    peak_memory_mib, reset_peak_memory,
)
from engine.job.jobfile import load_job
from engine.job.tls import TlsIdentity
from engine.outputs import ANCHOR_FILE
from engine.period import period_window
from engine.rules import load_rules
from ledger_anchor import sm2

log = logging.getLogger(__name__)

def check_ports(endpoints: dict[str, str]) -> None:
    """Refuse to start when a port this party must listen on is taken, naming it."""
    for what, endpoint in endpoints.items():
        host, _, port = endpoint.rpartition(":")
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host.strip("[]"), int(port)))
            except OSError as exc:
                raise InputError(f"cannot listen on {endpoint} for {what}: {exc.strerror} "
                                 "(another process uses the port? the consortium file names "
                                 "this member's ports: grpc_listen / mpc_listen, else the endpoints)", column=what) from None


def settled_here(out_dir: Path, job_id: str) -> int | None:
    """The ledger index recorded in ``out_dir/anchor.json`` when that folder holds this
    job already settled, else None."""
    try:
        receipt = json.loads((out_dir / ANCHOR_FILE).read_text(encoding="utf-8"))
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if summary.get("job_id") == job_id and isinstance(receipt.get("index"), int):
        return receipt["index"]
    return None


def run_party(config_path: str | Path, job_path: str | Path, member_id: str,
              data_path: str | Path | None, out_dir: str | Path, *,
              on_status: Callable[[dict[str, Any]], None] | None = None,
              on_joined: Callable[[], None] | None = None,
              recover: bool = False, scale: Any = None) -> dict[str, Any]:
    """Run this member's part of the job; returns its summary document.

    ``on_status(document)``: every progress change (the ``status`` file's JSON).
    ``on_joined()``: the session accepted this party (the CLI opens party.log then).
    ``scale``: this operator's bucket workers (:class:`engine.scale.config.ScaleConfig`).
    Raises :class:`~engine.errors.InputError` (bad input or configuration, exit 2) or
    :class:`~engine.errors.JobError` (the job was stopped, exit 3).
    """
    consortium = load_consortium(config_path)
    job = load_job(job_path)
    role = job.role_of(member_id)
    member = consortium.member(member_id)
    for other in job.parties.values():
        consortium.member(other)  # every member the job names is in the consortium
    if role in ("A", "B") and data_path is None:
        raise InputError(f"party {role} needs its billing export (--data)")
    if role == "H" and data_path is not None:
        raise InputError("the helper H holds no data; do not pass --data")
    out = Path(out_dir)
    settled = settled_here(out, job.id)
    if settled is not None and not recover:
        raise JobError(f"job {job.id!r} is already settled in {out} (its statement is ledger "
                       f"entry {settled}); nothing was written there.  To settle again, write "
                       "a new job file with a new id; to rebuild lost outputs, use --recover")
    rules = load_rules(job.rules_path)
    if job.disclosure is not None and job.disclosure != rules.disclosure:
        raise InputError("the job file's disclosure policy differs from the rules' (the policy "
                         "is part of the rules and of their hash)", file=str(job.path),
                         column="job.disclosure", expected=repr(rules.disclosure),
                         found=repr(job.disclosure))
    endpoints = {"MPC": member.mpc_listen}
    if role == "A":
        endpoints = {"the job session and PSI": member.grpc_listen, **endpoints}
    check_ports(endpoints)
    out.mkdir(parents=True, exist_ok=True)
    clock = StageClock(status_path=out / STATUS_FILE, listener=on_status)
    ctx = PartyContext(
        consortium=consortium, job=job, rules=rules, role=role, member=member,
        data_path=Path(data_path) if data_path is not None else None, out_dir=out,
        work_dir=out / WORK_FOLDER / job.id,
        period=period_window(job.period, rules.timezone_offset_s, source=str(job.path)),
        clock=clock,
        tls=TlsIdentity.load(member.id, consortium.ca_cert, member.tls_cert, member.tls_key),
        sm2_key=sm2.load_private_key(member.sm2_key), recover=recover,
        joined=on_joined or (lambda: None), scale=scale,
    )
    if rules.sm3_hash() != job.rules_sm3:
        # Still join: the others must stop with the same reason, which agreement gives.
        log.error("rules file %s has SM3 %s, the job expects %s", job.rules_path,
                  rules.sm3_hash(), job.rules_sm3)
    from engine.job.pipeline import run_role  # heavy imports (polars, numba, MPyC)

    try:
        return run_role(ctx)
    except SettlechainError as exc:
        clock.allow_status()  # not a settled job's folder (checked above): say what happened
        clock.finish("failed" if not isinstance(exc, JobError) else "stopped",
                     exc.diagnostics().splitlines()[0])
        raise
    except BaseException as exc:
        clock.allow_status()
        clock.finish("failed", f"{type(exc).__name__}: {exc}")
        raise


