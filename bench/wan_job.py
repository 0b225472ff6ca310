"""A whole job's party-to-party connections through simulated WAN links (bench/wan.py).

The connections of one job (engine/job): B and H dial A's gRPC server (the job session;
B's PSI runs on the same channel); for MPC, MPyC's party i dials the parties after it, so
A dials B and H, and B dials H.  Five connections over three party pairs::

    B -> A  gRPC   pair AB        A -> B  MPC   pair AB
    H -> A  gRPC   pair AH        A -> H  MPC   pair AH
                                  B -> H  MPC   pair BH

Each pair of parties gets one simulated link (``--route ...@AB`` etc.): both directions of
a pair's link are shared by its connections (gRPC and MPC between A and B share the A-B
link), and different pairs do not share anything, as when each operator's party sits in
its own cloud and each pair talks over its own path.  To give each dialler its own relay
port, each party gets its own copy of the consortium file (``consortium-<role>.toml``
beside the original: same keys, same ledger) in which the others' endpoints are the relay
ports as that party reaches them, and every member's ``grpc_listen`` / ``mpc_listen`` is
its real loopback port (the feature: a party binds its listen address and dials the
others' endpoints; the endpoints are not in the membership manifest, so copies may differ
there).  Every copy advertises, for each listening member, the relay port of its first
dialler, so that a party that bound its endpoint instead of its listen address would
collide with the relay.

Not through a link: the ledger (a shared SQLite file on this machine, as in every local
job) and bucket workers (not used by bench_e2e).
"""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from copy import deepcopy as copy_document
from dataclasses import dataclass
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Route:
    dialler: str          # role that opens the connection
    target: str           # role that listens
    service: str          # "grpc" | "mpc"
    relay: str            # the relay's listen address (what the dialler is told)
    real: str             # the target's listen address

    @property
    def pair(self) -> str:
        return "".join(sorted((self.dialler, self.target), key="ABH".index))

    @property
    def direction(self) -> str:
        """The link direction of the dialler's data (link ``pair`` runs from its first role
        to its second)."""
        return "ab" if self.pair[0] == self.dialler else "ba"

    def spec(self) -> str:
        """``wan.py relay --route`` argument."""
        return f"{self.relay}={self.real}:{self.direction}@{self.pair}"


CONNECTIONS = (("B", "A", "grpc"), ("H", "A", "grpc"), ("A", "B", "mpc"), ("A", "H", "mpc"),
               ("B", "H", "mpc"))


def job_links(config: Path, roles: dict[str, str], relay_ports: list[int],
              host: str = "127.0.0.1") -> tuple[dict[str, Path], list[Route]]:
    """Write each role's copy of the consortium file ``config`` and return the copies and
    the relay routes (one relay port per connection, ``relay_ports`` in CONNECTIONS order).
    ``config`` itself becomes A's copy."""
    if len(relay_ports) != len(CONNECTIONS):
        raise ValueError(f"expected {len(CONNECTIONS)} relay ports, found {len(relay_ports)}")
    text = config.read_text(encoding="utf-8")
    document = tomllib.loads(text)
    tables = {m["id"]: m for m in document["members"]}
    by_role = {role: tables[member] for role, member in roles.items()}
    routes = []
    for (dialler, target, service), port in zip(CONNECTIONS, relay_ports):
        real = by_role[target].get(f"{service}_listen") or by_role[target][f"{service}_endpoint"]
        routes.append(Route(dialler, target, service, f"{host}:{port}", real))
    for route in reversed(routes):   # every member binds its real port and advertises a relay
        table = by_role[route.target]
        table.setdefault(f"{route.service}_listen", table[f"{route.service}_endpoint"])
        table[f"{route.service}_endpoint"] = route.relay   # the first dialler's relay, in CONNECTIONS order
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    views = {}
    for viewer in ("B", "H", "A"):   # A last: its copy is the original file
        copy = copy_document(document)
        members = {m["id"]: m for m in copy["members"]}
        for route in routes:
            if route.dialler == viewer:
                members[roles[route.target]][f"{route.service}_endpoint"] = route.relay
        path = config if viewer == "A" else config.with_name(f"{config.stem}-{viewer}.toml")
        path.write_text(header + f"# {viewer}'s copy: the others' endpoints as {viewer} reaches them\n"
                        + tomli_w.dumps(copy), encoding="utf-8")
        views[viewer] = path
    return views, routes


def start_relay(link: str, routes: list[Route], folder: Path) -> tuple[subprocess.Popen, Path]:
    """``wan.py relay`` for ``routes`` on link class ``link``; returns the process (stop it
    with terminate(); it then writes bytes per pair and direction to the stats file) and
    the stats file."""
    ready, stats = folder / f"relay-{link}.ready", folder / f"relay-{link}.json"
    command = [sys.executable, str(ROOT / "bench" / "wan.py"), "relay", "--link", link,
               "--ready-file", str(ready), "--stats-json", str(stats)]
    for route in routes:
        command += ["--route", route.spec()]
    process = subprocess.Popen(command, cwd=ROOT)
    end = time.monotonic() + 30
    while not (ready.exists() and ready.read_text().strip()):
        if process.poll() is not None or time.monotonic() > end:
            process.kill()
            raise RuntimeError(f"the {link} relay did not start (exit {process.poll()})")
        time.sleep(0.02)
    return process, stats
