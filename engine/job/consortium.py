"""The consortium file (docs/interfaces.md, "Consortium file"), the engine's view of it.

``ledger_anchor.config`` reads the same file for the ledger's needs; this module
reads the members' endpoints and the locations of each member's private material.
Relative paths are resolved against the file's folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ENDPOINT_RE = re.compile(r"^[A-Za-z0-9_.:\[\]-]+:\d{1,5}$")


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    sm2_public_key: bytes
    tls_cert: Path
    grpc_endpoint: str
    mpc_endpoint: str

    @property
    def key_dir(self) -> Path:
        """Where this member's private files live by convention (``members/<id>/``)."""
        return self.tls_cert.parent

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

    @property
    def log_key(self) -> Path:
        """The log's SM2 key (on the host that signs checkpoints), by convention."""
        return self.path.parent / "ledger" / "log.key"

    def member(self, member_id: str) -> Member:
        for member in self.members:
            if member.id == member_id:
                return member
        raise InputError("unknown member", file=str(self.path), column="members.id",
                         expected=" | ".join(m.id for m in self.members), found=repr(member_id))


def _require(table: dict, key: str, kind: type, source: str, where: str):
    if key not in table:
        raise InputError("missing required key", file=source, column=f"{where}.{key}",
                         expected=f"a {kind.__name__}", found="nothing")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InputError("wrong type", file=source, column=f"{where}.{key}",
                         expected=f"a {kind.__name__}", found=repr(value))
    return value


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
    path, doc = read_toml(path, "consortium file")
    source = str(path)
    base = path.parent
    head = doc.get("consortium", {})
    name = _require(head, "name", str, source, "consortium")
    ca_cert = base / _require(head, "ca_cert", str, source, "consortium")
    ledger = doc.get("ledger", {})
    db = ledger.get("db")
    members = []
    raw_members = doc.get("members", [])
    if not isinstance(raw_members, list) or not raw_members:
        raise InputError("no members", file=source, column="members",
                         expected="[[members]] tables", found=repr(raw_members))
    for i, raw in enumerate(raw_members):
        where = f"members[{i}]"
        member_id = _require(raw, "id", str, source, where)
        if not _ID_RE.match(member_id):
            raise InputError("malformed member id", file=source, column=f"{where}.id",
                             expected=_ID_RE.pattern, found=repr(member_id))
        key_hex = _require(raw, "sm2_public_key", str, source, where)
        try:
            public_key = bytes.fromhex(key_hex)
        except ValueError:
            public_key = b""
        if len(public_key) != 64:
            raise InputError("malformed SM2 public key", file=source,
                             column=f"{where}.sm2_public_key",
                             expected="128 hex characters (x||y)", found=repr(key_hex[:20] + "..."))
        endpoints = {}
        for key in ("grpc_endpoint", "mpc_endpoint"):
            value = _require(raw, key, str, source, where)
            if not _ENDPOINT_RE.match(value):
                raise InputError("malformed endpoint", file=source, column=f"{where}.{key}",
                                 expected="host:port", found=repr(value))
            endpoints[key] = value
        members.append(Member(
            id=member_id, name=str(raw.get("name", member_id)), sm2_public_key=public_key,
            tls_cert=base / _require(raw, "tls_cert", str, source, where), **endpoints,
        ))
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        raise InputError("duplicate member id", file=source, column="members.id",
                         expected="unique ids", found=repr(ids))
    return Consortium(
        path=path, name=name, ca_cert=ca_cert, members=tuple(members),
        ledger_db=(base / db) if isinstance(db, str) and db else None,
        ledger_endpoint=str(ledger.get("endpoint", "") or ""),
    )
