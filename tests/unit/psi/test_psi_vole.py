"""Known-answer and reference tests of the RR22 building blocks (protocols/psi/vole.py).

- GF(2^128) multiplication against the GHASH of AES-GCM in OpenSSL (via ``cryptography``):
  GCM's field is ours with the bits of each byte reflected (NIST SP 800-38D, 6.3).
- Tables, COPE combination, GGM trees and the expand-accumulate code against slow
  references written from their definitions (Python integers, one AES call per node, the
  code's matrices built explicitly).
- The whole VOLE: C = B + A·Delta over real base-OT keys.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocols.psi import rr22, vole

MOD = (1 << 128) | 0x87


def ref_mul(a: int, b: int) -> int:
    """Carry-less product reduced mod x^128 + x^7 + x^2 + x + 1 (the definition)."""
    r = 0
    for i in range(128):
        if (b >> i) & 1:
            r ^= a << i
    for i in range(254, 127, -1):
        if (r >> i) & 1:
            r ^= MOD << (i - 128)
    return r


def words(x: int) -> tuple[np.uint64, np.uint64]:
    return np.uint64(x & (2**64 - 1)), np.uint64(x >> 64)


def integer(w) -> int:
    return int(w[0]) | (int(w[1]) << 64)


def _reflect(block: bytes) -> int:
    return int.from_bytes(bytes(int(f"{b:08b}"[::-1], 2) for b in block), "little")


def test_gf128_multiplication_matches_openssl_ghash() -> None:
    """GHASH_H(A || lengths) = ((A·H) + L)·H for one block of AAD and no plaintext."""
    for _ in range(20):
        key, nonce, aad = os.urandom(16), os.urandom(12), os.urandom(16)
        tag = AESGCM(key).encrypt(nonce, b"", aad)           # = GHASH xor E_K(J0)
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        h = enc.update(bytes(16))
        j0 = enc.update(nonce + b"\x00\x00\x00\x01")
        ghash = bytes(x ^ y for x, y in zip(tag, j0))
        lengths = (128).to_bytes(8, "big") + (0).to_bytes(8, "big")
        h_, a_, l_ = _reflect(h), _reflect(aad), _reflect(lengths)
        inner = vole.gf128_mul(*words(a_), *words(h_))
        outer = vole.gf128_mul(*words(integer(inner) ^ l_), *words(h_))
        assert integer(outer) == _reflect(ghash)
        assert integer(inner) == ref_mul(a_, h_)


def test_tables_multiply_by_delta() -> None:
    rng = np.random.default_rng(1)
    delta = int.from_bytes(os.urandom(16), "little")
    for nbytes in (1, 5, 10, 16):
        tables = vole.delta_tables(*words(delta), nbytes)
        values = np.zeros((50, 16), np.uint8)
        values[:, :nbytes] = rng.integers(0, 256, (50, nbytes))
        values = values.view(np.uint64)
        add = rng.integers(0, 2**63, (50, 2), dtype=np.int64).view(np.uint64)
        out = vole.mul_add(tables, values, add)
        for i in range(50):
            assert integer(out[i]) == integer(add[i]) ^ ref_mul(delta, integer(values[i]))


def test_cope_combination_is_the_polynomial_sum() -> None:
    q = np.random.default_rng(2).integers(0, 2**63, (128, 3, 2), dtype=np.int64).view(np.uint64)
    out = vole.cope_combine(q)
    for j in range(3):
        expected = 0
        for i in range(128):
            expected ^= ref_mul(1 << i, integer(q[i, j]))
        assert integer(out[j]) == expected


def _aes(key: bytes, block: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)


def test_ggm_trees_against_a_per_node_reference() -> None:
    context = os.urandom(32)
    ggm = vole.Ggm(context)
    keys = [vole.derive(context, b"sc-psi-ggm", 16, bytes([b])) for b in (0, 1)]
    t, depth = 3, 5
    roots = np.frombuffer(os.urandom(16 * t), np.uint64).reshape(t, 2).copy()
    leaves, sums = vole.ggm_sender(ggm, roots, depth)
    for tree in range(t):
        level = [roots[tree].tobytes()]
        for lv in range(depth):
            nxt = []
            for node in level:
                for key in keys:
                    nxt.append(bytes(x ^ y for x, y in zip(_aes(key, node), node)))
            for side in (0, 1):
                acc = bytes(16)
                for node in nxt[side::2]:
                    acc = bytes(x ^ y for x, y in zip(acc, node))
                assert sums[tree, lv, side].tobytes() == acc
            level = nxt
        assert [leaves[tree, j].tobytes() for j in range(1 << depth)] == level
    # the receiver rebuilds every leaf but alpha's from the off-path sums
    alpha = np.array([0, 17, 31])
    known = np.stack([sums[np.arange(t), lv, 1 - ((alpha >> (depth - 1 - lv)) & 1)]
                      for lv in range(depth)], axis=1)
    rebuilt, known_xor = vole.ggm_receiver(ggm, alpha, depth, known)
    assert np.array_equal(known_xor, np.bitwise_xor.reduce(rebuilt, axis=1))
    assert np.array_equal(sums[:, -1, 0] ^ sums[:, -1, 1], np.bitwise_xor.reduce(leaves, axis=1))
    for tree in range(t):
        for j in range(1 << depth):
            want = bytes(16) if j == alpha[tree] else leaves[tree, j].tobytes()
            assert rebuilt[tree, j].tobytes() == want


def test_expand_accumulate_code_against_its_matrices() -> None:
    """G = B_exp · A_acc built explicitly (EA codes, Boyle et al. CRYPTO 2022)."""
    chunk = vole.Chunk(outputs=40, depth=2, trees=60)   # N = 240
    seed = vole.ea_seed(os.urandom(32), 3)
    n = chunk.length
    columns = vole.ea_columns(np.uint64(seed), chunk.outputs, n)
    assert columns.min() >= 0 and columns.max() < n and len(np.unique(columns)) > n // 2
    accumulator = np.triu(np.ones((n, n), np.uint8))          # (A x)_i = XOR_{j <= i} x_j
    expander = np.zeros((chunk.outputs, n), np.uint8)
    for r in range(chunk.outputs):
        for c in columns[r]:
            expander[r, c] ^= 1
    g = (expander.astype(np.int64) @ accumulator.T.astype(np.int64)) % 2
    x = np.random.default_rng(3).integers(0, 2**63, (n, 2), dtype=np.int64).view(np.uint64)
    expected = np.zeros((chunk.outputs, 2), np.uint64)
    for r in range(chunk.outputs):
        for c in np.flatnonzero(g[r]):
            expected[r] ^= x[c]
    assert np.array_equal(vole.ea_encode(x.copy(), seed, chunk.outputs), expected)
    # regular noise without materialising it gives the same as the dense vector
    alpha = np.random.default_rng(4).integers(0, 4, chunk.trees)
    values = np.random.default_rng(5).integers(0, 2**63, (chunk.trees, 2), dtype=np.int64).view(np.uint64)
    dense = np.zeros((chunk.trees, 4, 2), np.uint64)
    dense[np.arange(chunk.trees), alpha] = values
    assert np.array_equal(vole.ea_encode_regular(alpha, values, 2, seed, chunk.outputs),
                          vole.ea_encode(dense.reshape(-1, 2), seed, chunk.outputs))


def test_splitmix_columns_match_the_published_generator() -> None:
    """SplitMix64 (Steele et al. 2014; the reference outputs of seed 0 as in Vigna's splitmix64.c)."""
    mask = 2**64 - 1

    def splitmix(state: int) -> int:
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    # state 0 advanced once: the first output of SplitMix64 seeded with 0
    assert splitmix(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    seed, n = 12345, 1 << 20
    columns = vole.ea_columns(np.uint64(seed), 3, n)
    for r in range(3):
        for k in range(vole.EA_WEIGHT):
            z = splitmix((seed + (r * vole.EA_WEIGHT + k + 1) * 0x9E3779B97F4A7C15) & mask)
            assert columns[r, k] == ((z >> 32) * n) >> 32


def test_chunk_parameters() -> None:
    big = vole.Chunk.for_outputs(1 << 20)
    assert big.trees >= vole.NOISE_MIN and big.length >= 5 * (1 << 20)
    assert big.length < 10 * (1 << 20)
    small = vole.Chunk.for_outputs(80)
    assert small.trees >= vole.NOISE_MIN and small.depth == 1 and small.length >= 400
    params = vole.VoleParams.for_length(3 * (1 << 20) + 5, 10)
    assert [c.outputs for c in params.chunks] == [1 << 20] * 3 + [5]
    with pytest.raises(ValueError):
        vole.VoleParams.for_length(10, 17)


@pytest.mark.parametrize(("n_r", "n_s"), [(0, 3), (200, 300), (70_000, 1000)])
def test_vole_correlation_over_real_base_ots(n_r, n_s) -> None:
    """The receiver's C equals the sender's B + A·Delta, entry by entry."""
    from protocols.psi.primitives import BaseOtReceiver, BaseOtSender, random_scalar

    params = rr22.Rr22Params.for_sizes(n_r, n_s)
    context = os.urandom(32)
    keys = rr22.session_keys(context)
    sender_ot = BaseOtSender(random_scalar())
    choice = np.frombuffer(os.urandom(16), np.uint8)
    choice = np.unpackbits(choice, bitorder="little")
    receiver_ot = BaseOtReceiver(choice, [random_scalar() for _ in range(128)], sender_ot.point)
    k0, k1 = sender_ot.keys(receiver_ot.points, 128, context)
    kc = receiver_ot.keys(context)
    assert all(kc[i] == (k1[i] if choice[i] else k0[i]) for i in range(128))
    digests = np.random.default_rng(6).integers(0, 2**63, (n_r, 2), dtype=np.int64).view(np.uint64)
    receiver = rr22.Receiver(digests, params, keys, (k0, k1), os.urandom)
    sender = rr22.Sender(digests[:0], params, keys, choice, kc, np.arange(0), os.urandom)
    setup = receiver.setup()
    a_prime = receiver.correction()
    receiver.prepare_reply()
    for i, part in enumerate(sender.reply_chunks(setup)):
        receiver.absorb(i, part)
    q = params.value_bytes
    # A = A' xor P, with P re-encoded from the same rows and values (the encoding is deterministic)
    values = rr22.hash_to_subfield(digests, keys.hash_key, q)
    from protocols.psi import okvs
    p = okvs.encode(params.okvs, *receiver.rows, values)
    a = vole.to_words(a_prime.reshape(-1, q), q) ^ p
    c = np.concatenate(receiver._outputs_c)
    tables = vole.delta_tables(sender.delta[0], sender.delta[1], q)
    assert np.array_equal(c, vole.mul_add(tables, a, sender.b))
    assert a.shape[0] == params.okvs.size and np.any(a)
