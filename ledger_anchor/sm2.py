"""SM2 signatures (GB/T 32918.2-2016 / GM/T 0003.2-2012) behind one small interface.

Two backends, both checked against each other and against the published example of
GM/T 0003.5-2012 / GB/T 32918.5-2016 Annex A (``tests/vectors/ledger/sm2_sign.json``):

* ``tongsuopy`` (OpenSSL/Tongsuo through cffi; the ``fast`` extra): ~3,000 signatures
  and verifications per second.  Chosen automatically when it imports.
* ``gmssl`` 3.2.2 (pure Python, a required dependency): ~100-200/s.  Used hardened:

  - the nonce ``k`` is always drawn here from :mod:`secrets` (gmssl's default comes
    from :mod:`random`, and a repeated seed would leak the private key);
  - the public key is handed to gmssl by assigning the attribute, never through the
    constructor, whose ``lstrip("04")`` corrupts keys whose hex starts with ``0``/``4``;
  - ``e = SM3(Z_A || M)`` is computed here with the vetted SM3 of :mod:`ledger_anchor.sm3`
    (gmssl's ``sign_with_sm3`` computes the same Z_A with its own pure-Python SM3 and
    only for the default user id; a test checks both agree);
  - r and s are range-checked and the public key is checked to lie on the curve before
    gmssl sees them, so a malformed signature is a :class:`SignatureError`, never a
    ``TypeError`` or a wrong answer.

The canonical signature encoding everywhere in the ledger is 64 bytes ``r || s``
(big-endian, 32 bytes each); public keys are 64 bytes ``x || y`` (no ``04`` prefix);
private keys are 32 bytes ``d`` with ``1 <= d <= n - 2``.  Signatures are over
``SM3(Z_A || M)`` with the default user id ``1234567812345678`` (GM/T 0009-2012).

SM2 is used for signatures on the ledger only.  The TLS channels of the gRPC service
use the consortium CA's ECDSA P-256 certificates, because gRPC's BoringSSL has no SM2.

Recipes (the interface of docs/interfaces.md)::

    private, public = generate_keypair()
    signature = sign(private, message)
    verify(public, message, signature)          # None, or raises SignatureError
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ledger_anchor.errors import KeyFileError, SignatureError
from ledger_anchor.sm3 import sm3

log = logging.getLogger(__name__)

DEFAULT_USER_ID = b"1234567812345678"
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 64
PRIVATE_KEY_SIZE = 32


@dataclass(frozen=True)
class Curve:
    """Short Weierstrass curve y^2 = x^3 + a x + b over F_p with base point G of order n."""

    name: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int

    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.p and 0 <= y < self.p and (y * y - (x * x * x + self.a * x + self.b)) % self.p == 0


#: The SM2 recommended curve (GB/T 32918.5-2016 / GM/T 0003.5-2012, "sm2p256v1").
SM2P256V1 = Curve(
    name="sm2p256v1",
    p=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF,
    a=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC,
    b=0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93,
    gx=0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    gy=0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
    n=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123,
)


def _int32(value: int) -> bytes:
    return value.to_bytes(32, "big")


# ---------------------------------------------------------------------------
# Encodings and checks shared by both backends


def check_private_key(private: bytes, curve: Curve = SM2P256V1) -> int:
    """The scalar d of a 32-byte private key, or SignatureError if it is not in [1, n-2]."""
    if not isinstance(private, (bytes, bytearray)) or len(private) != PRIVATE_KEY_SIZE:
        raise SignatureError(
            f"SM2 private key: expected {PRIVATE_KEY_SIZE} bytes, found "
            f"{len(private) if isinstance(private, (bytes, bytearray)) else type(private).__name__}")
    d = int.from_bytes(private, "big")
    if not 1 <= d <= curve.n - 2:
        raise SignatureError("SM2 private key: expected 1 <= d <= n-2, found a value outside that range")
    return d


def check_public_key(public: bytes, curve: Curve = SM2P256V1) -> tuple[int, int]:
    """(x, y) of a 64-byte public key x||y, or SignatureError if it is not a curve point."""
    if not isinstance(public, (bytes, bytearray)) or len(public) != PUBLIC_KEY_SIZE:
        found = len(public) if isinstance(public, (bytes, bytearray)) else type(public).__name__
        hint = " (pass x||y without the 04 prefix)" if isinstance(public, (bytes, bytearray)) and len(public) == 65 else ""
        raise SignatureError(f"SM2 public key: expected {PUBLIC_KEY_SIZE} bytes x||y, found {found}{hint}")
    x = int.from_bytes(public[:32], "big")
    y = int.from_bytes(public[32:], "big")
    if not curve.contains(x, y):
        raise SignatureError("SM2 public key: expected a point on the SM2 curve, found a point off the curve")
    return x, y


def decode_signature(signature: bytes, curve: Curve = SM2P256V1) -> tuple[int, int]:
    """(r, s) of a 64-byte r||s signature, or SignatureError unless 1 <= r, s <= n-1."""
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_SIZE:
        found = len(signature) if isinstance(signature, (bytes, bytearray)) else type(signature).__name__
        raise SignatureError(f"SM2 signature: expected {SIGNATURE_SIZE} bytes r||s, found {found}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (1 <= r < curve.n and 1 <= s < curve.n):
        raise SignatureError("SM2 signature: expected 1 <= r, s <= n-1, found a value outside that range")
    if (r + s) % curve.n == 0:
        raise SignatureError("SM2 signature: r + s = 0 mod n")
    return r, s


def encode_signature(r: int, s: int) -> bytes:
    return _int32(r) + _int32(s)


def compute_z(public: bytes, user_id: bytes = DEFAULT_USER_ID, curve: Curve = SM2P256V1) -> bytes:
    """Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A) of GB/T 32918.2 §5.5."""
    if len(user_id) * 8 > 0xFFFF:
        raise SignatureError(f"SM2 user id: expected at most 8191 bytes, found {len(user_id)}")
    entl = (len(user_id) * 8).to_bytes(2, "big")
    return sm3(entl + bytes(user_id) + _int32(curve.a) + _int32(curve.b) + _int32(curve.gx)
               + _int32(curve.gy) + bytes(public))


def message_digest(public: bytes, message: bytes, user_id: bytes = DEFAULT_USER_ID,
                   curve: Curve = SM2P256V1) -> bytes:
    """e = SM3(Z_A || M), the value the SM2 signature equations use."""
    return sm3(compute_z(public, user_id, curve) + bytes(message))


# ---------------------------------------------------------------------------
# Backends


class Backend(Protocol):
    name: str

    def public_key_of(self, private: bytes) -> bytes: ...
    def sign(self, private: bytes, message: bytes, user_id: bytes) -> bytes: ...
    def verify(self, public: bytes, message: bytes, signature: bytes, user_id: bytes) -> None: ...


def _random_scalar(upper: int) -> int:
    """Uniform in [1, upper] from the operating system's CSPRNG."""
    return secrets.randbelow(upper) + 1


class GmsslBackend:
    """gmssl 3.2.2 (pure Python), hardened as described in the module docstring.

    ``curve`` may be another short Weierstrass curve (the test of the GB/T 32918.2
    example on its example curve uses this); ``nonce`` lets that test fix k.
    """

    name = "gmssl"

    def __init__(self, curve: Curve = SM2P256V1) -> None:
        from gmssl import sm2 as gmssl_sm2  # noqa: PLC0415 - optional heavy import

        self._module = gmssl_sm2
        self.curve = curve
        self._table = {
            "n": f"{curve.n:064X}", "p": f"{curve.p:064X}", "g": f"{curve.gx:064x}{curve.gy:064x}",
            "a": f"{curve.a:064X}", "b": f"{curve.b:064X}",
        }

    def _engine(self, private_hex: str = "", public: bytes | None = None):
        # Never pass the public key through the constructor: it lstrip()s "0" and "4".
        engine = self._module.CryptSM2(private_key=private_hex, public_key="", ecc_table=self._table)
        if public is not None:
            engine.public_key = public.hex()
        return engine

    def public_key_of(self, private: bytes) -> bytes:
        d = check_private_key(private, self.curve)
        point = self._engine()._kg(d, self._table["g"])
        if point is None:  # pragma: no cover - d in range never gives infinity
            raise SignatureError("SM2 private key gives the point at infinity")
        return bytes.fromhex(point)

    def sign_digest(self, private: bytes, digest: bytes, nonce: int | None = None) -> bytes:
        d = check_private_key(private, self.curve)
        engine = self._engine(f"{d:064x}")
        while True:
            k = nonce if nonce is not None else _random_scalar(self.curve.n - 1)
            signature_hex = engine.sign(bytes(digest), f"{k:064x}")
            if signature_hex is not None:
                return bytes.fromhex(signature_hex)
            if nonce is not None:
                raise SignatureError("SM2: the fixed nonce gives r = 0 or r + k = n")

    def sign(self, private: bytes, message: bytes, user_id: bytes = DEFAULT_USER_ID,
             *, public: bytes | None = None, nonce: int | None = None) -> bytes:
        public = public if public is not None else self.public_key_of(private)
        return self.sign_digest(private, message_digest(public, message, user_id, self.curve), nonce)

    def verify(self, public: bytes, message: bytes, signature: bytes,
               user_id: bytes = DEFAULT_USER_ID) -> None:
        check_public_key(public, self.curve)
        decode_signature(signature, self.curve)
        digest = message_digest(public, message, user_id, self.curve)
        try:
            ok = self._engine(public=bytes(public)).verify(bytes(signature).hex(), digest)
        except (ValueError, TypeError, IndexError) as exc:  # defensive: gmssl internals
            raise SignatureError(f"SM2 signature does not verify ({type(exc).__name__} inside gmssl)") from exc
        if not ok:
            raise SignatureError("SM2 signature does not verify")


class TongsuoBackend:
    """tongsuopy 1.0.1 (OpenSSL/Tongsuo).  Only the default user id: others are
    delegated to the gmssl backend (the Tongsuo binding has no way to set the id)."""

    name = "tongsuopy"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.utils import (  # noqa: PLC0415
            decode_dss_signature,
            encode_dss_signature,
        )
        from tongsuopy.crypto import hashes, serialization  # noqa: PLC0415
        from tongsuopy.crypto.asymciphers import ec  # noqa: PLC0415
        from tongsuopy.crypto.exceptions import InvalidSignature  # noqa: PLC0415

        self._ec = ec
        self._algorithm = ec.ECDSA(hashes.SM3())
        self._serialization = serialization
        self._invalid = InvalidSignature
        self._der_decode = decode_dss_signature
        self._der_encode = encode_dss_signature
        self._fallback: GmsslBackend | None = None
        self.curve = SM2P256V1

    def _gmssl(self) -> GmsslBackend:
        if self._fallback is None:
            self._fallback = GmsslBackend()
        return self._fallback

    def private_key_object(self, private: bytes):
        d = check_private_key(private)
        return self._ec.derive_private_key(d, self._ec.SM2())

    def public_key_object(self, public: bytes):
        check_public_key(public)
        try:
            return self._ec.EllipticCurvePublicKey.from_encoded_point(self._ec.SM2(), b"\x04" + bytes(public))
        except ValueError as exc:  # pragma: no cover - check_public_key catches these first
            raise SignatureError(f"SM2 public key rejected by OpenSSL: {exc}") from exc

    def public_key_of(self, private: bytes) -> bytes:
        point = self.private_key_object(private).public_key().public_bytes(
            self._serialization.Encoding.X962, self._serialization.PublicFormat.UncompressedPoint)
        return point[1:]

    def sign_with(self, key_object, message: bytes) -> bytes:
        r, s = self._der_decode(key_object.sign(bytes(message), self._algorithm))
        return encode_signature(r, s)

    def verify_with(self, key_object, message: bytes, signature: bytes) -> None:
        r, s = decode_signature(signature)
        try:
            key_object.verify(self._der_encode(r, s), bytes(message), self._algorithm)
        except self._invalid:
            raise SignatureError("SM2 signature does not verify") from None

    def sign(self, private: bytes, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        if bytes(user_id) != DEFAULT_USER_ID:
            return self._gmssl().sign(private, message, user_id)
        return self.sign_with(self.private_key_object(private), message)

    def verify(self, public: bytes, message: bytes, signature: bytes,
               user_id: bytes = DEFAULT_USER_ID) -> None:
        if bytes(user_id) != DEFAULT_USER_ID:
            self._gmssl().verify(public, message, signature, user_id)
            return
        self.verify_with(self.public_key_object(public), message, signature)


BACKEND_NAMES = ("tongsuopy", "gmssl")


def tongsuopy_available() -> bool:
    return importlib.util.find_spec("tongsuopy") is not None


@functools.cache
def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name``, or the fastest one installed (tongsuopy, else gmssl).

    ``SETTLECHAIN_SM2_BACKEND`` in the environment overrides the automatic choice.
    """
    if name is None:
        name = os.environ.get("SETTLECHAIN_SM2_BACKEND") or ("tongsuopy" if tongsuopy_available() else "gmssl")
    if name == "tongsuopy":
        try:
            return TongsuoBackend()
        except ImportError as exc:
            raise SignatureError("SM2 backend 'tongsuopy' is not installed (pip install .[fast])") from exc
    if name == "gmssl":
        return GmsslBackend()
    raise SignatureError(f"SM2 backend: expected one of {', '.join(BACKEND_NAMES)}, found {name!r}")


def backend_name() -> str:
    """``"tongsuopy"`` or ``"gmssl"``: the backend the functions below use by default."""
    return get_backend().name


# ---------------------------------------------------------------------------
# Key objects (parsed once; what the ledger keeps for its members and its own key)


class PublicKey:
    """A validated SM2 public key, parsed once for repeated verification."""

    __slots__ = ("raw", "_backend", "_object")

    def __init__(self, raw: bytes, backend: Backend | None = None) -> None:
        check_public_key(raw)
        self.raw = bytes(raw)
        self._backend = backend or get_backend()
        self._object = (self._backend.public_key_object(self.raw)
                        if isinstance(self._backend, TongsuoBackend) else None)

    @classmethod
    def from_hex(cls, text: str, backend: Backend | None = None) -> PublicKey:
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            raise SignatureError("SM2 public key: expected 128 hex digits x||y, found non-hex text") from None
        return cls(raw, backend)

    @property
    def backend(self) -> Backend:
        """The backend that verifies with this key."""
        return self._backend

    def verify(self, message: bytes, signature: bytes, *, user_id: bytes = DEFAULT_USER_ID) -> None:
        if self._object is not None and bytes(user_id) == DEFAULT_USER_ID:
            self._backend.verify_with(self._object, message, signature)  # type: ignore[attr-defined]
        else:
            self._backend.verify(self.raw, message, signature, user_id)

    def hex(self) -> str:
        return self.raw.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.raw.hex()[:16]}...)"


class PrivateKey:
    """An SM2 private key with its public key computed once."""

    __slots__ = ("_raw", "public", "_backend", "_object")

    def __init__(self, raw: bytes, backend: Backend | None = None) -> None:
        check_private_key(raw)
        self._raw = bytes(raw)
        self._backend = backend or get_backend()
        self._object = (self._backend.private_key_object(self._raw)
                        if isinstance(self._backend, TongsuoBackend) else None)
        self.public = PublicKey(self._backend.public_key_of(self._raw), self._backend)

    @classmethod
    def generate(cls, backend: Backend | None = None) -> PrivateKey:
        return cls(_int32(_random_scalar(SM2P256V1.n - 2)), backend)

    def sign(self, message: bytes, *, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        if self._object is not None and bytes(user_id) == DEFAULT_USER_ID:
            return self._backend.sign_with(self._object, message)  # type: ignore[attr-defined]
        if isinstance(self._backend, GmsslBackend):
            return self._backend.sign(self._raw, message, user_id, public=self.public.raw)
        return self._backend.sign(self._raw, message, user_id)

    def raw(self) -> bytes:
        return self._raw

    def __repr__(self) -> str:
        return f"PrivateKey(public={self.public.raw.hex()[:16]}...)"


# ---------------------------------------------------------------------------
# The functional interface of docs/interfaces.md


def generate_keypair() -> tuple[bytes, bytes]:
    """(32-byte private d, 64-byte public x||y); d uniform in [1, n-2] from :mod:`secrets`."""
    key = PrivateKey.generate()
    return key.raw(), key.public.raw


def public_key_of(private: bytes) -> bytes:
    return get_backend().public_key_of(private)


@functools.lru_cache(maxsize=32)
def _private_key(private: bytes, backend_key: str) -> PrivateKey:
    return PrivateKey(private, get_backend(backend_key))


def sign(private: bytes, message: bytes, *, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """The 64-byte r||s SM2 signature of ``message`` (over SM3(Z_A || M))."""
    return _private_key(bytes(private), backend_name()).sign(message, user_id=user_id)


def verify(public: bytes, message: bytes, signature: bytes, *, user_id: bytes = DEFAULT_USER_ID) -> None:
    """None if ``signature`` is a valid r||s signature of ``message`` by ``public``;
    raises :class:`SignatureError` otherwise (including for malformed input)."""
    get_backend().verify(bytes(public), bytes(message), bytes(signature), user_id)


# ---------------------------------------------------------------------------
# Key files


def save_private_key(path: str | os.PathLike[str], private: bytes) -> None:
    """Write ``private`` as 64 hex digits to ``path``, created with mode 0600.

    Refuses to overwrite an existing file.  The write goes to a temporary file in the
    same directory which is fsync'ed and renamed, so a crash leaves no partial key.
    """
    check_private_key(private)
    target = Path(path)
    if target.exists():
        raise KeyFileError(f"{target}: refusing to overwrite an existing key file")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (bytes(private).hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, target)  # fails if target appeared meanwhile
    except FileExistsError:
        raise KeyFileError(f"{target}: refusing to overwrite an existing key file") from None
    finally:
        os.unlink(temporary)


def load_private_key(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte private key in ``path``; refuses files readable by group or others."""
    source = Path(path)
    try:
        mode = source.stat().st_mode
        text = source.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(f"{source}: key file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{source}: cannot read key file: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{source}: expected permissions 0600, found {stat.S_IMODE(mode):04o} "
                           f"(run: chmod 600 {source})")
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyFileError(f"{source}: expected 64 hex digits, found non-hex text") from None
    try:
        check_private_key(raw)
    except SignatureError as exc:
        raise KeyFileError(f"{source}: {exc}") from None
    return raw
