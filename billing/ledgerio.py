"""Billing on the ledger: sealing keys, appending sealed documents, reading what a member can open.

*Sealing keys.*  Each member decrypts with an SM2 key pair of its own for sealing
(``members/<id>/sealing.key``, mode 0600), separate from its signing key.  It publishes
the public half in a clear ``sealing_key`` entry signed with its signing key::

    {"kind": "sealing_key", "member": "CMCC", "public_key": "<128 hex x||y>", "key_id": "<16 hex>"}

The key in force for a member at ledger index i is its latest such entry before i; a
rotation is a new entry.

*Documents.*  :func:`append_documents` seals each document (:mod:`ledger_anchor.sealed`)
to its recipients' keys in force and appends the batch in one transaction with the
authors' signatures.  :func:`read_ledger` walks the whole ledger once and returns what
this member can see: every settlement statement entry, every sealing key, and every
billing document addressed to it, opened and checked against its commitment, in
ledger order -- the input of the replay (:mod:`billing.state`).  An entry addressed to
it that does not open is listed in ``unreadable`` with the reason, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billing.documents import BILLING_KINDS, document_bytes, parse_document
from billing.errors import BillingError, RefusedError
from billing.statement import STATEMENT_KIND
from ledger_anchor import sm2
from ledger_anchor.entries import canonical_entry_bytes, parse_signature_list
from ledger_anchor.errors import LedgerError
from ledger_anchor.sealed import Recipient, SealedDocument, SealError, is_sealed, key_id, open_sealed, seal

log = logging.getLogger(__name__)

SEALING_KEY_KIND = "sealing_key"
SEALING_KEY_FILE = "sealing.key"
READ_CHUNK = 1024


@dataclass(frozen=True)
class OpenedEntry:
    """A billing document this member opened: where, what, who signed, whom it was sealed to."""

    index: int
    kind: str
    document: Any
    signers: frozenset[str]
    recipients: tuple[str, ...]
    salt: bytes
    commitment: str


@dataclass
class LedgerView:
    member: str
    size: int = 0
    statements: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    sealing_keys: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    documents: list[OpenedEntry] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    sealed_for_others: int = 0
    entries_by_index: dict[int, dict[str, Any]] = field(default_factory=dict)
    members_in_force: frozenset[str] | None = None
    cache: dict[int, tuple[str, OpenedEntry | None]] | None = None

    def sealing_key_of(self, member: str, before: int | None = None) -> bytes:
        if self.members_in_force is not None and member not in self.members_in_force:
            raise RefusedError("not_a_member", f"{member} is not a member of the consortium in force; nothing is "
                                               "sealed to it")
        keys = [key for index, key in self.sealing_keys.get(member, []) if before is None or index < before]
        if not keys:
            raise RefusedError("no_sealing_key", f"{member} has published no sealing key on the ledger "
                                                 "(run: settlechain billing keys --as " + member + ")")
        return keys[-1]


def sealing_key_path(base_dir: Path, member: str) -> Path:
    return Path(base_dir) / "members" / member / SEALING_KEY_FILE


def load_or_create_sealing_key(base_dir: Path, member: str) -> tuple[bytes, bool]:
    """(private key, created?) from ``members/<id>/sealing.key``; a fresh key if there is none."""
    path = sealing_key_path(base_dir, member)
    if path.exists():
        return sm2.load_private_key(path), False
    private, _ = sm2.generate_keypair()
    sm2.save_private_key(path, private)
    return private, True


def sealing_key_entry(member: str, public: bytes) -> dict[str, Any]:
    return {"kind": SEALING_KEY_KIND, "member": member, "public_key": bytes(public).hex(), "key_id": key_id(public)}


def publish_sealing_key(ledger: Any, member: str, signing_key: bytes, sealing_private: bytes) -> int | None:
    """Append the member's sealing key unless the latest one on the ledger is already it;
    returns the index appended, or None."""
    public = sm2.public_key_of(sealing_private)
    view = read_ledger(ledger, member, None)
    current = view.sealing_keys.get(member)
    if current and current[-1][1] == public:
        return None
    entry = sealing_key_entry(member, public)
    receipt = ledger.append(entry, {member: sm2.sign(signing_key, canonical_entry_bytes(entry))})
    return receipt.index


def _signers(entry: Mapping[str, Any]) -> frozenset[str]:
    try:
        return frozenset(parse_signature_list(entry.get("signatures")))
    except LedgerError:
        return frozenset()


def read_ledger(ledger: Any, member: str, sealing_private: bytes | None, *,
                member_keys: Mapping[str, bytes] | None = None, until: int | None = None,
                cache: dict[int, tuple[str, OpenedEntry | None]] | None = None) -> LedgerView:
    """Everything billing needs from the ledger, as ``member`` sees it (``sealing_private``
    None: no documents are opened, e.g. to read the sealing keys only).  ``until``: stop
    before that index (the state of the ledger at that size).  ``cache``: index ->
    (commitment, opened document) of entries opened before by this process; an entry is
    opened again if its commitment changed."""
    view = LedgerView(member)
    view.cache = cache
    size = ledger.size() if until is None else min(until, ledger.size())
    view.size = size
    for start in range(0, size, READ_CHUNK):
        for offset, entry in enumerate(ledger.entries(start, min(size, start + READ_CHUNK))):
            index = start + offset
            kind = entry.get("kind")
            if kind == STATEMENT_KIND and isinstance(entry.get("job_id"), str):
                view.statements[entry["job_id"]] = (index, entry)
            elif kind == SEALING_KEY_KIND:
                _sealing_key(view, index, entry, member_keys)
            elif kind in BILLING_KINDS and is_sealed(entry):
                if kind == "netting":  # netting proofs point at other members' entries
                    view.entries_by_index[index] = entry
                _billing_entry(view, index, entry, member, sealing_private)
    return view


def _sealing_key(view: LedgerView, index: int, entry: Mapping[str, Any], member_keys: Mapping[str, bytes] | None
                 ) -> None:
    owner = entry.get("member")
    signers = _signers(entry)
    if not isinstance(owner, str) or signers != {owner}:
        view.unreadable.append((index, f"sealing_key entry not signed by exactly its member {owner!r}"))
        return
    if member_keys is not None and owner not in member_keys:
        view.unreadable.append((index, f"sealing_key of {owner!r}, not a member in force"))
        return
    try:
        public = bytes.fromhex(str(entry.get("public_key")))
        sm2.check_public_key(public)
    except (ValueError, LedgerError) as exc:
        view.unreadable.append((index, f"sealing_key of {owner}: {exc}"))
        return
    view.sealing_keys.setdefault(owner, []).append((index, public))


def _billing_entry(view: LedgerView, index: int, entry: Mapping[str, Any], member: str,
                   sealing_private: bytes | None) -> None:
    try:
        sealed = SealedDocument.from_entry(entry)
    except SealError as exc:
        view.unreadable.append((index, str(exc)))
        return
    if member not in sealed.members:
        view.sealed_for_others += 1
        return
    if sealing_private is None:
        return
    cached = view.cache.get(index) if view.cache is not None else None
    if cached is not None and cached[0] == sealed.commitment and cached[1] is not None:
        view.documents.append(cached[1])
        return
    try:
        opened = open_sealed(sealed, member, sealing_private)
        document = parse_document(opened.document, kind=sealed.kind)
    except (SealError, BillingError) as exc:
        view.unreadable.append((index, f"{sealed.kind} entry sealed to {member} does not open: "
                                       f"{getattr(exc, 'diagnostics', lambda: str(exc))()}"))
        return
    result = OpenedEntry(index, sealed.kind, document, _signers(entry), sealed.members, opened.salt,
                         opened.commitment)
    view.documents.append(result)
    if view.cache is not None:
        view.cache[index] = (sealed.commitment, result)


# ---------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class Outgoing:
    """A document to append, to whom it is sealed, and the signatures it carries (the
    author's is added by :func:`prepare`; a co-signed document carries both)."""

    document: Any
    recipients: tuple[str, ...]


def prepare(view: LedgerView, outgoing: Outgoing) -> dict[str, Any]:
    """The sealed entry of ``outgoing``, sealed to the recipients' keys in force."""
    recipients = [Recipient(m, view.sealing_key_of(m)) for m in sorted(set(outgoing.recipients))]
    return seal(outgoing.document.KIND, document_bytes(outgoing.document), recipients).entry()


def sign_entry(entry: Mapping[str, Any], signing_key: bytes) -> bytes:
    return sm2.sign(signing_key, canonical_entry_bytes(entry))


def append_documents(ledger: Any, view: LedgerView, member: str, signing_key: bytes,
                     outgoing: Sequence[Outgoing]) -> list[int]:
    """Seal and append ``outgoing`` in one batch, each signed by ``member``; the indices."""
    items = []
    for item in outgoing:
        entry = prepare(view, item)
        items.append((entry, {member: sign_entry(entry, signing_key)}))
    return [receipt.index for receipt in ledger.append_many(items)]
