"""Salted SM3 commitments: what the ledger holds in place of a private document.

The ledger is read by every consortium member, so a document that concerns only some
of them (a settlement statement, an invoice, a payment) is on it as a *commitment*:

    commitment = SM3("settlechain/commitment/v1\\n" ‖ kind ‖ "\\n" ‖ salt ‖ document)

with a fresh 32-byte salt from ``secrets`` known to the document's parties only.
SM3 is collision resistant, so the commitment binds the document (its authors cannot
later show another); the salt hides it (a member that guesses the document, say an
amount, cannot test the guess without the salt).  The ``kind`` is inside the hashed
bytes, so a commitment to one kind of document never opens as another.

Whoever holds ``(salt, document)`` -- the parties, or an auditor they hand them to --
checks it with :func:`verify_commitment`, which returns nothing or raises.  A committed
document that travels as JSON (a settlement statement's ``statement.json``) carries its
salt under ``ledger.commitment_salt``, outside what is signed (:func:`document_bytes`);
:func:`open_document` checks such a file against its ledger entry.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any

import rfc8785

from ledger_anchor.errors import EntryError
from ledger_anchor.sm3 import sm3

SALT_BYTES = 32
_DOMAIN = b"settlechain/commitment/v1\n"
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")


def new_salt() -> bytes:
    """A fresh salt from the OS's CSPRNG."""
    return secrets.token_bytes(SALT_BYTES)


def commit(kind: str, salt: bytes, document: bytes) -> str:
    """The commitment (64 lowercase hex characters) to ``document`` of ``kind`` under ``salt``."""
    if not _KIND.fullmatch(kind):
        raise EntryError(f"commitment kind must match {_KIND.pattern}, found {kind!r}")
    if len(salt) != SALT_BYTES:
        raise EntryError(f"commitment salt must be {SALT_BYTES} bytes, found {len(salt)}")
    return sm3(_DOMAIN + kind.encode("ascii") + b"\n" + salt + document).hex()


def verify_commitment(commitment: str, kind: str, salt: bytes, document: bytes) -> None:
    """Return nothing if ``commitment`` opens to ``document`` of ``kind`` under ``salt``; else raise
    :class:`~ledger_anchor.errors.EntryError` saying got/want."""
    got = commit(kind, salt, document)
    if not isinstance(commitment, str) or not hmac.compare_digest(got, commitment.lower()):
        raise EntryError(f"the {kind} does not open the commitment (got {got[:16]}…, "
                         f"want {str(commitment)[:16]}…)")


#: Keys of a committed document that are not part of what its authors sign and commit to:
#: their signatures, and where the document is on the ledger (salt, index).
UNSIGNED_KEYS = ("signatures", "ledger")


def document_bytes(document: Mapping[str, Any]) -> bytes:
    """What the authors of a committed document (a settlement statement) sign and commit
    to: RFC 8785 canonical JSON of the document without :data:`UNSIGNED_KEYS`."""
    return rfc8785.dumps({k: v for k, v in document.items() if k not in UNSIGNED_KEYS})


def open_document(document: Mapping[str, Any], entry: Mapping[str, Any]) -> None:
    """Return nothing if ``document`` (with its ``ledger.commitment_salt``) opens the
    ``commitment`` of the ledger ``entry``; else raise :class:`EntryError`."""
    ledger = document.get("ledger")
    if not isinstance(ledger, Mapping) or not isinstance(ledger.get("commitment_salt"), str):
        raise EntryError("the document has no ledger.commitment_salt: it cannot be checked "
                         "against a commitment")
    try:
        salt = bytes.fromhex(ledger["commitment_salt"])
    except ValueError:
        raise EntryError("ledger.commitment_salt is not hex") from None
    verify_commitment(str(entry.get("commitment", "")), str(entry.get("kind", "")), salt,
                      document_bytes(document))


def document_signatures(document: Mapping[str, Any]) -> dict[str, bytes]:
    """A committed document's signatures, ``{signer: 64-byte r||s}``.  Each item of its
    ``signatures`` list may also show the signer's key id (``key_id``), for people; the id
    is not signed and not checked here."""
    from ledger_anchor.entries import parse_signature_list

    listed = document.get("signatures")
    if isinstance(listed, list):
        listed = [{k: v for k, v in item.items() if k != "key_id"} if isinstance(item, Mapping)
                  else item for item in listed]
    return parse_signature_list(listed)
