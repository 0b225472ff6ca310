"""Ledger entries: RFC 8785 canonical JSON objects with a ``kind`` and their authors' SM2 signatures.

An entry as authors write it is a JSON object without ``signatures``; each author
signs :func:`canonical_entry_bytes` of it (RFC 8785 JSON Canonicalization Scheme).
The ledger stores, and the Merkle leaf commits to, the entry *with* its signatures::

    leaf data = JCS(entry + {"signatures": [{"signer": id, "sig": hex(r||s)}, ...]})

with the signatures sorted by signer (the format of ``statement.json`` in
docs/records.md), so changing a stored signature changes the leaf hash and the tree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from ledger_anchor.errors import EntryError

#: Consortium entries: membership manifests (checked by :mod:`ledger_anchor.membership`)
#: and the governance package's proposals, votes, people's certificates and approvals.
#: The log keeps an index of them (table ``governance``) so they replay without a scan.
GOVERNANCE_KINDS = frozenset({
    "membership_manifest", "proposal", "vote",
    "person_certificate", "person_revocation", "approval_request", "approval",
})
KINDS = frozenset({
    "dataset_commitment", "recon_result", "settlement_statement",
    "invoice", "payment", "adjustment",
    # billing (docs/billing.md): sealed netting documents, and each member's sealing (encryption) key
    "netting", "sealing_key",
}) | GOVERNANCE_KINDS
#: Entries carry hashes, counts and totals, never raw records; anything this large is refused.
MAX_ENTRY_BYTES = 256 * 1024
SIGNATURES = "signatures"


def _canonical(value: Any, what: str) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise EntryError(f"{what}: expected JSON values only (RFC 8785), found: {exc}") from None


def _assemble(members: list[tuple[str, bytes]]) -> bytes:
    ordered = sorted(members, key=lambda member: member[0].encode("utf-16-be"))
    return b"{" + b",".join(part for _, part in ordered) + b"}"


def canonical_entry_bytes(entry: Mapping[str, Any]) -> bytes:
    """RFC 8785 JSON of ``entry`` without ``"signatures"``: the bytes every author signs."""
    if not isinstance(entry, Mapping):
        raise EntryError(f"entry: expected a JSON object, found {type(entry).__name__}")
    return _canonical({key: value for key, value in entry.items() if key != SIGNATURES}, "entry")


def check_entry_body(entry: Mapping[str, Any]) -> None:
    """Refuse an entry without a known ``kind`` (it must not carry signatures here)."""
    if not isinstance(entry, Mapping):
        raise EntryError(f"entry: expected a JSON object, found {type(entry).__name__}")
    for key in entry:
        if not isinstance(key, str):
            raise EntryError(f"entry: expected string keys, found {key!r}")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise EntryError(f"entry: expected a kind in {{{', '.join(sorted(KINDS))}}}, found {kind!r}")


def parse_signature_list(value: Any) -> dict[str, bytes]:
    """``[{"signer": id, "sig": hex}, ...]`` (the stored form) as {signer: 64-byte r||s}."""
    if not isinstance(value, list) or not value:
        raise EntryError("signatures: expected a non-empty list of {\"signer\", \"sig\"} objects")
    result: dict[str, bytes] = {}
    for position, item in enumerate(value):
        if not isinstance(item, Mapping) or set(item) != {"signer", "sig"}:
            raise EntryError(f"signatures[{position}]: expected exactly the keys signer and sig, found {item!r}")
        signer, sig = item["signer"], item["sig"]
        if not isinstance(signer, str) or not signer:
            raise EntryError(f"signatures[{position}].signer: expected a member id, found {signer!r}")
        if not isinstance(sig, str) or len(sig) != 128 or sig != sig.lower():
            raise EntryError(f"signatures[{position}].sig: expected 128 lowercase hex digits (r||s), found {sig!r}")
        try:
            raw = bytes.fromhex(sig)
        except ValueError:
            raise EntryError(f"signatures[{position}].sig: expected hex digits, found {sig!r}") from None
        if signer in result:
            raise EntryError(f"signatures: signer {signer!r} appears twice")
        result[signer] = raw
    return result


def signature_list(signatures: Mapping[str, bytes]) -> list[dict[str, str]]:
    return [{"signer": signer, "sig": bytes(signatures[signer]).hex()} for signer in sorted(signatures)]


@dataclass(frozen=True)
class SignedEntry:
    """An entry body (without signatures), its signatures, and the canonical leaf data."""

    body: Mapping[str, Any]
    signatures: Mapping[str, bytes]
    signed_bytes: bytes  # canonical_entry_bytes(body): what the authors signed
    leaf_data: bytes  # canonical JSON of body + signatures: what the Merkle leaf commits to

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @classmethod
    def create(cls, entry: Mapping[str, Any], signatures: Mapping[str, bytes] | None = None) -> SignedEntry:
        """From an entry and {signer: r||s}; signatures may instead be inside ``entry``."""
        if not isinstance(entry, Mapping):
            raise EntryError(f"entry: expected a JSON object, found {type(entry).__name__}")
        if SIGNATURES in entry:
            if signatures is not None:
                raise EntryError("entry: signatures given both inside the entry and separately")
            signatures = parse_signature_list(entry[SIGNATURES])
        if not signatures:
            raise EntryError("entry: expected at least one author signature, found none")
        for signer, sig in signatures.items():
            if not isinstance(signer, str) or not signer:
                raise EntryError(f"signatures: expected member ids as keys, found {signer!r}")
            if not isinstance(sig, (bytes, bytearray)) or len(sig) != 64:
                found = len(sig) if isinstance(sig, (bytes, bytearray)) else type(sig).__name__
                raise EntryError(f"signature of {signer!r}: expected 64 bytes r||s, found {found}")
        body = {key: value for key, value in entry.items() if key != SIGNATURES}
        check_entry_body(body)
        sigs = {signer: bytes(signatures[signer]) for signer in sorted(signatures)}
        # Canonicalise each member once and assemble both objects from the parts
        # (RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names).
        members = [(key, _canonical(key, "entry") + b":" + _canonical(value, "entry")) for key, value in body.items()]
        signed = _assemble(members)
        leaf = _assemble(members + [(SIGNATURES, b'"signatures":' + _canonical(signature_list(sigs), "entry"))])
        # Normalise the body through its canonical form so that what is kept is plain JSON.
        body = json.loads(signed)
        if len(leaf) > MAX_ENTRY_BYTES:
            raise EntryError(f"entry: expected at most {MAX_ENTRY_BYTES} bytes (hashes, counts and totals, "
                             f"never raw records), found {len(leaf)}")
        return cls(body, sigs, signed, leaf)

    @classmethod
    def from_leaf_data(cls, data: bytes) -> SignedEntry:
        """Parse stored leaf data, refusing anything that is not exactly canonical."""
        try:
            value = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EntryError(f"stored entry: expected UTF-8 JSON, found: {exc}") from None
        if not isinstance(value, dict) or SIGNATURES not in value:
            raise EntryError("stored entry: expected a JSON object with signatures")
        entry = cls.create(value)
        if entry.leaf_data != bytes(data):
            raise EntryError("stored entry: expected RFC 8785 canonical JSON, found a non-canonical encoding")
        return entry

    def to_json(self) -> dict[str, Any]:
        return {**self.body, SIGNATURES: signature_list(self.signatures)}
