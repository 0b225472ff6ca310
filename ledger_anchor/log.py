"""The transparency log over one SQLite file (WAL mode): appends, proofs, checkpoints.

Schema (``SCHEMA_VERSION`` 2)::

    meta(key, value)                 exactly: origin, hash ("sm3"), log public key, schema version
    entries(idx, leaf_hash, data)    data = canonical JSON leaf data (entries.SignedEntry)
    nodes(id, hash)                  every *perfect* subtree at level >= 1;
                                     id = level << 56 | index (node_id)
    checkpoints(size, root, note)    one log-signed C2SP checkpoint per committed batch
    cosignatures(size, member, timestamp, line)
    governance(idx)                  which entries are consortium entries (manifests, proposals,
                                     votes, people, approvals: entries.GOVERNANCE_KINDS), an index
    forks(id, detected_at, reason, first, second)   fork evidence, never cosigned

Durability: every append (or batch) is one ``BEGIN IMMEDIATE`` transaction that writes
the entries, the new perfect nodes and the checkpoint signed over the new root, so a
checkpoint for size n exists exactly when entries 0..n-1 are committed.  A writer
killed at any moment leaves either the whole batch or none of it.  ``synchronous``
is ``NORMAL`` by default (WAL: survives a killed process; a power cut may lose the
last transactions but never corrupts); pass ``synchronous="FULL"`` for power-loss
durability of each commit.  Concurrent writers in several processes are serialised
by SQLite's write lock; each writer re-reads the tree size inside its transaction.

Proofs read O(log n) stored nodes (:mod:`ledger_anchor.merkle`), in one query.
The checkpoint is signed per batch: ``append_many`` amortises the log signature, and
the author signatures of a large batch are verified on several cores
(:mod:`ledger_anchor.signature_pool`) before the transaction begins.

Who may sign: each entry's signers must be members with a key in the manifest in
force at that entry, and a ``membership_manifest`` must follow from the one before
it (:mod:`ledger_anchor.membership`); the genesis manifest is the consortium file's.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_anchor import merkle
from ledger_anchor.entries import GOVERNANCE_KINDS, SignedEntry
from ledger_anchor.errors import EntryError, NoteError, SignatureError, StorageError
from ledger_anchor.membership import Manifest, Membership
from ledger_anchor.note import (
    Checkpoint,
    CosignatureVerifier,
    Note,
    add_signature_lines,
    sign_checkpoint,
    verify_checkpoint,
    witness_name,
)
from ledger_anchor.signature_pool import BatchVerifier, ParallelVerification, SignatureCheck
from ledger_anchor.sm2 import PrivateKey, PublicKey

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
HASHER = merkle.SM3_HASHER
_LEVEL_SHIFT = 56

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cosignatures (size INTEGER NOT NULL, member TEXT NOT NULL, timestamp INTEGER NOT NULL,
                                         line BLOB NOT NULL, PRIMARY KEY (size, member));
CREATE TABLE IF NOT EXISTS governance (idx INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS forks (id INTEGER PRIMARY KEY, detected_at INTEGER NOT NULL, reason TEXT NOT NULL,
                                  first BLOB NOT NULL, second BLOB NOT NULL);
"""


def _locked(method):
    """Run a method under the log's lock: one connection is shared by all threads of a
    process (e.g. the gRPC workers), and a read must never see a batch being written."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def node_id(level: int, index: int) -> int:
    return (level << _LEVEL_SHIFT) | index


@dataclass(frozen=True)
class LogIdentity:
    """What a log is: its origin, its public key, and its genesis membership manifest
    (``members`` and ``finality_threshold`` are the genesis manifest's)."""

    origin: str
    log_key: PublicKey
    members: Mapping[str, PublicKey]
    proposal_policy: str | int = "all"
    finality_threshold: int = 1
    genesis: Manifest | None = None

    def genesis_manifest(self) -> Manifest:
        if self.genesis is not None:
            return self.genesis
        from ledger_anchor.membership import ManifestMember, genesis_manifest  # noqa: PLC0415

        return genesis_manifest(origin=self.origin, log_public_key=self.log_key.raw,
                                members=[ManifestMember(i, i, k.raw) for i, k in self.members.items()],
                                witness_k=self.finality_threshold,
                                threshold=len(self.members) // 2 + 1)

    def meta(self) -> dict[str, str]:
        """The meta rows a ledger of this identity holds, exactly."""
        return {"schema": str(SCHEMA_VERSION), "origin": self.origin, "hash": HASHER.name,
                "log_public_key": self.log_key.hex()}


@dataclass(frozen=True)
class AppendReceipt:
    index: int
    leaf_hash: bytes
    checkpoint: str  # the signed checkpoint note of the batch that committed the entry


@dataclass(frozen=True)
class ForkEvidence:
    id: int
    detected_at: int
    reason: str
    first: str
    second: str


def connect(path: str | Path, *, readonly: bool = False, synchronous: str = "NORMAL",
            busy_timeout_ms: int = 60_000) -> sqlite3.Connection:
    """An autocommit connection in WAL mode (transactions are explicit)."""
    if readonly:
        if not Path(path).exists():
            raise StorageError(f"{path}: ledger database not found")
        uri = f"file:{Path(path).resolve()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not readonly:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StorageError(f"{path}: expected WAL journal mode, found {mode}")
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise StorageError(f"synchronous: expected NORMAL or FULL, found {synchronous!r}")
        connection.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    return connection


class TransparencyLog:
    """One ledger file.  Thread-safe within a process (one connection, one lock)."""

    def __init__(self, path: str | Path, identity: LogIdentity, *, log_private_key: PrivateKey | None = None,
                 readonly: bool = False, create: bool = False, synchronous: str = "NORMAL",
                 parallel: ParallelVerification | None = None) -> None:
        self.path = Path(path)
        self.identity = identity
        self._key = log_private_key
        if log_private_key is not None and log_private_key.public != identity.log_key:
            raise SignatureError("log private key does not match [ledger].log_public_key of the consortium file")
        if not create and not self.path.exists():
            raise StorageError(f"{self.path}: ledger database not found (create it with `settlechain ledger init`)")
        self._db = connect(self.path, readonly=readonly, synchronous=synchronous)
        self._lock = threading.RLock()
        self._verifier = BatchVerifier(parallel)  # starts no process until a large batch
        self._frontier: merkle.Frontier | None = None
        self._membership = self._new_membership()
        self._membership_size = 0  # entries below this size are reflected in _membership
        try:
            if create:
                self._initialise()
            self._check_meta()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StorageError(f"{self.path}: not a ledger database ({exc})") from None
        except BaseException:
            self._db.close()
            raise

    # -- set-up -------------------------------------------------------------

    def _initialise(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                existing = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
                if not existing:
                    if self._key is None:
                        raise StorageError("creating a ledger needs the log private key (to sign checkpoint 0)")
                    meta = self.identity.meta()
                    self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
                    note = sign_checkpoint(Checkpoint(self.identity.origin, 0, HASHER.empty_root()), self._key)
                    self._db.execute("INSERT INTO checkpoints (size, root, note) VALUES (0, ?, ?)",
                                     (HASHER.empty_root(), note.encode("utf-8")))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _check_meta(self) -> None:
        try:
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:
            raise StorageError(f"{self.path}: not a ledger database (no meta table)") from None
        for key, value in self.identity.meta().items():
            if meta.get(key) != value:
                raise StorageError(f"{self.path}: meta {key}: expected {value!r} (from the consortium file), "
                                   f"found {meta.get(key)!r}")
        extra = sorted(set(meta) - set(self.identity.meta()))
        if extra:
            raise StorageError(f"{self.path}: meta: unexpected key(s) {', '.join(map(repr, extra))}")

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._verifier.close()

    @property
    def verifier(self) -> BatchVerifier:
        """What verifies the author signatures of appended batches (and its workers)."""
        return self._verifier

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------

    @_locked
    def size(self) -> int:
        row = self._db.execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row[0] is None else row[0] + 1

    @_locked
    def read_nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        """Hashes of perfect subtrees (level 0 = leaf hashes), in at most two queries."""
        result: dict[merkle.NodeId, bytes] = {}
        leaves = sorted({index for level, index in ids if level == 0})
        inner = {node_id(level, index): (level, index) for level, index in ids if level > 0}
        for chunk in _chunks(leaves, 900):
            query = f"SELECT idx, leaf_hash FROM entries WHERE idx IN ({','.join('?' * len(chunk))})"
            for index, value in self._db.execute(query, chunk):
                result[(0, index)] = bytes(value)
        keys = list(inner)
        for chunk in _chunks(keys, 900):
            query = f"SELECT id, hash FROM nodes WHERE id IN ({','.join('?' * len(chunk))})"
            for key, value in self._db.execute(query, chunk):
                result[inner[key]] = bytes(value)
        missing = [node for node in ids if node not in result]
        if missing:
            raise StorageError(f"{self.path}: tree node(s) missing: {missing[:4]} (database damaged?)")
        return result

    @_locked
    def entry_data(self, index: int) -> bytes:
        row = self._db.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise StorageError(f"entry {index}: expected 0 <= index < {self.size()}, found no such entry")
        return bytes(row[0])

    @_locked
    def entry(self, index: int) -> dict[str, Any]:
        return SignedEntry.from_leaf_data(self.entry_data(index)).to_json()

    @_locked
    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """(index, leaf data) for start <= index < end."""
        return [(index, bytes(data)) for index, data in
                self._db.execute("SELECT idx, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                                 (start, end))]

    @_locked
    def leaf_hash(self, index: int) -> bytes:
        return self.read_nodes([(0, index)])[(0, index)]

    @_locked
    def root(self, size: int) -> bytes:
        return merkle.root_of(HASHER, size, self.read_nodes)

    def _check_size(self, size: int) -> None:
        current = self.size()
        if not 0 <= size <= current:
            raise StorageError(f"tree size: expected 0 <= size <= {current}, found {size}")

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        with self._lock:
            size = self.size() if size is None else size
            self._check_size(size)
            return merkle.inclusion_proof(HASHER, index, size, self.read_nodes)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        with self._lock:
            size2 = self.size() if size2 is None else size2
            self._check_size(size2)
            return merkle.consistency_proof(HASHER, size1, size2, self.read_nodes)

    @_locked
    def checkpoint_sizes(self) -> list[int]:
        return [row[0] for row in self._db.execute("SELECT size FROM checkpoints ORDER BY size")]

    def checkpoint(self, size: int | None = None, *, cosigned: bool = True) -> str:
        """The signed checkpoint note at ``size`` (default: the latest), with its cosignatures."""
        with self._lock:
            if size is None:
                row = self._db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
            else:
                row = self._db.execute("SELECT size, note FROM checkpoints WHERE size = ?", (size,)).fetchone()
            if row is None:
                raise StorageError(f"no checkpoint at size {size}")
            note = bytes(row[1]).decode("utf-8", errors="replace")
            if cosigned:
                lines = [bytes(line).decode("utf-8", errors="replace") for (line,) in self._db.execute(
                    "SELECT line FROM cosignatures WHERE size = ? ORDER BY member", (row[0],))]
                if lines:
                    note = add_signature_lines(note, lines)
            return note

    @_locked
    def cosigners(self, size: int) -> list[str]:
        return [row[0] for row in self._db.execute(
            "SELECT member FROM cosignatures WHERE size = ? ORDER BY member", (size,))]

    @_locked
    def final_size(self, threshold: int | None = None) -> int | None:
        """The largest checkpoint size cosigned by at least ``threshold`` members (default:
        the witness policy ``k`` of the manifest in force at that size) of that epoch."""
        membership = self.membership()
        counts: dict[int, list[str]] = {}
        for size, member in self._db.execute("SELECT size, member FROM cosignatures ORDER BY size DESC"):
            counts.setdefault(size, []).append(member)
        for size in sorted(counts, reverse=True):
            manifest = membership.at(size)
            valid = [m for m in counts[size] if manifest.member(m) is not None]
            if len(valid) >= (manifest.witness_k if threshold is None else threshold):
                return size
        return None

    @_locked
    def last_cosigned(self, member_id: str) -> str | None:
        """The latest checkpoint that ``member_id`` cosigned, as recorded in this ledger."""
        row = self._db.execute("SELECT size FROM cosignatures WHERE member = ? ORDER BY size DESC LIMIT 1",
                               (member_id,)).fetchone()
        return None if row is None else self.checkpoint(row[0])

    @_locked
    def forks(self) -> list[ForkEvidence]:
        return [ForkEvidence(i, t, reason, bytes(a).decode("utf-8", "replace"), bytes(b).decode("utf-8", "replace"))
                for i, t, reason, a, b in self._db.execute(
                    "SELECT id, detected_at, reason, first, second FROM forks ORDER BY id")]

    # -- membership -------------------------------------------------------------

    def _new_membership(self) -> Membership:
        return new_membership(self.identity)

    def membership(self) -> Membership:
        """The manifests replayed from the manifest entries (kept up to date incrementally)."""
        with self._lock:
            size = self.size()
            if self._membership_size < size:
                self._replay_membership(self._membership, self._membership_size, size)
                self._membership_size = size
            return self._membership

    def _replay_membership(self, membership: Membership, start: int, end: int) -> None:
        for index, data in self._db.execute(
                "SELECT e.idx, e.data FROM governance g JOIN entries e ON e.idx = g.idx "
                "WHERE g.idx >= ? AND g.idx < ? ORDER BY e.idx", (start, end)):
            entry = SignedEntry.from_leaf_data(bytes(data))
            membership.apply(index, entry.kind, entry.body, list(entry.signatures))

    @_locked
    def governance_entries(self, start: int = 0, end: int | None = None) -> list[tuple[int, bytes]]:
        """(index, leaf data) of the consortium entries (entries.GOVERNANCE_KINDS) in [start, end)."""
        end = self.size() if end is None else end
        return [(index, bytes(data)) for index, data in self._db.execute(
            "SELECT e.idx, e.data FROM governance g JOIN entries e ON e.idx = g.idx "
            "WHERE g.idx >= ? AND g.idx < ? ORDER BY e.idx", (start, end))]

    # -- appending ------------------------------------------------------------

    def check_signatures(self, entry: SignedEntry) -> None:
        """Every signer must be a member with a key in force and every signature must verify."""
        self.check_batch_signatures([entry])

    def check_batch_signatures(self, entries: Sequence[SignedEntry], *, start: int | None = None,
                               membership: Membership | None = None) -> Membership:
        """Every signer of every entry must be a member with a key in the manifest in force
        at that entry (the batch appended at ``start``, default: the end of the log), every
        signature must verify, and every manifest must follow from the one before.

        Raises for the first failure in batch order (entry by entry, signers sorted),
        naming the entry's position when the batch has more than one.  Large batches are
        verified on several cores (:mod:`ledger_anchor.signature_pool`); the error is
        the same either way.  Returns the membership after the batch."""
        with self._lock:
            start = self.size() if start is None else start
            trial = (membership or self.membership()).copy()
        checks: list[SignatureCheck] = []
        owners: list[tuple[int, str]] = []
        refused: tuple[int, EntryError] | None = None
        manifests: list[int] = []
        for position, entry in enumerate(entries):
            try:
                keys = trial.signers_of(start + position, entry.kind, entry.body, list(entry.signatures))
            except EntryError as exc:
                refused = (position, exc)
                break
            for signer, signature in entry.signatures.items():
                checks.append(SignatureCheck(trial.public_key(keys[signer]), entry.signed_bytes, signature))
                owners.append((position, signer))
            if entry.kind == "membership_manifest":
                manifests.append(position)
                try:  # a manifest changes who may sign the entries after it
                    trial.apply(start + position, entry.kind, entry.body, list(entry.signatures))
                except EntryError as exc:
                    refused = (position, exc)
                    break
        failures = self._verifier.verify(checks)  # only the signatures before a refused entry
        if failures:
            first = min(failures)
            position, signer = owners[first]
            raise EntryError(f"{_position(position, len(entries))}signature of {signer!r} on the "
                             f"{entries[position].kind} entry: {failures[first]}")
        if refused is not None:
            position, exc = refused
            raise EntryError(f"{_position(position, len(entries))}{exc}") from None
        return trial

    def append(self, entry: SignedEntry) -> AppendReceipt:
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[SignedEntry]) -> list[AppendReceipt]:
        """Append a batch in one transaction with one signed checkpoint."""
        if self._key is None:
            raise StorageError("this ledger client has no log private key: appends need ledger/log.key")
        if not entries:
            return []
        with self._lock:
            expected_start = self.size()
            epoch = self.membership().current.epoch
        membership = self.check_batch_signatures(entries, start=expected_start)  # before the write lock
        leaf_hashes = [HASHER.hash_leaf(entry.leaf_data) for entry in entries]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                start = self.size()
                current = self.membership()
                if start != expected_start and (current.current.epoch != epoch or any(
                        entry.kind == "membership_manifest" for entry in entries)):
                    # another writer changed the membership meanwhile: check again (rare)
                    membership = self.check_batch_signatures(entries, start=start, membership=current)
                receipts = self._append_locked(entries, leaf_hashes)
                self._db.execute("COMMIT")
                if self._membership_size == start:
                    self._membership, self._membership_size = membership, start + len(entries)
            except BaseException:
                self._frontier = None
                self._membership = self._new_membership()
                self._membership_size = 0
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.OperationalError:  # pragma: no cover - already rolled back
                    pass
                raise
            return receipts

    def _append_locked(self, entries: Sequence[SignedEntry], leaf_hashes: Sequence[bytes]) -> list[AppendReceipt]:
        start = self.size()
        if self._frontier is None or self._frontier.size != start:
            self._frontier = merkle.Frontier.load(HASHER, start, self.read_nodes)
        frontier = self._frontier.copy()
        rows_entries, rows_nodes, rows_governance = [], [], []
        for offset, (entry, leaf_hash) in enumerate(zip(entries, leaf_hashes, strict=True)):
            index = start + offset
            if entry.kind in GOVERNANCE_KINDS:
                rows_governance.append((index,))
            rows_entries.append((index, leaf_hash, entry.leaf_data))
            for level, node_index, value in frontier.append(leaf_hash):
                if level > 0:
                    rows_nodes.append((node_id(level, node_index), value))
        self._db.executemany("INSERT INTO entries (idx, leaf_hash, data) VALUES (?, ?, ?)", rows_entries)
        self._db.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)", rows_nodes)
        if rows_governance:
            self._db.executemany("INSERT INTO governance (idx) VALUES (?)", rows_governance)
        root = frontier.root()
        if self._key is None:  # pragma: no cover - append_many checks first
            raise StorageError("appends need the log private key")
        note = sign_checkpoint(Checkpoint(self.identity.origin, frontier.size, root), self._key)
        self._db.execute("INSERT INTO checkpoints (size, root, note) VALUES (?, ?, ?)",
                         (frontier.size, root, note.encode("utf-8")))
        self._frontier = frontier
        return [AppendReceipt(start + offset, leaf_hash, note) for offset, leaf_hash in enumerate(leaf_hashes)]

    # -- cosignatures and forks -----------------------------------------------

    def add_cosignature(self, member_id: str, size: int, line: str) -> None:
        """Store a member's cosignature line of the checkpoint at ``size`` after checking it."""
        with self._lock:
            membership = self.membership()
            try:
                raw = membership.at(size).key_of(member_id, what="cosigner")
                if membership.current.member(member_id) is None:
                    raise EntryError(f"cosigner {member_id!r} is no longer a member "
                                     f"(epoch {membership.current.epoch})")
            except EntryError as exc:
                raise NoteError(f"cosignature of checkpoint {size}: {exc}") from None
            verifier = CosignatureVerifier(witness_name(self.identity.origin, member_id),
                                           membership.public_key(raw), member_id)
            note = Note.parse(self.checkpoint(size, cosigned=False))
            signature = Note.parse(note.text + "\n" + line).signatures[0]
            if not verifier.matches(signature):
                raise NoteError(f"cosignature line: expected key name {verifier.name!r} and the key ID of "
                                f"member {member_id!r}, found {signature.name!r}")
            verifier.verify(note.text, signature)
            self._db.execute("INSERT OR REPLACE INTO cosignatures (size, member, timestamp, line) VALUES (?, ?, ?, ?)",
                             (size, member_id, verifier.timestamp(signature), signature.line().encode("utf-8")))

    def record_fork(self, reason: str, first: str, second: str) -> int:
        """Keep two log-signed checkpoints that cannot both be honest, as evidence.

        Accepted only if both carry a valid log signature and they conflict: same size
        and different roots, or one of them disagrees with this log's own tree (its
        root differs from ours at its size, or its size is beyond our tree)."""
        parsed = [verify_checkpoint(text, origin=self.identity.origin, log_key=self.identity.log_key,
                                    members={}).checkpoint for text in (first, second)]
        with self._lock:
            if not self._conflict(*parsed):
                raise NoteError("not fork evidence: both checkpoints are consistent with this log's tree")
            existing = self._db.execute("SELECT id FROM forks WHERE first = ? AND second = ?",
                                        (first.encode("utf-8"), second.encode("utf-8"))).fetchone()
            if existing:
                return int(existing[0])
            cursor = self._db.execute("INSERT INTO forks (detected_at, reason, first, second) VALUES (?, ?, ?, ?)",
                                      (int(time.time()), reason, first.encode("utf-8"), second.encode("utf-8")))
            log.warning("fork evidence recorded: %s", reason)
            return int(cursor.lastrowid or 0)

    def _conflict(self, a: Checkpoint, b: Checkpoint) -> bool:
        if a.size == b.size:
            return a.root != b.root
        size = self.size()
        return any(c.size > size or self.root(c.size) != c.root for c in (a, b))


def new_membership(identity: LogIdentity) -> Membership:
    """The membership of a log at size 0 (its genesis manifest), with the identity's key objects."""
    membership = Membership(identity.genesis_manifest())
    for key in identity.members.values():
        membership.public_key_cache()[key.raw] = key
    return membership


def _position(position: int, count: int) -> str:
    """``entries[i]: `` for an entry of a batch (the service's name for it), nothing for one entry."""
    return f"entries[{position}]: " if count > 1 else ""


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
