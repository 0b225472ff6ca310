"""The witness step, and what every member checks before it relies on the log.

Before member M appends anything for a job or cosigns a checkpoint, it runs
:func:`check_before_rely` against the log:

1. the latest checkpoint C must carry a valid log signature;
2. C is compared with the last checkpoint P that M has itself seen or cosigned (its
   *state* file, kept per member): a smaller size is stale, the same size with another
   root is a fork;
3. every entry from P's size to C's is fetched and checked: canonical, each signer a
   member with a key in the manifest in force at that entry, every author signature
   valid, every membership manifest following from the one before;
4. the leaf hashes of those entries, appended to P's compact range (the frontier of
   perfect subtree hashes kept in the state), must give exactly C's root.  This is a
   consistency check from P to C (RFC 9162 §2.1.4) that also proves the entries
   fetched are the ones the checkpoint commits to.

Without a state M checks from the empty tree (a member that joins later verifies the
whole log from genesis this way).  On success the state moves to C.  Then, to cosign
C (tlog-cosignature v1 message, SM2; see :mod:`ledger_anchor.note`) the witness
compares it once more with its state and signs.

Fork evidence (two log-signed checkpoints that cannot both be honest) is raised as
:class:`~ledger_anchor.errors.ForkError` carrying both notes; the caller stores it
with the log and never cosigns.

The state is a small JSON file owned by the member (written atomically, mode 0600):
the checkpoint note, the frontier hashes and the membership manifest in force at its
size.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ledger_anchor import merkle
from ledger_anchor.entries import SignedEntry
from ledger_anchor.errors import ForkError, LedgerError, NoteError, ProofError, VerificationError
from ledger_anchor.membership import MANIFEST_KIND, Manifest, Membership
from ledger_anchor.note import Checkpoint, Cosignature, Note, cosign_text, verify_checkpoint, witness_name
from ledger_anchor.signature_pool import BatchVerifier, ParallelVerification, SignatureCheck
from ledger_anchor.sm2 import PrivateKey, PublicKey

#: Entries fetched per read while checking (the gRPC service serves at most 1,000).
FETCH_CHUNK = 1000


@dataclass(frozen=True)
class WitnessState:
    origin: str
    size: int
    root: bytes
    note: str  # the log-signed checkpoint the member last checked or cosigned
    frontier: tuple[bytes, ...] | None = None  # perfect subtree hashes of the tree at ``size``
    manifest: dict[str, Any] | None = None  # the membership manifest in force at ``size`` (body + index)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WitnessState | None:
        source = Path(path)
        if not source.exists():
            return None
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
            checkpoint = Checkpoint.parse_body(Note.parse(data["note"]).text)
            frontier = data.get("frontier")
            if frontier is not None:
                frontier = tuple(base64.b64decode(h, validate=True) for h in frontier)
                if merkle.Frontier(merkle.SM3_HASHER, checkpoint.size, list(frontier)).root() != checkpoint.root:
                    raise ValueError("the frontier hashes do not give the checkpoint's root")
            manifest = data.get("manifest")
            if manifest is not None and not isinstance(manifest, dict):
                raise ValueError("manifest: expected an object")
        except (OSError, ValueError, KeyError, TypeError, NoteError) as exc:
            raise NoteError(f"{source}: witness state unreadable: {exc}") from None
        return cls(checkpoint.origin, checkpoint.size, checkpoint.root, data["note"], frontier, manifest)

    def save(self, path: str | os.PathLike[str]) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            document: dict[str, Any] = {"origin": self.origin, "size": self.size, "note": self.note}
            if self.frontier is not None:
                document["frontier"] = [base64.b64encode(h).decode("ascii") for h in self.frontier]
            if self.manifest is not None:
                document["manifest"] = self.manifest
            os.write(fd, json.dumps(document, indent=1).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)


def cosign(*, origin: str, log_key: PublicKey, member_id: str, member_key: PrivateKey, checkpoint_note: str,
           previous: WitnessState | None, consistency_proof: Callable[[int, int], Sequence[bytes]],
           timestamp: int | None = None) -> Cosignature:
    """Check ``checkpoint_note`` against ``previous`` and cosign it (see module docstring)."""
    verified = verify_checkpoint(checkpoint_note, origin=origin, log_key=log_key, members={})
    checkpoint = verified.checkpoint
    log_only = Note(verified.note.text, tuple(s for s in verified.note.signatures if s.name == origin)).format()
    if previous is not None:
        if previous.origin != origin:
            raise NoteError(f"witness state is for log {previous.origin!r}, not {origin!r}")
        if checkpoint.size == previous.size and checkpoint.root != previous.root:
            raise ForkError(f"fork: two checkpoints of size {checkpoint.size} with different roots; "
                            f"member {member_id} refuses to cosign", first=previous.note, second=log_only)
        if checkpoint.size < previous.size:
            # Stale (an old checkpoint served as the latest), not by itself proof of a fork.
            raise NoteError(f"stale checkpoint: size {checkpoint.size} is smaller than size {previous.size} "
                            f"already cosigned by member {member_id}; refusing to cosign")
        if checkpoint.size > previous.size and previous.size > 0:
            proof = consistency_proof(previous.size, checkpoint.size)
            try:
                merkle.verify_consistency(merkle.SM3_HASHER, previous.size, checkpoint.size, proof,
                                          previous.root, checkpoint.root)
            except ProofError as exc:
                raise ForkError(f"inconsistent checkpoints: size {previous.size} -> {checkpoint.size}: {exc}; "
                                f"member {member_id} refuses to cosign", first=previous.note, second=log_only) from None
    when = int(time.time()) if timestamp is None else timestamp
    name = witness_name(origin, member_id)
    signature = cosign_text(verified.note.text, name, member_key, when)
    return Cosignature(member_id, checkpoint.size, checkpoint.root, when, signature.line())


def state_after(cosignature: Cosignature, checkpoint_note: str, origin: str) -> WitnessState:
    note = Note.parse(checkpoint_note)
    log_only = Note(note.text, tuple(s for s in note.signatures if s.name == origin)).format()
    return WitnessState(origin, cosignature.size, cosignature.root, log_only)


# ---------------------------------------------------------------------------
# Checking before relying on the log


class LogReader(Protocol):
    """What :func:`check_before_rely` reads (any :class:`~ledger_anchor.client.LedgerClient`)."""

    identity: Any

    def checkpoint(self, size: int | None = None) -> str: ...

    def entries_data(self, start: int, end: int) -> list[bytes]: ...


@dataclass(frozen=True)
class Reliance:
    """The outcome of :func:`check_before_rely`: the checkpoint checked (log-signed note),
    the membership as of it, and the member's new state."""

    member_id: str
    note: str
    checkpoint: Checkpoint
    membership: Membership
    state: WitnessState
    checked_entries: int

    def after_own_append(self, entries: Sequence[SignedEntry], receipts: Sequence[Any],
                         checkpoint_note: str) -> WitnessState:
        """The state after this member appended ``entries`` itself right after the checked
        checkpoint: the new checkpoint must be log-signed and its root must be the frontier
        extended by exactly these entries, else :class:`ForkError`."""
        origin = self.checkpoint.origin
        verified = verify_checkpoint(checkpoint_note, origin=origin, log_key=self.membership.public_key(
            self.membership.genesis.log_public_key), members={})
        frontier = merkle.Frontier(merkle.SM3_HASHER, self.state.size, list(self.state.frontier or ()))
        if [r.index for r in receipts] != list(range(self.state.size, self.state.size + len(entries))):
            # someone else appended in between: the next check_before_rely covers it
            return self.state
        frontier.extend(merkle.SM3_HASHER.hash_leaf(entry.leaf_data) for entry in entries)
        if verified.checkpoint.size != frontier.size or verified.checkpoint.root != frontier.root():
            raise ForkError(f"the log's checkpoint after member {self.member_id}'s append (size "
                            f"{verified.checkpoint.size}) is not the checked tree plus the appended entries",
                            first=self.note, second=_log_only(verified.note, origin))
        membership = self.membership.copy()
        for receipt, entry in zip(receipts, entries, strict=True):
            membership.apply(receipt.index, entry.kind, entry.body, list(entry.signatures))
        return _state(origin, _log_only(verified.note, origin), verified.checkpoint, frontier, membership)


def _log_only(note: Note, origin: str) -> str:
    return Note(note.text, tuple(s for s in note.signatures if s.name == origin)).format()


def _state(origin: str, note: str, checkpoint: Checkpoint, frontier: merkle.Frontier,
           membership: Membership) -> WitnessState:
    current = membership.current
    return WitnessState(origin, checkpoint.size, checkpoint.root, note, tuple(frontier.hashes),
                        {"index": current.index, "body": current.body()})


def check_before_rely(log: LogReader, member_id: str, *, state_path: str | os.PathLike[str] | None = None,
                      parallel: ParallelVerification | None = None) -> Reliance:
    """Check the log as member ``member_id`` before relying on it (module docstring).
    Returns the :class:`Reliance`; raises a :class:`LedgerError` naming what failed
    (:class:`ForkError` for two checkpoints that cannot both be honest).  Does not
    write the state: the caller saves ``reliance.state`` once it is done."""
    identity = log.identity
    origin = identity.origin
    latest_note = log.checkpoint()
    try:
        verified = verify_checkpoint(latest_note, origin=origin, log_key=identity.log_key, members={})
    except NoteError as exc:
        raise NoteError(f"member {member_id}: the latest checkpoint fails: {exc}; refusing to rely on the log") \
            from None
    latest = verified.checkpoint
    log_only = _log_only(verified.note, origin)
    genesis = identity.genesis_manifest()
    previous = WitnessState.load(state_path) if state_path is not None else None
    if previous is not None and previous.origin != origin:
        raise NoteError(f"member {member_id}: witness state is for log {previous.origin!r}, not {origin!r}")
    if previous is not None and previous.frontier is not None:
        if latest.size < previous.size:
            raise NoteError(f"member {member_id}: stale checkpoint: the log shows size {latest.size}, "
                            f"smaller than size {previous.size} this member has already seen")
        if latest.size == previous.size and latest.root != previous.root:
            raise ForkError(f"fork: two checkpoints of size {latest.size} with different roots; member "
                            f"{member_id} refuses to rely on the log", first=previous.note, second=log_only)
        frontier = merkle.Frontier(merkle.SM3_HASHER, previous.size, list(previous.frontier))
        membership = _membership_from_state(genesis, previous, identity)
    else:
        if previous is not None and latest.size < previous.size:
            raise NoteError(f"member {member_id}: stale checkpoint: the log shows size {latest.size}, "
                            f"smaller than size {previous.size} this member has already seen")
        frontier = merkle.Frontier(merkle.SM3_HASHER)
        membership = Membership(genesis)
        for key in identity.members.values():
            membership.public_key_cache()[key.raw] = key
    start = frontier.size
    verifier = BatchVerifier(parallel)
    try:
        checks: list[SignatureCheck] = []
        owners: list[int] = []
        for chunk_start in range(start, latest.size, FETCH_CHUNK):
            chunk_end = min(latest.size, chunk_start + FETCH_CHUNK)
            rows = log.entries_data(chunk_start, chunk_end)
            if len(rows) != chunk_end - chunk_start:
                raise VerificationError(f"member {member_id}: the log served {len(rows)} entries for "
                                        f"{chunk_start}..{chunk_end - 1}", index=chunk_start)
            for offset, data in enumerate(rows):
                index = chunk_start + offset
                try:
                    entry = SignedEntry.from_leaf_data(data)
                    keys = membership.signers_of(index, entry.kind, entry.body, list(entry.signatures))
                except LedgerError as exc:
                    raise VerificationError(f"member {member_id} refuses to rely on the log: {exc}",
                                            index=index) from None
                for signer, signature in entry.signatures.items():
                    checks.append(SignatureCheck(membership.public_key(keys[signer]), entry.signed_bytes,
                                                 signature))
                    owners.append(index)
                if entry.kind == MANIFEST_KIND:
                    _verify_checks(verifier, checks, owners, member_id)
                    checks, owners = [], []
                    try:
                        membership.apply(index, entry.kind, entry.body, list(entry.signatures))
                    except LedgerError as exc:
                        raise VerificationError(f"member {member_id} refuses to rely on the log: {exc}",
                                                index=index) from None
                frontier.append(merkle.SM3_HASHER.hash_leaf(data))
            _verify_checks(verifier, checks, owners, member_id)
            checks, owners = [], []
    finally:
        verifier.close()
    if frontier.root() != latest.root:
        first = previous.note if previous is not None else ""
        raise ForkError(f"member {member_id}: the entries the log serves up to size {latest.size} do not hash "
                        f"to its checkpoint's root (inconsistent with size {start} this member has seen); "
                        "refusing to rely on the log", first=first, second=log_only if first else "")
    current = membership.current.member(member_id)
    if current is None:
        raise LedgerError(f"{member_id!r} is not a member in epoch {membership.current.epoch} of the log")
    return Reliance(member_id, log_only, latest, membership, _state(origin, log_only, latest, frontier, membership),
                    latest.size - start)


def _membership_from_state(genesis: Manifest, state: WitnessState, identity: Any) -> Membership:
    if state.manifest is None:
        membership = Membership(genesis)
    else:
        try:
            manifest = Manifest.from_body(state.manifest["body"], state.manifest.get("index"))
        except (LedgerError, KeyError, TypeError) as exc:
            raise NoteError(f"witness state: manifest unreadable: {exc}") from None
        if manifest.origin != genesis.origin or manifest.log_public_key != genesis.log_public_key:
            raise NoteError("witness state: its manifest belongs to another log")
        if manifest.epoch == 0 and manifest.sm3() != genesis.sm3():
            raise NoteError("witness state: its genesis manifest differs from the consortium file's")
        membership = Membership(manifest)
    for key in identity.members.values():
        membership.public_key_cache()[key.raw] = key
    return membership


def _verify_checks(verifier: BatchVerifier, checks: list[SignatureCheck], owners: list[int], member_id: str) -> None:
    if not checks:
        return
    failures = verifier.verify(checks)
    if failures:
        first = min(failures)
        raise VerificationError(f"member {member_id} refuses to rely on the log: author signature: "
                                f"{failures[first]}", index=owners[first])
