"""Helpers of the MPC integration tests: one party per OS process, TLS material."""

from __future__ import annotations

import datetime as dt
import pickle
import traceback
from pathlib import Path


def party_main(index, addresses, params, n_pairs, values, timeout_s, tls, out_path, options=None):
    """Child process entry: run one party, write its result (or error) as a pickle."""
    options = options or {}
    record = options.get("record_received")
    import protocols.mpc.runtime as runtime
    from protocols.mpc.api import run_discrepancy
    from protocols.mpc.params import MpcParties

    loads_calls = []
    original_loads = pickle.loads

    def counting_loads(*args, **kwargs):
        # count the calls made from MPyC's code (its array and transfer paths unpickle peer
        # data); numba unpickles its own on-disk kernel cache, which is not peer data
        import inspect
        if any("/mpyc/" in frame.filename.replace("\\", "/") for frame in inspect.stack()):
            loads_calls.append(1)
        return original_loads(*args, **kwargs)

    pickle.loads = counting_loads  # MPyC's own array paths would call this on peer data
    if record:
        original = runtime._Exchanger.data_received

        def recording(self, data):
            with open(record, "ab") as f:
                f.write(bytes(data))
            return original(self, data)

        runtime._Exchanger.data_received = recording
    if options.get("progress_marker"):
        _mark_progress(runtime, *options["progress_marker"])
    oversized_to = options.get("oversized_frame_to")
    if oversized_to is not None:
        _send_oversized_frame(runtime, oversized_to)
    try:
        result = run_discrepancy(MpcParties(tuple(addresses), index, tls), params, n_pairs, values, timeout_s,
                                 chunk_size=options.get("chunk_size"))
        payload = {"ok": True, "result": result}
    except BaseException as exc:  # the test inspects the error
        payload = {"ok": False, "type": type(exc).__name__, "message": str(exc),
                   "protocol_error": _is_protocol_error(exc), "traceback": traceback.format_exc()}
    payload["pickle_loads_calls"] = len(loads_calls)
    pickle.loads = original_loads
    Path(out_path).write_bytes(pickle.dumps(payload))


def _mark_progress(runtime, path: str, what: str) -> None:
    """Create ``path`` when the first round whose description contains ``what`` starts."""
    original = runtime.MpcSession.exchange

    async def exchange(self, sends, receive_from, description, tag=None):
        if what in description and not Path(path).exists():
            Path(path).write_text(description)
        return await original(self, sends, receive_from, description, tag)

    runtime.MpcSession.exchange = exchange


def _send_oversized_frame(runtime, peer: int) -> None:
    """Misbehave at the first round: send ``peer`` a valid frame followed, in the same
    write, by the first half of a header announcing MAX_MESSAGE_BYTES + 1 bytes, and
    the second half of the header in a later write (so the header is split across
    reads and follows another frame)."""
    import asyncio
    import struct

    original = runtime.MpcSession.exchange

    async def exchange(self, sends, receive_from, what, tag=None):
        if what == "job parameters":
            transport = self.rt.parties[peer].protocol.transport
            header = struct.pack("<qI", (1 << 48) + 999_999, runtime.MAX_MESSAGE_BYTES + 1)
            transport.write(struct.pack("<qI", (1 << 48) + 999_998, 3) + b"abc" + header[:6])
            await asyncio.sleep(0.3)
            transport.write(header[6:])
        return await original(self, sends, receive_from, what, tag)

    runtime.MpcSession.exchange = exchange


def _is_protocol_error(exc) -> bool:
    from protocols.errors import ProtocolError
    return isinstance(exc, ProtocolError)


def make_tls_material(directory: Path, names: tuple[str, str, str], *, ca_name: str = "settlechain test CA"):
    """A consortium CA and one certificate per party (subjectAltName DNS = the party name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_subject).issuer_name(ca_subject)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths = []
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                      x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_path = directory / f"{name}.crt"
        key_path = directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        paths.append((cert_path, key_path))
    return ca_path, paths
