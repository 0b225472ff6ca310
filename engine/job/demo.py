"""``settlechain demo``: a whole private reconciliation, locally, in one command.

1. generate two operators' billing exports with the true answer (``data_gen``);
2. create a three-member consortium — CMCC (A), CUCC (B) and CTCC as the helper H —
   with a CA, TLS certificates, SM2 keys and an SQLite ledger (``keys init``);
3. adopt the generated rules on the ledger by vote (a ``rule_package`` proposal in force
   from the data's period, every member's vote: :mod:`governance`);
4. write the job file and start the three parties as separate processes on loopback;
5. print the outcome, compare it with the generator's true answer, verify the ledger.

Everything stays in ``--out`` so that the run can be inspected and any party re-run
by hand with the command the demo prints.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import polars as pl

from engine.errors import InputError, JobError
from engine.job.local import ROLES, LocalJob, adopt_rules, create_consortium
from engine.rules import load_rules

MARKER = ".settlechain-demo"
STATUS_ORDER = ("matched_exact", "matched_tolerance", "disputed", "unmatched", "duplicate",
                "invalid", "excluded")


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise InputError("the output folder exists and is not an earlier demo's; choose "
                             "another --out", file=str(out))
        if not force:
            raise InputError("an earlier demo is in the output folder; pass --force to replace "
                             "it or choose another --out", file=str(out))
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by settlechain demo\n", encoding="utf-8")


def _say(text: str) -> None:
    print(text, flush=True)


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


#: the numba modules a job loads, in groups of about equal compile time (measured cold on
#: this machine: okvs 57 s, kernels 38 s, vole 13 s, partition 5 s, csvsplit 3.5 s)
_KERNEL_GROUPS = {
    "rr22": (("protocols.psi.okvs",),
             ("protocols.psi.kernels", "protocols.psi.vole", "engine.partition",
              "engine.ingest.csvsplit", "protocols.mpc.field")),
    "kkrt16": (("protocols.psi.kernels",),
               ("engine.partition", "engine.ingest.csvsplit", "protocols.mpc.field")),
}


def _warm_group(modules: tuple[str, ...]) -> None:
    import importlib

    for name in modules:
        importlib.import_module(name).warm_up()


def _compiled(module_name: str) -> bool:
    """Whether numba's cache already holds ``module_name``'s kernels (its index files sit
    in the module's __pycache__ unless NUMBA_CACHE_DIR moves them)."""
    import importlib.util

    if os.environ.get("NUMBA_CACHE_DIR"):
        return False
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return False
    origin = Path(spec.origin)
    return any((origin.parent / "__pycache__").glob(f"{origin.stem}.*.nbi"))


def warm_up_kernels(protocol: str | None = None) -> None:
    """Load every numba kernel a job of ``protocol`` uses, before the parties start.  On a
    fresh install nothing is compiled yet: the groups then compile in parallel processes
    (one per core) instead of one after the other, and the parties load them from numba's
    cache instead of each compiling the same kernels at once."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from engine.job.jobfile import DEFAULT_PSI_PROTOCOL

    groups = _KERNEL_GROUPS[protocol or DEFAULT_PSI_PROTOCOL]
    cold = [g for g in groups if not all(_compiled(m) for m in g)]
    workers = min(len(cold), os.cpu_count() or 1)
    if workers < 2:
        for group in groups:
            _warm_group(group)
        return
    _say(f"  compiling the numba kernels of this install ({len(cold)} groups in parallel; "
         "once: later runs load them from numba's cache)")
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_warm_group, cold))
    for group in groups:  # load what the pool compiled (and anything warm) into this process
        _warm_group(group)


def warm_up_psi(protocol: str | None = None) -> None:
    """Compile the PSI kernels of ``protocol`` (default: the job default) or load them from
    numba's cache, once, before the parties start, instead of A and B compiling them at the
    same time."""
    from engine.job.jobfile import DEFAULT_PSI_PROTOCOL
    from protocols.psi.cli import warm_up

    warm_up(protocol or DEFAULT_PSI_PROTOCOL)


def run_demo(*, records: int, seed: int, file_format: str, disclosure: str | None, out: Path,
             force: bool) -> int:
    from data_gen.config import GenConfig
    from data_gen.dataset import generate, write_dataset

    t_start = time.perf_counter()
    out = out.resolve()
    _prepare_out(out, force)
    data_dir = out / "data"
    _say(f"settlechain demo: {records:,} call events, seed {seed}, {file_format}; "
         f"everything goes to {_shown(out)}/")

    t0 = time.perf_counter()
    dataset = generate(GenConfig(records=records, seed=seed, operator_a=ROLES["A"],
                                 operator_b=ROLES["B"]), file_format)
    write_dataset(dataset, data_dir)
    rules_path = data_dir / "rules.toml"
    if disclosure is not None:
        text = rules_path.read_text(encoding="utf-8")
        rules_path.write_text(text.replace('policy = "flags"', f'policy = "{disclosure}"'),
                              encoding="utf-8")
    rules = load_rules(rules_path)
    if disclosure is not None and rules.disclosure != disclosure:
        raise JobError(f"could not set the disclosure policy to {disclosure} in {rules_path}")
    _say(f"  1. generated {_shown(data_dir / ('a.' + file_format))} and "
         f"{_shown(data_dir / ('b.' + file_format))} with the true answer (truth.parquet) "
         f"in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    config = create_consortium(out / "consortium", name="demo")
    size = adopt_rules(config, rules.sm3_hash(), rules.version, effective_from=dataset.config.period)
    _say(f"  2. consortium of {', '.join(ROLES.values())}: CA, TLS certificates, SM2 keys in "
         f"{_shown(config.parent)}/; rules {rules.sm3_hash()[:16]}… adopted by vote "
         f"({size} ledger entries) in {time.perf_counter() - t0:.1f} s")

    job = LocalJob.prepare(out, {role: data_dir / f"{role.lower()}.{file_format}"
                                 for role in ("A", "B")}, rules_path,
                           job_id=f"demo-{dataset.config.period}-seed{seed}",
                           period=dataset.config.period, config=config)
    warm_up_kernels()
    t0 = time.perf_counter()
    job.start()
    _say(f"  3. parties A ({ROLES['A']}), B ({ROLES['B']}) and H ({ROLES['H']}) started as "
         "three processes over mutual-TLS gRPC and MPyC on loopback")
    live = sys.stdout.isatty()
    last = [""]

    def show_progress(local: LocalJob) -> None:
        # one status line, rewritten in place, on a terminal; nothing in a log
        def cell(party) -> str:
            status = party.status()
            text = str(status.get("stage", ""))
            if status.get("total"):
                text += f" {100 * status.get('done', 0) // max(status['total'], 1)}%"
                if status.get("eta_s") is not None:
                    text += f" ~{status['eta_s']:.0f}s"
            return f"{text:<22}"

        line = "     " + "  ".join(f"{role}: {cell(party)}"
                                   for role, party in local.parties.items())
        if live and line != last[0]:
            print("\r" + line, end="", flush=True)
            last[0] = line

    codes = job.wait(3600, on_tick=show_progress)
    if live:
        print()
    failed = {role: code for role, code in codes.items() if code != 0}
    if failed:
        for role in failed:
            party = job.parties[role]
            _say(f"\nparty {role} exited with {failed[role]}; last lines of "
                 f"{_shown(party.console)}:")
            for line in party.console_text().splitlines()[-8:]:
                _say(f"    {line}")
        raise JobError(f"the demo job failed ({', '.join(sorted(failed))}); see the logs above")
    _say(f"     all three finished in {time.perf_counter() - t0:.1f} s")
    _print_stages(out)

    _print_outcome(out, dataset)
    _verify_ledger(config)
    # after the statement: approvals, invoices, a bank statement, an overdue sweep, an
    # adjustment (the billing package; docs/billing.md)
    from billing.demo import DemoJob, run_billing_demo

    _say("\nAfter the statement:")
    run_billing_demo(out, config, rules_path,
                     [DemoJob(f"demo-{dataset.config.period}-seed{seed}",
                              {ROLES["A"]: out / "A" / "statement.json",
                                                  ROLES["B"]: out / "B" / "statement.json"})],
                     seed=seed, say=_say)
    _say(f"\nReports: {_shown(out / 'A' / 'report.html')} and "
         f"{_shown(out / 'B' / 'report.html')}")
    _say("The job is settled: running it again is refused.  To rebuild a party's lost outputs "
         "from its input and the ledger, run all three with --recover (here into new folders):")
    for role, party in job.parties.items():
        command = ["settlechain"] + party.command[3:]
        out_index = command.index("--out") + 1
        command[out_index] = str(out / "recovered" / role)
        _say("  " + " ".join(shlex.quote(_shown(Path(part)) if part.startswith("/") else part)
                             for part in command + ["--recover"]) + (" &" if role != "H" else ""))
    _say(f"Total: {time.perf_counter() - t_start:.1f} s")
    return 0


def _print_stages(out: Path) -> None:
    summaries = {role: json.loads((out / role / "summary.json").read_text()) for role in ROLES}
    anchors = {}
    for role in ROLES:
        try:
            anchors[role] = json.loads((out / role / "anchor.json").read_text())["anchor_stage"]
        except (OSError, KeyError, ValueError):
            anchors[role] = {}
    _say(f"     {'seconds per stage':<20}" + "".join(f"{role:>8}" for role in ROLES)
         + "   (of which waiting for the others)")
    for stage in ("ingest", "agree", "commit", "psi_exact", "psi_key", "mpc", "report",
                  "anchor", "total"):
        cells, waits = [], []
        for role in ROLES:
            block = anchors[role] if stage == "anchor" else \
                summaries[role]["stages"].get(stage, {})
            value = block.get("seconds", 0.0)
            if stage == "total":  # summary.json's clock stops before the anchor
                value += anchors[role].get("seconds", 0.0)
            cells.append(f"{value:>8.2f}" if value else f"{'–':>8}")
            if block.get("waiting_seconds"):
                waits.append(f"{role} {block['waiting_seconds']:.2f}")
        _say(f"     {stage:<20}" + "".join(cells) + (f"   ({', '.join(waits)})" if waits else ""))
    _say(f"     {'peak memory MiB':<20}" + "".join(
        f"{summaries[role]['stages']['peak_memory_mib']:>8.0f}" for role in ROLES))


def _print_outcome(out: Path, dataset) -> None:
    summaries = {role: json.loads((out / role / "summary.json").read_text()) for role in "AB"}
    _say("\nOutcome (rows of each party's own file):")
    _say(f"  {'status':<20}{'A (' + ROLES['A'] + ')':>14}{'B (' + ROLES['B'] + ')':>14}")
    for status in STATUS_ORDER:
        key = "unmatched_local" if status == "unmatched" else status
        _say(f"  {status:<20}{summaries['A']['counts'][key]:>14,}"
             f"{summaries['B']['counts'][key]:>14,}")
    totals = summaries["A"]["totals"]
    pairs = summaries["A"]["pairs"]
    statement = json.loads((out / "A" / "statement.json").read_text())
    _say(f"  pairs: {pairs['matched_exact']:,} exact, {pairs['matched_tolerance']:,} within "
         f"tolerance, {pairs['disputed']:,} disputed")
    def yuan(fen):
        return "withheld" if fen is None else f"¥{fen / 100:,.2f}"

    _say(f"  agreed amount {yuan(totals['agreed_charge'])}; disputed "
         f"{yuan(totals['disputed_local_charge'])} (A) vs "
         f"{yuan(totals['disputed_remote_charge'])} (B); settlement: "
         f"{statement['settlement']}, signed by {', '.join(s['signer'] for s in statement['signatures'])}")
    reasons = summaries["A"].get("reasons", {})
    if reasons:
        _say("  disputes by reason: " + ", ".join(f"{code} {v['pairs']:,}"
                                                  for code, v in reasons.items()
                                                  if code != "other"))
    # The generator knows the true answer: compare every row's status with it.
    truth = pl.read_parquet(out / "data" / "truth.parquet")
    agree = total = 0
    for role in "AB":
        got = pl.read_parquet(out / role / "records.parquet").select("row", "status")
        want = truth.filter(pl.col("side") == role).select("row", "expected_status")
        joined = want.join(got, on="row", how="left")
        agree += int((joined["status"] == joined["expected_status"]).sum())
        total += joined.height
    _say(f"  statuses equal to the generator's true answer: {agree:,} of {total:,} rows")


def _verify_ledger(config: Path) -> None:
    from ledger_anchor import load_config, verify_ledger
    from ledger_anchor.client import identity_of

    parsed = load_config(config)
    report = verify_ledger(parsed.ledger.db, identity_of(parsed))
    _say(f"\nLedger {_shown(Path(parsed.ledger.db))}: {report.size} entries, {report.checkpoints} "
         f"checkpoints and {report.cosignatures} cosignatures, every hash and SM2 signature "
         f"verified; final (cosigned by {parsed.ledger.finality_threshold} of "
         f"{len(parsed.members)} members) up to size {report.final_size}")
    _say(f"  check it yourself: settlechain ledger verify --config {_shown(config)}")
