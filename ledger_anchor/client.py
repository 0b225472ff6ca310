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
from ledger_anchor.config import ConsortiumConfig
from ledger_anchor.entries import SignedEntry
from ledger_anchor.errors import ForkError, LedgerError, StorageError
from ledger_anchor.log import AppendReceipt, ForkEvidence, LogIdentity, TransparencyLog
from ledger_anchor.membership import Membership
from ledger_anchor.note import Cosignature
from ledger_anchor.signature_pool import ParallelVerification
from ledger_anchor.witness import Reliance, WitnessState, check_before_rely, cosign


def identity_of(config: ConsortiumConfig, backend: sm2.Backend | None = None) -> LogIdentity:
    return LogIdentity(
        origin=config.ledger.origin,
        log_key=sm2.PublicKey(config.ledger.log_public_key, backend),
        members={m.id: sm2.PublicKey(m.sm2_public_key, backend) for m in config.members},
        proposal_policy=config.ledger.proposal_policy,
        finality_threshold=config.ledger.finality_threshold,
        genesis=config.genesis_manifest(),
    )


class LedgerClient(abc.ABC):
    """What every consumer of the ledger uses (docs/interfaces.md "Ledger")."""

    config: ConsortiumConfig
    identity: LogIdentity

    # -- appends ------------------------------------------------------------------
    def append(self, entry: Mapping[str, Any], signatures: Mapping[str, bytes] | None = None, *,
               verify_as: str | None = None, state_path: str | os.PathLike[str] | None = None) -> AppendReceipt:
        """Append one entry with its authors' signatures ({member id: 64-byte r||s});
        the signatures may instead be inside ``entry`` in the stored list form."""
        return self.append_many([(entry, signatures)], verify_as=verify_as, state_path=state_path)[0]

    def append_many(self, items: Sequence[tuple[Mapping[str, Any], Mapping[str, bytes] | None]], *,
                    verify_as: str | None = None, state_path: str | os.PathLike[str] | None = None
                    ) -> list[AppendReceipt]:
        """Append a batch in one transaction under one signed checkpoint.

        ``verify_as``: the member on whose behalf the batch is appended.  It first checks
        what it relies on (:meth:`check_before_rely` with its ``state_path``); a ledger
        that fails raises and nothing is appended.  Afterwards the member's state moves
        to the new checkpoint, checked against the batch it appended itself."""
        signed = [SignedEntry.create(entry, signatures) for entry, signatures in items]
        if verify_as is None:
            return self._append_signed(signed)
        reliance = self.check_before_rely(verify_as, state_path=state_path)
        receipts = self._append_signed(signed)
        if receipts and state_path is not None:
            reliance.after_own_append(signed, receipts, self.checkpoint(receipts[-1].index + 1)).save(state_path)
        return receipts

    @abc.abstractmethod
    def _append_signed(self, entries: Sequence[SignedEntry]) -> list[AppendReceipt]:
        """Append checked, signed entries in one batch."""

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
    def entries_data(self, start: int, end: int) -> list[bytes]:
        """The stored leaf data of entries start..end-1, in order."""

    @abc.abstractmethod
    def governance_entries(self, start: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """(index, entry with signatures) of every consortium entry (membership manifests,
        proposals, votes, people's certificates, approvals) from ``start`` on."""

    def membership(self) -> Membership:
        """The membership manifests of this log, replayed from its manifest entries as the
        log serves them (their signatures are checked by the log on append, by
        :meth:`check_before_rely` and by ``verify_ledger``, not here)."""
        membership = Membership(self.identity.genesis_manifest())
        for index, entry in self.governance_entries():
            if entry["kind"] == "membership_manifest":
                membership.apply(index, entry["kind"], {k: v for k, v in entry.items() if k != "signatures"},
                                 [s["signer"] for s in entry["signatures"]])
        return membership

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

    # -- witnesses ----------------------------------------------------------------
    @abc.abstractmethod
    def add_cosignature(self, cosignature: Cosignature) -> None: ...

    @abc.abstractmethod
    def report_fork(self, reason: str, first: str, second: str) -> None: ...

    @abc.abstractmethod
    def last_cosigned(self, member_id: str) -> str | None: ...

    def check_before_rely(self, member_id: str, *, state_path: str | os.PathLike[str] | None = None,
                          parallel: ParallelVerification | None = None) -> Reliance:
        """What member ``member_id`` checks before it appends or cosigns anything
        (:func:`ledger_anchor.witness.check_before_rely`): the latest checkpoint's log
        signature, its consistency with the last checkpoint this member has itself seen
        or cosigned (``state_path``; without one, from the empty tree), and the author
        signatures of every entry since, against the membership in force at each.
        Raises a :class:`LedgerError` (a fork is also stored as evidence); on success
        the state file moves to the checked checkpoint."""
        try:
            reliance = check_before_rely(self, member_id, state_path=state_path, parallel=parallel)
        except ForkError as fork:
            if fork.first and fork.second:
                try:
                    self.report_fork(str(fork), fork.first, fork.second)
                except LedgerError:  # the log may refuse evidence it cannot judge; still refuse to rely
                    pass
            raise
        if state_path is not None:
            reliance.state.save(state_path)
        return reliance

    def cosign(self, member_id: str, member_private_key: bytes | sm2.PrivateKey, *,
               state_path: str | os.PathLike[str] | None = None) -> Cosignature:
        """The witness step for ``member_id``: :meth:`check_before_rely`, then cosign the
        checkpoint it checked and submit.  A fork is stored as evidence and raised, never
        cosigned; any other failure raises and nothing is cosigned."""
        key = member_private_key if isinstance(member_private_key, sm2.PrivateKey) else sm2.PrivateKey(
            bytes(member_private_key))
        reliance = self.check_before_rely(member_id, state_path=state_path)
        manifest = reliance.membership.current
        if manifest.member(member_id) is None or key.public.raw != manifest.member(member_id).sm2_public_key:
            raise LedgerError(f"the private key given is not member {member_id!r}'s key in force "
                              f"(epoch {manifest.epoch})")
        previous = WitnessState.load(state_path) if state_path is not None else None
        cosignature = cosign(origin=self.identity.origin, log_key=self.identity.log_key, member_id=member_id,
                             member_key=key, checkpoint_note=reliance.note, previous=previous,
                             consistency_proof=lambda old, new: self.consistency_proof(old, new))
        self.add_cosignature(cosignature)
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

    def _append_signed(self, entries: Sequence[SignedEntry]) -> list[AppendReceipt]:
        return self.log.append_many(entries)

    def size(self) -> int:
        return self.log.size()

    def entry(self, index: int) -> dict[str, Any]:
        return self.log.entry(index)

    def entries(self, start: int, end: int) -> list[dict[str, Any]]:
        return [SignedEntry.from_leaf_data(data).to_json() for _, data in self.log.entries(start, end)]

    def entry_data(self, index: int) -> bytes:
        return self.log.entry_data(index)

    def entries_data(self, start: int, end: int) -> list[bytes]:
        return [data for _, data in self.log.entries(start, end)]

    def governance_entries(self, start: int = 0) -> list[tuple[int, dict[str, Any]]]:
        return [(index, SignedEntry.from_leaf_data(data).to_json())
                for index, data in self.log.governance_entries(start)]

    def membership(self) -> Membership:
        return self.log.membership().copy()

    def checkpoint(self, size: int | None = None) -> str:
        return self.log.checkpoint(size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        return self.log.consistency_proof(old, new)

    def final_size(self) -> int | None:
        return self.log.final_size()

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


