"""The one client API of the ledger, embedded (SQLite) or remote (gRPC).

``open_ledger(config)`` returns an :class:`EmbeddedLedger` over ``[ledger].db`` when
``[ledger].endpoint`` is empty, else a :class:`~ledger_anchor.remote.RemoteLedger`
talking to ``settlechain ledger serve`` with mutual TLS.  Both offer the same methods.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger_anchor import sm2
from ledger_anchor.bundle import ProofBundle
from ledger_anchor.config import ConsortiumConfig, load_config
from ledger_anchor.entries import SignedEntry
from ledger_anchor.errors import ForkError, LedgerError, StorageError
from ledger_anchor.governance import AdoptedRule, GovernanceState
from ledger_anchor.log import AppendReceipt, ForkEvidence, LogIdentity, TransparencyLog
from ledger_anchor.note import Checkpoint, Cosignature, Note
from ledger_anchor.signature_pool import ParallelVerification
from ledger_anchor.witness import WitnessState, cosign, state_after


def identity_of(config: ConsortiumConfig, backend: sm2.Backend | None = None) -> LogIdentity:
    return LogIdentity(
        origin=config.ledger.origin,
        log_key=sm2.PublicKey(config.ledger.log_public_key, backend),
        members={m.id: sm2.PublicKey(m.sm2_public_key, backend) for m in config.members},
        proposal_policy=config.ledger.proposal_policy,
        finality_threshold=config.ledger.finality_threshold,
    )


class LedgerClient(abc.ABC):
    """What every consumer of the ledger uses (docs/interfaces.md "Ledger")."""

    config: ConsortiumConfig
    identity: LogIdentity

    # -- appends ------------------------------------------------------------------
    def append(self, entry: Mapping[str, Any], signatures: Mapping[str, bytes] | None = None) -> AppendReceipt:
        """Append one entry with its authors' signatures ({member id: 64-byte r||s});
        the signatures may instead be inside ``entry`` in the stored list form."""
        return self.append_many([(entry, signatures)])[0]

    @abc.abstractmethod
    def append_many(self, items: Sequence[tuple[Mapping[str, Any], Mapping[str, bytes] | None]]
                    ) -> list[AppendReceipt]:
        """Append a batch in one transaction under one signed checkpoint."""

    # -- reads --------------------------------------------------------------------
    @abc.abstractmethod
    def size(self) -> int: ...

    @abc.abstractmethod
    def entry(self, index: int) -> dict[str, Any]: ...

    @abc.abstractmethod
    def entries(self, start: int, end: int) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def entry_data(self, index: int) -> bytes:
        """The stored canonical leaf data (entry JSON with signatures) of ``index``."""

    @abc.abstractmethod
    def checkpoint(self, size: int | None = None) -> str:
        """The signed checkpoint note (latest, or at ``size``) with its cosignatures."""

    @abc.abstractmethod
    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]: ...

    @abc.abstractmethod
    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]: ...

    @abc.abstractmethod
    def final_size(self) -> int | None:
        """The largest checkpoint size cosigned by at least finality_threshold members."""

    @abc.abstractmethod
    def governance_summary(self) -> list[dict[str, Any]]:
        """Every proposal with its status, approvals and rejections."""

    @abc.abstractmethod
    def adopted_rules(self) -> list[AdoptedRule]:
        """The rule versions adopted by governance (jobs may use only these)."""

    def is_rule_adopted(self, rules_sm3: str) -> bool:
        return any(rule.rules_sm3 == rules_sm3 for rule in self.adopted_rules())

    # -- witnesses ----------------------------------------------------------------
    @abc.abstractmethod
    def add_cosignature(self, cosignature: Cosignature) -> None: ...

    @abc.abstractmethod
    def report_fork(self, reason: str, first: str, second: str) -> None: ...

    @abc.abstractmethod
    def last_cosigned(self, member_id: str) -> str | None: ...

    def cosign(self, member_id: str, member_private_key: bytes | sm2.PrivateKey, *,
               state_path: str | os.PathLike[str] | None = None) -> Cosignature:
        """The witness step for ``member_id``: check the latest checkpoint against the
        last one this member cosigned (its state file, else the log's record), then
        cosign and submit.  A fork is stored as evidence and raised, never cosigned."""
        key = member_private_key if isinstance(member_private_key, sm2.PrivateKey) else sm2.PrivateKey(
            bytes(member_private_key))
        if key.public.raw != self.config.member(member_id).sm2_public_key:
            raise LedgerError(f"the private key given does not match member {member_id!r}'s sm2_public_key")
        previous = WitnessState.load(state_path) if state_path is not None else None
        if previous is None:
            recorded = self.last_cosigned(member_id)
            if recorded is not None:
                note = Note.parse(recorded)
                log_only = Note(note.text, tuple(s for s in note.signatures if s.name == self.identity.origin))
                body = Checkpoint.parse_body(note.text)
                previous = WitnessState(body.origin, body.size, body.root, log_only.format())
        latest = self.checkpoint()
        try:
            cosignature = cosign(origin=self.identity.origin, log_key=self.identity.log_key, member_id=member_id,
                                 member_key=key, checkpoint_note=latest, previous=previous,
                                 consistency_proof=lambda old, new: self.consistency_proof(old, new))
        except ForkError as fork:
            self.report_fork(str(fork), fork.first, fork.second)
            raise
        self.add_cosignature(cosignature)
        if state_path is not None:
            state_after(cosignature, latest, self.identity.origin).save(state_path)
        return cosignature

    # -- proofs for consumers -------------------------------------------------------
    def proof_bundle(self, index: int, *, size: int | None = None) -> ProofBundle:
        """An offline-verifiable bundle for entry ``index``: against the checkpoint at
        ``size``, else the latest final checkpoint covering the entry, else the latest."""
        if size is None:
            final = self.final_size()
            size = final if final is not None and final > index else self.size()
        if not 0 <= index < size:
            raise StorageError(f"entry index: expected 0 <= index < {size}, found {index}")
        return ProofBundle(index, self.entry_data(index), tuple(self.inclusion_proof(index, size)),
                           self.checkpoint(size))

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmbeddedLedger(LedgerClient):
    """The ledger in a local SQLite file (the default mode)."""

    def __init__(self, config: ConsortiumConfig, *, db: str | os.PathLike[str] | None = None,
                 log_private_key: bytes | sm2.PrivateKey | None = None, create: bool = False,
                 readonly: bool = False, synchronous: str = "NORMAL", backend: sm2.Backend | None = None,
                 parallel: ParallelVerification | None = None) -> None:
        self.config = config
        self.identity = identity_of(config, backend)
        key = log_private_key
        if key is not None and not isinstance(key, sm2.PrivateKey):
            key = sm2.PrivateKey(bytes(key), backend)
        self.log = TransparencyLog(Path(db) if db is not None else config.ledger.db, self.identity,
                                   log_private_key=key, create=create, readonly=readonly, synchronous=synchronous,
                                   parallel=parallel)

    def append_many(self, items):  # type: ignore[no-untyped-def]
        return self.log.append_many([SignedEntry.create(entry, signatures) for entry, signatures in items])

    def size(self) -> int:
        return self.log.size()

    def entry(self, index: int) -> dict[str, Any]:
        return self.log.entry(index)

    def entries(self, start: int, end: int) -> list[dict[str, Any]]:
        return [SignedEntry.from_leaf_data(data).to_json() for _, data in self.log.entries(start, end)]

    def entry_data(self, index: int) -> bytes:
        return self.log.entry_data(index)

    def checkpoint(self, size: int | None = None) -> str:
        return self.log.checkpoint(size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        return self.log.consistency_proof(old, new)

    def final_size(self) -> int | None:
        return self.log.final_size()

    def governance(self) -> GovernanceState:
        return self.log.governance()

    def governance_summary(self) -> list[dict[str, Any]]:
        return self.log.governance().summary()

    def adopted_rules(self) -> list[AdoptedRule]:
        return self.log.governance().adopted_rules()

    def add_cosignature(self, cosignature: Cosignature) -> None:
        self.log.add_cosignature(cosignature.member_id, cosignature.size, cosignature.line)

    def report_fork(self, reason: str, first: str, second: str) -> None:
        self.log.record_fork(reason, first, second)

    def last_cosigned(self, member_id: str) -> str | None:
        return self.log.last_cosigned(member_id)

    def forks(self) -> list[ForkEvidence]:
        return self.log.forks()

    def close(self) -> None:
        self.log.close()


def _load_log_key(config: ConsortiumConfig, log_private_key: Any) -> bytes | sm2.PrivateKey | None:
    if log_private_key is not None:
        if isinstance(log_private_key, (str, os.PathLike)):
            return sm2.load_private_key(log_private_key)
        return log_private_key
    if config.log_key_path.exists():
        return sm2.load_private_key(config.log_key_path)
    return None


def open_ledger(config: str | os.PathLike[str] | ConsortiumConfig, *, log_private_key: Any = None,
                db: str | os.PathLike[str] | None = None, member_id: str | None = None,
                create: bool = False, readonly: bool = False, synchronous: str = "NORMAL",
                sm2_backend: str | None = None, parallel: ParallelVerification | None = None) -> LedgerClient:
    """Open the ledger described by ``config`` (a consortium file or a parsed one).

    Embedded when ``[ledger].endpoint`` is empty (or ``db`` is given): the log key is
    ``log_private_key`` (bytes, a PrivateKey or a key file path), else ``ledger/log.key``
    beside the consortium file if present; without one the ledger is read-only.
    Remote otherwise: ``member_id`` says whose TLS certificate (``members/<id>/tls.*``)
    authenticates this client to the service.

    ``parallel``: when the author signatures of a batch are verified on several cores
    (embedded only; default :class:`~ledger_anchor.signature_pool.ParallelVerification`:
    batches of at least 16 gmssl or 256 tongsuopy signatures, one worker per core
    beyond the first; ``signature_pool.SERIAL``: never).
    """
    parsed = config if isinstance(config, ConsortiumConfig) else load_config(config)
    backend = sm2.get_backend(sm2_backend)
    if db is not None or not parsed.ledger.endpoint:
        key = None if readonly else _load_log_key(parsed, log_private_key)
        return EmbeddedLedger(parsed, db=db, log_private_key=key, create=create, readonly=readonly,
                              synchronous=synchronous, backend=backend, parallel=parallel)
    from ledger_anchor.remote import RemoteLedger  # noqa: PLC0415 - gRPC only when needed

    if member_id is None:
        raise LedgerError("a remote ledger needs member_id: whose TLS certificate authenticates this client")
    return RemoteLedger(parsed, member_id=member_id, backend=backend)
