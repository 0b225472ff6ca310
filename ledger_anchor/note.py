"""C2SP signed notes, checkpoints and cosignatures with SM2 signatures.

Formats (https://c2sp.org/signed-note, /tlog-checkpoint, /tlog-cosignature), with SM2
in place of Ed25519 through the signed-note extension point (type byte ``0xff``
followed by an identifier string, as that spec recommends for unassigned types):

Checkpoint body (tlog-checkpoint)::

    <origin>\\n<tree size, decimal>\\n<base64 SM3 root hash>\\n

Log signature line (signed-note)::

    — <origin> base64(key ID || r || s)

    signature type  = 0xff || "settlechain/sm2-sm3-note/v1"
    key ID          = SHA-256(<origin> || 0x0A || signature type || 64-byte x||y)[:4]
    r || s          = SM2 signature (SM3, user id 1234567812345678) of the note text

Cosignature line (tlog-cosignature, the v1 "cosignature/v1" message)::

    — <origin>/witness/<member id> base64(key ID || timestamp || r || s)

    signature type  = 0xff || "settlechain/sm2-sm3-cosignature/v1"
    key ID          = SHA-256(<name> || 0x0A || signature type || 64-byte x||y)[:4]
    timestamp       = u64 big-endian POSIX seconds
    r || s          = SM2 signature of  "cosignature/v1\\ntime <timestamp>\\n" || checkpoint body

The key IDs use SHA-256 exactly as signed-note recommends, so generic note tooling
computes the same IDs; they are identifiers, not security-relevant hashes.  Domain
separation: members sign ledger entries (RFC 8785 JSON, starting with ``{``) and
cosignature messages (starting with ``cosignature/v1``) with the same key; the log key
signs only checkpoint notes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger_anchor.errors import NoteError, SignatureError
from ledger_anchor.sm2 import PrivateKey, PublicKey

LOG_SIGNATURE_TYPE = b"\xff" + b"settlechain/sm2-sm3-note/v1"
COSIGNATURE_TYPE = b"\xff" + b"settlechain/sm2-sm3-cosignature/v1"
COSIGNATURE_HEADER = "cosignature/v1\n"
EM_DASH = "\u2014"
MAX_SIGNATURES = 100
HASH_SIZE = 32

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def key_id(name: str, signature_type: bytes, public: PublicKey) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + signature_type + public.raw).digest()[:4]


def witness_name(origin: str, member_id: str) -> str:
    """The cosigner key name of member ``member_id`` on the log ``origin``."""
    return f"{origin}/witness/{member_id}"


def _check_key_name(name: str) -> None:
    if not name or any(ch.isspace() or ch == "+" for ch in name):
        raise NoteError(f"note key name: expected non-empty text without spaces or '+', found {name!r}")


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what}: expected standard base64, found {text!r}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what}: expected canonical base64, found {text!r}")
    return raw


# ---------------------------------------------------------------------------
# Signed notes


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    payload: bytes  # the signature after the 4-byte key ID

    def line(self) -> str:
        return f"{EM_DASH} {self.name} {base64.b64encode(self.key_id + self.payload).decode('ascii')}\n"


@dataclass(frozen=True)
class Note:
    text: str  # ends with a newline
    signatures: tuple[NoteSignature, ...]

    def format(self) -> str:
        return self.text + "\n" + "".join(signature.line() for signature in self.signatures)

    @classmethod
    def parse(cls, data: str | bytes) -> Note:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise NoteError("signed note: expected UTF-8, found undecodable bytes") from None
        if any(ord(ch) < 0x20 and ch != "\n" for ch in data):
            raise NoteError("signed note: expected no control characters other than newline")
        if not data.endswith("\n"):
            raise NoteError("signed note: expected a final newline")
        split = data.rfind("\n\n")
        if split < 0:
            raise NoteError("signed note: expected a blank line between the text and the signatures")
        text, block = data[: split + 1], data[split + 2:]
        lines = block.split("\n")[:-1]
        if not lines:
            raise NoteError("signed note: expected at least one signature line")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(f"signed note: expected at most {MAX_SIGNATURES} signatures, found {len(lines)}")
        signatures = []
        for line in lines:
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != EM_DASH:
                raise NoteError(f"signed note: expected '{EM_DASH} <name> <base64>', found {line!r}")
            _check_key_name(parts[1])
            raw = _b64decode(parts[2], f"signature of {parts[1]}")
            if len(raw) < 5:
                raise NoteError(f"signature of {parts[1]}: expected a 4-byte key ID and a signature, found {len(raw)} bytes")
            signatures.append(NoteSignature(parts[1], raw[:4], raw[4:]))
        return cls(text, tuple(signatures))


class NoteVerifier:
    """Checks one kind of signature line for one (name, key)."""

    signature_type: bytes

    def __init__(self, name: str, public: PublicKey) -> None:
        _check_key_name(name)
        self.name = name
        self.public = public
        self.key_id = key_id(name, self.signature_type, public)

    def matches(self, signature: NoteSignature) -> bool:
        return signature.name == self.name and signature.key_id == self.key_id

    def verify(self, text: str, signature: NoteSignature) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class LogVerifier(NoteVerifier):
    signature_type = LOG_SIGNATURE_TYPE

    def verify(self, text: str, signature: NoteSignature) -> None:
        try:
            self.public.verify(text.encode("utf-8"), signature.payload)
        except SignatureError as exc:
            raise NoteError(f"log signature of {self.name}: {exc}") from None


def cosignature_message(body: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{body}".encode("utf-8")


class CosignatureVerifier(NoteVerifier):
    signature_type = COSIGNATURE_TYPE

    def __init__(self, name: str, public: PublicKey, member_id: str) -> None:
        super().__init__(name, public)
        self.member_id = member_id

    def timestamp(self, signature: NoteSignature) -> int:
        if len(signature.payload) != 8 + 64:
            raise NoteError(f"cosignature of {self.name}: expected 72 bytes after the key ID, "
                            f"found {len(signature.payload)}")
        return int.from_bytes(signature.payload[:8], "big")

    def verify(self, text: str, signature: NoteSignature) -> None:
        timestamp = self.timestamp(signature)
        if timestamp >= 1 << 63:
            raise NoteError(f"cosignature of {self.name}: timestamp exceeds 2^63-1")
        try:
            self.public.verify(cosignature_message(text, timestamp), signature.payload[8:])
        except SignatureError as exc:
            raise NoteError(f"cosignature of {self.name}: {exc}") from None


def sign_note_text(text: str, name: str, key: PrivateKey) -> NoteSignature:
    return NoteSignature(name, key_id(name, LOG_SIGNATURE_TYPE, key.public), key.sign(text.encode("utf-8")))


def cosign_text(text: str, name: str, key: PrivateKey, timestamp: int) -> NoteSignature:
    payload = timestamp.to_bytes(8, "big") + key.sign(cosignature_message(text, timestamp))
    return NoteSignature(name, key_id(name, COSIGNATURE_TYPE, key.public), payload)


# ---------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint: expected at least three newline-terminated lines")
        if len(lines) > 4:
            raise NoteError("checkpoint: expected no extension lines, found "
                            f"{len(lines) - 4}")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not origin:
            raise NoteError("checkpoint: expected a non-empty origin line")
        if not _DECIMAL.fullmatch(size_text):
            raise NoteError(f"checkpoint: expected a decimal tree size without leading zeroes, found {size_text!r}")
        root = _b64decode(root_text, "checkpoint root hash")
        if len(root) != HASH_SIZE:
            raise NoteError(f"checkpoint: expected a {HASH_SIZE}-byte root hash, found {len(root)} bytes")
        return cls(origin, int(size_text), root)


@dataclass(frozen=True)
class Cosignature:
    """A member's cosignature of one checkpoint (returned by ``LedgerClient.cosign``)."""

    member_id: str
    size: int
    root: bytes
    timestamp: int
    line: str  # the signed-note signature line, ending with a newline


@dataclass(frozen=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    note: Note
    cosigners: tuple[str, ...]  # member ids whose cosignatures verified

    def is_final(self, threshold: int) -> bool:
        return len(self.cosigners) >= threshold


def verify_checkpoint(data: str | bytes, *, origin: str, log_key: PublicKey,
                      members: Mapping[str, PublicKey], threshold: int = 0) -> VerifiedCheckpoint:
    """Parse a signed checkpoint and check it: the log signature must verify; every
    cosignature by a known member must verify (an unknown key's line is ignored, as
    signed-note requires); at least ``threshold`` distinct members must have cosigned."""
    note = Note.parse(data)
    checkpoint = Checkpoint.parse_body(note.text)
    if checkpoint.origin != origin:
        raise NoteError(f"checkpoint: expected origin {origin!r}, found {checkpoint.origin!r}")
    log_verifier = LogVerifier(origin, log_key)
    witnesses = [CosignatureVerifier(witness_name(origin, member), key, member) for member, key in members.items()]
    log_signed = False
    cosigners: list[str] = []
    for signature in note.signatures:
        if log_verifier.matches(signature):
            log_verifier.verify(note.text, signature)
            log_signed = True
            continue
        for witness in witnesses:
            if witness.matches(signature):
                witness.verify(note.text, signature)
                if witness.member_id not in cosigners:
                    cosigners.append(witness.member_id)
    if not log_signed:
        raise NoteError(f"checkpoint: expected a signature by the log key {origin!r}, found none")
    if len(cosigners) < threshold:
        raise NoteError(f"checkpoint at size {checkpoint.size}: expected at least {threshold} member "
                        f"cosignatures, found {len(cosigners)} ({', '.join(cosigners) or 'none'})")
    return VerifiedCheckpoint(checkpoint, note, tuple(cosigners))


def sign_checkpoint(checkpoint: Checkpoint, log_key: PrivateKey) -> str:
    """The checkpoint as a signed note with the log's signature line."""
    text = checkpoint.body()
    return Note(text, (sign_note_text(text, checkpoint.origin, log_key),)).format()


def add_signature_lines(note_text: str, lines: Iterable[str]) -> str:
    """Append signature lines (e.g. cosignatures) to a signed note, skipping duplicates."""
    note = Note.parse(note_text)
    existing = {signature.line() for signature in note.signatures}
    extra = []
    for line in lines:
        parsed = Note.parse(note.text + "\n" + line).signatures[0]
        if parsed.line() not in existing:
            existing.add(parsed.line())
            extra.append(parsed)
    return Note(note.text, note.signatures + tuple(extra)).format()
