"""``settlechain keys init``: key material for a local or test consortium.

Creates, under one folder:

- ``ca/ca.crt``, ``ca/ca.key``: the consortium CA (ECDSA P-256) that issues every
  member's TLS certificate.  gRPC's TLS stack (BoringSSL) has no SM2 cipher suites,
  so transport authentication uses ECDSA certificates from the consortium CA; SM2
  is used for what the ledger keeps: signatures on entries and checkpoints.
- ``members/<id>/tls.crt``, ``tls.key``: the member's TLS identity (CN = member id,
  SAN = the member id, ``localhost`` and the host's address), valid for client and
  server authentication.
- ``members/<id>/sm2.key``: the member's SM2 signing key (public key in the
  consortium file).
- ``ledger/log.key``: the SM2 key of the log that signs checkpoints.
- ``consortium.toml``: the consortium file of docs/interfaces.md.

Private key files are written with mode 0600.  A production consortium would have
each member generate its own keys and submit a certificate signing request; this
command is for demos and tests, where one machine plays every member.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from engine.errors import InputError
from engine.job.tls import issue_member_cert, make_ca
from ledger_anchor import sm2


@dataclass(frozen=True)
class MemberSpec:
    id: str
    name: str
    grpc_port: int
    mpc_port: int


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def init_consortium(
    out_dir: str | Path,
    members: list[MemberSpec],
    *,
    name: str = "local-consortium",
    host: str = "127.0.0.1",
    finality_threshold: int | None = None,
) -> Path:
    """Create a consortium's key material and file under ``out_dir``; return the file path."""
    out = Path(out_dir)
    if (out / "consortium.toml").exists():
        raise InputError("a consortium already exists here; refusing to overwrite its keys",
                         file=str(out / "consortium.toml"))
    if len({m.id for m in members}) != len(members) or len(members) < 2:
        raise InputError("members must be at least two, with distinct ids",
                         found=repr([m.id for m in members]))
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = make_ca(f"{name} CA")
    (out / "ca").mkdir(exist_ok=True)
    (out / "ca" / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(out / "ca" / "ca.key", _key_pem(ca_key))

    log_private, log_public = sm2.generate_keypair()
    sm2.save_private_key(out / "ledger" / "log.key", log_private)

    member_tables = []
    for spec in members:
        folder = out / "members" / spec.id
        folder.mkdir(parents=True, exist_ok=True)
        tls_key, tls_cert = issue_member_cert(ca_key, ca_cert, spec.id, host)
        (folder / "tls.crt").write_bytes(tls_cert.public_bytes(serialization.Encoding.PEM))
        _write_private(folder / "tls.key", _key_pem(tls_key))
        private, public = sm2.generate_keypair()
        sm2.save_private_key(folder / "sm2.key", private)
        member_tables.append({
            "id": spec.id,
            "name": spec.name,
            "sm2_public_key": public.hex(),
            "tls_cert": f"members/{spec.id}/tls.crt",
            "grpc_endpoint": f"{host}:{spec.grpc_port}",
            "mpc_endpoint": f"{host}:{spec.mpc_port}",
        })
    document = {
        "consortium": {"name": name, "ca_cert": "ca/ca.crt"},
        "ledger": {
            "origin": f"settlechain.local/{name}",
            "log_public_key": log_public.hex(),
            "finality_threshold": finality_threshold or len(members),
            "proposal_policy": "all",
            "db": "ledger/ledger.sqlite",
            "endpoint": "",
        },
        "members": member_tables,
    }
    path = out / "consortium.toml"
    path.write_text(
        "# settlechain consortium file (docs/interfaces.md). Private keys live beside it,\n"
        "# never in it: members/<id>/{tls.key,sm2.key}, ledger/log.key (mode 0600).\n"
        + tomli_w.dumps(document),
        encoding="utf-8",
    )
    return path
