"""Starting a party's role: the session, the PSI service or channel, and the role object.

Kept apart from :mod:`engine.job.party` because it pulls in the heavy dependencies
(polars, the numba PSI kernels, MPyC) that ``settlechain --help`` should not load.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from engine.errors import InputError, JobError
from engine.outputs import OutputError
from engine.job.context import AbortWatch, PartyContext, connect_link, start_host
from engine.job.roles import HelperRun, OperatorRun, host_checks
from engine.job.agree import agreement
from engine.job.session import HostLink, SessionAborted
from engine.ingest.csvsplit import warm_up as warm_up_csv
from engine.partition import warm_up as warm_up_partition
from protocols.errors import ProtocolError
from protocols.psi import PsiServicer
from protocols.psi.cli import warm_up as warm_up_psi

log = logging.getLogger(__name__)


def _warm_up(psi_protocol: str) -> None:
    from protocols.mpc.field import warm_up as warm_up_field

    warm_up_csv()
    warm_up_partition()
    warm_up_psi(psi_protocol)
    warm_up_field()


def _ledger_state(ctx: PartyContext) -> tuple[str | None, int | None]:
    """What the agreement needs from the ledger, read by A: why the job's rules are not in
    force for its period (None when they are: governance.rules_in_force), and the index of
    a statement already anchored for this job id, if any."""
    from governance import GovernanceError, rules_in_force
    from ledger_anchor import open_ledger

    try:
        with open_ledger(ctx.consortium.path, member_id=ctx.member.id, readonly=True) as ledger:
            try:
                rules_in_force(ledger, ctx.job.period, ctx.job.rules_sm3)
                not_in_force = None
            except GovernanceError as exc:
                not_in_force = exc.diagnostics()
            end = ledger.size()
            while end > 0:
                start = max(0, end - 1024)
                for offset, entry in enumerate(reversed(ledger.entries(start, end))):
                    if entry.get("kind") == "settlement_statement" and \
                            entry.get("job_id") == ctx.job.id:
                        return not_in_force, end - 1 - offset
                end = start
            return not_in_force, None
    except Exception as exc:  # noqa: BLE001 - no ledger yet: nothing is in force
        log.warning("cannot read the ledger: %s", exc)
        return f"the ledger cannot be read ({exc})", None


def run_role(ctx: PartyContext) -> dict[str, Any]:
    watch = AbortWatch(ctx.role, ctx.clock)
    try:
        return _run(ctx, watch)
    finally:
        watch.finished()


def _run(ctx: PartyContext, watch: AbortWatch) -> dict[str, Any]:
    role, job = ctx.role, ctx.job
    server = channel = host = None
    psi_servicer = None
    if role == "A":
        psi_servicer = PsiServicer()
        not_in_force, settled_at = _ledger_state(ctx)
        server, host = start_host(
            ctx, [psi_servicer.add_to_server],
            lambda hellos: agreement(ctx.job, hellos, recover=ctx.recover,
                                     rules_not_in_force=not_in_force, settled_at=settled_at),
            host_checks(ctx.rules, ctx.recover))
        host.on_abort(watch)
        link: Any = HostLink(host, "A", job.timeouts.stage_s, job.timeouts.connect_s)
    else:
        link, channel = connect_link(ctx, watch)
    if role in ("A", "B"):
        # numba loads (or compiles) the kernels while the parties join and read
        warm = threading.Thread(target=_warm_up, args=(job.psi_protocol,), name="warm-up",
                                daemon=True)
        warm.start()
        ctx.kernels_ready = warm.join
    try:
        try:
            runner = HelperRun(ctx, link) if role == "H" else OperatorRun(
                ctx, link, psi_servicer=psi_servicer, psi_channel=channel)
            result = runner.run()
        except SessionAborted:
            raise
        except (ProtocolError, JobError) as exc:
            reason = f"party {role} stopped the job: {type(exc).__name__}: {exc}"
            log.error("%s", reason)
            link.abort(reason)
            raise JobError(reason) from exc
        except InputError as exc:
            # The details (file, row, values) stay on this party; the others learn the kind.
            log.error("%s", exc.diagnostics())
            link.abort(f"party {role} could not use its input ({type(exc).__name__}; the "
                       "details are in its own log)")
            raise
        except (OSError, OutputError) as exc:
            # an output that cannot be written (a full disk): nothing is anchored (the party
            # never says it is ready), or, after the anchor, the outputs can be recovered
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.error("party %s cannot write its outputs: %s", role, exc)
            link.abort(f"party {role} failed: {type(exc).__name__} ({what}); see its log")
            raise JobError(f"party {role} cannot write its outputs: {exc}") from exc
        except BaseException as exc:
            log.exception("party %s failed", role)
            link.abort(f"party {role} failed ({type(exc).__name__}; see its log)")
            raise
        ctx.clock.finish("done")
        return result
    except SessionAborted as exc:
        if link.abort_reason is None:
            # found here (a check on a peer's message failed): stop the others too
            link.abort(exc.reason)
        ctx.clock.finish("stopped", exc.reason)
        log.error("the job was stopped: %s", exc.reason)
        raise JobError(f"the job was stopped: {exc.reason}") from None
    finally:
        link.close()
        if server is not None:
            if host.abort_reason is not None:
                # Keep listening until B and H have heard why (one may not have joined yet).
                host.wait_informed(("B", "H"), job.timeouts.connect_s)
            # Let the last replies reach B and H before the port closes.
            server.stop(grace=3).wait()
