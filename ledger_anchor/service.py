"""The gRPC LedgerService: the embedded ledger served to operators on other hosts.

Started by ``settlechain ledger serve --db FILE --listen HOST:PORT --config CONSORTIUM``.
Wire messages: ``ledger_anchor/ledger.proto``; the generated modules are committed and
regenerated, from the repository root, with exactly::

    python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. ledger_anchor/ledger.proto

Mutual TLS: the server presents its certificate (default ``ledger/tls.crt`` and
``ledger/tls.key`` beside the consortium file) and accepts only client certificates
issued by the consortium CA (``[consortium].ca_cert``); a peer without one is refused
in the TLS handshake, before any protocol message.  Writes (append, cosignatures,
fork reports) additionally need the certificate of a configured member
(``[[members]].tls_cert``); reads are open to any CA-issued certificate (auditors).
The certificates are ECDSA P-256: gRPC's BoringSSL has no SM2, and SM2 is used for
the signatures on the ledger, not for transport.
"""

from __future__ import annotations

import json
import logging
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from ledger_anchor import ledger_pb2, ledger_pb2_grpc
from ledger_anchor.client import EmbeddedLedger
from ledger_anchor.config import ConsortiumConfig
from ledger_anchor.errors import (
    ConfigError,
    EntryError,
    ForkError,
    LedgerError,
    NoteError,
    ProofError,
    StorageError,
)
from ledger_anchor.note import Cosignature

log = logging.getLogger(__name__)

MAX_ENTRIES_PER_READ = 1000
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_RESPONSE_BYTES = 16 * 1024 * 1024

_STATUS = (
    (ForkError, grpc.StatusCode.FAILED_PRECONDITION),
    (NoteError, grpc.StatusCode.FAILED_PRECONDITION),
    (EntryError, grpc.StatusCode.INVALID_ARGUMENT),
    (ProofError, grpc.StatusCode.INVALID_ARGUMENT),
    (StorageError, grpc.StatusCode.NOT_FOUND),
)


def _fingerprint_of_pem(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415

    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256())


def member_fingerprints(config: ConsortiumConfig) -> dict[bytes, str]:
    """{SHA-256 of the DER certificate: member id} of the consortium file's members."""
    result = {}
    for member in config.members:
        cert_path, _ = config.member_tls_paths(member.id)
        try:
            result[_fingerprint_of_pem(cert_path.read_bytes())] = member.id
        except (OSError, ValueError) as exc:
            raise ConfigError(f"member {member.id}: cannot read TLS certificate {cert_path}: {exc}") from None
    return result


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, ledger: EmbeddedLedger) -> None:
        self.ledger = ledger
        self.members = member_fingerprints(ledger.config)

    # -- helpers ----------------------------------------------------------------
    def _member(self, context: grpc.ServicerContext) -> str:
        """The member a client certificate belongs to: in the membership manifest in force
        (its pinned TLS fingerprint), else, for a genesis member, in the consortium file."""
        pems = context.auth_context().get("x509_pem_cert") or []
        current = self.ledger.log.membership().current
        pinned = {m.tls_cert_sha256: m.id for m in current.members if m.tls_cert_sha256}
        for pem in pems:
            fingerprint = _fingerprint_of_pem(pem)
            member = pinned.get(fingerprint.hex())
            if member is None:
                member = self.members.get(fingerprint)
                if member is not None and (current.member(member) is None
                                           or current.member(member).tls_cert_sha256 not in ("", fingerprint.hex())):
                    member = None  # removed since genesis, or its certificate was replaced
            if member is not None:
                return member
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "writes need the TLS certificate of a consortium member")
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, context: grpc.ServicerContext, function, *args: Any) -> Any:
        try:
            return function(*args)
        except LedgerError as exc:
            for kind, code in _STATUS:
                if isinstance(exc, kind):
                    context.abort(code, f"{type(exc).__name__}: {exc.diagnostics()}")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(exc).__name__}: {exc.diagnostics()}")
        except (ValueError, TypeError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {exc}")
        raise AssertionError("unreachable")  # pragma: no cover

    # -- RPCs -------------------------------------------------------------------
    def Append(self, request, context):  # noqa: N802 - gRPC names
        member = self._member(context)

        def run() -> list[Any]:
            items = []
            for position, item in enumerate(request.entries):
                try:
                    body = json.loads(item.entry_json.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise EntryError(f"entries[{position}]: expected UTF-8 JSON, found: {exc}") from None
                signatures = {}
                for signature in item.signatures:
                    if signature.signer in signatures:
                        raise EntryError(f"entries[{position}]: signer {signature.signer!r} appears twice")
                    signatures[signature.signer] = bytes(signature.signature)
                items.append((body, signatures))
            return self.ledger.append_many(items)

        receipts = self._call(context, run)
        log.info("member %s appended %d entries", member, len(receipts))
        return ledger_pb2.AppendResponse(receipts=[
            ledger_pb2.AppendReceipt(index=r.index, leaf_hash=r.leaf_hash, checkpoint=r.checkpoint)
            for r in receipts])

    def GetEntries(self, request, context):  # noqa: N802
        if request.end < request.start or request.end - request.start > MAX_ENTRIES_PER_READ:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"expected start <= end <= start + {MAX_ENTRIES_PER_READ}, found {request.start}..{request.end}")
        rows = self._call(context, self.ledger.log.entries, request.start, request.end)
        data, total = [], 0
        for _, leaf_data in rows:  # a prefix that fits one message; the client asks for the rest
            if data and total + len(leaf_data) > MAX_RESPONSE_BYTES:
                break
            data.append(leaf_data)
            total += len(leaf_data)
        return ledger_pb2.GetEntriesResponse(start=request.start, leaf_data=data, tree_size=self.ledger.size())

    def GetCheckpoint(self, request, context):  # noqa: N802
        if request.cosigned_by and not request.has_size:
            note = self._call(context, self.ledger.last_cosigned, request.cosigned_by) or ""
        else:
            note = self._call(context, self.ledger.checkpoint, request.size if request.has_size else None)
        final = self.ledger.final_size()
        return ledger_pb2.CheckpointResponse(checkpoint=note, tree_size=self.ledger.size(),
                                             final_size=final or 0, has_final=final is not None)

    def GetInclusionProof(self, request, context):  # noqa: N802
        hashes = self._call(context, self.ledger.inclusion_proof, request.index, request.tree_size)
        return ledger_pb2.ProofResponse(hashes=hashes)

    def GetConsistencyProof(self, request, context):  # noqa: N802
        hashes = self._call(context, self.ledger.consistency_proof, request.first_size, request.second_size)
        return ledger_pb2.ProofResponse(hashes=hashes)

    def AddCosignature(self, request, context):  # noqa: N802
        self._member(context)
        cosignature = Cosignature(request.member_id, request.tree_size, b"", 0, request.signature_line)
        self._call(context, self.ledger.add_cosignature, cosignature)
        return ledger_pb2.AddCosignatureResponse()

    def ReportFork(self, request, context):  # noqa: N802
        self._member(context)
        self._call(context, self.ledger.report_fork, request.reason, request.first_checkpoint,
                   request.second_checkpoint)
        return ledger_pb2.ReportForkResponse()

    def GetGovernanceEntries(self, request, context):  # noqa: N802
        rows = self._call(context, self.ledger.log.governance_entries, request.start)
        indices, data, total = [], [], 0
        complete = True
        for index, leaf_data in rows:
            if data and (total + len(leaf_data) > MAX_RESPONSE_BYTES or len(data) >= MAX_ENTRIES_PER_READ):
                complete = False
                break
            indices.append(index)
            data.append(leaf_data)
            total += len(leaf_data)
        return ledger_pb2.GetGovernanceEntriesResponse(indices=indices, leaf_data=data, complete=complete)


def server_credentials(config: ConsortiumConfig, cert: Path, key: Path) -> grpc.ServerCredentials:
    if config.ca_cert is None:
        raise ConfigError("[consortium].ca_cert is needed for mutual TLS", file=str(config.path))
    try:
        ca_pem, cert_pem, key_pem = config.ca_cert.read_bytes(), cert.read_bytes(), key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read TLS material: {exc}") from None
    return grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True)


def start_server(ledger: EmbeddedLedger, listen: str, *, tls_cert: Path | None = None, tls_key: Path | None = None,
                 max_workers: int = 4) -> tuple[grpc.Server, int]:
    """Start serving ``ledger`` on ``listen`` (host:port; port 0 picks one); returns (server, port)."""
    config = ledger.config
    cert = tls_cert or config.base_dir / "ledger" / "tls.crt"
    key = tls_key or config.base_dir / "ledger" / "tls.key"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                  ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(LedgerServicer(ledger), server)
    port = server.add_secure_port(listen, server_credentials(config, cert, key))
    if port == 0:
        raise ConfigError(f"cannot listen on {listen!r}")
    server.start()
    log.info("ledger service listening on %s (port %d)", listen, port)
    return server, port
