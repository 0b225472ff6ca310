"""Sealed documents: a private document on the shared ledger, readable only by the members it concerns.

Every consortium member reads the whole ledger (DESIGN.md "Ledger"), so a document that
concerns only some members -- an invoice between two operators, a payment, an
adjustment, one member's netting result -- is appended *sealed*: its body encrypted to
its recipients, with a salted commitment (:mod:`ledger_anchor.commitment`) in clear.
The ledger orders and proves every sealed document like any other entry; a member that
is not a recipient learns the entry's kind, its authors (the signatures), its
recipients, its position in the log and its size rounded up to :data:`PAD_BYTES`, and
nothing else.

Construction -- hybrid encryption, a KEM/DEM composition (Cramer & Shoup, "Design and
analysis of practical public-key encryption schemes secure against adaptive chosen
ciphertext attack", SIAM J. Comput. 33(1), 2003, §7)::

    salt        32 bytes from secrets               the commitment's salt
    K           16 bytes from secrets, per document the content key (SM4)
    nonce       12 bytes from secrets
    plaintext   salt ‖ document ‖ 0x80 ‖ 0x00* up to a multiple of PAD_BYTES (ISO/IEC 7816-4 padding)
    commitment  = commit(kind, salt, document)      ledger_anchor.commitment, SM3
    aad         = RFC 8785 JSON of {v, scheme, kind, commitment, recipients}
    ciphertext  = SM4-GCM_K(nonce, plaintext, aad)  GB/T 32907-2016 in GCM (NIST SP 800-38D), as RFC 8998 uses it
    wrapped_i   = SM2-Enc(pk_i, K)                  GB/T 32918.4-2016 §6, encoded C1 ‖ C3 ‖ C2

*Why the commitment is checked on opening.*  GCM does not commit to its key: an author
can wrap a different content key for each recipient so that one ciphertext opens, under
each key, to a different plaintext (Grubbs, Lu & Ristenpart, "Message franking via
committing authenticated encryption", CRYPTO 2017, §5; Albertini et al., "How to abuse
and fix authenticated encryption without key commitment", USENIX Security 2022, §3).
:func:`open_sealed` therefore checks that what it decrypted opens the commitment in
clear; SM3's collision resistance then gives every recipient the same document.  The
AAD binds the clear header, so a wrapped key or a recipient cannot be swapped between
entries.  The salt is inside the ciphertext: a recipient can later hand ``(salt,
document)`` to an auditor, who checks it against the ledger with
:func:`ledger_anchor.commitment.verify_commitment` without any key.

*SM2 public-key encryption* (GB/T 32918.4-2016 §6-7, identical to GM/T 0003.4-2012 with
the C1 ‖ C3 ‖ C2 order of GM/T 0009-2012 §7.2) is implemented here over a small
Jacobian-coordinate curve arithmetic, the curve being a parameter so that the
standard's worked example on its 256-bit example curve checks the code
(``tests/vectors/ledger/sm2_encrypt.json``); gmalg and gmssl, two independent
implementations, decrypt what this module encrypts and the other way round
(``tests/unit/ledger/test_ledger_sealed.py``).  Python integers are not constant-time:
a process that decrypts must not let an adversary time it with chosen ciphertexts at
scale.  Here decryption runs on the member's own premises over entries of its own
ledger copy.

SM4-GCM is pyca/cryptography's (OpenSSL), checked against RFC 8998 Appendix A.1 and
against tongsuopy's independent SM4-GCM.

Recipes::

    sealed = seal("invoice", document_bytes, [Recipient("CMCC", pk_a), Recipient("CUCC", pk_b)])
    entry = sealed.entry()                       # {"kind", "commitment", "sealed": {...}}; sign and append it
    opened = open_sealed(entry, "CUCC", sealing_private_key)   # raises SealError unless all checks pass
    opened.document, opened.salt
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ledger_anchor.commitment import SALT_BYTES, commit, verify_commitment
from ledger_anchor.errors import EntryError, SignatureError
from ledger_anchor.sm2 import SM2P256V1, Curve, check_private_key, check_public_key
from ledger_anchor.sm3 import sm3

VERSION = 1
SCHEME = "sm2-sm4gcm/v1"
CONTENT_KEY_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
#: Plaintexts are padded to a multiple of this, so that an entry's size says little about
#: its document (an invoice with three lines and one with five look alike).
PAD_BYTES = 256
MAX_RECIPIENTS = 64
KEY_ID_BYTES = 8
_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX = re.compile(r"[0-9a-f]*")
SEALED = "sealed"
COMMITMENT = "commitment"


class SealError(EntryError):
    """A sealed document is malformed, not addressed to this member, or does not open."""


# ---------------------------------------------------------------------------
# Curve arithmetic (Jacobian coordinates; the point at infinity is None)

_Point = tuple[int, int, int] | None


def _double(P: _Point, c: Curve) -> _Point:
    if P is None:
        return None
    X, Y, Z = P
    if Y == 0:
        return None
    p = c.p
    YY = Y * Y % p
    S = 4 * X * YY % p
    ZZ = Z * Z % p
    M = (3 * X * X + c.a * ZZ * ZZ) % p
    X3 = (M * M - 2 * S) % p
    Y3 = (M * (S - X3) - 8 * YY * YY) % p
    Z3 = 2 * Y * Z % p
    return X3, Y3, Z3


def _add(P: _Point, Q: _Point, c: Curve) -> _Point:
    if P is None:
        return Q
    if Q is None:
        return P
    p = c.p
    X1, Y1, Z1 = P
    X2, Y2, Z2 = Q
    Z1Z1 = Z1 * Z1 % p
    Z2Z2 = Z2 * Z2 % p
    U1 = X1 * Z2Z2 % p
    U2 = X2 * Z1Z1 % p
    S1 = Y1 * Z2 * Z2Z2 % p
    S2 = Y2 * Z1 * Z1Z1 % p
    if U1 == U2:
        return _double(P, c) if S1 == S2 else None
    H = (U2 - U1) % p
    R = (S2 - S1) % p
    HH = H * H % p
    HHH = H * HH % p
    V = U1 * HH % p
    X3 = (R * R - HHH - 2 * V) % p
    Y3 = (R * (V - X3) - S1 * HHH) % p
    Z3 = H * Z1 * Z2 % p
    return X3, Y3, Z3


def _multiply(k: int, x: int, y: int, c: Curve) -> tuple[int, int] | None:
    """[k](x, y) in affine coordinates, None for the point at infinity."""
    result: _Point = None
    base: _Point = (x, y, 1)
    for bit in bin(k)[2:]:
        result = _double(result, c)
        if bit == "1":
            result = _add(result, base, c)
    if result is None:
        return None
    X, Y, Z = result
    z_inv = pow(Z, -1, c.p)
    zz = z_inv * z_inv % c.p
    return X * zz % c.p, Y * zz * z_inv % c.p


def point_multiply(k: int, point: tuple[int, int], curve: Curve = SM2P256V1) -> tuple[int, int] | None:
    """[k]P on ``curve``; exposed for the known-answer tests (a public key is [d]G)."""
    return _multiply(k, point[0], point[1], curve)


# ---------------------------------------------------------------------------
# SM2 public-key encryption, GB/T 32918.4-2016


def _field_bytes(curve: Curve) -> int:
    return (curve.p.bit_length() + 7) // 8


def sm2_kdf(z: bytes, length: int) -> bytes:
    """The key derivation function of GB/T 32918.4-2016 §5.4.3 with SM3:
    Ha_i = SM3(Z ‖ ct_i) for ct_i = 1, 2, … (32-bit big-endian), truncated to ``length``."""
    blocks = []
    for counter in range(1, (length + 31) // 32 + 1):
        blocks.append(sm3(z + counter.to_bytes(4, "big")))
    return b"".join(blocks)[:length]


def _public_point(public: bytes, curve: Curve) -> tuple[int, int]:
    size = _field_bytes(curve)
    if curve is SM2P256V1:
        return check_public_key(public)
    if not isinstance(public, (bytes, bytearray)) or len(public) != 2 * size:
        raise SealError(f"SM2 public key: expected {2 * size} bytes x||y on curve {curve.name}")
    x, y = int.from_bytes(public[:size], "big"), int.from_bytes(public[size:], "big")
    if not curve.contains(x, y):
        raise SealError(f"SM2 public key: expected a point on curve {curve.name}, found a point off it")
    return x, y


def sm2_encrypt(public: bytes, message: bytes, *, curve: Curve = SM2P256V1, _k: int | None = None) -> bytes:
    """C1 ‖ C3 ‖ C2 (C1 = 04 ‖ x1 ‖ y1) encrypting ``message`` to ``public`` (64 bytes x||y).

    ``_k`` fixes the ephemeral scalar for the standard's worked example only; without it
    k is uniform in [1, n-1] from :mod:`secrets`."""
    if not message:
        raise SealError("SM2 encryption: the message must not be empty")
    try:
        px, py = _public_point(bytes(public), curve)
    except SignatureError as exc:
        raise SealError(str(exc)) from None
    size = _field_bytes(curve)
    while True:
        k = _k if _k is not None else secrets.randbelow(curve.n - 1) + 1          # A1
        c1 = _multiply(k, curve.gx, curve.gy, curve)                               # A2
        shared = _multiply(k, px, py, curve)                                       # A3/A4 (h = 1)
        if c1 is None or shared is None:
            raise SealError("SM2 encryption: the recipient's key gave the point at infinity")
        x2, y2 = shared[0].to_bytes(size, "big"), shared[1].to_bytes(size, "big")
        t = sm2_kdf(x2 + y2, len(message))                                         # A5
        if any(t):
            break
        if _k is not None:  # pragma: no cover - a fixed k that yields t = 0 cannot be retried
            raise SealError("SM2 encryption: the fixed k gives an all-zero key stream")
    c2 = bytes(m ^ s for m, s in zip(message, t, strict=True))                     # A6
    c3 = sm3(x2 + bytes(message) + y2)                                             # A7
    encoded_c1 = b"\x04" + c1[0].to_bytes(size, "big") + c1[1].to_bytes(size, "big")
    return encoded_c1 + c3 + c2                                                    # A8 (C1 ‖ C3 ‖ C2)


def sm2_decrypt(private: bytes, ciphertext: bytes, *, curve: Curve = SM2P256V1) -> bytes:
    """The message of an SM2 ciphertext C1 ‖ C3 ‖ C2 (GB/T 32918.4-2016 §7.1); raises
    :class:`SealError` for anything malformed or tampered with."""
    size = _field_bytes(curve)
    if curve is SM2P256V1:
        try:
            d = check_private_key(bytes(private))
        except SignatureError as exc:
            raise SealError(str(exc)) from None
    else:
        d = int.from_bytes(bytes(private), "big")
        if not 1 <= d <= curve.n - 2:
            raise SealError("SM2 private key: expected 1 <= d <= n-2")
    data = bytes(ciphertext)
    if len(data) < 1 + 2 * size + 32 + 1 or data[0] != 0x04:
        raise SealError(f"SM2 ciphertext: expected 04 ‖ x1 ‖ y1 ‖ C3 (32 bytes) ‖ C2 (at least 1 byte), "
                        f"found {len(data)} bytes starting {data[:1].hex() or 'nothing'}")
    x1 = int.from_bytes(data[1:1 + size], "big")
    y1 = int.from_bytes(data[1 + size:1 + 2 * size], "big")
    c3 = data[1 + 2 * size:1 + 2 * size + 32]
    c2 = data[1 + 2 * size + 32:]
    if not curve.contains(x1, y1):                                                 # B1
        raise SealError("SM2 ciphertext: C1 is not a point on the curve")
    shared = _multiply(d, x1, y1, curve)                                           # B2/B3 (h = 1)
    if shared is None:
        raise SealError("SM2 ciphertext: [d]C1 is the point at infinity")
    x2, y2 = shared[0].to_bytes(size, "big"), shared[1].to_bytes(size, "big")
    t = sm2_kdf(x2 + y2, len(c2))                                                  # B4
    if not any(t):
        raise SealError("SM2 ciphertext: the derived key stream is all zero")
    message = bytes(c ^ s for c, s in zip(c2, t, strict=True))                     # B5
    if not hmac.compare_digest(sm3(x2 + message + y2), c3):                        # B6
        raise SealError("SM2 ciphertext: C3 does not match (wrong key, or the ciphertext was altered)")
    return message


# ---------------------------------------------------------------------------
# SM4-GCM


def sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """ciphertext ‖ 16-byte tag."""
    encryptor = Cipher(algorithms.SM4(bytes(key)), modes.GCM(bytes(nonce))).encryptor()
    encryptor.authenticate_additional_data(bytes(aad))
    body = encryptor.update(bytes(plaintext)) + encryptor.finalize()
    return body + encryptor.tag


def sm4_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    if len(data) < TAG_BYTES:
        raise SealError(f"SM4-GCM: expected at least the {TAG_BYTES}-byte tag, found {len(data)} bytes")
    body, tag = bytes(data[:-TAG_BYTES]), bytes(data[-TAG_BYTES:])
    decryptor = Cipher(algorithms.SM4(bytes(key)), modes.GCM(bytes(nonce), tag)).decryptor()
    decryptor.authenticate_additional_data(bytes(aad))
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag:
        raise SealError("SM4-GCM: the tag does not verify (wrong key, or the entry was altered)") from None


# ---------------------------------------------------------------------------
# Sealed documents


def key_id(public: bytes) -> str:
    """The first 8 bytes of SM3(x||y), hex: names a recipient's sealing key in an entry."""
    return sm3(bytes(public))[:KEY_ID_BYTES].hex()


@dataclass(frozen=True)
class Recipient:
    member: str
    public_key: bytes  # 64 bytes x||y: the member's sealing (encryption) key, not its signing key


@dataclass(frozen=True)
class WrappedKey:
    member: str
    key_id: str
    wrapped_key: bytes

    def to_json(self) -> dict[str, str]:
        return {"member": self.member, "key_id": self.key_id, "wrapped_key": self.wrapped_key.hex()}


@dataclass(frozen=True)
class SealedDocument:
    """The clear fields of a sealed entry: what every member sees."""

    kind: str
    commitment: str
    recipients: tuple[WrappedKey, ...]
    nonce: bytes
    ciphertext: bytes

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(r.member for r in self.recipients)

    def _header(self) -> dict[str, Any]:
        return {"v": VERSION, "scheme": SCHEME, "kind": self.kind, "commitment": self.commitment,
                "recipients": [r.to_json() for r in self.recipients]}

    def aad(self) -> bytes:
        return rfc8785.dumps(self._header())

    def entry(self) -> dict[str, Any]:
        """The entry body to sign and append (authors add nothing else to it)."""
        return {"kind": self.kind, COMMITMENT: self.commitment,
                SEALED: {"v": VERSION, "scheme": SCHEME, "recipients": [r.to_json() for r in self.recipients],
                         "nonce": self.nonce.hex(), "ciphertext": base64.b64encode(self.ciphertext).decode("ascii")}}

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> SealedDocument:
        """Parse the clear fields of a sealed entry, refusing anything not of the documented shape."""
        if not isinstance(entry, Mapping):
            raise SealError(f"sealed entry: expected a JSON object, found {type(entry).__name__}")
        kind = entry.get("kind")
        if not isinstance(kind, str):
            raise SealError(f"sealed entry: expected a kind, found {kind!r}")
        commitment = entry.get(COMMITMENT)
        if not isinstance(commitment, str) or len(commitment) != 64 or not _HEX.fullmatch(commitment):
            raise SealError(f"sealed {kind} entry: expected commitment as 64 lowercase hex digits, found {commitment!r}")
        sealed = entry.get(SEALED)
        if not isinstance(sealed, Mapping) or set(sealed) != {"v", "scheme", "recipients", "nonce", "ciphertext"}:
            found = sorted(sealed) if isinstance(sealed, Mapping) else type(sealed).__name__
            raise SealError(f"sealed {kind} entry: expected sealed with exactly v, scheme, recipients, nonce, "
                            f"ciphertext, found {found}")
        if sealed["v"] != VERSION or sealed["scheme"] != SCHEME:
            raise SealError(f"sealed {kind} entry: expected v {VERSION} and scheme {SCHEME!r}, found "
                            f"{sealed['v']!r} and {sealed['scheme']!r}")
        recipients = sealed["recipients"]
        if not isinstance(recipients, list) or not 1 <= len(recipients) <= MAX_RECIPIENTS:
            raise SealError(f"sealed {kind} entry: expected 1..{MAX_RECIPIENTS} recipients")
        wrapped: list[WrappedKey] = []
        for position, item in enumerate(recipients):
            where = f"sealed {kind} entry: recipients[{position}]"
            if not isinstance(item, Mapping) or set(item) != {"member", "key_id", "wrapped_key"}:
                raise SealError(f"{where}: expected exactly member, key_id, wrapped_key")
            member, kid, key = item["member"], item["key_id"], item["wrapped_key"]
            if not isinstance(member, str) or not _MEMBER.fullmatch(member):
                raise SealError(f"{where}.member: expected a member id, found {member!r}")
            if not isinstance(kid, str) or len(kid) != 2 * KEY_ID_BYTES or not _HEX.fullmatch(kid):
                raise SealError(f"{where}.key_id: expected {2 * KEY_ID_BYTES} lowercase hex digits, found {kid!r}")
            if not isinstance(key, str) or not _HEX.fullmatch(key) or len(key) % 2:
                raise SealError(f"{where}.wrapped_key: expected lowercase hex, found {str(key)[:20]!r}")
            wrapped.append(WrappedKey(member, kid, bytes.fromhex(key)))
        members = [w.member for w in wrapped]
        if members != sorted(members) or len(set(members)) != len(members):
            raise SealError(f"sealed {kind} entry: expected recipients sorted by member, each once, found {members}")
        nonce = sealed["nonce"]
        if not isinstance(nonce, str) or len(nonce) != 2 * NONCE_BYTES or not _HEX.fullmatch(nonce):
            raise SealError(f"sealed {kind} entry: expected nonce as {2 * NONCE_BYTES} lowercase hex digits")
        try:
            ciphertext = base64.b64decode(str(sealed["ciphertext"]).encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise SealError(f"sealed {kind} entry: ciphertext is not base64") from None
        if len(ciphertext) < TAG_BYTES + PAD_BYTES or (len(ciphertext) - TAG_BYTES) % PAD_BYTES:
            raise SealError(f"sealed {kind} entry: expected a ciphertext of k·{PAD_BYTES} + {TAG_BYTES} bytes, "
                            f"found {len(ciphertext)}")
        return cls(kind, commitment, tuple(wrapped), bytes.fromhex(nonce), ciphertext)


@dataclass(frozen=True)
class OpenedDocument:
    kind: str
    document: bytes
    salt: bytes
    commitment: str
    recipients: tuple[str, ...]


def _pad(data: bytes) -> bytes:
    padded = data + b"\x80"
    return padded + b"\x00" * (-len(padded) % PAD_BYTES)


def _unpad(data: bytes) -> bytes:
    end = data.rstrip(b"\x00")
    if not end or end[-1] != 0x80:
        raise SealError("sealed plaintext: padding is malformed")
    return end[:-1]


def seal(kind: str, document: bytes, recipients: Sequence[Recipient], *, salt: bytes | None = None) -> SealedDocument:
    """Seal ``document`` of ``kind`` to ``recipients`` (each a member id and its sealing key)."""
    if not recipients or len(recipients) > MAX_RECIPIENTS:
        raise SealError(f"seal: expected 1..{MAX_RECIPIENTS} recipients, found {len(recipients)}")
    ordered = sorted(recipients, key=lambda r: r.member)
    members = [r.member for r in ordered]
    if len(set(members)) != len(members):
        raise SealError(f"seal: a recipient appears twice in {members}")
    for r in ordered:
        if not _MEMBER.fullmatch(r.member):
            raise SealError(f"seal: expected member ids, found {r.member!r}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else bytes(salt)
    commitment = commit(kind, salt, bytes(document))
    content_key = secrets.token_bytes(CONTENT_KEY_BYTES)
    wrapped = tuple(WrappedKey(r.member, key_id(r.public_key), sm2_encrypt(r.public_key, content_key))
                    for r in ordered)
    nonce = secrets.token_bytes(NONCE_BYTES)
    header = SealedDocument(kind, commitment, wrapped, nonce, b"")
    ciphertext = sm4_gcm_encrypt(content_key, nonce, _pad(salt + bytes(document)), header.aad())
    return SealedDocument(kind, commitment, wrapped, nonce, ciphertext)


def open_sealed(entry: Mapping[str, Any] | SealedDocument, member: str, private_key: bytes) -> OpenedDocument:
    """Decrypt a sealed entry as ``member`` with its sealing private key and check it opens
    the commitment in clear.  Returns the document, or raises :class:`SealError`."""
    sealed = entry if isinstance(entry, SealedDocument) else SealedDocument.from_entry(entry)
    mine = [r for r in sealed.recipients if r.member == member]
    if not mine:
        raise SealError(f"sealed {sealed.kind} entry: not addressed to {member!r} "
                        f"(recipients {', '.join(sealed.members)})")
    content_key = sm2_decrypt(private_key, mine[0].wrapped_key)
    if len(content_key) != CONTENT_KEY_BYTES:
        raise SealError(f"sealed {sealed.kind} entry: the wrapped content key has {len(content_key)} bytes, "
                        f"expected {CONTENT_KEY_BYTES}")
    plaintext = _unpad(sm4_gcm_decrypt(content_key, sealed.nonce, sealed.ciphertext, sealed.aad()))
    if len(plaintext) < SALT_BYTES:
        raise SealError(f"sealed {sealed.kind} entry: the plaintext is shorter than the salt")
    salt, document = plaintext[:SALT_BYTES], plaintext[SALT_BYTES:]
    try:
        verify_commitment(sealed.commitment, sealed.kind, salt, document)
    except EntryError as exc:
        raise SealError(f"sealed {sealed.kind} entry: the decrypted document does not open the commitment in "
                        f"clear, so other recipients may read another document ({exc})") from None
    return OpenedDocument(sealed.kind, document, salt, sealed.commitment, sealed.members)


def is_sealed(entry: Mapping[str, Any]) -> bool:
    return isinstance(entry, Mapping) and SEALED in entry
