"""The ``demo``, ``party`` and ``keys`` subcommands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = subparsers.add_parser(
        "demo", help="run a whole private reconciliation on generated data, locally",
        description=(
            "Generate two operators' billing exports, create a local three-member "
            "consortium (CA, TLS certificates, SM2 keys) and an SQLite ledger, adopt the "
            "rules by vote, run parties A, B and H as separate processes on loopback, "
            "print the outcome, and verify the ledger.  Everything it makes stays in --out."),
    )
    demo.add_argument("--records", type=int, default=20_000,
                      help="true call events to generate (default: 20000)")
    demo.add_argument("--seed", type=int, default=1, help="generator seed (default: 1)")
    demo.add_argument("--format", choices=["csv", "parquet"], default="csv",
                      help="format of the generated exports (default: csv)")
    demo.add_argument("--disclosure", choices=["aggregate", "flags", "differences"],
                      default=None, help="disclosure policy (default: the rules', flags)")
    demo.add_argument("--out", type=Path, default=Path("settlechain-demo"),
                      help="folder for everything the demo makes (default: ./settlechain-demo)")
    demo.add_argument("--force", action="store_true",
                      help="replace an earlier demo's folder at --out")
    demo.add_argument("--consortium", action="store_true",
                      help="three operators and their three pairs in one period run "
                           "(settlechain period run), each pair helped by the third")
    demo.set_defaults(handler=_demo)

    period = subparsers.add_parser("period", help="a settlement period of the whole consortium")
    period_sub = period.add_subparsers(dest="period_command", metavar="COMMAND", required=True)
    period_run = period_sub.add_parser(
        "run", help="settle every pair of members that exchanged traffic in the period",
        description=(
            "Settle every pair of members that has a folder <A>+<B> in --data-dir, one job "
            "per pair, each helped by a third member (rotated), one pair after the other; "
            "then print and write (OUT/period-summary.json) the outcome across pairs.  With "
            "--as, only that member's parties run (each member runs its own in production); "
            "without it, every party runs here.  Layout: engine.job.period_run."))
    period_run.add_argument("--config", type=Path, required=True, help="consortium file")
    period_run.add_argument("--period", required=True, help="settlement period, e.g. 2026-10")
    period_run.add_argument("--data-dir", type=Path, required=True,
                            help="folder with one <A>+<B> folder per pair")
    period_run.add_argument("--out", type=Path, default=Path("settlechain-period"),
                            help="output folder (default: ./settlechain-period)")
    period_run.add_argument("--as", dest="member", default=None,
                            help="run only this member's parties (default: all, locally)")
    period_run.add_argument("--workers", type=int, default=0,
                            help="bucket workers per operator party (settlechain party --workers)")
    period_run.add_argument("--executor", choices=("local", "ray"), default="local",
                            help="bucket executor (settlechain party --executor)")
    period_run.add_argument("--ray-address", default=None, help="the operator's Ray cluster")
    period_run.add_argument("--connect-timeout", type=float, default=3600.0,
                            help="seconds a party waits for the others of its pair (default "
                                 "3600: members reach a pair after their earlier pairs)")
    period_run.set_defaults(handler=_period_run)

    party = subparsers.add_parser(
        "party", help="run one party (A, B or H) of a reconciliation job",
        description=(
            "Run this member's part of a job.  A hosts the job session; B and H connect "
            "to it.  Exit codes: 0 done, 2 bad input or configuration, 3 the job was "
            "stopped (a peer refused, failed or vanished; the reason is printed)."),
    )
    party.add_argument("--config", type=Path, required=True, help="consortium file")
    party.add_argument("--job", type=Path, required=True, help="job file")
    party.add_argument("--as", dest="member", required=True,
                       help="this party's consortium member id")
    party.add_argument("--data", type=Path, default=None,
                       help="this operator's billing export (A and B; H takes none)")
    party.add_argument("--out", type=Path, required=True, help="output folder")
    party.add_argument("--log-file", type=Path, default=None,
                       help="also log to this file (default: <out>/party.log)")
    party.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="party.log as lines of text (default) or one JSON object per event "
                            "(docs/job.md, \"Logs\")")
    party.add_argument("--recover", action="store_true",
                       help="rebuild the outputs of a job already settled (all three parties "
                            "with --recover): refuses unless the inputs give the anchored "
                            "commitments; anchors nothing")
    scale = party.add_argument_group(
        "bucket workers (docs/scale-out.md)",
        "A and B may each run their buckets' PSI passes on workers: local processes (the "
        "default executor) or actors of the operator's own Ray cluster (the settlechain[ray] "
        "extra).  The smaller of the two offers is the number of worker pairs; with none the "
        "buckets run in this process.")
    scale.add_argument("--workers", type=int, default=0,
                       help="bucket workers this operator offers (default 0: none)")
    scale.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local processes (default) or the operator's Ray cluster")
    scale.add_argument("--ray-address", default=None,
                       help="the operator's Ray cluster (default: RAY_ADDRESS or auto)")
    scale.add_argument("--worker-host", default=None,
                       help="where A's local workers listen (default: the host of the "
                            "member's gRPC endpoint; on Ray: each node's address)")
    scale.add_argument("--worker-ports", default=None,
                       help="A's workers' ports, e.g. 7600-7603 (default: any free port)")
    scale.add_argument("--worker-certs", type=Path, default=None,
                       help="folder with worker-<i>.crt/.key per worker (settlechain keys "
                            "worker; default: the member's own certificate)")
    party.set_defaults(handler=_party)

    job = subparsers.add_parser("job", help="job files")
    job_sub = job.add_subparsers(dest="job_command", metavar="COMMAND", required=True)
    job_init = job_sub.add_parser(
        "init", help="write a job file for a rules file and three members",
        description="Write the job file every party runs with: job id, period, the rules "
                    "file and its SM3 hash (of the canonical rules), the disclosure policy, "
                    "which members are A, B and H, and timeouts.")
    job_init.add_argument("--out", type=Path, required=True, help="job file to write")
    job_init.add_argument("--id", required=True, help="job id, unique per settlement run")
    job_init.add_argument("--period", required=True, help="settlement period, e.g. 2026-10")
    job_init.add_argument("--rules", type=Path, required=True, help="rules file")
    job_init.add_argument("--config", type=Path, default=None,
                          help="consortium file: the members must be in it (recommended)")
    job_init.add_argument("--psi-protocol", default=None, help="PSI protocol (default kkrt16)")
    job_init.add_argument("--records-per-bucket", type=int, default=None,
                          help="partitioning: records per bucket (default 2^20)")
    for role, what in (("a", "operator A (hosts the session)"), ("b", "operator B"),
                       ("h", "the helper H")):
        job_init.add_argument(f"--{role}", required=True, help=f"member id of {what}")
    job_init.set_defaults(handler=_job_init)

    keys = subparsers.add_parser("keys", help="key material for a consortium")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    init = keys_sub.add_parser(
        "init", help="create a local/test consortium: CA, TLS certificates, SM2 keys",
        description=(
            "Create a consortium CA (ECDSA P-256, for mutual TLS), a TLS certificate and an "
            "SM2 signing key per member, the ledger's log key, and consortium.toml.  For "
            "demos and tests: in production each member makes its own keys."),
    )
    init.add_argument("--out", type=Path, required=True, help="folder to create")
    init.add_argument("--members", required=True,
                      help="comma-separated member ids, e.g. CMCC,CUCC,CTCC")
    init.add_argument("--name", default="local-consortium", help="consortium name")
    init.add_argument("--host", default="127.0.0.1", help="address the members listen on")
    init.add_argument("--base-port", type=int, default=7400,
                      help="member i gets gRPC port base+i and MPC port base+100+i")
    init.set_defaults(handler=_keys_init)

    worker = keys_sub.add_parser(
        "worker", help="issue TLS certificates for a member's bucket workers (docs/scale-out.md)",
        description="Issue one TLS certificate per bucket worker of a member, from the "
                    "consortium CA (where its key is): CN = the member id, SAN = the worker's "
                    "host.  Pass the folder to `settlechain party --worker-certs`.")
    worker.add_argument("--config", type=Path, required=True, help="consortium file")
    worker.add_argument("--as", dest="member", required=True, help="the member's id")
    worker.add_argument("--hosts", required=True,
                        help="comma-separated host of each worker, e.g. 10.1.0.5,10.1.0.6")
    worker.add_argument("--ca-key", type=Path, default=None,
                        help="the CA's private key (default: ca/ca.key beside the CA certificate)")
    worker.add_argument("--out", type=Path, required=True, help="folder to write")
    worker.set_defaults(handler=_keys_worker)


def _party(args: argparse.Namespace) -> int:
    import logging.handlers

    from engine.errors import SettlechainError
    from engine.job.logs import JsonFormatter
    from engine.job.party import run_party

    # party.log is opened only once the session accepted this party: a refused run (say, of
    # a job already settled in this folder) writes nothing into the folder.
    log_file = args.log_file or args.out / "party.log"
    buffered = logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
    root = logging.getLogger()
    for console in root.handlers:  # the terminal keeps the --log-level the user chose
        console.setLevel(root.level)
    root.addHandler(buffered)
    root.setLevel(min(root.level, logging.INFO))
    for noisy in ("numba", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    formatter = JsonFormatter() if args.log_format == "json" else \
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def open_log() -> None:
        if getattr(open_log, "done", False):
            return
        open_log.done = True  # type: ignore[attr-defined]
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(formatter)
        buffered.setTarget(handler)
        buffered.flush()
        root.removeHandler(buffered)
        root.addHandler(handler)

    from engine.scale.config import ScaleConfig, parse_ports

    scale_config = ScaleConfig(workers=args.workers, executor=args.executor,
                               ray_address=args.ray_address, listen_host=args.worker_host,
                               ports=parse_ports(args.worker_ports),
                               worker_certs=str(args.worker_certs) if args.worker_certs else None)
    progress = _StatusLine()
    try:
        summary = run_party(args.config, args.job, args.member, args.data, args.out,
                            on_status=progress.update, on_joined=open_log, recover=args.recover,
                            scale=scale_config)
    except SettlechainError as exc:
        progress.close()
        from engine.job.jobfile import load_job
        from engine.job.party import settled_here

        try:
            settled = settled_here(args.out, load_job(args.job).id) is not None
        except SettlechainError:
            settled = False
        if not settled:
            open_log()  # this run's folder: its log gets the error too
        logging.getLogger("engine.job").error("%s", exc.diagnostics())
        raise
    finally:
        progress.close()
        root.removeHandler(buffered)
    print(_outcome_lines(summary, args.out))
    return 0


class _StatusLine:
    """One line on a terminal: the stage, progress within it and the time left."""

    def __init__(self) -> None:
        import sys

        self._live = sys.stderr.isatty()
        self._last = ""

    def update(self, status: dict) -> None:
        if not self._live:
            return
        import sys

        line = f"{status.get('stage', '')}"
        if "done" in status and status.get("total"):
            line += f" {status['done']:,}/{status['total']:,} {status.get('unit', '')}"
            if status.get("eta_s") is not None:
                line += f", about {status['eta_s']:.0f} s left"
        line += f"  [{status.get('elapsed_s', 0):.0f} s]"
        if line != self._last:
            print("\r\033[K" + line, end="", file=sys.stderr, flush=True)
            self._last = line

    def close(self) -> None:
        if self._live and self._last:
            import sys

            print("\r\033[K", end="", file=sys.stderr, flush=True)
            self._last = ""


def _yuan(fen: int | None) -> str:
    return "withheld" if fen is None else f"¥{fen / 100:,.2f}"


def _outcome_lines(summary: dict, out: Path) -> str:
    """What a party ends with on the terminal: its outcome, not only "done"."""
    if summary.get("party") == "H":
        learned = summary.get("learned", {})
        return (f"party H: job {summary['job_id']} done; computed on "
                f"{learned.get('mpc_pairs', 0):,} candidate pairs; outputs in {out}")
    counts = summary.get("counts", {})
    totals = summary.get("totals", {})
    anchor = summary.get("anchor") or {}
    lines = [f"party {summary['party']} ({summary.get('member', '')}): job {summary['job_id']} "
             f"({summary.get('period', '')}) done"]
    order = ("matched_exact", "matched_tolerance", "disputed", "unmatched_local", "duplicate",
             "invalid", "excluded")
    lines.append("  rows: " + ", ".join(f"{name.replace('_local', '')} {counts.get(name, 0):,}"
                                        for name in order))
    lines.append(f"  agreed {_yuan(totals.get('agreed_charge'))}; disputed "
                 f"{_yuan(totals.get('disputed_local_charge'))} (this side) vs "
                 f"{_yuan(totals.get('disputed_remote_charge'))}; settlement: "
                 f"{summary.get('review', {}).get('settlement', '?')}")
    held = summary.get("held")
    if held:
        lines.append(f"  held for manual settlement: {held['pairs']} candidate pairs (the "
                     "small-cell rule withholds their amounts)")
    if anchor.get("index") is not None:
        lines.append(f"  statement anchored as ledger entry {anchor['index']}")
    lines.append(f"  report: {out / 'report.html'}")
    return "\n".join(lines)


def _job_init(args: argparse.Namespace) -> int:
    import os

    from engine.job.jobfile import write_job
    from engine.rules import load_rules

    rules = load_rules(args.rules)
    out = args.out.resolve()
    parties = {"A": args.a, "B": args.b, "H": args.h}
    if args.config is not None:
        from engine.job.consortium import load_consortium

        consortium = load_consortium(args.config)
        for role, member in parties.items():
            consortium.member(member)  # raises, naming the members there are
    relative = os.path.relpath(args.rules.resolve(), out.parent)
    write_job(out, job_id=args.id, period=args.period, rules=relative,
              rules_sm3=rules.sm3_hash(), parties=parties, disclosure=rules.disclosure,
              psi_protocol=args.psi_protocol, records_per_bucket=args.records_per_bucket)
    print(f"job file: {args.out} (rules {rules.name} {rules.version}, SM3 {rules.sm3_hash()}, "
          f"disclosure {rules.disclosure})")
    return 0


def _keys_init(args: argparse.Namespace) -> int:
    from engine.errors import InputError
    from engine.job.keys import MemberSpec, init_consortium

    ids = [m.strip() for m in args.members.split(",") if m.strip()]
    if len(ids) < 2:
        raise InputError("--members needs at least two ids", found=repr(args.members))
    specs = [MemberSpec(member_id, member_id, args.base_port + i, args.base_port + 100 + i)
             for i, member_id in enumerate(ids)]
    path = init_consortium(args.out, specs, name=args.name, host=args.host)
    print(f"consortium file: {path}")
    return 0


def _keys_worker(args: argparse.Namespace) -> int:
    from engine.job.consortium import load_consortium
    from engine.scale.identity import issue_worker_identities

    consortium = load_consortium(args.config)
    member = consortium.member(args.member)
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    ca_key = args.ca_key or consortium.ca_cert.parent / "ca.key"
    written = issue_worker_identities(consortium.ca_cert, ca_key, member.id, hosts, args.out)
    for cert, _key in written:
        print(f"worker certificate: {cert}")
    return 0


def _period_run(args: argparse.Namespace) -> int:
    from engine.job.jobfile import Timeouts
    from engine.job.period_run import run_period, summary_lines
    from engine.scale.config import ScaleConfig

    ScaleConfig(workers=args.workers, executor=args.executor, ray_address=args.ray_address)
    party_args = []
    if args.workers:
        party_args = ["--workers", str(args.workers), "--executor", args.executor]
        if args.ray_address:
            party_args += ["--ray-address", args.ray_address]
    timeouts = Timeouts(connect_s=args.connect_timeout, stage_s=3600, peer_silence_s=10)

    def show(row: dict) -> None:
        print(f"  {row['pair']}: {row['state']}"
              + (f" ({row['detail']})" if row.get("detail") else ""), flush=True)

    summary = run_period(args.config, args.period, args.data_dir, args.out, member=args.member,
                         party_args=party_args, timeouts=timeouts, on_pair=show)
    print("\n".join(summary_lines(summary)))
    print(f"summary: {args.out / 'period-summary.json'}")
    failed = [r for r in summary["pairs"] if r["state"] in ("failed", "no data")]
    return 3 if failed else 0


def _demo(args: argparse.Namespace) -> int:
    if args.consortium:
        from engine.job.demo_consortium import run_consortium_demo

        return run_consortium_demo(records=args.records, seed=args.seed,
                                   file_format=args.format, out=args.out, force=args.force)
    from engine.job.demo import run_demo

    return run_demo(records=args.records, seed=args.seed, file_format=args.format,
                    disclosure=args.disclosure, out=args.out, force=args.force)
