"""Vetted primitives the PSI core is built from: AES, BLAKE2b key derivation, base OT.

- AES-128 from ``cryptography`` (OpenSSL), always over whole numpy buffers with
  ``update_into`` (the allocation path of ``update`` is far slower).
- Key derivation: BLAKE2b (``hashlib``) keyed with the session context, personalised
  with a label per use.
- Base OT: the "simplest OT" of Chou and Orlandi (LATINCRYPT 2015) over the prime-order
  subgroup of Ed25519, with libsodium's group operations (PyNaCl).  Every point received
  is checked with ``crypto_core_ed25519_is_valid_point`` (canonical encoding, on the
  curve, in the main subgroup, not of small order), and every derived key hashes the
  whole transcript of its OT (index, A, B_i, shared point) under the session context.
  The known gap in the original paper's UC proof (Genç, Iovino, Rial, 2017) concerns
  malicious receivers and a non-programmable setting; we use the protocol for
  semi-honest security only, with one A shared by all d instances as in the paper's
  batched form.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from .errors import PsiProtocolError

POINT_BYTES = 32
SCALAR_BYTES = 32
_IDENTITY = bytes([1]) + bytes(31)  # encoding of the neutral element of Ed25519


def derive(context: bytes, label: bytes, length: int = 16, data: bytes = b"") -> bytes:
    """``BLAKE2b(key=context, person=label)(data)`` truncated to ``length`` bytes."""
    return hashlib.blake2b(data, digest_size=length, key=context[:64], person=label[:16]).digest()


class AesEcb:
    """AES-128 in ECB mode over whole uint8 buffers (a PRP applied block-wise)."""

    def __init__(self, key: bytes) -> None:
        self._encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()

    def encrypt_into(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Encrypt the bytes of C-contiguous ``src`` into the first ``src.nbytes`` bytes of the
        flat uint8 buffer ``dst``, which must have at least 16 more bytes (``cryptography``
        asks for room for one more block; nothing is written there)."""
        flat = src.view(np.uint8).reshape(-1)
        if flat.size % 16 or dst.size < flat.size + 16:
            raise ValueError("AES-ECB: input must be whole blocks and dst 16 bytes longer")
        self._encryptor.update_into(flat, dst)


class ColumnPrg:
    """d independent AES-128-CTR keystreams, one per column of the OT-extension matrix.

    Column i is the keystream of AES-CTR under key ``keys[i]`` with an all-zero initial
    counter block (each key is used for this one stream only).  ``fill`` continues every
    stream where the previous call stopped, so a matrix can be produced chunk by chunk.
    """

    def __init__(self, keys: list[bytes]) -> None:
        self._streams = [
            Cipher(algorithms.AES(k), modes.CTR(bytes(16))).encryptor() for k in keys
        ]
        self._zeros = np.zeros(0, np.uint8)

    def fill(self, out: np.ndarray) -> None:
        """Write the next ``out.shape[1]`` bytes of each stream into row i of ``out``."""
        width = out.shape[1]
        if self._zeros.size < width:
            self._zeros = np.zeros(width, np.uint8)
        zeros = self._zeros[:width]
        for stream, row in zip(self._streams, out):
            stream.update_into(zeros, row)


def random_scalar() -> bytes:
    """A uniform scalar mod the Ed25519 group order ℓ, from ``os.urandom``."""
    return sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))


def _check_point(point: bytes, what: str) -> None:
    if len(point) != POINT_BYTES or not sodium.crypto_core_ed25519_is_valid_point(point):
        raise PsiProtocolError(
            f"invalid {what}: expected a canonical Ed25519 point of the main subgroup "
            f"({POINT_BYTES} bytes), found {len(point)} bytes that are not"
        )


def _ot_key(context: bytes, index: int, a_point: bytes, b_point: bytes, shared: bytes) -> bytes:
    return derive(context, b"sc-psi-baseot", 16,
                  index.to_bytes(4, "little") + a_point + b_point + shared)


class BaseOtSender:
    """Chou-Orlandi sender: holds a, publishes A = aG; derives (k_i^0, k_i^1) for each B_i."""

    def __init__(self, scalar: bytes) -> None:
        self._a = scalar
        self.point = sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)
        # a*A, so that a*(B - A) = a*B - a*A costs a subtraction instead of a multiplication
        self._a_a = sodium.crypto_scalarmult_ed25519_noclamp(scalar, self.point)

    def keys(self, receiver_points: bytes, count: int, context: bytes) -> tuple[list[bytes], list[bytes]]:
        if len(receiver_points) != count * POINT_BYTES:
            raise PsiProtocolError(
                f"base OT: expected {count} points ({count * POINT_BYTES} bytes), "
                f"found {len(receiver_points)} bytes"
            )
        k0: list[bytes] = []
        k1: list[bytes] = []
        for i in range(count):
            b_point = receiver_points[i * POINT_BYTES:(i + 1) * POINT_BYTES]
            _check_point(b_point, f"base-OT point B_{i}")
            try:
                s0 = sodium.crypto_scalarmult_ed25519_noclamp(self._a, b_point)
                s1 = sodium.crypto_core_ed25519_sub(s0, self._a_a)
            except SodiumRuntimeError as exc:
                raise PsiProtocolError(f"base OT: degenerate point B_{i}: {exc}") from exc
            if _IDENTITY in (s0, s1):
                raise PsiProtocolError(f"base OT: degenerate point B_{i} (B_i = A or B_i = 0)")
            k0.append(_ot_key(context, i, self.point, b_point, s0))
            k1.append(_ot_key(context, i, self.point, b_point, s1))
        return k0, k1


class BaseOtReceiver:
    """Chou-Orlandi receiver with choice bits s: B_i = b_i G (+ A if s_i = 1); k_i = H(b_i A)."""

    def __init__(self, choices: np.ndarray, scalars: list[bytes], sender_point: bytes) -> None:
        _check_point(sender_point, "base-OT point A")
        if len(scalars) != len(choices):
            raise ValueError("one scalar per choice bit")
        self._a_point = sender_point
        self._scalars = scalars
        points = []
        for bit, b in zip(choices, scalars):
            p = sodium.crypto_scalarmult_ed25519_base_noclamp(b)
            if bit:
                p = sodium.crypto_core_ed25519_add(p, sender_point)
            points.append(p)
        self.points = b"".join(points)

    def keys(self, context: bytes) -> list[bytes]:
        out = []
        for i, b in enumerate(self._scalars):
            b_point = self.points[i * POINT_BYTES:(i + 1) * POINT_BYTES]
            try:
                shared = sodium.crypto_scalarmult_ed25519_noclamp(b, self._a_point)
            except SodiumRuntimeError as exc:  # pragma: no cover - A was validated
                raise PsiProtocolError(f"base OT: degenerate point A: {exc}") from exc
            out.append(_ot_key(context, i, self._a_point, b_point, shared))
        return out
