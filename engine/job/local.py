"""A whole job on one machine: a fresh consortium, adopted rules, three party processes.

Used by ``settlechain demo`` and by the integration tests; in production each
operator runs ``settlechain party`` on its own premises.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import JobError
from engine.job.consortium import load_consortium
from engine.job.jobfile import Timeouts, write_job
from engine.job.keys import MemberSpec, init_consortium
from engine.job.party import FAULT_ENV  # noqa: F401 - re-exported for the tests
from engine.rules import load_rules

ROLES: dict[str, str] = {"A": "CMCC", "B": "CUCC", "H": "CTCC"}
NAMES: dict[str, str] = {"CMCC": "China Mobile (operator A)", "CUCC": "China Unicom (operator B)",
                         "CTCC": "China Telecom (helper H)"}


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def create_consortium(folder: Path, roles: dict[str, str] = ROLES, *, name: str = "local") -> Path:
    ports = free_ports(2 * len(roles))
    specs = [MemberSpec(member, NAMES.get(member, member), ports[i], ports[len(roles) + i])
             for i, member in enumerate(roles.values())]
    return init_consortium(folder, specs, name=name)


def adopt_rules(config: Path, rules_sm3: str, version: str, *, name: str = "interconnect",
                effective_from: str = "2026-01") -> int:
    """Propose the rules as the next version of the rule package ``name`` (in force from
    ``effective_from``) and have every member approve it; return the ledger size."""
    from governance import api
    from governance.rules import adopted_packages
    from ledger_anchor import open_ledger, sm2

    consortium = load_consortium(config)
    keys = {m.id: sm2.load_private_key(m.sm2_key) for m in consortium.members}
    with open_ledger(consortium.config, create=True) as ledger:
        sequence = 1 + max((p.sequence for p in adopted_packages(api.replay(ledger)) if p.name == name), default=0)
        proposal_id, _ = api.propose(ledger, proposer=consortium.members[0].id, key=keys[consortium.members[0].id],
                                     type="rule_package", proposal_id=f"{name}-{sequence}",
                                     content={"name": name, "version": version, "sequence": sequence,
                                              "effective_from": effective_from, "rules_sm3": rules_sm3})
        for member_id, key in keys.items():
            api.vote(ledger, proposal_id=proposal_id, voter=member_id, key=key)
        if api.replay(ledger).proposals[proposal_id].status != "passed":
            raise JobError("the rules were voted for by every member but are not adopted")
        return ledger.size()


def party_command(config: Path, job: Path, member: str, data: Path | None,
                  out: Path) -> list[str]:
    command = [sys.executable, "-m", "engine.cli", "party", "--config", str(config), "--job",
               str(job), "--as", member, "--out", str(out)]
    if data is not None:
        command += ["--data", str(data)]
    return command


@dataclass
class PartyProcess:
    role: str
    command: list[str]
    out: Path
    process: subprocess.Popen | None = None

    @property
    def console(self) -> Path:
        return self.out / "console.log"

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except OSError:
            return ""

    def status(self) -> dict:
        """The party's ``status`` file (engine.job.party.StageClock), or ``starting``."""
        import json

        try:
            return json.loads((self.out / "status").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"stage": "starting"}

    def stage(self) -> str:
        return str(self.status().get("stage", "starting"))


@dataclass
class LocalJob:
    folder: Path
    config: Path
    job_path: Path
    parties: dict[str, PartyProcess] = field(default_factory=dict)

    @classmethod
    def prepare(cls, folder: Path, data: dict[str, Path], rules_path: Path, *,
                job_id: str = "local-job", period: str = "2026-10", config: Path | None = None,
                roles: dict[str, str] = ROLES, timeouts: Timeouts | None = None,
                adopt: bool = True, records_per_bucket: int | None = None,
                party_args: dict[str, list[str]] | None = None,
                psi_protocol: str | None = None,
                views: dict[str, Path] | None = None) -> LocalJob:
        """Write the consortium (unless given), adopt the rules and write the job file.
        ``party_args``: extra ``settlechain party`` options per role (e.g. bucket workers).
        ``views``: a role's own copy of the consortium file, in the same folder as ``config``
        (same keys and ledger), that differs in endpoints and listen addresses only (default:
        ``config``): each operator keeps its own copy, with the others' endpoints as it reaches
        them."""
        folder.mkdir(parents=True, exist_ok=True)
        rules = load_rules(rules_path)
        if config is None:
            config = create_consortium(folder / "consortium", roles)
            if adopt:
                adopt_rules(config, rules.sm3_hash(), rules.version, effective_from=period)
        job_path = write_job(folder / f"{job_id}.toml", job_id=job_id, period=period,
                             rules=str(Path(rules_path).resolve()), rules_sm3=rules.sm3_hash(),
                             parties=roles, disclosure=rules.disclosure,
                             records_per_bucket=records_per_bucket, psi_protocol=psi_protocol,
                             timeouts=timeouts or Timeouts(
                                 connect_s=120, stage_s=600, peer_silence_s=10))
        local = cls(folder=folder, config=config, job_path=job_path)
        for role, member in roles.items():
            command = party_command((views or {}).get(role, config), job_path, member, data.get(role),
                                    folder / role)
            local.parties[role] = PartyProcess(
                role, command + list((party_args or {}).get(role, [])), folder / role)
        return local

    def start(self, env: dict[str, dict[str, str]] | None = None) -> None:
        """Start the three processes (``env``: extra variables per role)."""
        for role, party in self.parties.items():
            party.out.mkdir(parents=True, exist_ok=True)
            environment = dict(os.environ)
            environment.update((env or {}).get(role, {}))
            with open(party.console, "wb") as console:
                party.process = subprocess.Popen(party.command, stdout=console,
                                                 stderr=subprocess.STDOUT, env=environment,
                                                 cwd=self.folder)

    def running(self) -> bool:
        return any(p.process is not None and p.process.poll() is None
                   for p in self.parties.values())

    def wait(self, timeout_s: float, on_tick=None) -> dict[str, int]:
        """Wait for all three; kill what is left after ``timeout_s``; return exit codes."""
        deadline = time.monotonic() + timeout_s
        try:
            while self.running() and time.monotonic() < deadline:
                if on_tick is not None:
                    on_tick(self)
                time.sleep(0.1)
            if on_tick is not None:
                on_tick(self)
        finally:  # also when the wait is interrupted (a test's timeout): no orphan parties
            for party in self.parties.values():
                if party.process is not None and party.process.poll() is None:
                    party.process.kill()
                    party.process.wait()
        return {role: p.process.returncode for role, p in self.parties.items()
                if p.process is not None}
