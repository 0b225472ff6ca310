"""Scale-out of one operator's side: its buckets' PSI passes on workers of its own.

DESIGN.md "Scale-out", docs/scale-out.md.  Modules, in the order of their imports:

- ``config``: :class:`~engine.scale.config.ScaleConfig`, the operator's choice (workers,
  executor); light.
- ``errors``: :class:`~engine.scale.errors.WorkerError` and its kinds.
- ``manifest``: the worker manifest A and B sign (ranges, endpoints, certificates).
- ``pair``: the session of one worker pair (A's worker hosts it; mutual TLS; the gate).
- ``worker``: :class:`~engine.scale.worker.BucketWorker`, one process running a range.
- ``supervise``: starting workers, running the ranges, restarting a worker that died.
- ``local``: the default executor, local processes (nothing of Ray is imported).
- ``ray_cluster``: the Ray executor, the only module that imports Ray.
- ``driver``: what the party does (start, agree, run), called by engine.job.roles.

Ray Core runs inside one operator's cluster only; the two operators' workers talk over
their own mutual-TLS gRPC channels, never through Ray.
"""
