"""SM2: published fixed-k examples, cross-backend and cross-implementation checks,
rejection of tampered input, nonce independence from `random`, key files."""

import json
import os
import random
import stat
from pathlib import Path

import pytest
from gmalg import ellipticcurve as gmalg_ec
from gmalg import sm2 as gmalg_sm2
from gmalg.sm3 import SM3 as GmalgSM3

from ledger_anchor import sm2
from ledger_anchor.errors import KeyFileError, SignatureError

VECTORS = {v["curve"]: v for v in json.loads(
    (Path(__file__).parents[2] / "vectors/ledger/sm2_sign.json").read_text())["vectors"]}
BACKENDS = ["gmssl", "tongsuopy"]


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def _example_curve() -> sm2.Curve:
    p = {k: int(v, 16) for k, v in VECTORS["example"]["curve_parameters"].items()}
    return sm2.Curve("example", p["p"], p["a"], p["b"], p["gx"], p["gy"], p["n"])


def _gmalg_core(curve: sm2.Curve, k: int) -> gmalg_sm2.SM2Core:
    ecdlp = gmalg_ec.ECDLP(curve.p, curve.a, curve.b, (curve.gx, curve.gy), curve.n)
    return gmalg_sm2.SM2Core(ecdlp, GmalgSM3(), lambda bits: k)


def test_recommended_curve_example_gmssl_reproduces_published_r_s() -> None:
    v = VECTORS["sm2p256v1"]
    backend = sm2.GmsslBackend()
    assert backend.public_key_of(_h(v["private_key"])) == _h(v["public_key"])
    signature = backend.sign(_h(v["private_key"]), v["message_ascii"].encode(), v["user_id_ascii"].encode(),
                             nonce=int(v["k"], 16))
    assert signature == _h(v["r"] + v["s"])


def test_recommended_curve_example_gmalg_reproduces_published_r_s() -> None:
    v = VECTORS["sm2p256v1"]
    core = _gmalg_core(sm2.SM2P256V1, int(v["k"], 16))
    r, s = core.sign(v["message_ascii"].encode(), int(v["private_key"], 16), v["user_id_ascii"].encode())
    assert (r, s) == (int(v["r"], 16), int(v["s"], 16))


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_verifies_the_published_signature(name: str) -> None:
    v = VECTORS["sm2p256v1"]
    backend = sm2.get_backend(name)
    backend.verify(_h(v["public_key"]), v["message_ascii"].encode(), _h(v["r"] + v["s"]))
    with pytest.raises(SignatureError):
        backend.verify(_h(v["public_key"]), b"message digesT", _h(v["r"] + v["s"]))


def test_example_curve_example_on_its_own_curve() -> None:
    """GB/T 32918.2's worked example uses the standard's example curve: run it there."""
    v = VECTORS["example"]
    curve = _example_curve()
    backend = sm2.GmsslBackend(curve)
    message, uid, d, k = v["message_ascii"].encode(), v["user_id_ascii"].encode(), _h(v["private_key"]), int(v["k"], 16)
    signature = backend.sign(d, message, uid, nonce=k)
    assert signature == _h(v["r"] + v["s"])
    backend.verify(backend.public_key_of(d), message, signature, uid)
    r, s = _gmalg_core(curve, k).sign(message, int(v["private_key"], 16), uid)
    assert (r, s) == (int(v["r"], 16), int(v["s"], 16))


def test_our_z_a_equals_gmssl_sign_with_sm3_digest() -> None:
    from gmssl import sm2 as gmssl_sm2

    private, public = sm2.generate_keypair()
    engine = gmssl_sm2.CryptSM2(private_key=private.hex(), public_key="")
    engine.public_key = public.hex()
    assert engine._sm3_z(b"hello ledger") == sm2.message_digest(public, b"hello ledger").hex()


@pytest.mark.parametrize(("signer", "verifier"), [(a, b) for a in BACKENDS for b in BACKENDS])
def test_each_backend_verifies_the_others_signatures(signer: str, verifier: str) -> None:
    private = sm2.PrivateKey.generate(sm2.get_backend(signer)).raw()
    public = sm2.get_backend(signer).public_key_of(private)
    assert sm2.get_backend(verifier).public_key_of(private) == public
    message = b"settlement statement " + os.urandom(8)
    signature = sm2.get_backend(signer).sign(private, message)
    sm2.get_backend(verifier).verify(public, message, signature)
    x, y = int.from_bytes(public[:32], "big"), int.from_bytes(public[32:], "big")
    assert _gmalg_core(sm2.SM2P256V1, 1).verify(message, int.from_bytes(signature[:32], "big"),
                                                 int.from_bytes(signature[32:], "big"), sm2.DEFAULT_USER_ID, (x, y))


def test_gmalg_signatures_verify_in_both_backends() -> None:
    private, public = sm2.generate_keypair()
    core = gmalg_sm2.SM2Core(gmalg_ec.ECDLP(sm2.SM2P256V1.p, sm2.SM2P256V1.a, sm2.SM2P256V1.b,
                                            (sm2.SM2P256V1.gx, sm2.SM2P256V1.gy), sm2.SM2P256V1.n), GmalgSM3())
    r, s = core.sign(b"m", int.from_bytes(private, "big"), sm2.DEFAULT_USER_ID)
    for name in BACKENDS:
        sm2.get_backend(name).verify(public, b"m", sm2.encode_signature(r, s))


@pytest.mark.parametrize("name", BACKENDS)
def test_changed_message_signature_or_key_is_rejected(name: str) -> None:
    backend = sm2.get_backend(name)
    private = sm2.PrivateKey.generate(backend).raw()
    public = backend.public_key_of(private)
    signature = backend.sign(private, b"payment 100")
    backend.verify(public, b"payment 100", signature)
    with pytest.raises(SignatureError):
        backend.verify(public, b"payment 101", signature)
    for position in (0, 31, 32, 63):
        bad = bytearray(signature)
        bad[position] ^= 0x01
        with pytest.raises(SignatureError):
            backend.verify(public, b"payment 100", bytes(bad))
    other = backend.public_key_of(sm2.PrivateKey.generate(backend).raw())
    with pytest.raises(SignatureError):
        backend.verify(other, b"payment 100", signature)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("signature", [b"", b"\x00" * 64, b"\xff" * 64, b"\x01" * 63, b"\x01" * 65,
                                       "not bytes", None, (sm2.SM2P256V1.n).to_bytes(32, "big") * 2])
def test_malformed_signatures_raise_signature_error_never_type_error(name: str, signature: object) -> None:
    backend = sm2.get_backend(name)
    public = backend.public_key_of(sm2.PrivateKey.generate(backend).raw())
    with pytest.raises(SignatureError):
        backend.verify(public, b"m", signature)  # type: ignore[arg-type]


@pytest.mark.parametrize("public", [b"\x04" + b"\x01" * 64, b"\x01" * 64, b"", b"\x00" * 64])
def test_malformed_public_keys_are_rejected(public: bytes) -> None:
    with pytest.raises(SignatureError):
        sm2.verify(public, b"m", b"\x01" * 64)


@pytest.mark.parametrize("private", [b"\x00" * 32, (sm2.SM2P256V1.n - 1).to_bytes(32, "big"), b"\x01" * 31])
def test_out_of_range_private_keys_are_rejected(private: bytes) -> None:
    with pytest.raises(SignatureError):
        sm2.sign(private, b"m")


@pytest.mark.parametrize("name", BACKENDS)
def test_nonce_does_not_come_from_python_random(name: str) -> None:
    backend = sm2.get_backend(name)
    private = sm2.PrivateKey.generate(backend).raw()
    random.seed(1)
    first = backend.sign(private, b"same message")
    random.seed(1)
    second = backend.sign(private, b"same message")
    # r = e + x(kG): same e, so equal r would mean the same nonce.
    assert first[:32] != second[:32]


def test_gmssl_handles_public_keys_whose_hex_starts_with_0_or_4() -> None:
    """gmssl's constructor lstrip()s '0' and '4'; the hardened backend never uses it.
    Private keys found by search (in a loop, once) whose public x starts with 0x04 / 0x40 / 0x00."""
    gmssl, tongsuo = sm2.get_backend("gmssl"), sm2.get_backend("tongsuopy")
    wanted = {"04": None, "40": None, "0": None}
    scalar = 1
    while any(v is None for v in wanted.values()):
        private = scalar.to_bytes(32, "big")
        public = tongsuo.public_key_of(private)
        head = public.hex()
        for prefix in wanted:
            if wanted[prefix] is None and head.startswith(prefix):
                wanted[prefix] = private
        scalar += 1
    for prefix, private in wanted.items():
        public = gmssl.public_key_of(private)
        assert public.hex().startswith(prefix)
        signature = gmssl.sign(private, b"m")
        gmssl.verify(public, b"m", signature)
        tongsuo.verify(public, b"m", signature)
        gmssl.verify(public, b"m", tongsuo.sign(private, b"m"))


def test_generated_keys_are_in_range_and_match() -> None:
    for _ in range(5):
        private, public = sm2.generate_keypair()
        d = int.from_bytes(private, "big")
        assert 1 <= d <= sm2.SM2P256V1.n - 2
        assert sm2.public_key_of(private) == public
        sm2.check_public_key(public)


def test_functional_interface_round_trip() -> None:
    private, public = sm2.generate_keypair()
    signature = sm2.sign(private, b"statement")
    assert len(signature) == 64
    sm2.verify(public, b"statement", signature)
    with pytest.raises(SignatureError):
        sm2.verify(public, b"statement", signature, user_id=b"someone else")
    assert sm2.backend_name() in ("tongsuopy", "gmssl")


def test_non_default_user_id_works_in_both_backends() -> None:
    private, public = sm2.generate_keypair()
    for signer in BACKENDS:
        signature = sm2.get_backend(signer).sign(private, b"m", b"ALICE123@YAHOO.COM")
        for verifier in BACKENDS:
            sm2.get_backend(verifier).verify(public, b"m", signature, b"ALICE123@YAHOO.COM")


def test_key_files_are_0600_and_round_trip(tmp_path: Path) -> None:
    private, _ = sm2.generate_keypair()
    path = tmp_path / "keys" / "sm2.key"
    sm2.save_private_key(path, private)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sm2.load_private_key(path) == private
    with pytest.raises(KeyFileError, match="overwrite"):
        sm2.save_private_key(path, private)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="0600"):
        sm2.load_private_key(path)
    path.chmod(0o600)
    path.write_text("zz\n")
    with pytest.raises(KeyFileError, match="hex"):
        sm2.load_private_key(path)
    with pytest.raises(KeyFileError, match="not found"):
        sm2.load_private_key(tmp_path / "missing.key")
