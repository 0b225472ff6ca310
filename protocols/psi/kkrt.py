"""Pure core of the KKRT16 PSI: the OPRF receiver and sender over numpy arrays.

Notation follows Kolesnikov, Kumaresan, Rosulek, Trieu, "Efficient Batched Oblivious PRF
with Applications to Private Set Intersection", CCS 2016 (KKRT16): d is the code width,
s the sender's d choice bits, k_i^0, k_i^1 the base-OT seeds, t_j / q_j the rows of the
OT-extension matrices, m the number of bins.  Nothing here does I/O or draws randomness:
keys, seeds and permutations are passed in, so every function is deterministic and
testable without a socket (the role objects in :mod:`protocols.psi.roles` supply the
randomness and turn these steps into messages).

Parameters (module constants; :mod:`protocols.psi` explains the security argument):

- d = 512: pseudorandom code C(w) = AES_{k_1}(w)^w || ... || AES_{k_4}(w)^w (four
  AES-128 keys derived for the session, as in the libOTe implementation of KKRT).
- 3 hash functions, m = 1.27 n_R bins (n_R ≥ 2^17) or 2 n_R bins (smaller sets), rounded
  up to a multiple of 128, no stash.
- OPRF output H(j, row) = BLAKE2b-128 with a per-session salt of ``u64le(j) || row``.
- The sender sends ell = max(64, 40 + log2(n_R) + log2(3 n_S)) bits (rounded up to bytes)
  of each OPRF value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import kernels
from .errors import InputBoundsError, PsiError, PsiProtocolError
from .primitives import AesEcb, ColumnPrg, derive

CODE_WIDTH = 512                  #: d, bits of the pseudorandom code (4 AES blocks)
CODE_BYTES = CODE_WIDTH // 8
COMPUTATIONAL_SECURITY = 128      #: kappa
STATISTICAL_SECURITY = 40         #: sigma
HASH_FUNCTIONS = 3
CUCKOO_FACTOR = 1.27              #: bins per element for large sets (PSWW18, no stash)
CUCKOO_FACTOR_SMALL = 2.0         #: bins per element below LARGE_SET
LARGE_SET = 1 << 17
CHUNK_BINS = 1 << 15              #: bins per Correction message: d * 2^15 / 8 = 2 MiB
MAX_KICKS = 2000
OPRF_BYTES = 16                   #: stored OPRF value = pair id
MAX_VALUE_BYTES = OPRF_BYTES
MAX_SET_SIZE = 1 << 30            #: positions travel as uint32 (3 n < 2^32)


def bin_count(n_receiver: int) -> int:
    """m: number of cuckoo bins for a receiver set of n elements (multiple of 128, >= 128)."""
    factor = CUCKOO_FACTOR if n_receiver >= LARGE_SET else CUCKOO_FACTOR_SMALL
    m = math.ceil(factor * n_receiver)
    return max(128, (m + 127) // 128 * 128)


def value_bytes(n_receiver: int, n_sender: int) -> int:
    """Bytes of each OPRF value the sender sends: false-positive rate <= 2^-sigma overall."""
    comparisons = max(1, n_receiver) * max(1, HASH_FUNCTIONS * n_sender)
    bits = STATISTICAL_SECURITY + math.log2(comparisons)
    nbytes = max(8, math.ceil(bits / 8))
    if nbytes > MAX_VALUE_BYTES:
        raise InputBoundsError(
            f"set sizes {n_receiver} x {n_sender} need {nbytes}-byte OPRF values; "
            f"at most {MAX_VALUE_BYTES} are supported"
        )
    return nbytes


def code_close_probability_log2() -> float:
    """log2 Pr[two random d-bit codewords are closer than kappa] (KKRT16 section 4)."""
    close = sum(math.comb(CODE_WIDTH, i) for i in range(COMPUTATIONAL_SECURITY))
    return math.log2(close) - CODE_WIDTH


@dataclass(frozen=True)
class SessionKeys:
    """Per-session keys, all derived from the transcript of the two hellos."""

    context: bytes            #: 32 bytes, BLAKE2b of the hello transcript
    bin_key: bytes            #: AES key of the cuckoo hash functions
    code_keys: tuple[bytes, bytes, bytes, bytes]
    oprf_h0: np.ndarray       #: BLAKE2b initial state of H (salted with the context)


def session_keys(transcript: bytes) -> SessionKeys:
    context = derive(b"", b"sc-psi-context", 32, transcript)
    salt = derive(context, b"sc-psi-oprf-salt", 16)
    return SessionKeys(
        context=context,
        bin_key=derive(context, b"sc-psi-bins", 16),
        code_keys=tuple(derive(context, b"sc-psi-code", 16, bytes([i])) for i in range(4)),  # type: ignore[arg-type]
        oprf_h0=kernels.blake2b_initial_state(OPRF_BYTES, salt=salt, person=b"sc-psi-oprf"),
    )


def candidate_bins(digests: np.ndarray, bin_key: bytes, nbins: int) -> np.ndarray:
    """(n, 3) uint32: h_1..h_3 of each element: three 32-bit words of AES_bin_key(digest), scaled to m."""
    n = digests.shape[0]
    buf = np.empty(n * 16 + 16, np.uint8)
    AesEcb(bin_key).encrypt_into(np.ascontiguousarray(digests), buf)
    return kernels.bins_from_words(buf[: n * 16].view(np.uint32).reshape(n, 4), nbins)


def code_aes(encryptors: list[AesEcb], words: np.ndarray) -> np.ndarray:
    """(4, n, 2) uint64: AES_{k_b}(w) for the four code keys."""
    n = words.shape[0]
    flat = np.empty(4 * n * 16 + 16, np.uint8)
    src = np.ascontiguousarray(words)
    for b, enc in enumerate(encryptors):
        enc.encrypt_into(src, flat[b * n * 16:])
    return flat[: 4 * n * 16].view(np.uint64).reshape(4, n, 2)


class CuckooFailure(PsiError):
    """Stash-less cuckoo hashing could not place an element (probability < 2^-40 per run)."""


class Receiver:
    """KKRT16 OPRF receiver (holds the cuckoo table), the client role of the protocol.

    Steps: :meth:`place` (cuckoo hashing), :meth:`corrections` (one chunk of the correction
    matrix U per bin chunk, computing the receiver's own OPRF values on the way),
    :meth:`match` (look the sender's values up), :meth:`result_order`.
    """

    def __init__(self, digests: np.ndarray, n_sender: int, keys: SessionKeys,
                 ot_keys: tuple[list[bytes], list[bytes]], walk_seed: int) -> None:
        self.digests = digests
        self.n = digests.shape[0]
        self.n_sender = n_sender
        self.nbins = bin_count(self.n)
        self.keys = keys
        self.value_bytes = value_bytes(self.n, n_sender)
        self._prg0 = ColumnPrg(ot_keys[0])
        self._prg1 = ColumnPrg(ot_keys[1])
        self._code = [AesEcb(k) for k in keys.code_keys]
        self._walk_seed = walk_seed
        self.values = np.zeros((self.nbins, 2), np.uint64)   # H(j, t_j) of each occupied bin j
        self.bin_element = np.empty(0, np.int32)
        self.bin_function = np.empty(0, np.int8)

    def place(self) -> None:
        positions = candidate_bins(self.digests, self.keys.bin_key, self.nbins)
        self.bin_element, self.bin_function, failed = kernels.cuckoo_insert(
            positions, self.nbins, MAX_KICKS, self._walk_seed)
        if failed >= 0:
            raise CuckooFailure(
                f"cuckoo hashing of {self.n} elements into {self.nbins} bins failed "
                "(expected with probability < 2^-40); run again with a new session id"
            )

    def corrections(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(bin_start, bin_count, columns)`` with columns (d, bin_count/8) uint8."""
        for start in range(0, self.nbins, CHUNK_BINS):
            count = min(CHUNK_BINS, self.nbins - start)
            nbytes = count // 8
            g0 = np.empty((CODE_WIDTH, nbytes), np.uint8)
            g1 = np.empty((CODE_WIDTH, nbytes), np.uint8)
            self._prg0.fill(g0)
            self._prg1.fill(g1)
            elements = self.bin_element[start:start + count]
            words = kernels.bin_words(self.digests, elements, self.bin_function[start:start + count])
            aes = code_aes(self._code, words)
            rows = np.empty((count, 8), np.uint64)
            kernels.code_rows(aes, words, elements, rows)
            u = np.empty((CODE_WIDTH, nbytes), np.uint8)
            kernels.bit_transpose(rows.view(np.uint8), u)
            np.bitwise_xor(u, g0, out=u)
            np.bitwise_xor(u, g1, out=u)
            t_rows = np.empty((count, CODE_BYTES), np.uint8)
            kernels.bit_transpose(g0, t_rows)
            kernels.receiver_oprf(t_rows.view(np.uint64), start, elements, self.keys.oprf_h0,
                                  kernels.BLAKE2B_IV, self.values[start:start + count])
            yield start, count, u

    def matcher(self) -> Matcher:
        return Matcher(self.values, self.bin_element, self.value_bytes, HASH_FUNCTIONS * self.n_sender)


class Matcher:
    """Receiver side of the join: the sender's truncated values against our own."""

    def __init__(self, values: np.ndarray, bin_element: np.ndarray, nbytes: int, expected: int) -> None:
        """``values`` (k, 2) our OPRF values, ``bin_element`` the element owning each (-1:
        none), ``expected`` how many values the sender sends (KKRT16: 3 n_S; RR22: n_S)."""
        self.values = values
        self.bin_element = bin_element
        self.value_bytes = nbytes
        self.expected = expected
        self.received = 0
        self._table = kernels.build_value_table(values, bin_element)
        self._matched_by = np.zeros(values.shape[0], np.int64)
        self._positions: list[np.ndarray] = []
        self._bins: list[np.ndarray] = []

    def add(self, offset: int, data: np.ndarray) -> None:
        count = data.size // self.value_bytes
        if offset != self.received or data.size != count * self.value_bytes:
            raise PsiProtocolError(
                f"OPRF values: expected offset {self.received} and whole {self.value_bytes}-byte "
                f"values, found offset {offset} and {data.size} bytes"
            )
        if self.received + count > self.expected:
            raise PsiProtocolError(
                f"OPRF values: expected {self.expected} in all, found at least {self.received + count}"
            )
        pos = np.empty(count, np.int64)
        bins = np.empty(count, np.int64)
        found = kernels.probe_values(self._table, self.values, data, self.value_bytes, offset,
                                     self._matched_by, pos, bins)
        if found < 0:
            raise PsiProtocolError(
                f"OPRF value at position {offset - found - 1} repeats a value that already "
                "matched (expected distinct values)"
            )
        self._positions.append(pos[:found])
        self._bins.append(bins[:found])
        self.received += count

    @property
    def complete(self) -> bool:
        return self.received == self.expected

    def matches(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions in the sender's 3·n_S sequence, our element indices), by increasing position."""
        if not self._positions:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        positions, bins = np.concatenate(self._positions), np.concatenate(self._bins)
        return positions, self.bin_element[bins].astype(np.int64)

    def element_matches(self, n_sender: int) -> tuple[np.ndarray, np.ndarray]:
        """(sender element positions e, our element indices) by increasing e.

        A value at position p = k·n_S + e belongs to the sender's element e under hash function
        k; only e leaves this party (the hash function k that placed our element would tell
        the sender about our other elements, issue 11 item 4)."""
        positions, local = self.matches()
        if positions.size == 0:
            return positions, local
        element = positions % n_sender
        order = np.argsort(element, kind="stable")
        return element[order], local[order]


class Sender:
    """KKRT16 OPRF sender, the server role: evaluates its elements under all 3 hash functions.

    ``permutation`` is the sender's secret random order: element ``permutation[i]`` is
    sent as the i-th element, so positions reveal nothing about the input order.
    """

    def __init__(self, digests: np.ndarray, n_receiver: int, keys: SessionKeys,
                 choice_bits: np.ndarray, ot_keys: list[bytes], permutation: np.ndarray) -> None:
        self.n = digests.shape[0]
        self.n_receiver = n_receiver
        self.nbins = bin_count(n_receiver)
        self.keys = keys
        self.value_bytes = value_bytes(n_receiver, self.n)
        self.permutation = permutation
        self.digests = np.ascontiguousarray(digests[permutation])
        self._prg = ColumnPrg(ot_keys)
        self._code = [AesEcb(k) for k in keys.code_keys]
        self._column_mask = np.where(choice_bits.astype(bool), 0xFF, 0).astype(np.uint8)[:, None]
        self._s_words = np.packbits(choice_bits.astype(np.uint8), bitorder="little").view(np.uint64)
        self.values = np.zeros((HASH_FUNCTIONS * self.n, 2), np.uint64)  # in bin order
        self._send_index = np.empty(0, np.uint32)   # position -> index in self.values
        self.next_bin = 0
        self._cand_pos = np.empty(0, np.uint32)
        self._offsets = np.zeros(1, np.uint32)

    def prepare(self) -> None:
        positions = candidate_bins(self.digests, self.keys.bin_key, self.nbins)
        self._cand_pos, self._offsets, self._send_index = kernels.bucket_candidates(positions, self.nbins)
        del positions

    def absorb(self, start: int, count: int, columns: np.ndarray) -> None:
        """Process one chunk of U: q^i = G(k_i^{s_i}) ^ s_i u^i, then the OPRF values of the
        candidates in these bins."""
        expected = min(CHUNK_BINS, self.nbins - self.next_bin)
        if start != self.next_bin or count != expected or columns.size != CODE_WIDTH * count // 8:
            raise PsiProtocolError(
                f"correction chunk: expected bins {self.next_bin}..{self.next_bin + expected} "
                f"with {CODE_WIDTH * expected // 8} bytes, found bins {start}..{start + count} "
                f"with {columns.size} bytes"
            )
        nbytes = count // 8
        u = columns.reshape(CODE_WIDTH, nbytes)
        q = np.empty((CODE_WIDTH, nbytes), np.uint8)
        self._prg.fill(q)
        q ^= u & self._column_mask
        q_rows = np.empty((count, CODE_BYTES), np.uint8)
        kernels.bit_transpose(q, q_rows)
        lo, hi = int(self._offsets[start]), int(self._offsets[start + count])
        if hi > lo:
            words = kernels.candidate_words(self.digests, self._cand_pos[lo:hi], self.n)
            aes = code_aes(self._code, words)
            kernels.sender_oprf(q_rows.view(np.uint64), start, self._offsets[start:start + count + 1],
                                aes, words, self._s_words, self.keys.oprf_h0, kernels.BLAKE2B_IV,
                                self.values[lo:hi])
        self.next_bin = start + count
        if self.complete:  # free what only the chunks needed
            self._cand_pos = np.empty(0, np.uint32)
            self._offsets = np.zeros(1, np.uint32)

    @property
    def complete(self) -> bool:
        return self.next_bin == self.nbins

    def value_chunks(self, max_bytes: int) -> Iterator[tuple[int, int, bytes]]:
        """Yield ``(offset, count, bytes)``: the truncated values in position order."""
        total = self.values.shape[0]
        per = max(1, max_bytes // self.value_bytes)
        for offset in range(0, total, per):
            count = min(per, total - offset)
            out = np.empty(count * self.value_bytes, np.uint8)
            kernels.gather_prefixes(self.values, self._send_index[offset:offset + count],
                                    self.value_bytes, out)
            yield offset, count, out.tobytes()

    def local_indices(self, element_positions: np.ndarray) -> np.ndarray:
        """Our input indices of the elements at these positions of our secret sending order."""
        return self.permutation[element_positions].astype(np.int64)


def common_order(local_indices: np.ndarray, pair_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort the pairs by pair id (bytewise), the order both parties share."""
    if local_indices.size == 0:
        return local_indices.astype(np.int64), pair_ids.reshape(0, OPRF_BYTES).astype(np.uint8)
    words = np.ascontiguousarray(pair_ids).view(">u8").reshape(-1, 2)
    order = np.argsort(words[:, 0], kind="stable")
    first = words[order, 0]
    if np.any(first[1:] == first[:-1]):  # equal first 8 bytes (p ~ k^2 / 2^64): full order
        order = np.lexsort((words[:, 1], words[:, 0]))
    return local_indices[order].astype(np.int64), np.ascontiguousarray(pair_ids[order])
