"""Builds a throw-away consortium for the ledger tests: SM2 keys through our own API,
an X.509 CA and member TLS certificates (ECDSA P-256) through ``cryptography``.

SM2 is for signatures on the ledger; TLS uses ECDSA P-256 certificates from the
consortium CA because gRPC's BoringSSL has no SM2.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ledger_anchor import sm2
from ledger_anchor.config import ConsortiumConfig, load_config


@dataclass(frozen=True)
class Consortium:
    root: Path
    config_path: Path
    config: ConsortiumConfig
    log_key: bytes
    member_keys: dict[str, bytes]

    def sign(self, entry: dict, *signers: str) -> dict[str, bytes]:
        from ledger_anchor.entries import canonical_entry_bytes

        message = canonical_entry_bytes(entry)
        return {signer: sm2.sign(self.member_keys[signer], message) for signer in signers}


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_consortium(root: Path, member_ids: tuple[str, ...] = ("A", "B", "C"), *, finality_threshold: int | None = None,
                    proposal_policy: str | int = "all", endpoint: str = "", origin: str = "settlechain.test/ledger",
                    ca_name: str = "Test Consortium CA", joining: tuple[str, ...] = ()) -> Consortium:
    """``joining``: ids that get keys and a CA-issued TLS certificate under ``members/<id>/``
    but are not in the file (operators that join later by a membership manifest)."""
    root.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate(ca_name, ca_key, None, ca_key, ca=True)
    (root / "ca").mkdir(exist_ok=True)
    (root / "ca" / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    members, member_keys = [], {}
    for member_id in member_ids + joining + ("ledger",):
        tls_key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"member-{member_id}", tls_key, ca_cert.subject, ca_key, ca=False)
        folder = root / ("ledger" if member_id == "ledger" else f"members/{member_id}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(folder / "tls.key", tls_key)
        if member_id == "ledger":
            continue
        private, public = sm2.generate_keypair()
        sm2.save_private_key(folder / "sm2.key", private)
        member_keys[member_id] = private
        if member_id in joining:
            continue
        members.append({"id": member_id, "name": f"Operator {member_id}", "sm2_public_key": public.hex(),
                        "tls_cert": f"members/{member_id}/tls.crt", "grpc_endpoint": "127.0.0.1:0"})
    log_private, log_public = sm2.generate_keypair()
    sm2.save_private_key(root / "ledger" / "log.key", log_private)
    document = {
        "consortium": {"name": "test", "ca_cert": "ca/ca.crt"},
        "ledger": {"origin": origin, "log_public_key": log_public.hex(),
                   "finality_threshold": finality_threshold or len(member_ids),
                   "proposal_policy": proposal_policy, "db": "ledger/ledger.sqlite", "endpoint": endpoint},
        "members": members,
    }
    config_path = root / "consortium.toml"
    config_path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return Consortium(root, config_path, load_config(config_path), log_private, member_keys)


def manifest_entry(manifest, keys: dict[str, bytes]) -> tuple[dict, dict[str, bytes]]:
    """A membership manifest as an entry, signed by ``keys`` ({label: private key}; a
    rotated member's new key signs as ``<id>/next``)."""
    from ledger_anchor.entries import canonical_entry_bytes

    body = manifest.body()
    message = canonical_entry_bytes(body)
    return body, {label: sm2.sign(key, message) for label, key in keys.items()}
