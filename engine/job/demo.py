"""``settlechain demo``: a whole private reconciliation, locally, in one command.

1. generate two operators' billing exports with the true answer (``data_gen``);
2. create a three-member consortium — CMCC (A), CUCC (B) and CTCC as the helper H —
   with a CA, TLS certificates, SM2 keys and an SQLite ledger (``keys init``);
3. adopt the generated rules on the ledger by vote (``rule_proposal``, ``rule_vote``);
4. write the job file and start the three parties as separate processes on loopback;
5. print the outcome, compare it with the generator's true answer, verify the ledger.

Everything stays in ``--out`` so that the run can be inspected and any party re-run
by hand with the command the demo prints.
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from engine.errors import InputError, JobError
from engine.job.consortium import load_consortium
from engine.job.jobfile import Timeouts, write_job
from engine.job.keys import MemberSpec, init_consortium
from engine.rules import load_rules

MARKER = ".settlechain-demo"
ROLES = {"A": "CMCC", "B": "CUCC", "H": "CTCC"}
NAMES = {"CMCC": "China Mobile (operator A)", "CUCC": "China Unicom (operator B)",
         "CTCC": "China Telecom (helper H)"}
STATUS_ORDER = ("matched_exact", "matched_tolerance", "disputed", "unmatched", "duplicate",
                "invalid", "excluded")


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


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


def _adopt_rules(config: Path, rules_sm3: str, version: str) -> int:
    """Propose the rules and have every member vote for them; return the ledger size."""
    from ledger_anchor import canonical_entry_bytes, open_ledger, sm2

    consortium = load_consortium(config)
    keys = {m.id: sm2.load_private_key(m.sm2_key) for m in consortium.members}
    proposal = {"kind": "rule_proposal", "proposal_id": f"rules-{rules_sm3[:16]}",
                "version": version, "rules_sm3": rules_sm3}
    with open_ledger(config, create=True) as ledger:
        ledger.append(proposal, {"CMCC": sm2.sign(keys["CMCC"], canonical_entry_bytes(proposal))})
        for member_id, key in keys.items():
            vote = {"kind": "rule_vote", "proposal_id": proposal["proposal_id"],
                    "voter": member_id, "vote": "approve"}
            ledger.append(vote, {member_id: sm2.sign(key, canonical_entry_bytes(vote))})
        if not ledger.is_rule_adopted(rules_sm3):
            raise JobError("the rules were voted for by every member but are not adopted")
        return ledger.size()


def _party_command(config: Path, job: Path, member: str, data: Path | None, out: Path) -> list[str]:
    command = [sys.executable, "-m", "engine.cli", "party", "--config", str(config), "--job",
               str(job), "--as", member, "--out", str(out)]
    if data is not None:
        command += ["--data", str(data)]
    return command


def _read_status(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").split("\t", 1)[0]
    except OSError:
        return "starting"


def _warm_up() -> None:
    """Run a tiny PSI in memory so that numba compiles the PSI kernels (or loads them
    from its cache) once, before the parties start, instead of A and B compiling them
    at the same time."""
    import numpy as np

    from protocols.psi import ClientRole, ElementSet, ServerRole
    from protocols.psi.sink import run_in_memory

    rows = np.arange(64, dtype=np.uint64).view(np.uint8).reshape(64, 8)
    run_in_memory(ClientRole(b"warm-up-session!", ElementSet.from_fixed(rows[:40])),
                  ServerRole(b"warm-up-session!", ElementSet.from_fixed(rows[20:])))


def run_demo(*, records: int, seed: int, file_format: str, disclosure: str | None, out: Path,
             force: bool) -> int:
    from data_gen.config import GenConfig
    from data_gen.dataset import generate, write_dataset

    t_start = time.perf_counter()
    out = out.resolve()
    _prepare_out(out, force)
    data_dir = out / "data"
    _say(f"settlechain demo: {records:,} call events, seed {seed}, {file_format}; "
         f"everything goes to {out}")

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
    _say(f"  1. generated {data_dir / ('a.' + file_format)} and {data_dir / ('b.' + file_format)}"
         f" with the true answer (truth.parquet) in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    ports = _free_ports(6)
    specs = [MemberSpec(member, NAMES[member], ports[i], ports[3 + i])
             for i, member in enumerate(ROLES.values())]
    config = init_consortium(out / "consortium", specs, name="demo")
    size = _adopt_rules(config, rules.sm3_hash(), rules.version)
    _say(f"  2. consortium of {', '.join(ROLES.values())}: CA, TLS certificates, SM2 keys in "
         f"{config.parent}; rules {rules.sm3_hash()[:16]}… adopted by vote "
         f"({size} ledger entries) in {time.perf_counter() - t0:.1f} s")

    job_path = write_job(out / "job.toml", job_id=f"demo-{dataset.config.period}-seed{seed}",
                         period=dataset.config.period, rules=str(rules_path),
                         rules_sm3=rules.sm3_hash(), parties=ROLES,
                         timeouts=Timeouts(connect_s=120, stage_s=600, peer_silence_s=10))
    _warm_up()
    commands = {}
    for role, member in ROLES.items():
        data = data_dir / f"{role.lower()}.{file_format}" if role != "H" else None
        commands[role] = _party_command(config, job_path, member, data, out / role)
    t0 = time.perf_counter()
    processes = {}
    for role, command in commands.items():
        (out / role).mkdir(exist_ok=True)
        log = open(out / role / "console.log", "wb")  # noqa: SIM115 - closed below
        processes[role] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=out), log)
    _say(f"  3. parties A ({ROLES['A']}), B ({ROLES['B']}) and H ({ROLES['H']}) started as "
         "three processes over mutual-TLS gRPC and MPyC on loopback")
    seen: dict[str, str] = {}
    while any(p.poll() is None for p, _ in processes.values()):
        for role in ROLES:
            stage = _read_status(out / role / "status")
            if seen.get(role) != stage:
                seen[role] = stage
                _say(f"       {role}: {stage}")
        time.sleep(0.2)
    for _, log in processes.values():
        log.close()
    failed = {role: p.returncode for role, (p, _) in processes.items() if p.returncode != 0}
    if failed:
        for role in failed:
            _say(f"\nparty {role} exited with {failed[role]}; last lines of "
                 f"{out / role / 'console.log'}:")
            lines = (out / role / "console.log").read_text(errors="replace").splitlines()
            for line in lines[-8:]:
                _say(f"    {line}")
        raise JobError(f"the demo job failed ({', '.join(sorted(failed))}); see the logs above")
    _say(f"     all three finished in {time.perf_counter() - t0:.1f} s")

    _print_outcome(out, dataset)
    _verify_ledger(config)
    _say(f"\nReports: {out / 'A' / 'report.html'} and {out / 'B' / 'report.html'}")
    _say("Re-run party B by hand (with A and H started the same way):")
    _say("  " + " ".join(shlex.quote(part) for part in
                         ["settlechain"] + commands["B"][3:]))
    _say(f"Total: {time.perf_counter() - t_start:.1f} s")
    return 0


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
    _say(f"  agreed amount ¥{totals['agreed_charge'] / 100:,.2f}; disputed ¥"
         f"{totals['disputed_local_charge'] / 100:,.2f} (A) vs ¥"
         f"{totals['disputed_remote_charge'] / 100:,.2f} (B); settlement: "
         f"{statement['settlement']}, signed by {', '.join(s['signer'] for s in statement['signatures'])}")
    reasons = summaries["A"].get("reasons", {})
    if reasons:
        _say("  disputes by reason: " + ", ".join(f"{code} {v['pairs']:,}"
                                                  for code, v in reasons.items()))
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
    _say(f"\nLedger {parsed.ledger.db}: {report.size} entries, {report.checkpoints} "
         f"checkpoints and {report.cosignatures} cosignatures, every hash and SM2 signature "
         f"verified; final (cosigned by {parsed.ledger.finality_threshold} of "
         f"{len(parsed.members)} members) up to size {report.final_size}")
    _say(f"  check it yourself: settlechain ledger verify --config {config}")
