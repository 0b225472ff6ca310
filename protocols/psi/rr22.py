"""Pure core of the RR22 PSI: VOLE-based OPRF over an OKVS, receiver and sender over numpy arrays.

Raghuraman and Rindal, "Blazing Fast PSI from Improved OKVS and Subfield VOLE", ACM CCS
2022 (RR22), Section 4 and Figure 4 (semi-honest protocol Pi_psi, low-communication
instantiation), built on the VOLE-PSI of Rindal and Schoppmann (Eurocrypt 2021).  The
receiver R (the client) holds X, the sender S (the server) holds Y:

1. R encodes P = Encode({(x, H^B(x))}) in the OKVS of :mod:`protocols.psi.okvs` (RR22
   Section 2), with H^B(x) a q-byte random function of x (AES under a session key).
2. A subfield VOLE of length m = |P| (:mod:`protocols.psi.vole`) gives S (Delta, B) and R
   (A, C) with C = B + A·Delta, A q-byte strings.
3. R sends A' = A xor P (m·q bytes); S sets B' = B + A'·Delta, so that C = B' + P·Delta.
   (A = G·e depends only on R's noise, so R sends A' right after its VOLE setup, before
   S's reply: the same messages, one round trip fewer.)
4. S sends Y' = {H^o(Decode(B', y) + Delta·H^B(y)) : y in Y} in a secret random order,
   truncated to ``value_bytes``; R computes H^o(Decode(C, x)) for x in X and intersects.
   For y = x in X the two agree (Decode is GF(2)-linear and Decode(P, x) = H^B(x)); for
   y not in X, Decode(C, y) + Delta·(Decode(P, y) + H^B(y)) is unpredictable to R unless
   Decode(P, y) = H^B(y), which happens with probability 2^-8q per y.
5. Mutual output as for KKRT16 (:mod:`protocols.psi.mutual`): R sends the positions of S's
   matched elements with confirmation tags; both derive the pair ids from the element.

Parameters (lambda = 40 statistical, kappa = 128 computational):

- q = ceil((lambda + log2(n_R n_S)) / 8) bytes for A and for S's values: "B as the smallest
  field with |B| >= 2^(lambda + log2(n_x n_y))" (RR22 Section 4, low-communication
  instantiation), which bounds both the chance that some y not in X has Decode(P, y) =
  H^B(y) and the chance of a false match among n_R·n_S comparisons by 2^-40.  At 10^6 x
  10^6: q = 10 bytes.
- H^o = BLAKE2b-128 salted with a key derived from the session context (a random oracle,
  as in RR22's proof, Theorem C.1); values are compared on their first q bytes.
- OKVS: m ~ 1.28 n_R (okvs.OkvsParams); VOLE: as in vole.VoleParams.
- Wire, both directions, at n_R = n_S = 10^6 (50 % overlap): A' 12.9 MB, Y' 10 MB, VOLE
  setup and reply 2.3 MB, matches 4 MB: about 29 bytes per element (KKRT16 here: 119).

Security: semi-honest, as RR22 Theorem C.1, given the random oracles, the OKVS failure
bound (2^-40) and the LPN assumption for the VOLE's code (see vole.py for its parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import kernels, okvs, vole
from .errors import InputBoundsError, PsiProtocolError
from .primitives import AesEcb, ColumnPrg, derive

STATISTICAL_SECURITY = 40
OPRF_BYTES = 16


def value_bytes(n_receiver: int, n_sender: int) -> int:
    """q: bytes of the subfield values and of S's OPRF values (lambda + log2(n_R n_S) bits)."""
    bits = STATISTICAL_SECURITY + math.log2(max(1, n_receiver) * max(1, n_sender))
    q = max(8, math.ceil(bits / 8))
    if q > 16:
        raise InputBoundsError(f"set sizes {n_receiver} x {n_sender} need {q}-byte values; at most 16 are supported")
    return q


@dataclass(frozen=True)
class Rr22Params:
    n_receiver: int
    n_sender: int
    value_bytes: int
    okvs: okvs.OkvsParams
    vole: vole.VoleParams

    @classmethod
    def for_sizes(cls, n_receiver: int, n_sender: int) -> Rr22Params:
        q = value_bytes(n_receiver, n_sender)
        table = okvs.OkvsParams.for_keys(n_receiver)
        return cls(n_receiver, n_sender, q, table, vole.VoleParams.for_length(table.size, q))

    @property
    def correction_bytes(self) -> int:
        return self.okvs.size * self.value_bytes


@dataclass(frozen=True)
class SessionKeys:
    context: bytes
    okvs_key: bytes        #: RR22's instance key r (rows)
    hash_key: bytes        #: H^B
    out_h0: np.ndarray     #: H^o (BLAKE2b initial state, salted)


def session_keys(context: bytes) -> SessionKeys:
    return SessionKeys(
        context=context,
        okvs_key=derive(context, b"sc-psi-okvs", 16),
        hash_key=derive(context, b"sc-psi-hb", 16),
        out_h0=kernels.blake2b_initial_state(OPRF_BYTES, salt=derive(context, b"sc-psi-ho-salt", 16),
                                             person=b"sc-psi-rr22-out"),
    )


def hash_to_subfield(digests: np.ndarray, key: bytes, nbytes: int) -> np.ndarray:
    """H^B: (n, 2) uint64 q-byte values (AES under ``key`` of the digest, truncated)."""
    n = digests.shape[0]
    buf = np.empty(n * 16 + 16, np.uint8)
    AesEcb(key).encrypt_into(np.ascontiguousarray(digests, dtype=np.uint64), buf)
    out = buf[: n * 16].reshape(n, 16).copy()
    out[:, nbytes:] = 0
    return out.view(np.uint64)


def output_hash(keys: SessionKeys, values: np.ndarray) -> np.ndarray:
    """H^o over (n, 2) uint64 values: (n, 2) uint64 (16 bytes each)."""
    n = values.shape[0]
    out = np.empty((n, OPRF_BYTES), np.uint8)
    if n:
        kernels.blake2b_rows(np.ascontiguousarray(values).view(np.uint8).reshape(n, 16), keys.out_h0,
                             kernels.BLAKE2B_IV, out)
    return out.view(np.uint64)


def _prg_keys(ot_keys: list[bytes], label: bytes) -> list[bytes]:
    return [derive(k, label, 16) for k in ot_keys]


def _split(data: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, at = [], 0
    for size in sizes:
        out.append(data[at:at + size])
        at += size
    return out


def reply_chunk_bytes(chunk: vole.Chunk) -> int:
    return 32 * chunk.trees * chunk.depth + 16 * chunk.trees


class Receiver:
    """R: OKVS encoder, VOLE receiver (holds A, C), the client role of the protocol.

    ``ot_keys`` are R's base-OT sender keys (k_i^0, k_i^1), i < 128; ``rng`` gives R's
    secret randomness (noise positions and values)."""

    def __init__(self, digests: np.ndarray, params: Rr22Params, keys: SessionKeys,
                 ot_keys: tuple[list[bytes], list[bytes]], rng) -> None:
        self.digests = digests
        self.params = params
        self.keys = keys
        self._ot_keys = ot_keys
        self._rng = rng
        vp = params.vole
        q = params.value_bytes
        # secret noise: a position alpha and a non-zero value beta per tree
        self.alpha = []
        for chunk in vp.chunks:
            words = np.frombuffer(rng(8 * chunk.trees), np.uint64)
            self.alpha.append((words % np.uint64(1 << chunk.depth)).astype(np.int64))
        self.beta = np.frombuffer(rng(vp.noise * q), np.uint8).reshape(vp.noise, q).copy()
        zero = ~self.beta.any(axis=1)
        self.beta[zero, 0] = 1                      # a zero beta would be no noise at all
        self._t_cope: np.ndarray | None = None
        self._t_iknp: np.ndarray | None = None
        self.rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # step 1: VOLE setup (R -> S)
    def setup(self) -> np.ndarray:
        """The IKNP matrix U and the COPE corrections, as one byte string (vole.setup_bytes)."""
        vp = self.params.vole
        q = self.params.value_bytes
        k0, k1 = self._ot_keys
        # IKNP: R's choice bits are the sides it needs at every tree level (1 - path bit)
        choices = np.zeros(vp.ots_padded, np.uint8)
        at = 0
        for chunk, alpha in zip(vp.chunks, self.alpha):
            for lv in range(chunk.depth):
                bits = (alpha >> (chunk.depth - 1 - lv)) & 1
                choices[at + lv: at + chunk.trees * chunk.depth: chunk.depth] = 1 - bits
            at += chunk.trees * chunk.depth
        packed = np.packbits(choices, bitorder="little")
        cols = vp.ots_padded // 8
        t0 = np.empty((vole.BASE_OTS, cols), np.uint8)
        t1 = np.empty((vole.BASE_OTS, cols), np.uint8)
        ColumnPrg(_prg_keys(k0, b"sc-psi-iknp")).fill(t0)
        ColumnPrg(_prg_keys(k1, b"sc-psi-iknp")).fill(t1)
        u_iknp = t0 ^ t1 ^ packed[None, :]
        self._t_iknp = t0
        # COPE: u_ij = PRG(k_i^0)_j xor PRG(k_i^1)_j xor beta_j
        c0 = np.empty((vole.BASE_OTS, vp.noise * q), np.uint8)
        c1 = np.empty((vole.BASE_OTS, vp.noise * q), np.uint8)
        ColumnPrg(_prg_keys(k0, b"sc-psi-cope")).fill(c0)
        ColumnPrg(_prg_keys(k1, b"sc-psi-cope")).fill(c1)
        u_cope = c0 ^ c1 ^ self.beta.reshape(1, -1)
        self._t_cope = c0
        return np.concatenate([u_iknp.reshape(-1), u_cope.reshape(-1)])

    # step 2: the OKVS and A' = A xor P (while S computes its VOLE reply)
    def correction(self) -> np.ndarray:
        """A' = A xor P as m·q bytes.  A = G·e depends only on our own noise, so R computes and
        sends A' before S's reply arrives: S's view is the same set of messages (its reply does
        not depend on A'), and the run saves a round trip."""
        table = self.params.okvs
        q = self.params.value_bytes
        self.rows = okvs.rows(self.digests, self.keys.okvs_key, table)
        values = hash_to_subfield(self.digests, self.keys.hash_key, q)
        p = okvs.encode(table, *self.rows, values)
        parts, tree_at = [], 0
        for index, (chunk, alpha) in enumerate(zip(self.params.vole.chunks, self.alpha)):
            beta = vole.to_words(self.beta[tree_at:tree_at + chunk.trees], q)
            parts.append(vole.ea_encode_regular(alpha, beta, chunk.depth,
                                                vole.ea_seed(self.keys.context, index), chunk.outputs))
            tree_at += chunk.trees
        a = np.concatenate(parts)
        a ^= p
        return vole.to_bytes(a, q).reshape(-1)

    # step 3: S's reply, chunk by chunk -> C
    def prepare_reply(self) -> None:
        """R's side of the random OTs and of the base VOLEs (needs nothing from S)."""
        vp = self.params.vole
        q = self.params.value_bytes
        rows = np.empty((vp.ots_padded, 16), np.uint8)
        kernels.bit_transpose(self._t_iknp, rows)
        self._pads = vole.ot_hash(self.keys.context, np.arange(vp.ots), rows[:vp.ots])
        t = vole.to_words(self._t_cope.reshape(vole.BASE_OTS, vp.noise, q), q)
        self._c_base = vole.cope_combine(t)      # c_j = sum_i x^i t_ij, t = PRG(k_i^0)
        self._t_cope = self._t_iknp = None
        self._ggm = vole.Ggm(self.keys.context)
        self._levels: dict = {}
        self._outputs_c: list[np.ndarray] = []

    def absorb(self, index: int, data: np.ndarray) -> None:
        """S's reply for VOLE chunk ``index`` -> our C for that chunk."""
        vp = self.params.vole
        chunk = vp.chunks[index]
        if index != len(self._outputs_c) or data.size != reply_chunk_bytes(chunk):
            raise PsiProtocolError(
                f"VOLE reply: expected chunk {len(self._outputs_c)} of {reply_chunk_bytes(chunk)} bytes, "
                f"found chunk {index} of {data.size}")
        q = self.params.value_bytes
        ot_at = sum(c.trees * c.depth for c in vp.chunks[:index])
        tree_at = sum(c.trees for c in vp.chunks[:index])
        count = chunk.trees * chunk.depth
        masked, corrections = _split(data, [32 * count, 16 * chunk.trees])
        masked = masked.view(np.uint64).reshape(chunk.trees, chunk.depth, 2, 2)
        corrections = corrections.view(np.uint64).reshape(chunk.trees, 2)
        alpha = self.alpha[index]
        sides = np.empty((chunk.trees, chunk.depth), np.int64)
        for lv in range(chunk.depth):
            sides[:, lv] = 1 - ((alpha >> (chunk.depth - 1 - lv)) & 1)
        known = masked[np.arange(chunk.trees)[:, None], np.arange(chunk.depth)[None, :], sides]
        known = known ^ self._pads[ot_at:ot_at + count].reshape(chunk.trees, chunk.depth, 2)
        shape = (chunk.trees, chunk.depth)
        if shape not in self._levels:
            self._levels = {shape: vole.Levels(*shape)}   # one shape at a time: chunks come in order
        leaves, known_xor = vole.ggm_receiver(self._ggm, alpha, chunk.depth, known, self._levels[shape])
        trees = slice(tree_at, tree_at + chunk.trees)
        # w_alpha = c_j xor (b_j xor all leaves) xor (all leaves but alpha) = v_alpha + beta_j Delta
        leaves[np.arange(chunk.trees), alpha] = self._c_base[trees] ^ corrections ^ known_xor
        self._outputs_c.append(vole.ea_encode(leaves.reshape(-1, 2), vole.ea_seed(self.keys.context, index),
                                              chunk.outputs))

    @property
    def vole_done(self) -> bool:
        return len(self._outputs_c) == len(self.params.vole.chunks)

    def oprf_values(self) -> np.ndarray:
        """H^o(Decode(C, x)) for our elements: (n, 2) uint64."""
        c = np.concatenate(self._outputs_c)
        self._outputs_c = []
        decoded = okvs.decode(self.params.okvs, c, self.rows[1], self.rows[2])
        return output_hash(self.keys, decoded)


class Sender:
    """S: VOLE sender (holds Delta, B), the server role.  ``choice_bits`` are its base-OT
    choices (the bits of Delta), ``ot_keys`` the keys k_i^Delta_i; ``permutation`` its
    secret sending order."""

    def __init__(self, digests: np.ndarray, params: Rr22Params, keys: SessionKeys,
                 choice_bits: np.ndarray, ot_keys: list[bytes], permutation: np.ndarray, rng) -> None:
        self.params = params
        self.keys = keys
        self.permutation = permutation
        self.digests = np.ascontiguousarray(digests[permutation])
        self.n = self.digests.shape[0]
        self._choice = choice_bits.astype(np.uint8)
        self.delta = np.packbits(self._choice, bitorder="little").view(np.uint64).copy()
        self._ot_keys = ot_keys
        self._rng = rng
        self.b: np.ndarray | None = None

    def prepare(self) -> None:
        """Work independent of R's messages: our elements' OKVS rows and Delta·H^B(y)."""
        q = self.params.value_bytes
        self.tables = vole.delta_tables(self.delta[0], self.delta[1], q)
        self.rows = okvs.rows(self.digests, self.keys.okvs_key, self.params.okvs)
        hashed = hash_to_subfield(self.digests, self.keys.hash_key, q)
        self.masks = vole.mul_add(self.tables, hashed, np.zeros_like(hashed))

    def reply_chunks(self, setup: np.ndarray):
        """R's VOLE setup -> our reply, one byte string per VOLE chunk (masked GGM level sums,
        leaf corrections).  After yielding a chunk's reply we compute our B for it, while R
        works on it."""
        vp = self.params.vole
        q = self.params.value_bytes
        if setup.size != vp.setup_bytes:
            raise PsiProtocolError(f"VOLE setup: expected {vp.setup_bytes} bytes, found {setup.size}")
        cols = vp.ots_padded // 8
        u_iknp, u_cope = _split(setup, [vole.BASE_OTS * cols, vole.BASE_OTS * vp.noise * q])
        u_iknp = u_iknp.reshape(vole.BASE_OTS, cols)
        u_cope = u_cope.reshape(vole.BASE_OTS, vp.noise * q)
        mask = np.where(self._choice.astype(bool), 0xFF, 0).astype(np.uint8)[:, None]
        # IKNP: q^i = PRG(k_i^Delta_i) xor Delta_i u^i; rows q_j = t_j xor r_j Delta
        qm = np.empty((vole.BASE_OTS, cols), np.uint8)
        ColumnPrg(_prg_keys(self._ot_keys, b"sc-psi-iknp")).fill(qm)
        qm ^= u_iknp & mask
        rows = np.empty((vp.ots_padded, 16), np.uint8)
        kernels.bit_transpose(qm, rows)
        rows = np.ascontiguousarray(rows[:vp.ots])
        index = np.arange(vp.ots)
        pad0 = vole.ot_hash(self.keys.context, index, rows)
        pad1 = vole.ot_hash(self.keys.context, index,
                            (rows.view(np.uint64) ^ self.delta[None, :]).view(np.uint8))
        # COPE: q_ij = PRG(k_i^Delta_i)_j xor Delta_i u_ij; b_j = sum_i x^i q_ij = c_j + beta_j Delta
        qc = np.empty((vole.BASE_OTS, vp.noise * q), np.uint8)
        ColumnPrg(_prg_keys(self._ot_keys, b"sc-psi-cope")).fill(qc)
        qc ^= u_cope & mask
        b_base = vole.cope_combine(vole.to_words(qc.reshape(vole.BASE_OTS, vp.noise, q), q))
        del qm, qc, u_iknp, u_cope
        ggm = vole.Ggm(self.keys.context)
        outputs = []
        levels: dict = {}
        ot_at = tree_at = 0
        for index_c, chunk in enumerate(vp.chunks):
            roots = np.frombuffer(self._rng(16 * chunk.trees), np.uint64).reshape(chunk.trees, 2)
            shape = (chunk.trees, chunk.depth)
            if shape not in levels:
                levels = {shape: vole.Levels(*shape)}
            leaves, sums = vole.ggm_sender(ggm, roots, chunk.depth, levels[shape])
            count = chunk.trees * chunk.depth
            pads = np.stack([pad0[ot_at:ot_at + count], pad1[ot_at:ot_at + count]], axis=1)
            masked = sums.reshape(count, 2, 2) ^ pads
            corrections = b_base[tree_at:tree_at + chunk.trees] ^ sums[:, -1, 0] ^ sums[:, -1, 1]
            yield np.concatenate([masked.reshape(-1).view(np.uint8), corrections.reshape(-1).view(np.uint8)])
            outputs.append(vole.ea_encode(leaves.reshape(-1, 2), vole.ea_seed(self.keys.context, index_c),
                                          chunk.outputs))
            del leaves
            ot_at += count
            tree_at += chunk.trees
        self.b = np.concatenate(outputs)

    def oprf_values(self, correction: np.ndarray) -> np.ndarray:
        """A' -> H^o(Decode(B', y) + Delta·H^B(y)) for our elements in our sending order."""
        q = self.params.value_bytes
        m = self.params.okvs.size
        if correction.size != m * q:
            raise PsiProtocolError(f"OKVS correction: expected {m * q} bytes, found {correction.size}")
        b_prime = vole.mul_add(self.tables, vole.to_words(correction.reshape(m, q), q), self.b)
        self.b = None
        decoded = okvs.decode(self.params.okvs, b_prime, self.rows[1], self.rows[2])
        return output_hash(self.keys, decoded ^ self.masks)

    def local_indices(self, element_positions: np.ndarray) -> np.ndarray:
        return self.permutation[element_positions].astype(np.int64)


def warm_up() -> None:
    okvs.warm_up()
    vole.warm_up()
