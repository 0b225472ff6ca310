"""The consortium file (docs/interfaces.md, "Consortium file"), the engine's view of it.

There is one reader of the file: :func:`ledger_anchor.config.load_config` (ids, SM2
keys checked to be curve points, TLS certificates, roles, endpoints, the ledger).  This
module is a thin layer over it that adds what a party needs and the ledger does not
require: every member's TLS certificate and both endpoints, the CA certificate, and
where each member's private files live (``members/<id>/`` beside the file).

Endpoints and listen addresses.  ``grpc_endpoint`` / ``mpc_endpoint`` are the addresses
the *other* parties dial to reach a member; optional ``grpc_listen`` / ``mpc_listen`` are
where the member's own servers bind, when that differs (behind NAT or a load balancer,
or a relay; default: the endpoint).  A party binds its own listen addresses and dials the
others' endpoints.  Neither is part of the membership manifest on the ledger, so each
member's copy of this file may give the endpoints as *it* reaches the others (a private
interconnect to one peer, the internet to another).  A
:class:`~ledger_anchor.errors.ConfigError` becomes an :class:`InputError` naming the
file and the key.  Who is a member *now* is decided on the ledger
(:mod:`ledger_anchor.membership`); this file is the local bootstrap.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError
from ledger_anchor.config import ConsortiumConfig, load_config
from ledger_anchor.errors import ConfigError


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    sm2_public_key: bytes
    tls_cert: Path
    grpc_endpoint: str
    mpc_endpoint: str
    key_dir: Path  # where this member's private files live by convention (``members/<id>/``)
    roles: tuple[str, ...] = ("member",)
    # Where this member's own servers bind: ``grpc_listen`` / ``mpc_listen`` in the file, else
    # the endpoints.  The others always dial the endpoints; the two differ behind NAT, a load
    # balancer or a relay (bench/bench_e2e.py's simulated WAN links).
    grpc_listen: str = ""
    mpc_listen: str = ""

    def __post_init__(self) -> None:
        if not self.grpc_listen:
            object.__setattr__(self, "grpc_listen", self.grpc_endpoint)
        if not self.mpc_listen:
            object.__setattr__(self, "mpc_listen", self.mpc_endpoint)

    @property
    def tls_key(self) -> Path:
        return self.key_dir / "tls.key"

    @property
    def sm2_key(self) -> Path:
        return self.key_dir / "sm2.key"


@dataclass(frozen=True)
class Consortium:
    path: Path
    name: str
    ca_cert: Path
    members: tuple[Member, ...]
    ledger_db: Path | None
    ledger_endpoint: str
    config: ConsortiumConfig  # the ledger's reading of the same file (open_ledger takes it)

    @property
    def log_key(self) -> Path:
        """The log's SM2 key (on the host that signs checkpoints), by convention."""
        return self.config.log_key_path

    def member(self, member_id: str) -> Member:
        for member in self.members:
            if member.id == member_id:
                return member
        raise InputError("unknown member", file=str(self.path), column="members.id",
                         expected=" | ".join(m.id for m in self.members), found=repr(member_id))


def read_toml(path: str | Path, what: str) -> tuple[Path, dict]:
    """The absolute path and parsed content of a TOML file; :class:`InputError` naming
    the file when it is missing, unreadable or not TOML."""
    path = Path(path).resolve()
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read {what}: {exc}", file=str(path)) from None


def load_consortium(path: str | Path) -> Consortium:
    """Read the consortium file.  Raises :class:`InputError` naming the file and key."""
    path = Path(path).resolve()
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise InputError(str(exc).removeprefix(f"{path}, ").removeprefix(f"key {exc.key!r}: "), file=str(path),
                         column=exc.key) from None
    source = str(path)
    if not config.name:
        raise InputError("missing required key", file=source, column="consortium.name", expected="a string",
                         found="nothing")
    if config.ca_cert is None:
        raise InputError("missing required key", file=source, column="consortium.ca_cert", expected="a string",
                         found="nothing")
    members = []
    for position, member in enumerate(config.members):
        where = f"members[{position}]"
        for key, value in (("tls_cert", member.tls_cert), ("grpc_endpoint", member.grpc_endpoint),
                           ("mpc_endpoint", member.mpc_endpoint)):
            if not value:
                raise InputError("missing required key", file=source, column=f"{where}.{key}",
                                 expected="a string", found="nothing")
        assert member.tls_cert is not None  # checked just above
        members.append(Member(id=member.id, name=member.name, sm2_public_key=member.sm2_public_key,
                              tls_cert=member.tls_cert, grpc_endpoint=member.grpc_endpoint,
                              mpc_endpoint=member.mpc_endpoint, key_dir=config.member_key_path(member.id).parent,
                              roles=member.roles, grpc_listen=member.grpc_listen,
                              mpc_listen=member.mpc_listen))
    return Consortium(path=path, name=config.name, ca_cert=config.ca_cert, members=tuple(members),
                      ledger_db=config.ledger.db, ledger_endpoint=config.ledger.endpoint, config=config)
