"""Worker certificates: one TLS identity per worker, issued by the consortium CA.

By default an operator's workers use the member's own TLS certificate (copied to each of
its nodes).  An operator that wants each worker known apart — the manifest then names
each worker's certificate, and a worker refuses even another worker of the same operator
— has the consortium CA issue one per worker (``settlechain keys worker``); the
certificate's CN is still the member id, so the peer's check of the member holds.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.errors import InputError
from engine.job.tls import issue_member_cert


def worker_cert_paths(folder: str | Path, index: int) -> tuple[Path, Path]:
    """``<folder>/worker-<i>.crt`` and ``.key``: worker i's identity."""
    folder = Path(folder)
    return folder / f"worker-{index}.crt", folder / f"worker-{index}.key"


def issue_worker_identities(ca_cert: Path, ca_key: Path, member_id: str, hosts: list[str],
                            out: Path) -> list[tuple[Path, Path]]:
    """One certificate (CN = ``member_id``, SAN = the host) per host, into ``out``."""
    try:
        authority = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
        authority_key = serialization.load_pem_private_key(Path(ca_key).read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the consortium CA: {exc}", file=str(ca_key)) from None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, host in enumerate(hosts):
        key, cert = issue_member_cert(authority_key, authority, member_id, host)
        cert_path, key_path = worker_cert_paths(out, index)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        written.append((cert_path, key_path))
    return written
