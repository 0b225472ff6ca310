"""SM3 (GB/T 32905-2016) through OpenSSL.

``hashlib.new("sm3")`` is used when the linked OpenSSL provides it (hundreds of MB/s);
otherwise ``cryptography``'s SM3.  Both are vetted implementations; the known-answer
tests in ``tests/vectors`` check whichever is active.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

DIGEST_SIZE = 32


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


def _hashlib_has_sm3() -> bool:
    try:
        hashlib.new("sm3", b"")
    except ValueError:
        return False
    return True


class _CryptographySM3:
    """Adapter giving ``cryptography``'s SM3 the hashlib update/digest shape."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import hashes

        self._ctx = hashes.Hash(hashes.SM3())

    def update(self, data: bytes, /) -> None:
        self._ctx.update(bytes(data))

    def digest(self) -> bytes:
        return self._ctx.copy().finalize()


_HASHLIB_SM3 = _hashlib_has_sm3()
BACKEND = "hashlib" if _HASHLIB_SM3 else "cryptography"


def sm3_hasher() -> _Hasher:
    """A fresh incremental SM3 hasher (``update`` / ``digest``)."""
    if _HASHLIB_SM3:
        return hashlib.new("sm3")
    return _CryptographySM3()


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest of ``data``."""
    hasher = sm3_hasher()
    hasher.update(data)
    return hasher.digest()
