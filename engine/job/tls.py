"""gRPC credentials and peer identity from the consortium's certificates.

Every connection between parties is mutual TLS: the server requires a client
certificate issued by the consortium CA, and the client checks that the server's
certificate names the member it meant to reach.  The member id is the
certificate's common name; :func:`peer_member_id` reads it from a call context so
that a party cannot claim another member's role.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.errors import InputError

CERT_VALIDITY = dt.timedelta(days=365)

# Detect a vanished peer even when no FIN/RST arrives (a cut cable, a frozen host).
def keepalive_options(peer_silence_s: float) -> list[tuple[str, int]]:
    interval_ms = max(1000, int(peer_silence_s * 1000 / 2))
    return [
        ("grpc.keepalive_time_ms", interval_ms),
        ("grpc.keepalive_timeout_ms", interval_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 500),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ]


@dataclass(frozen=True)
class TlsIdentity:
    member_id: str
    ca_cert: bytes
    cert_chain: bytes
    private_key: bytes

    @classmethod
    def load(cls, member_id: str, ca_cert: Path, cert: Path, key: Path) -> TlsIdentity:
        def read(path: Path, what: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read {what}: {exc.strerror}", file=str(path)) from None

        return cls(member_id=member_id, ca_cert=read(ca_cert, "CA certificate"),
                   cert_chain=read(cert, "TLS certificate"), private_key=read(key, "TLS key"))

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)], root_certificates=self.ca_cert,
            require_client_auth=True,
        )

    def channel(self, target: str, server_member_id: str, peer_silence_s: float) -> grpc.Channel:
        """A mutually authenticated channel to ``target`` whose certificate must name
        ``server_member_id``."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca_cert, private_key=self.private_key,
            certificate_chain=self.cert_chain,
        )
        options = keepalive_options(peer_silence_s) + [
            ("grpc.ssl_target_name_override", server_member_id),
            # a party started before its host listens retries within 0.1-2 s, not gRPC's
            # default 1 s doubling to 120 s: the parties of a job start at about the same time
            *RECONNECT_OPTIONS,
        ]
        return grpc.secure_channel(target, credentials, options=options)


#: gRPC channel options: reconnect attempts 0.1 s apart at first, at most 2 s apart
RECONNECT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100),
                     ("grpc.min_reconnect_backoff_ms", 100),
                     ("grpc.max_reconnect_backoff_ms", 2000)]


def peer_member_id(context: grpc.ServicerContext) -> str | None:
    """The common name of the authenticated client certificate, or None."""
    auth = context.auth_context()
    names = auth.get("x509_common_name") or []
    if len(names) != 1:
        return None
    return names[0].decode("utf-8", "replace")


def peer_certificate(context: grpc.ServicerContext) -> tuple[str, str]:
    """(subject, SHA-256 fingerprint in hex) of the authenticated client certificate, for
    the log of a refused peer; ("unknown", "unknown") when the context has none."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert") or []
    if not pems:
        return "unknown", "unknown"
    try:
        cert = x509.load_pem_x509_certificate(pems[0])
    except ValueError:
        return "unreadable", "unknown"
    return cert.subject.rfc4514_string(), cert.fingerprint(hashes.SHA256()).hex()


def make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_member_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, member_id: str, host: str,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS certificate for ``member_id`` (CN and SAN), for client and server auth."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(member_id), x509.DNSName("localhost")]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
