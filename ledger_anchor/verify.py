"""Full verification of a ledger file, from the raw rows, trusting nothing stored.

Every stored row of every table is checked:

* ``meta``: exactly the rows schema version, hash name, origin and log key, with the
  values the log itself insists on when it opens the file; no other table than the
  schema's;
* ``entries``: the indices are 0..n-1 without gaps; each stored entry is canonical
  RFC 8785 JSON with a known ``kind``; every signer is a member with a key in the
  membership manifest in force at that entry (:mod:`ledger_anchor.membership`),
  every signature verifies, every manifest follows from the one before; the leaf
  hash column is recomputed;
* ``governance``: names exactly the consortium entries;
* ``nodes``: the tree is rebuilt and every perfect node is compared with the stored
  one, and there is no other row;
* ``checkpoints``: at each size, the root column and the note's size and root equal
  the recomputed root and the log signature verifies; the latest covers every entry;
  no checkpoint lies beyond the entries;
* ``cosignatures``: every row belongs to a stored checkpoint, its member is a member
  with a key at that size, its line names that member's key, its timestamp column
  equals the line's timestamp, and the cosignature verifies;
* ``forks``: any fork evidence fails verification.

The first failure raises :class:`~ledger_anchor.errors.VerificationError` naming the
index of the bad entry (for a node: the last leaf under it; for a checkpoint or
cosignature: the checkpoint's last index, ``size - 1``).

The author signatures are verified in windows of :data:`SIGNATURE_WINDOW` entries on
every core (:mod:`ledger_anchor.signature_pool`); before any other failure is
reported, the window's signatures up to it are verified, so the failure named is
still the first in index order.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger_anchor import merkle
from ledger_anchor.entries import GOVERNANCE_KINDS, SignedEntry
from ledger_anchor.errors import LedgerError, NoteError, VerificationError
from ledger_anchor.log import HASHER, SCHEMA_VERSION, LogIdentity, connect, new_membership, node_id
from ledger_anchor.membership import Membership
from ledger_anchor.note import Checkpoint, CosignatureVerifier, Note, verify_checkpoint, witness_name
from ledger_anchor.signature_pool import BatchVerifier, ParallelVerification, SignatureCheck

log = logging.getLogger(__name__)

#: Entries whose author signatures are verified together (see the module docstring).
SIGNATURE_WINDOW = 1024


@dataclass
class VerificationReport:
    size: int = 0
    checkpoints: int = 0
    cosignatures: int = 0
    final_size: int | None = None
    root: bytes = b""
    epochs: list[int] = field(default_factory=list)  # ledger index of each membership manifest
    membership: Membership | None = None


def verify_ledger(path: str | Path, identity: LogIdentity, *,
                  progress: Callable[[int], None] | None = None,
                  parallel: ParallelVerification | None = None) -> VerificationReport:
    """Verify the ledger file at ``path`` (see the module docstring).  ``parallel``: how
    the author signatures are spread over the cores (default: every core;
    ``signature_pool.SERIAL``: in this thread only)."""
    db = connect(path, readonly=True)
    verifier = BatchVerifier(parallel)
    try:
        return _verify(db, identity, progress, _Signatures(verifier))
    except sqlite3.DatabaseError as exc:
        raise VerificationError(f"{path}: database unreadable: {exc}", index=None) from None
    finally:
        verifier.close()
        db.close()


class _Signatures:
    """The author signatures of the entries read so far and not yet verified."""

    def __init__(self, verifier: BatchVerifier) -> None:
        self.verifier = verifier
        self.checks: list[SignatureCheck] = []
        self.owners: list[tuple[int, str]] = []  # (entry index, signer) per check
        self.entries = 0

    def add(self, index: int, entry: SignedEntry, membership: Membership) -> None:
        try:
            keys = membership.signers_of(index, entry.kind, entry.body, list(entry.signatures))
        except LedgerError as exc:
            raise VerificationError(str(exc), index=index) from None
        for signer, signature in entry.signatures.items():
            self.checks.append(SignatureCheck(membership.public_key(keys[signer]), entry.signed_bytes, signature))
            self.owners.append((index, signer))
        self.entries += 1
        if self.entries >= SIGNATURE_WINDOW:
            self.verify()

    def verify(self) -> None:
        """Verify what is pending; raise for the first bad signature in index order."""
        failure = self.first_failure()
        if failure is not None:
            raise failure

    def first_failure(self, up_to: int | None = None) -> VerificationError | None:
        """Verify the pending signatures of entries up to index ``up_to`` (all: None) and
        forget every pending one; the error for the first bad one, or None."""
        checks, owners = self.checks, self.owners
        self.checks, self.owners, self.entries = [], [], 0
        if up_to is not None:
            count = sum(1 for index, _ in owners if index <= up_to)  # owners are in order
            checks, owners = checks[:count], owners[:count]
        if not checks:
            return None
        failed = self.verifier.verify(checks)
        if not failed:
            return None
        position = min(failed)
        index, signer = owners[position]
        return VerificationError(f"signature of {signer!r}: {failed[position]}", index=index)


def _verify(db: sqlite3.Connection, identity: LogIdentity,
            progress: Callable[[int], None] | None, signatures: _Signatures) -> VerificationReport:
    try:
        return _verify_rows(db, identity, progress, signatures)
    except VerificationError as exc:
        # Found while signatures were pending: a bad signature at the same entry or
        # before it is the first failure (a serial pass would have stopped there).
        earlier = signatures.first_failure(up_to=exc.index)
        if earlier is not None:
            raise earlier from None
        raise


_TABLES = {"meta", "entries", "nodes", "checkpoints", "cosignatures", "governance", "forks"}


def _verify_rows(db: sqlite3.Connection, identity: LogIdentity,
                 progress: Callable[[int], None] | None,
                 signatures: _Signatures) -> VerificationReport:
    report = VerificationReport()
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables != _TABLES:
        raise VerificationError(f"tables: expected {sorted(_TABLES)}, found {sorted(tables)}", index=None,
                                what="schema")
    meta = {key: value for key, value in db.execute("SELECT key, value FROM meta")}
    want = identity.meta()
    for key in sorted(set(meta) | set(want)):
        if meta.get(key) != want.get(key):
            raise VerificationError(f"meta row {key!r}: expected {want.get(key)!r} (schema {SCHEMA_VERSION}, "
                                    f"the consortium file's origin and log key), found {meta.get(key)!r}",
                                    index=None)
    checkpoints = [(size, bytes(root) if isinstance(root, bytes) else root, note) for size, root, note in
                   db.execute("SELECT size, root, note FROM checkpoints ORDER BY size")]
    cosignatures: dict[int, list[tuple[str, int, Any]]] = {}
    for size, member, timestamp, line in db.execute(
            "SELECT size, member, timestamp, line FROM cosignatures ORDER BY size, member"):
        cosignatures.setdefault(size, []).append((member, timestamp, line))
    governance_rows = {row[0] for row in db.execute("SELECT idx FROM governance")}
    membership = new_membership(identity)
    frontier = merkle.Frontier(HASHER)
    pending_nodes: dict[int, tuple[int, bytes]] = {}  # node id -> (last leaf index, hash)
    checkpoint_position = 0
    final_sizes: list[int] = []

    def check_nodes() -> None:
        if not pending_nodes:
            return
        ids = list(pending_nodes)
        stored: dict[int, Any] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for key, value in db.execute(f"SELECT id, hash FROM nodes WHERE id IN ({','.join('?' * len(chunk))})",
                                         chunk):
                stored[key] = value
        for key in sorted(pending_nodes, key=lambda k: pending_nodes[k][0]):
            index, value = pending_nodes[key]
            if stored.get(key) != value:
                raise VerificationError("stored tree node above this entry differs from the recomputed one",
                                        index=index)
        pending_nodes.clear()

    def check_checkpoints_up_to(size: int) -> None:
        nonlocal checkpoint_position
        while checkpoint_position < len(checkpoints) and checkpoints[checkpoint_position][0] == size:
            check_nodes()
            rows = cosignatures.pop(size, [])
            _check_checkpoint(identity, checkpoints[checkpoint_position], frontier.root(), rows, report,
                              membership)
            manifest = membership.at(size)
            if sum(1 for member, _, _ in rows) >= manifest.witness_k:
                final_sizes.append(size)
            checkpoint_position += 1
        if checkpoint_position < len(checkpoints) and checkpoints[checkpoint_position][0] < size:
            raise VerificationError("checkpoint out of order", index=checkpoints[checkpoint_position][0] - 1,
                                    what="checkpoint covering entry")

    check_checkpoints_up_to(0)
    expected_index = 0
    for index, leaf_hash, data in db.execute("SELECT idx, leaf_hash, data FROM entries ORDER BY idx"):
        if index != expected_index:
            raise VerificationError(f"expected entry {expected_index} next, found entry {index!r} "
                                    "(an entry is missing)", index=expected_index)
        if not isinstance(data, bytes) or not isinstance(leaf_hash, bytes):
            raise VerificationError("entries row: data and leaf_hash must be BLOBs", index=index)
        try:
            entry = SignedEntry.from_leaf_data(data)
        except LedgerError as exc:
            raise VerificationError(str(exc), index=index) from None
        signatures.add(index, entry, membership)
        if entry.kind in GOVERNANCE_KINDS:
            if index not in governance_rows:
                raise VerificationError("consortium entry missing from the governance index", index=index)
            if entry.kind == "membership_manifest":
                signatures.verify()  # the manifest's own signatures, before it counts
                try:
                    membership.apply(index, entry.kind, entry.body, list(entry.signatures))
                except LedgerError as exc:
                    raise VerificationError(str(exc), index=index) from None
                report.epochs.append(index)
        elif index in governance_rows:
            raise VerificationError("governance index names an entry of another kind", index=index)
        computed = HASHER.hash_leaf(data)
        if leaf_hash != computed:
            raise VerificationError(f"stored leaf hash {leaf_hash.hex()} differs from the recomputed "
                                    f"{computed.hex()}", index=index)
        for level, node_index, value in frontier.append(computed):
            if level > 0:
                pending_nodes[node_id(level, node_index)] = (index, value)
        if len(pending_nodes) >= 2000:
            check_nodes()
        expected_index += 1
        check_checkpoints_up_to(expected_index)
        if progress is not None and expected_index % 1000 == 0:
            progress(expected_index)
    check_nodes()
    signatures.verify()
    size = expected_index
    if checkpoint_position < len(checkpoints):
        extra = checkpoints[checkpoint_position][0]
        raise VerificationError(f"checkpoint at size {extra!r} but the ledger holds only {size} entries",
                                index=_last_index(extra), what="checkpoint covering entry")
    if not checkpoints or checkpoints[-1][0] != size:
        raise VerificationError(f"the latest checkpoint does not cover all {size} entries (half-written batch?)",
                                index=max(size - 1, 0))
    if cosignatures:
        orphan = min(cosignatures, key=lambda s: (not isinstance(s, int), s if isinstance(s, int) else 0))
        raise VerificationError(f"cosignatures row(s) at size {orphan!r}, where no checkpoint is stored "
                                f"(members {', '.join(str(m) for m, _, _ in cosignatures[orphan])})",
                                index=_last_index(orphan), what="cosignature of checkpoint covering entry")
    stored_nodes = db.execute("SELECT count(*) FROM nodes").fetchone()[0]
    expected_nodes = size - bin(size).count("1")
    if stored_nodes != expected_nodes:
        raise VerificationError(f"expected {expected_nodes} stored tree nodes, found {stored_nodes}", index=None)
    if any(not isinstance(index, int) or index >= size for index in governance_rows):
        raise VerificationError("governance index names an entry beyond the end", index=None)
    forks = db.execute("SELECT count(*) FROM forks").fetchone()[0]
    if forks:
        raise VerificationError(f"{forks} fork evidence record(s) on file: the log signed inconsistent "
                                "checkpoints (see `settlechain ledger show --forks`)", index=None)
    report.size = size
    report.root = frontier.root()
    report.final_size = max(final_sizes, default=None)
    report.membership = membership
    return report


def _last_index(size: Any) -> int | None:
    return max(size - 1, 0) if isinstance(size, int) else None


def _check_checkpoint(identity: LogIdentity, row: tuple[int, Any, Any], root: bytes,
                      cosignatures: list[tuple[str, Any, Any]], report: VerificationReport,
                      membership: Membership) -> None:
    size, stored_root, note_bytes = row
    where = {"index": size - 1, "what": "checkpoint covering entry"} if size else {"index": 0,
                                                                                   "what": "checkpoint before entry"}
    if stored_root != root:
        raise VerificationError(f"checkpoint at size {size}: stored root differs from the recomputed root", **where)
    try:
        if not isinstance(note_bytes, bytes):
            raise NoteError("the note column must be a BLOB")
        note_text = note_bytes.decode("utf-8")
        verified = verify_checkpoint(note_text, origin=identity.origin, log_key=identity.log_key, members={})
    except (UnicodeDecodeError, NoteError) as exc:
        raise VerificationError(f"checkpoint at size {size}: {exc}", **where) from None
    if verified.checkpoint != Checkpoint(identity.origin, size, root):
        raise VerificationError(f"checkpoint at size {size}: its note says size {verified.checkpoint.size} "
                                f"and root {verified.checkpoint.root.hex()}, want root {root.hex()}", **where)
    report.checkpoints += 1
    manifest = membership.at(size)
    for member, timestamp, line in cosignatures:
        cosigner = manifest.member(member) if isinstance(member, str) else None
        if cosigner is None or cosigner.sm2_public_key is None:
            raise VerificationError(f"cosignature of {member!r} on checkpoint {size}: not a member with a key "
                                    f"in epoch {manifest.epoch}", **where)
        verifier = CosignatureVerifier(witness_name(identity.origin, member),
                                       membership.public_key(cosigner.sm2_public_key), member)
        try:
            if not isinstance(line, bytes):
                raise NoteError("the line column must be a BLOB")
            signature = Note.parse(verified.note.text + "\n" + line.decode("utf-8")).signatures[0]
            if signature.line().encode("utf-8") != line:
                raise NoteError("the stored line is not exactly one signature line")
            if not verifier.matches(signature):
                raise NoteError(f"expected key name {verifier.name!r} with member {member!r}'s key ID")
            if verifier.timestamp(signature) != timestamp:
                raise NoteError(f"timestamp column {timestamp!r} differs from the signed timestamp "
                                f"{verifier.timestamp(signature)}")
            verifier.verify(verified.note.text, signature)
        except (UnicodeDecodeError, NoteError) as exc:
            raise VerificationError(f"cosignature of {member!r} on checkpoint {size}: {exc}", **where) from None
        report.cosignatures += 1
