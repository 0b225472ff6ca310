"""Offline-verifiable proof bundles in the C2SP tlog-proof style (https://c2sp.org/tlog-proof).

::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry's leaf data: its canonical JSON with signatures>
    index <i>
    <base64 SM3 inclusion proof hash, leaf's sibling first, one per line>
    ...
    <empty line>
    <the checkpoint note, log-signed, with member cosignatures>

Differences from tlog-proof v1, both deliberate: the proof hashes are SM3 (the log's
hash), not SHA-256; and ``extra`` carries the entry itself, which tlog-proof allows
("additional data necessary to reconstruct the record hash"), so that the checker
can recompute the leaf hash and verify the authors' signatures without the database.
:func:`check_bundle` trusts only pinned keys (log key, member keys) and the origin.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger_anchor import merkle
from ledger_anchor.entries import SignedEntry
from ledger_anchor.errors import BundleError, LedgerError, SignatureError
from ledger_anchor.note import VerifiedCheckpoint, verify_checkpoint
from ledger_anchor.sm2 import PublicKey

HEADER = "c2sp.org/tlog-proof@v1"
SUFFIX = ".tlog-proof"


@dataclass(frozen=True)
class ProofBundle:
    index: int
    leaf_data: bytes
    proof: tuple[bytes, ...]
    checkpoint: str

    def format(self) -> str:
        lines = [HEADER, "extra " + base64.b64encode(self.leaf_data).decode("ascii"), f"index {self.index}"]
        lines += [base64.b64encode(element).decode("ascii") for element in self.proof]
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> ProofBundle:
        head, separator, checkpoint = text.partition("\n\n")
        if not separator:
            raise BundleError("proof bundle: expected an empty line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise BundleError(f"proof bundle: expected first line {HEADER!r}, found {lines[0]!r}")
        if len(lines) < 3 or not lines[1].startswith("extra "):
            raise BundleError("proof bundle: expected an 'extra' line with the entry")
        try:
            leaf_data = base64.b64decode(lines[1][6:], validate=True)
        except binascii.Error:
            raise BundleError("proof bundle: the extra line is not base64") from None
        if not lines[2].startswith("index ") or not lines[2][6:].isdigit() or (
                lines[2][6:] != "0" and lines[2][6].startswith("0")):
            raise BundleError(f"proof bundle: expected 'index <decimal>', found {lines[2]!r}")
        proof = []
        for position, line in enumerate(lines[3:]):
            try:
                proof.append(base64.b64decode(line, validate=True))
            except binascii.Error:
                raise BundleError(f"proof bundle: proof line {position} is not base64") from None
        return cls(int(lines[2][6:]), leaf_data, tuple(proof), checkpoint)


@dataclass(frozen=True)
class BundleReport:
    index: int
    entry: dict[str, Any]
    checkpoint: VerifiedCheckpoint
    final: bool


def check_bundle(text: str, *, origin: str, log_key: PublicKey, members: Mapping[str, PublicKey],
                 min_cosignatures: int) -> BundleReport:
    """Verify a bundle offline: the entry's author signatures, the inclusion proof, the
    log's signature and at least ``min_cosignatures`` member cosignatures."""
    bundle = ProofBundle.parse(text)
    try:
        entry = SignedEntry.from_leaf_data(bundle.leaf_data)
    except LedgerError as exc:
        raise BundleError(f"proof bundle entry: {exc}") from None
    for signer, signature in entry.signatures.items():
        key = members.get(signer)
        if key is None:
            raise BundleError(f"proof bundle entry: signer {signer!r} is not a pinned member")
        try:
            key.verify(entry.signed_bytes, signature)
        except SignatureError as exc:
            raise BundleError(f"proof bundle entry: signature of {signer!r}: {exc}") from None
    try:
        verified = verify_checkpoint(bundle.checkpoint, origin=origin, log_key=log_key, members=members,
                                     threshold=min_cosignatures)
        merkle.verify_inclusion(merkle.SM3_HASHER, bundle.index, verified.checkpoint.size,
                                merkle.SM3_HASHER.hash_leaf(bundle.leaf_data), bundle.proof,
                                verified.checkpoint.root)
    except LedgerError as exc:
        raise BundleError(f"proof bundle for entry {bundle.index}: {exc}") from None
    return BundleReport(bundle.index, entry.to_json(), verified, len(verified.cosigners) >= min_cosignatures)
