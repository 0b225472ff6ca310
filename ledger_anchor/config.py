"""The parts of the consortium file (docs/interfaces.md) that the ledger needs.

Reads ``[consortium]`` (name, ca_cert), ``[ledger]`` and each ``[[members]]`` id, name,
sm2_public_key and tls_cert; ignores every other key (the engine owns them).  Relative
paths are relative to the file.  Private material lives beside the file, never in it:
``members/<id>/sm2.key``, ``members/<id>/tls.key``, ``ledger/log.key``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger_anchor.errors import ConfigError, SignatureError
from ledger_anchor.sm2 import check_public_key

_MEMBER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    sm2_public_key: bytes  # 64 bytes x||y
    tls_cert: Path | None = None


@dataclass(frozen=True)
class LedgerSettings:
    origin: str
    log_public_key: bytes
    finality_threshold: int
    proposal_policy: str | int  # "all" | "majority" | k
    db: Path
    endpoint: str = ""


@dataclass(frozen=True)
class ConsortiumConfig:
    name: str
    ledger: LedgerSettings
    members: tuple[Member, ...]
    ca_cert: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    path: Path | None = None

    def member(self, member_id: str) -> Member:
        for member in self.members:
            if member.id == member_id:
                return member
        raise ConfigError(f"member: expected one of {', '.join(m.id for m in self.members)}, "
                          f"found {member_id!r}", file=str(self.path) if self.path else None)

    def member_keys(self) -> dict[str, bytes]:
        return {member.id: member.sm2_public_key for member in self.members}

    def member_key_path(self, member_id: str) -> Path:
        return self.base_dir / "members" / member_id / "sm2.key"

    def member_tls_paths(self, member_id: str) -> tuple[Path, Path]:
        member = self.member(member_id)
        cert = member.tls_cert or self.base_dir / "members" / member_id / "tls.crt"
        return cert, self.base_dir / "members" / member_id / "tls.key"

    @property
    def log_key_path(self) -> Path:
        return self.base_dir / "ledger" / "log.key"

    def required_votes(self, policy: str | int | None = None) -> int:
        """Approvals a proposal needs under ``policy`` (default: the configured one)."""
        return policy_threshold(self.ledger.proposal_policy if policy is None else policy, len(self.members))


def policy_threshold(policy: Any, members: int) -> int:
    if policy == "all":
        return members
    if policy == "majority":
        return members // 2 + 1
    if isinstance(policy, int) and not isinstance(policy, bool) and 1 <= policy <= members:
        return policy
    raise ConfigError(f"proposal_policy: expected \"all\", \"majority\" or an integer 1..{members}, found {policy!r}")


def _get(table: dict[str, Any], key: str, kind: type, file: str, *, default: Any = None, required: bool = True) -> Any:
    if key not in table:
        if required:
            raise ConfigError("missing required key", file=file, key=key)
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"expected {kind.__name__}, found {type(value).__name__} {value!r}", file=file, key=key)
    return value


def _public_key(text: str, file: str, key: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
        check_public_key(raw)
    except (ValueError, SignatureError) as exc:
        raise ConfigError(f"expected 128 hex digits of an SM2 public key x||y, found {text[:20]!r}... ({exc})",
                          file=file, key=key) from None
    return raw


def load_config(path: str | os.PathLike[str]) -> ConsortiumConfig:
    """Read and validate the consortium file at ``path``."""
    source = Path(path)
    file = str(source)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("consortium file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    return parse_config(data, base_dir=source.resolve().parent, path=source)


def parse_config(data: dict[str, Any], *, base_dir: Path, path: Path | None = None) -> ConsortiumConfig:
    file = str(path) if path else "<consortium>"
    consortium = _get(data, "consortium", dict, file, default={}, required=False)
    name = _get(consortium, "name", str, file, default="", required=False)
    ca_text = _get(consortium, "ca_cert", str, file, default="", required=False)
    ledger = _get(data, "ledger", dict, file)
    raw_members = _get(data, "members", list, file)
    members: list[Member] = []
    seen_keys: set[bytes] = set()
    for position, table in enumerate(raw_members):
        where = f"members[{position}]"
        if not isinstance(table, dict):
            raise ConfigError("expected a table", file=file, key=where)
        member_id = _get(table, "id", str, file)
        if not _MEMBER_ID.fullmatch(member_id):
            raise ConfigError(f"expected letters, digits, '_', '.', '-' (max 64), found {member_id!r}",
                              file=file, key=f"{where}.id")
        if any(m.id == member_id for m in members):
            raise ConfigError(f"member id {member_id!r} appears twice", file=file, key=f"{where}.id")
        key = _public_key(_get(table, "sm2_public_key", str, file), file, f"{where}.sm2_public_key")
        if key in seen_keys:
            raise ConfigError("two members share one SM2 public key", file=file, key=f"{where}.sm2_public_key")
        seen_keys.add(key)
        tls_text = _get(table, "tls_cert", str, file, default="", required=False)
        members.append(Member(member_id, _get(table, "name", str, file, default=member_id, required=False),
                              key, base_dir / tls_text if tls_text else None))
    if not members:
        raise ConfigError("expected at least one [[members]] table", file=file, key="members")
    origin = _get(ledger, "origin", str, file)
    if not origin or any(ch.isspace() or ch == "+" for ch in origin):
        raise ConfigError(f"expected a non-empty origin without spaces or '+', found {origin!r}",
                          file=file, key="ledger.origin")
    log_key = _public_key(_get(ledger, "log_public_key", str, file), file, "ledger.log_public_key")
    threshold = _get(ledger, "finality_threshold", int, file, default=len(members), required=False)
    if not 1 <= threshold <= len(members):
        raise ConfigError(f"expected 1..{len(members)} (the number of members), found {threshold}",
                          file=file, key="ledger.finality_threshold")
    policy = ledger.get("proposal_policy", "all")
    try:
        policy_threshold(policy, len(members))
    except ConfigError as exc:
        raise ConfigError(str(exc), file=file, key="ledger.proposal_policy") from None
    db_text = _get(ledger, "db", str, file, default="ledger/ledger.sqlite", required=False)
    endpoint = _get(ledger, "endpoint", str, file, default="", required=False)
    settings = LedgerSettings(origin, log_key, threshold, policy, base_dir / db_text, endpoint)
    return ConsortiumConfig(name, settings, tuple(members), base_dir / ca_text if ca_text else None, base_dir, path)
