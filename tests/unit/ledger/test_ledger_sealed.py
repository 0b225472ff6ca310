"""Sealed documents: SM2 encryption and SM4-GCM against published examples and two
independent implementations, and every way a sealed entry can be tampered with."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest
import rfc8785
from gmalg import ellipticcurve as gmalg_ec
from gmalg import sm2 as gmalg_sm2
from gmalg.sm3 import SM3 as GmalgSM3
from gmssl import sm2 as gmssl_sm2

from ledger_anchor import sm2
from ledger_anchor.commitment import SALT_BYTES, commit, verify_commitment
from ledger_anchor.sealed import (
    PAD_BYTES,
    Recipient,
    SealedDocument,
    SealError,
    key_id,
    open_sealed,
    point_multiply,
    seal,
    sm2_decrypt,
    sm2_encrypt,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)

VECTORS = Path(__file__).parents[2] / "vectors/ledger"
SM2_ENC = json.loads((VECTORS / "sm2_encrypt.json").read_text())["vectors"][0]
SM4_GCM = json.loads((VECTORS / "sm4_gcm.json").read_text())["vectors"][0]


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def _example_curve() -> sm2.Curve:
    p = {k: int(v, 16) for k, v in SM2_ENC["curve_parameters"].items()}
    return sm2.Curve("example", p["p"], p["a"], p["b"], p["gx"], p["gy"], p["n"])


def _gmalg(curve: sm2.Curve, k: int | None = None) -> gmalg_sm2.SM2Core:
    ecdlp = gmalg_ec.ECDLP(curve.p, curve.a, curve.b, (curve.gx, curve.gy), curve.n)
    return gmalg_sm2.SM2Core(ecdlp, GmalgSM3(), (lambda bits: k) if k is not None else None)


# -- SM2 encryption: the standard's worked example --------------------------------------------------


def test_example_curve_public_key_is_d_times_g() -> None:
    curve = _example_curve()
    x, y = point_multiply(int(SM2_ENC["private_key"], 16), (curve.gx, curve.gy), curve)
    assert (x.to_bytes(32, "big") + y.to_bytes(32, "big")) == _h(SM2_ENC["public_key"])


def test_encrypt_with_published_k_reproduces_c1_c3_c2() -> None:
    curve = _example_curve()
    got = sm2_encrypt(_h(SM2_ENC["public_key"]), SM2_ENC["message_ascii"].encode(), curve=curve,
                      _k=int(SM2_ENC["k"], 16))
    assert got == _h(SM2_ENC["c1"] + SM2_ENC["c3"] + SM2_ENC["c2"])


def test_decrypt_published_ciphertext() -> None:
    curve = _example_curve()
    got = sm2_decrypt(_h(SM2_ENC["private_key"]), _h(SM2_ENC["c1"] + SM2_ENC["c3"] + SM2_ENC["c2"]), curve=curve)
    assert got == SM2_ENC["message_ascii"].encode()


def test_gmalg_reproduces_published_example_too() -> None:
    """The vector file and gmalg agree, so neither our code nor the transcription is alone."""
    curve = _example_curve()
    core = _gmalg(curve, int(SM2_ENC["k"], 16))
    pk = (int(SM2_ENC["public_key"][:64], 16), int(SM2_ENC["public_key"][64:], 16))
    (x1, y1), c2, c3 = core.encrypt(SM2_ENC["message_ascii"].encode(), pk)
    assert b"\x04" + x1.to_bytes(32, "big") + y1.to_bytes(32, "big") == _h(SM2_ENC["c1"])
    assert (c3, c2) == (_h(SM2_ENC["c3"]), _h(SM2_ENC["c2"]))


# -- SM2 encryption: recommended curve, cross-implementation ---------------------------------------


def test_point_multiply_agrees_with_the_signature_backend_key_derivation() -> None:
    for _ in range(3):
        private, public = sm2.generate_keypair()
        c = sm2.SM2P256V1
        x, y = point_multiply(int.from_bytes(private, "big"), (c.gx, c.gy))
        assert x.to_bytes(32, "big") + y.to_bytes(32, "big") == public


@pytest.mark.parametrize("length", [1, 16, 31, 32, 33, 100])
def test_gmalg_decrypts_ours_and_we_decrypt_gmalgs(length: int) -> None:
    private, public = sm2.generate_keypair()
    message = secrets.token_bytes(length)
    core = _gmalg(sm2.SM2P256V1)
    d = int.from_bytes(private, "big")
    ours = sm2_encrypt(public, message)
    c1 = (int.from_bytes(ours[1:33], "big"), int.from_bytes(ours[33:65], "big"))
    assert core.decrypt(c1, ours[97:], ours[65:97], d) == message
    pk = (int.from_bytes(public[:32], "big"), int.from_bytes(public[32:], "big"))
    (x1, y1), c2, c3 = core.encrypt(message, pk)
    theirs = b"\x04" + x1.to_bytes(32, "big") + y1.to_bytes(32, "big") + c3 + c2
    assert sm2_decrypt(private, theirs) == message


def test_gmssl_decrypts_ours_and_we_decrypt_gmssls() -> None:
    private, public = sm2.generate_keypair()
    message = secrets.token_bytes(16)
    crypt = gmssl_sm2.CryptSM2(private_key=private.hex(), public_key="", mode=1)
    crypt.public_key = public.hex()  # never through the constructor (see ledger_anchor.sm2)
    ours = sm2_encrypt(public, message)
    assert crypt.decrypt(ours[1:]) == message  # gmssl writes C1 without the 04 byte
    theirs = crypt.encrypt(message)
    assert sm2_decrypt(private, b"\x04" + theirs) == message


def test_each_encryption_uses_a_fresh_k() -> None:
    _, public = sm2.generate_keypair()
    assert sm2_encrypt(public, b"same") != sm2_encrypt(public, b"same")


@pytest.mark.parametrize("probe", ["flip_c3", "flip_c2", "c1_off_curve", "truncated", "no_04", "wrong_key"])
def test_sm2_decrypt_refuses_tampering(probe: str) -> None:
    private, public = sm2.generate_keypair()
    ct = bytearray(sm2_encrypt(public, b"sixteen byte key"))
    key = private
    if probe == "flip_c3":
        ct[70] ^= 1
    elif probe == "flip_c2":
        ct[-1] ^= 1
    elif probe == "c1_off_curve":
        ct[40] ^= 1
    elif probe == "truncated":
        ct = ct[:97]
    elif probe == "no_04":
        ct[0] = 0x02
    elif probe == "wrong_key":
        key = sm2.generate_keypair()[0]
    with pytest.raises(SealError):
        sm2_decrypt(key, bytes(ct))


def test_sm2_encrypt_refuses_a_key_off_the_curve() -> None:
    _, public = sm2.generate_keypair()
    bad = public[:63] + bytes([public[63] ^ 1])
    with pytest.raises(SealError, match="curve"):
        sm2_encrypt(bad, b"x")


# -- SM4-GCM ----------------------------------------------------------------------------------------


def test_sm4_gcm_rfc8998_vector() -> None:
    v = SM4_GCM
    out = sm4_gcm_encrypt(_h(v["key"]), _h(v["iv"]), _h(v["plaintext"]), _h(v["aad"]))
    assert out == _h(v["ciphertext"] + v["tag"])
    assert sm4_gcm_decrypt(_h(v["key"]), _h(v["iv"]), out, _h(v["aad"])) == _h(v["plaintext"])


def test_sm4_gcm_agrees_with_tongsuopy() -> None:
    aead = pytest.importorskip("tongsuopy.crypto.ciphers.aead")
    for length in (0, 1, 15, 16, 17, 300):
        key, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        data, aad = secrets.token_bytes(length), secrets.token_bytes(7)
        assert sm4_gcm_encrypt(key, nonce, data, aad) == aead.SM4GCM(key).encrypt(nonce, data, aad)


def test_sm4_gcm_refuses_a_changed_aad() -> None:
    key, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    out = sm4_gcm_encrypt(key, nonce, b"body", b"header")
    with pytest.raises(SealError, match="tag"):
        sm4_gcm_decrypt(key, nonce, out, b"header!")


# -- sealed documents -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def members() -> dict[str, tuple[bytes, bytes]]:
    return {m: sm2.generate_keypair() for m in ("CMCC", "CUCC", "CTCC")}


def _recipients(members, *ids: str) -> list[Recipient]:
    return [Recipient(m, members[m][1]) for m in ids]


def test_every_recipient_opens_the_same_document_and_it_opens_the_commitment(members) -> None:
    doc = rfc8785.dumps({"type": "invoice", "gross": 123456})
    sealed = seal("invoice", doc, _recipients(members, "CUCC", "CMCC"))
    entry = sealed.entry()
    assert [r["member"] for r in entry["sealed"]["recipients"]] == ["CMCC", "CUCC"]
    for member in ("CMCC", "CUCC"):
        opened = open_sealed(entry, member, members[member][0])
        assert opened.document == doc
        verify_commitment(entry["commitment"], "invoice", opened.salt, opened.document)


def test_a_non_recipient_cannot_open_and_sees_no_amount(members) -> None:
    doc = rfc8785.dumps({"type": "invoice", "gross": 987654321})
    entry = seal("invoice", doc, _recipients(members, "CMCC", "CUCC")).entry()
    with pytest.raises(SealError, match="not addressed"):
        open_sealed(entry, "CTCC", members["CTCC"][0])
    # pretending to be a recipient with another member's wrapped key fails too
    with pytest.raises(SealError):
        open_sealed(entry, "CMCC", members["CTCC"][0])
    assert b"987654321" not in json.dumps(entry).encode()


def test_sizes_are_padded(members) -> None:
    short = seal("invoice", b"x" * 10, _recipients(members, "CMCC")).entry()
    longer = seal("invoice", b"x" * 200, _recipients(members, "CMCC")).entry()
    assert len(short["sealed"]["ciphertext"]) == len(longer["sealed"]["ciphertext"])
    assert (len(base64.b64decode(short["sealed"]["ciphertext"])) - 16) % PAD_BYTES == 0


def _mutate(entry: dict, probe: str, members) -> dict:
    entry = json.loads(json.dumps(entry))
    sealed = entry["sealed"]
    if probe == "ciphertext_bit":
        raw = bytearray(base64.b64decode(sealed["ciphertext"]))
        raw[5] ^= 1
        sealed["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    elif probe == "commitment":
        entry["commitment"] = "0" * 64
    elif probe == "kind":
        entry["kind"] = "payment"
    elif probe == "nonce":
        sealed["nonce"] = "00" * 12
    elif probe == "swap_wrapped_keys":
        a, b = sealed["recipients"]
        a["wrapped_key"], b["wrapped_key"] = b["wrapped_key"], a["wrapped_key"]
    elif probe == "drop_recipient":
        sealed["recipients"] = sealed["recipients"][:1]
    elif probe == "key_id":
        sealed["recipients"][0]["key_id"] = "00" * 8
    elif probe == "unsorted_recipients":
        sealed["recipients"].reverse()
    elif probe == "extra_field":
        sealed["note"] = "x"
    elif probe == "version":
        sealed["v"] = 2
    elif probe == "truncated_ciphertext":
        sealed["ciphertext"] = sealed["ciphertext"][:-8]
    elif probe == "not_base64":
        sealed["ciphertext"] = "***"
    return entry


@pytest.mark.parametrize("probe", ["ciphertext_bit", "commitment", "kind", "nonce", "swap_wrapped_keys",
                                   "drop_recipient", "key_id", "unsorted_recipients", "extra_field",
                                   "version", "truncated_ciphertext", "not_base64"])
def test_tampered_entries_do_not_open(members, probe: str) -> None:
    entry = seal("invoice", b'{"gross":1}', _recipients(members, "CMCC", "CUCC")).entry()
    bad = _mutate(entry, probe, members)
    with pytest.raises(SealError):
        open_sealed(bad, "CMCC", members["CMCC"][0])


def test_invisible_salamander_is_caught_by_the_commitment(members) -> None:
    """An author wraps different content keys for two recipients over one ciphertext: the
    ciphertext can only authenticate under one of them, but even a crafted multi-key GCM
    ciphertext would open to a document whose commitment differs from the clear one.  We
    model the attack's end state directly: recipient CUCC's key opens a valid GCM body whose
    plaintext is another document, and the commitment check refuses it."""
    from ledger_anchor import sealed as sealed_module

    honest = seal("invoice", b'{"gross":100}', _recipients(members, "CMCC", "CUCC"))
    forged_key = secrets.token_bytes(16)
    wrapped = tuple(
        w if w.member == "CMCC" else sealed_module.WrappedKey(w.member, w.key_id,
                                                             sm2_encrypt(members["CUCC"][1], forged_key))
        for w in honest.recipients)
    header = SealedDocument(honest.kind, honest.commitment, wrapped, honest.nonce, b"")
    other = sealed_module._pad(secrets.token_bytes(SALT_BYTES) + b'{"gross":999}')
    body = sm4_gcm_encrypt(forged_key, honest.nonce, other, header.aad())
    forged = SealedDocument(honest.kind, honest.commitment, wrapped, honest.nonce, body)
    with pytest.raises(SealError, match="does not open the commitment"):
        open_sealed(forged.entry(), "CUCC", members["CUCC"][0])


def test_key_id_names_the_sealing_key(members) -> None:
    entry = seal("payment", b"{}", _recipients(members, "CMCC")).entry()
    assert entry["sealed"]["recipients"][0]["key_id"] == key_id(members["CMCC"][1])


def test_seal_refuses_duplicate_or_no_recipients(members) -> None:
    with pytest.raises(SealError):
        seal("invoice", b"{}", [])
    with pytest.raises(SealError, match="twice"):
        seal("invoice", b"{}", _recipients(members, "CMCC", "CMCC"))


def test_commitment_kind_binds(members) -> None:
    salt = secrets.token_bytes(SALT_BYTES)
    assert commit("invoice", salt, b"{}") != commit("payment", salt, b"{}")
