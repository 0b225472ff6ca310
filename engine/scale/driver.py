"""The party's side of the scale-out: start the workers, agree the manifest, run the ranges.

Called from :class:`engine.job.roles.OperatorRun`:

- at the start of ingest, :func:`start_workers` launches this operator's workers in the
  background (local processes by default, Ray actors with ``--executor ray``), so that
  they are up when ingest ends;
- after the commitments, :func:`agree_workers` takes the job session's two steps:
  ``workers`` (each operator's offer: A's workers' endpoints, every worker's certificate
  SHA-256) and ``manifest`` (both build the same manifest from the two offers and sign
  it with SM2; each checks the other's signature).  No manifest (either side offered no
  worker): the buckets run in the party's own process, as without scale-out;
- :meth:`WorkerPlan.run` gives worker i range i and waits (:mod:`engine.scale.supervise`):
  the job's main session meanwhile stays quiet until the ``candidates`` step.

The seconds of the parallel phase go to the job's ``psi_exact`` and ``psi_key`` stages in
the proportion the workers spent in each; the items are the workers' sums.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
import time
from dataclasses import dataclass
from typing import Any

from engine.job import session_pb2
from engine.job.session import SessionAborted
from engine.names import OPERATOR_ROLES
from engine.scale.config import ScaleConfig
from engine.scale.manifest import Manifest, SignedManifest, WorkerSlot, build_manifest
from engine.scale.supervise import Handle, run_ranges, start_all, stop_all
from engine.scale.worker import RangeTask, WorkerSetup

log = logging.getLogger(__name__)


class WorkerGroup:
    """This operator's workers, started in the background."""

    def __init__(self, handles: list[Handle], start_timeout_s: float) -> None:
        self.handles = handles
        self.start_timeout_s = start_timeout_s
        self._infos: list[dict[str, Any]] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, name="workers-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self._infos = start_all(self.handles, self.start_timeout_s)
        except BaseException as exc:  # noqa: BLE001 - raised in offers()
            self._error = exc

    def offers(self) -> list[dict[str, Any]]:
        self._thread.join(self.start_timeout_s + 5)
        if self._error is not None:
            raise self._error
        if self._infos is None:
            from engine.scale.errors import WorkerError

            raise WorkerError(f"the workers did not start within {self.start_timeout_s:.0f} s")
        return self._infos

    def stop(self) -> None:
        self._thread.join(self.start_timeout_s + 5)
        stop_all(self.handles)


def worker_setups(ctx: Any, scale: ScaleConfig) -> list[WorkerSetup]:
    host = scale.listen_host or ctx.member.grpc_listen.rpartition(":")[0]
    logs = ctx.work_dir / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    timeouts = ctx.job.timeouts

    def identity(i: int) -> dict[str, str]:
        if scale.worker_certs is None:
            return {}
        from engine.scale.identity import worker_cert_paths

        cert, key = worker_cert_paths(scale.worker_certs, i)
        return {"tls_cert": str(Path(cert).resolve()), "tls_key": str(Path(key).resolve())}

    return [WorkerSetup(index=i, role=ctx.role, member_id=ctx.member.id, **identity(i),
                        consortium=str(ctx.consortium.path), listen_host=host,
                        port=scale.ports[i] if scale.ports else 0,
                        connect_timeout_s=timeouts.connect_s, stage_timeout_s=timeouts.stage_s,
                        peer_silence_s=timeouts.peer_silence_s,
                        log_file=str(logs / f"{ctx.role}{i}.log"))
            for i in range(scale.workers)]


def start_workers(ctx: Any) -> WorkerGroup | None:
    """Launch this operator's workers (None when it runs its buckets itself)."""
    scale: ScaleConfig | None = getattr(ctx, "scale", None)
    if scale is None or scale.workers == 0:
        return None
    setups = worker_setups(ctx, scale)
    if scale.executor == "ray":
        from engine.scale.ray_cluster import ray_handles  # the one importer of Ray

        handles = ray_handles(setups, scale.ray_address)
    else:
        from engine.scale.local import local_handles

        handles = local_handles(setups)
    log.info("starting %d bucket workers (%s)", len(handles), scale.executor)
    return WorkerGroup(handles, ctx.job.timeouts.connect_s)


@dataclass
class WorkerPlan:
    signed: SignedManifest
    group: WorkerGroup

    @property
    def manifest(self) -> Manifest:
        return self.signed.manifest

    def run(self, run: Any) -> None:
        side = run.side
        ranges = self.manifest.ranges
        tasks = [RangeTask(signed=self.signed.to_json(), range_index=r.index, job_id=run.job.id,
                           session_nonce=run.nonce, job_secret=run.secrets.secret,
                           plan=side.plan) for r in ranges]
        handles = self.group.handles[:len(tasks)]
        stop_all(self.group.handles[len(tasks):])  # offered more than the pairs use
        clock = run.clock
        done = [0]

        def progress(result) -> None:
            done[0] += len(ranges[result.range_index].buckets())
            clock.progress("psi_key", done[0], side.n_buckets, "buckets")

        clock.enter("psi_exact")
        began = time.perf_counter()
        try:
            results = run_ranges(handles, tasks, start_timeout_s=self.group.start_timeout_s,
                                 stopped=lambda: run.link.abort_reason,
                                 on_range_done=progress)
        finally:
            wall = time.perf_counter() - began
            clock.leave("psi_exact")
            self.group.stop()
        seconds = {s: sum(r.seconds.get(s, 0.0) for r in results) for s in ("psi_exact", "psi_key")}
        spent = sum(seconds.values())
        key_share = wall * seconds["psi_key"] / spent if spent > 0 else 0.0
        clock.seconds["psi_exact"] -= key_share
        clock.seconds["psi_key"] = clock.seconds.get("psi_key", 0.0) + key_share
        for stage in ("psi_exact", "psi_key"):
            clock.count(stage, sum(r.items.get(stage, 0) for r in results))
        log.info("%d worker pairs: %d buckets run, %d kept from before, %d epochs, %.2f s",
                 len(results), sum(len(r.run) for r in results),
                 sum(len(r.skipped) for r in results), sum(r.epochs for r in results), wall)


def agree_workers(run: Any) -> WorkerPlan | None:
    """The ``workers`` and ``manifest`` steps (see the module docstring)."""
    group: WorkerGroup | None = getattr(run, "workers", None)
    try:
        infos = group.offers() if group is not None else []
        posts = run.exchange("workers", workers=session_pb2.WorkerOffer(workers=[
            session_pb2.WorkerInfo(endpoint=i["endpoint"],
                                   cert_sha256=bytes.fromhex(i["cert_sha256"]),
                                   node=str(i.get("node", ""))) for i in infos]))
        offers = {r: [WorkerSlot(w.endpoint, bytes(w.cert_sha256).hex(), w.node)
                      for w in posts[r].workers.workers] for r in OPERATOR_ROLES}
        side = run.side
        manifest = build_manifest(
            job_id=run.job.id, session_nonce=run.nonce, n_buckets=side.n_buckets,
            partition=side.plan.partition.fingerprint(),
            members={r: run.job.member_of(r) for r in OPERATOR_ROLES}, offers=offers,
            psi_protocol=run.job.psi_protocol)
        if manifest is None:
            run.exchange("manifest", manifest=session_pb2.ManifestSignature())
            if group is not None:
                log.info("the other operator offered no workers: the buckets run here")
                group.stop()
            return None
        manifest = Manifest.from_document(manifest.document())  # the peer's offer, checked
        signature = run.sign(manifest.signing_bytes())
        posts = run.exchange("manifest", manifest=session_pb2.ManifestSignature(
            manifest_sm3=manifest.sm3(), signature=signature))
        peer = posts[run.other].manifest
        if bytes(peer.manifest_sm3) != manifest.sm3():
            raise SessionAborted("A and B built different worker manifests (SM3 "
                                 f"{bytes(posts['A'].manifest.manifest_sm3).hex()[:16]}… vs "
                                 f"{bytes(posts['B'].manifest.manifest_sm3).hex()[:16]}…)")
        run.verify(run.job.member_of(run.other), manifest.signing_bytes(), bytes(peer.signature),
                   "the worker manifest")
        signed = SignedManifest(manifest, {run.role: signature, run.other: bytes(peer.signature)})
        (run.ctx.work_dir / "workers").mkdir(parents=True, exist_ok=True)
        import json

        (run.ctx.work_dir / "workers" / "manifest.json").write_text(
            json.dumps(signed.to_json(), indent=1), encoding="utf-8")
        log.info("worker manifest %s…: %d ranges of %d buckets", manifest.sm3().hex()[:16],
                 len(manifest.ranges), manifest.buckets)
        assert group is not None  # both offered workers
        return WorkerPlan(signed, group)
    except BaseException:
        if group is not None:
            group.stop()
        raise


__all__ = ["WorkerGroup", "WorkerPlan", "agree_workers", "start_workers", "worker_setups"]
