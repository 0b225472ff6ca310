"""The parts of the consortium file (docs/interfaces.md) that the ledger needs.

Reads ``[consortium]`` (name, ca_cert), ``[ledger]`` and each ``[[members]]`` id, name,
sm2_public_key, tls_cert, roles, endpoints and listen addresses; ignores every other key.  Relative
paths are relative to the file.  Private material lives beside the file, never in it:
``members/<id>/sm2.key``, ``members/<id>/tls.key``, ``ledger/log.key``.

The file is the local *bootstrap*: where the ledger is, and the genesis membership
manifest (:meth:`ConsortiumConfig.genesis_manifest`, epoch 0).  Who is a member later
is decided on the ledger (:mod:`ledger_anchor.membership`), not here.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger_anchor.errors import ConfigError, SignatureError
from ledger_anchor.membership import ROLE, Manifest, ManifestMember, genesis_manifest
from ledger_anchor.sm2 import check_public_key

_MEMBER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


_ENDPOINT = re.compile(r"[A-Za-z0-9_.:\[\]-]+:[0-9]{1,5}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    sm2_public_key: bytes  # 64 bytes x||y
    tls_cert: Path | None = None
    roles: tuple[str, ...] = ("member",)
    grpc_endpoint: str = ""  # where this member's party listens ("host:port"), "" if none
    mpc_endpoint: str = ""
    tls_cert_sha256: str = ""  # pinned fingerprint ([[members]].tls_cert_sha256), else of tls_cert
    # where this member's own servers bind when that differs from the endpoint the others dial
    # (NAT, a load balancer, a relay): "" = the endpoint itself
    grpc_listen: str = ""
    mpc_listen: str = ""

    def tls_fingerprint(self) -> str:
        """Hex SHA-256 of the DER TLS certificate: the pinned one, else the file's, else ""."""
        if self.tls_cert_sha256 or self.tls_cert is None or not self.tls_cert.exists():
            return self.tls_cert_sha256
        from cryptography import x509  # noqa: PLC0415 - only when a manifest is built
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415

        try:
            certificate = x509.load_pem_x509_certificate(self.tls_cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"member {self.id}: cannot read TLS certificate {self.tls_cert}: {exc}") from None
        return certificate.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class LedgerSettings:
    origin: str
    log_public_key: bytes
    finality_threshold: int
    proposal_policy: str | int  # "all" | "majority" | k
    db: Path
    endpoint: str = ""
    manifest_threshold: int = 1  # signatures of an epoch's members needed on the next manifest


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
        """This member's TLS certificate and key; a member that joined after genesis (so
        is not in this file) keeps them at ``members/<id>/tls.{crt,key}``."""
        listed = [m for m in self.members if m.id == member_id]
        cert = (listed[0].tls_cert if listed else None) or self.base_dir / "members" / member_id / "tls.crt"
        return cert, self.base_dir / "members" / member_id / "tls.key"

    @property
    def log_key_path(self) -> Path:
        return self.base_dir / "ledger" / "log.key"

    def genesis_manifest(self) -> Manifest:
        """Epoch 0 of the membership: this file's members, keys, TLS fingerprints, roles,
        witness policy (``finality_threshold``) and ``manifest_threshold``."""
        return genesis_manifest(
            origin=self.ledger.origin, log_public_key=self.ledger.log_public_key,
            members=[ManifestMember(m.id, m.name, m.sm2_public_key, m.roles, m.tls_fingerprint())
                     for m in self.members],
            witness_k=self.ledger.finality_threshold, threshold=self.ledger.manifest_threshold)


def policy_threshold(policy: Any, members: int) -> int:
    if policy == "all":
        return members
    if policy == "majority":
        return members // 2 + 1
    if isinstance(policy, int) and not isinstance(policy, bool) and 1 <= policy <= members:
        return policy
    raise ConfigError(f"proposal_policy: expected \"all\", \"majority\" or an integer 1..{members}, found {policy!r}")


def _get(table: dict[str, Any], key: str, kind: type, file: str, *, default: Any = None, required: bool = True,
         within: str = "") -> Any:
    """``table[key]`` of type ``kind``; errors name the key as ``within.key`` (e.g. ``members[1].id``)."""
    name = f"{within}.{key}" if within else key
    if key not in table:
        if required:
            raise ConfigError("missing required key", file=file, key=name)
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"expected {kind.__name__}, found {type(value).__name__} {value!r}", file=file, key=name)
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
        member_id = _get(table, "id", str, file, within=where)
        if not _MEMBER_ID.fullmatch(member_id):
            raise ConfigError(f"expected letters, digits, '_', '.', '-' (max 64), found {member_id!r}",
                              file=file, key=f"{where}.id")
        if any(m.id == member_id for m in members):
            raise ConfigError(f"member id {member_id!r} appears twice", file=file, key=f"{where}.id")
        key = _public_key(_get(table, "sm2_public_key", str, file, within=where), file, f"{where}.sm2_public_key")
        if key in seen_keys:
            raise ConfigError("two members share one SM2 public key", file=file, key=f"{where}.sm2_public_key")
        seen_keys.add(key)
        tls_text = _get(table, "tls_cert", str, file, default="", required=False, within=where)
        roles = _get(table, "roles", list, file, default=["member"], required=False, within=where)
        if not roles or len(set(roles)) != len(roles) or not all(
                isinstance(role, str) and ROLE.fullmatch(role) for role in roles):
            raise ConfigError(f"expected a list of distinct lowercase role names, found {roles!r}",
                              file=file, key=f"{where}.roles")
        endpoints = []
        for name in ("grpc_endpoint", "mpc_endpoint", "grpc_listen", "mpc_listen"):
            value = _get(table, name, str, file, default="", required=False, within=where)
            if value and not _ENDPOINT.fullmatch(value):
                raise ConfigError(f"expected host:port, found {value!r}", file=file, key=f"{where}.{name}")
            endpoints.append(value)
        for name, endpoint, listen in (("grpc", endpoints[0], endpoints[2]), ("mpc", endpoints[1], endpoints[3])):
            if listen and not endpoint:
                raise ConfigError(f"{name}_listen {listen!r} given without {name}_endpoint (the address the "
                                  "others dial)", file=file, key=f"{where}.{name}_listen")
        fingerprint = _get(table, "tls_cert_sha256", str, file, default="", required=False, within=where)
        if fingerprint and not _HEX64.fullmatch(fingerprint):
            raise ConfigError(f"expected 64 lowercase hex digits, found {fingerprint!r}",
                              file=file, key=f"{where}.tls_cert_sha256")
        members.append(Member(member_id, _get(table, "name", str, file, default=member_id, required=False, within=where),
                              key, base_dir / tls_text if tls_text else None, tuple(roles), *endpoints[:2],
                              fingerprint, *endpoints[2:]))
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
    manifest_threshold = _get(ledger, "manifest_threshold", int, file, default=len(members) // 2 + 1,
                              required=False)
    if not 1 <= manifest_threshold <= len(members):
        raise ConfigError(f"expected 1..{len(members)} (the number of members), found {manifest_threshold}",
                          file=file, key="ledger.manifest_threshold")
    settings = LedgerSettings(origin, log_key, threshold, policy, base_dir / db_text, endpoint, manifest_threshold)
    return ConsortiumConfig(name, settings, tuple(members), base_dir / ca_text if ca_text else None, base_dir, path)
