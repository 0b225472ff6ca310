"""Base OT, AES PRG and element-set construction."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nacl import bindings as sodium

from protocols.psi import DuplicateElementError, ElementSet, InputBoundsError, PsiProtocolError
from protocols.psi.primitives import AesEcb, BaseOtReceiver, BaseOtSender, ColumnPrg, random_scalar


def test_base_ot_receiver_gets_the_chosen_key_only() -> None:
    count = 16
    choices = np.array([0, 1] * 8, np.uint8)
    sender = BaseOtSender(random_scalar())
    receiver = BaseOtReceiver(choices, [random_scalar() for _ in range(count)], sender.point)
    context = os.urandom(32)
    k0, k1 = sender.keys(receiver.points, count, context)
    got = receiver.keys(context)
    for i in range(count):
        assert got[i] == (k1[i] if choices[i] else k0[i])
        assert got[i] != (k0[i] if choices[i] else k1[i])
    assert len(set(k0) | set(k1)) == 2 * count
    # a different session context gives unrelated keys
    assert receiver.keys(os.urandom(32))[0] != got[0]


@pytest.mark.parametrize("description, point", [
    ("identity", bytes([1]) + bytes(31)),
    ("small-order point (order 4)", bytes(32)),
    ("non-canonical encoding", b"\xff" * 32),
    ("short", bytes(31)),
])
def test_base_ot_rejects_bad_points(description, point) -> None:
    sender = BaseOtSender(random_scalar())
    good = BaseOtReceiver(np.zeros(2, np.uint8), [random_scalar(), random_scalar()], sender.point).points
    with pytest.raises(PsiProtocolError):
        sender.keys(good[:32] + point.ljust(32, b"\0")[:32] if len(point) == 32 else good[:32] + point,
                    2, b"ctx")
    with pytest.raises(PsiProtocolError):
        BaseOtReceiver(np.zeros(1, np.uint8), [random_scalar()], point)


def test_base_ot_rejects_b_equal_a() -> None:
    sender = BaseOtSender(random_scalar())
    with pytest.raises(PsiProtocolError):
        sender.keys(sender.point, 1, b"ctx")  # B - A is the identity


def test_column_prg_is_aes_ctr_and_continues_across_chunks() -> None:
    keys = [os.urandom(16) for _ in range(3)]
    whole = np.empty((3, 96), np.uint8)
    ColumnPrg(keys).fill(whole)
    prg = ColumnPrg(keys)
    a, b = np.empty((3, 32), np.uint8), np.empty((3, 64), np.uint8)
    prg.fill(a)
    prg.fill(b)
    assert np.array_equal(np.hstack([a, b]), whole)
    want = Cipher(algorithms.AES(keys[1]), modes.CTR(bytes(16))).encryptor().update(bytes(96))
    assert whole[1].tobytes() == want


def test_aes_ecb_matches_cryptography() -> None:
    key = os.urandom(16)
    data = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8)
    out = np.zeros(80, np.uint8)
    AesEcb(key).encrypt_into(data, out)
    want = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(data.tobytes())
    assert out[:64].tobytes() == want
    assert sodium.crypto_core_ed25519_is_valid_point(BaseOtSender(random_scalar()).point)


def test_duplicates_are_rejected_naming_the_index() -> None:
    rows = np.random.default_rng(1).integers(0, 256, (10, 30), dtype=np.uint8)
    rows[8] = rows[2]
    with pytest.raises(DuplicateElementError) as info:
        ElementSet.from_fixed(rows)
    assert (info.value.index, info.value.first_index) == (8, 2)
    assert "element 8 equals element 2" in str(info.value)
    with pytest.raises(DuplicateElementError) as info:
        ElementSet.from_bytes([b"a", b"bb", b"", b"bb"])
    assert (info.value.index, info.value.first_index) == (3, 1)


def test_variable_length_elements_are_distinct_by_length() -> None:
    # b"a" + b"" and b"" + b"a" style ambiguities cannot arise: each element is hashed alone
    elements = ElementSet.from_bytes([b"", b"\0", b"\0\0", b"a", b"a\0"])
    assert len(elements) == 5


@pytest.mark.parametrize("bad", [np.zeros((3, 4), np.int64), np.zeros(5, np.uint8), [b"x"]])
def test_from_fixed_rejects_wrong_arrays(bad) -> None:
    with pytest.raises(InputBoundsError):
        ElementSet.from_fixed(bad)


def test_from_bytes_rejects_non_bytes() -> None:
    with pytest.raises(InputBoundsError, match="element 1"):
        ElementSet.from_bytes([b"x", "text"])
