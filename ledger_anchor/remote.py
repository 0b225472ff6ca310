"""The gRPC client of the LedgerService: the same :class:`LedgerClient` API as the
embedded ledger, over mutual TLS with the member's certificate.

Service errors come back as the matching :class:`LedgerError` subclass with the
server's diagnosis; an unreachable service is a :class:`TransportError`.  Every call
has a deadline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from ledger_anchor import ledger_pb2, ledger_pb2_grpc, sm2
from ledger_anchor.client import LedgerClient, identity_of
from ledger_anchor.config import ConsortiumConfig
from ledger_anchor.entries import SignedEntry
from ledger_anchor.errors import (
    ConfigError,
    EntryError,
    LedgerError,
    NoteError,
    StorageError,
    TransportError,
)
from ledger_anchor.log import AppendReceipt
from ledger_anchor.note import Cosignature

_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: EntryError,
    grpc.StatusCode.NOT_FOUND: StorageError,
    grpc.StatusCode.FAILED_PRECONDITION: NoteError,
}


class RemoteLedger(LedgerClient):
    def __init__(self, config: ConsortiumConfig, *, member_id: str, endpoint: str | None = None,
                 timeout_s: float = 30.0, backend: sm2.Backend | None = None) -> None:
        self.config = config
        self.identity = identity_of(config, backend)
        self.member_id = member_id
        self.timeout_s = timeout_s
        self.endpoint = endpoint or config.ledger.endpoint
        cert_path, key_path = config.member_tls_paths(member_id)
        if config.ca_cert is None:
            raise ConfigError("[consortium].ca_cert is needed for mutual TLS", file=str(config.path))
        try:
            credentials = grpc.ssl_channel_credentials(root_certificates=config.ca_cert.read_bytes(),
                                                       private_key=key_path.read_bytes(),
                                                       certificate_chain=cert_path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read TLS material of member {member_id}: {exc}") from None
        self._channel = grpc.secure_channel(self.endpoint, credentials)
        self._stub = ledger_pb2_grpc.LedgerServiceStub(self._channel)

    def _rpc(self, name: str, request: Any) -> Any:
        try:
            return getattr(self._stub, name)(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            error = _ERRORS.get(code, TransportError)
            raise error(f"ledger service {self.endpoint} ({name}): {detail}") from None

    def _append_signed(self, entries: Sequence[SignedEntry]) -> list[AppendReceipt]:
        request = ledger_pb2.AppendRequest()
        for signed in entries:
            request.entries.append(ledger_pb2.SignedEntry(
                entry_json=signed.signed_bytes,
                signatures=[ledger_pb2.Signature(signer=s, signature=v) for s, v in signed.signatures.items()]))
        response = self._rpc("Append", request)
        return [AppendReceipt(r.index, bytes(r.leaf_hash), r.checkpoint) for r in response.receipts]

    def _checkpoint_response(self, size: int | None = None) -> Any:
        return self._rpc("GetCheckpoint", ledger_pb2.GetCheckpointRequest(size=size or 0, has_size=size is not None))

    def size(self) -> int:
        return int(self._checkpoint_response().tree_size)

    def entry_data(self, index: int) -> bytes:
        response = self._rpc("GetEntries", ledger_pb2.GetEntriesRequest(start=index, end=index + 1))
        if not response.leaf_data:
            raise StorageError(f"entry {index}: expected 0 <= index < {response.tree_size}, found no such entry")
        return bytes(response.leaf_data[0])

    def entry(self, index: int) -> dict[str, Any]:
        return SignedEntry.from_leaf_data(self.entry_data(index)).to_json()

    def entries(self, start: int, end: int) -> list[dict[str, Any]]:
        return [SignedEntry.from_leaf_data(data).to_json() for data in self.entries_data(start, end)]

    def entries_data(self, start: int, end: int) -> list[bytes]:
        result: list[bytes] = []
        while start < end:
            stop = min(end, start + 1000)
            response = self._rpc("GetEntries", ledger_pb2.GetEntriesRequest(start=start, end=stop))
            result.extend(bytes(data) for data in response.leaf_data)
            if not response.leaf_data:
                break
            start += len(response.leaf_data)
        return result

    def governance_entries(self, start: int = 0) -> list[tuple[int, dict[str, Any]]]:
        result: list[tuple[int, dict[str, Any]]] = []
        while True:
            response = self._rpc("GetGovernanceEntries", ledger_pb2.GetGovernanceEntriesRequest(start=start))
            result.extend((int(index), SignedEntry.from_leaf_data(bytes(data)).to_json())
                          for index, data in zip(response.indices, response.leaf_data, strict=True))
            if response.complete or not response.indices:
                return result
            start = int(response.indices[-1]) + 1

    def checkpoint(self, size: int | None = None) -> str:
        return self._checkpoint_response(size).checkpoint

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size() if size is None else size
        response = self._rpc("GetInclusionProof", ledger_pb2.InclusionProofRequest(index=index, tree_size=size))
        return [bytes(h) for h in response.hashes]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.size() if new is None else new
        response = self._rpc("GetConsistencyProof",
                             ledger_pb2.ConsistencyProofRequest(first_size=old, second_size=new))
        return [bytes(h) for h in response.hashes]

    def final_size(self) -> int | None:
        response = self._checkpoint_response()
        return int(response.final_size) if response.has_final else None

    def add_cosignature(self, cosignature: Cosignature) -> None:
        self._rpc("AddCosignature", ledger_pb2.AddCosignatureRequest(
            member_id=cosignature.member_id, tree_size=cosignature.size, signature_line=cosignature.line))

    def report_fork(self, reason: str, first: str, second: str) -> None:
        self._rpc("ReportFork", ledger_pb2.ReportForkRequest(reason=reason, first_checkpoint=first,
                                                             second_checkpoint=second))

    def last_cosigned(self, member_id: str) -> str | None:
        response = self._rpc("GetCheckpoint", ledger_pb2.GetCheckpointRequest(cosigned_by=member_id))
        return response.checkpoint or None

    def close(self) -> None:
        self._channel.close()


__all__ = ["RemoteLedger", "LedgerError"]
