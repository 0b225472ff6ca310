"""Two-party private set intersection with mutual output: KKRT16 or RR22, numba-accelerated, over gRPC.

Two protocols, one result type: a session runs ``"kkrt16"`` (below) or ``"rr22"``
(:mod:`protocols.psi.rr22`: VOLE-based PSI over an OKVS, Raghuraman and Rindal, CCS 2022,
with :mod:`~protocols.psi.okvs` and :mod:`~protocols.psi.vole`), named by the caller on both
sides (``PsiServicer.offer(..., protocol=)``, ``run_psi_client(..., protocol=)``), carried in
the client hello and checked by both: a mismatch ends the run with a clear error, never a
wrong answer.  Both give each party the same :class:`PsiResult` (local indices, pair ids in
one common order, the peer's size), with pair ids derived the same way
(:mod:`~protocols.psi.mutual`), so nothing downstream can tell which one ran.
``DEFAULT_PROTOCOL`` names the one the benchmarks chose (bench/RESULTS-psi.md): RR22 sends
about 4 times fewer bytes (29 against 119 per element at 10^6 x 10^6); which is faster
depends on the link.

Protocol (KKRT16)
=================

Semi-honest PSI from the batched oblivious PRF of Kolesnikov, Kumaresan, Rosulek and
Trieu, "Efficient Batched Oblivious PRF with Applications to Private Set Intersection",
ACM CCS 2016 (KKRT16), with the mutual-output and pair-id extension described below.
No third party.  The client is the OPRF receiver R (elements X, |X| = n_R), the server
the OPRF sender S (elements Y, |Y| = n_S).

Building blocks and parameters (128-bit computational, >= 40-bit statistical security):

- Elements are byte strings of any length, represented by d(x) = BLAKE2b-128(x) (a
  collision among distinct elements has probability < n^2 / 2^129).
- Base OTs: d = 512 Chou-Orlandi OTs ("The Simplest Protocol for Oblivious Transfer",
  LATINCRYPT 2015) in the prime-order subgroup of Ed25519 (libsodium via PyNaCl, ~128-bit
  security), R as base-OT sender, S as receiver with its secret choice bits s ∈ {0,1}^512.
  Points are validated (main subgroup, not of small order) and every key hashes its
  OT's transcript and the session context.
- OT extension in the KKRT 1-out-of-∞ form: R sends u^i = G(k_i^0) ⊕ G(k_i^1) ⊕ c^i for
  each of the d columns, G = AES-128-CTR; S computes q_j = t_j ⊕ (C(x_j) ∧ s).
- Pseudorandom code: C(w) = AES_{k1}(w)⊕w ‖ … ‖ AES_{k4}(w)⊕w, d = 512 bits, keys derived
  from both parties' seeds; w = d(x) ⊕ (hash-function index << 120).  KKRT16 §4 needs
  the codewords of distinct inputs at Hamming distance >= κ = 128: for random 512-bit
  codewords Pr[distance < 128] = 2^-102.3 per pair (:func:`kkrt.code_close_probability_log2`),
  so over the < 3·2^30 pairs that share a bin the failure probability stays below 2^-70.
- Hashing to bins: stash-less cuckoo hashing with 3 hash functions (AES under a session
  key), m = 1.27 n_R bins for n_R >= 2^17 — the parameters for which Pinkas, Schneider,
  Weinert and Wieder ("Efficient Circuit-based PSI via Cuckoo Hashing", EUROCRYPT 2018)
  estimate a failure probability below 2^-40 from their experiments — and m = 2 n_R
  (load 1/2) for smaller sets, where that estimate does not extend; m >= 128.  A failure
  aborts the run with :class:`kkrt.CuckooFailure` ("run again with a new session id")
  instead of retrying, so nothing about X depends on it.
- OPRF output F(x) = H(j, t_j) = BLAKE2b-128(salt = session, u64le(j) ‖ t_j), j = the
  bin, a random oracle as in KKRT16 (BLAKE2b implemented in numba, tested against
  hashlib and RFC 7693).
- S sends ℓ = 40 + log2(n_R · 3 n_S) bits (>= 64, rounded up to bytes) of each of its
  3 n_S values, so that a false match among all n_R · 3 n_S comparisons has probability
  <= 2^-40 (e.g. 11 bytes at 10^6 × 10^6, 12 bytes at 10^7 × 10^7).

Messages (one gRPC bidirectional stream, ``psi.proto``; every message carries a
per-direction sequence number)::

    R → S  ClientHello   version, session id, n_R, R's seed, base-OT point A
    S → R  ServerHello   version, session id, n_S, S's seed, 512 base-OT points B_i
           both derive the session context (BLAKE2b of both hellos) and all keys from it
    R → S  Correction*   u columns for 2^15 bins each (2 MiB), in bin order
    S → R  OprfValues*   ℓ-bit prefixes of F(y, h) for all (y, h), in S's secret random order
    R → S  Matches*      the matched sender elements (positions e in S's order) + 4-byte tags
    R → S  Finish        number of matches
    S → R  Finish        number of matches S confirmed

Mutual output (:mod:`protocols.psi.mutual`): R learns the matches by joining; for each
match it sends S the position e of S's element in S's secret order — never the position
k·n_S + e of the value that matched, which would name the cuckoo hash function k that
placed R's element and so depend on R's other elements (issue 11 item 4) — with a 4-byte
confirmation tag that S recomputes from its own element, so R cannot claim a match it did
not find.  Both derive the pair id of a matched element from the element and the session
context (BLAKE2b, salted with a key derived from the hash of both hellos): equal on both
sides, unknown to anyone else, fresh per run.  Both sides sort their pairs by pair id:
that is the common order.  A session id runs once (the servicer refuses replays) and is
part of the transcript, so results of different passes of a job cannot be mixed up.

Who learns what, when (KKRT16; RR22 below)
==========================================

- ClientHello/ServerHello: each party learns the other's set size (n_R, n_S) — as in
  DESIGN.md, input sizes are disclosed anyway.  Nothing else: seeds and OT points are
  independent of the sets.
- Correction: pseudorandom to S (each column masked by G(k_i^{1-s_i}), unknown to S).
  S learns nothing about X.
- OprfValues: R learns, for each of S's 3 n_S (element, hash function) pairs, an ℓ-bit
  value that is pseudorandom unless the element is in X (then it equals R's own F(x)).
  So R learns which of its elements are in Y, and S's order is a secret random
  permutation, so positions reveal nothing about S's input order.
- Matches: S learns which of its elements are in X (positions map back through its
  permutation) and nothing else: not which hash function placed them in R's table (tested:
  the positions S receives are byte-identical when R's other elements move its matched
  ones to other bins).  R's tags are a function of S's own element and the context.
- Output (both): the local indices of the matched elements, their pair ids, the peer's
  set size.  Neither party learns anything about the other's non-matching elements
  beyond their number (tested: canary values planted in unmatched elements never appear
  in the other party's transcript or output, nor do their SHA-256/SM3 hashes).

RR22: what each message tells its receiver
------------------------------------------

- ClientHello/ServerHello: the set sizes, as for KKRT16 (the parameters derive from them).
- VoleSetup (R -> S): the IKNP matrix and the COPE corrections, each masked by a PRG
  stream of a base-OT key S does not hold: pseudorandom to S.
- VoleReply (S -> R): GGM level sums masked by random-OT pads (R can unmask only the side
  it chose), leaf corrections masked by S's COPE share: R learns its VOLE outputs A, C and
  nothing about Delta or S's B.
- OkvsCorrection (R -> S): A' = A xor P, with A pseudorandom under the LPN assumption for
  the EA code (vole.py): pseudorandom to S, so S learns nothing about X.
- OprfValues (S -> R): H^o(Decode(B', y) + Delta·H^B(y)) per y in S's secret random order:
  equal to R's own value for y in X, pseudorandom otherwise (R would need Delta); so R
  learns which of its elements are in Y.
- Matches, Finish: as for KKRT16 (one value per element, so the positions are the
  elements' places in S's order directly).
- The canary test runs for both protocols.

What a malicious party could do (the protocol is only semi-honest secure)
------------------------------------------------------------------------

- Inflate its set: put many guesses into its input to learn whether the other side has
  them (e.g. every plausible call of one subscriber).  This is inherent to any PSI; it
  is bounded by DESIGN.md's circuit breaker: ``max_records`` (``PsiConfig.max_elements``
  refuses a peer announcing more) and ``max_size_ratio`` (``PsiConfig.max_size_ratio``,
  checked at the hellos), and by the agreed input sizes of step 1 of a job, which are
  committed (Merkle root on the ledger) before any PSI runs — a party whose PSI set size
  differs from its committed record count is visible to the engine.
- Lie about matches: R can omit matches (S then misses them; R could as well have left
  the elements out) but cannot add a match it did not find: S verifies every claimed
  match against the confirmation tag (4 bytes of a hash of the element, which R cannot
  compute for an element it does not hold).
  S can send garbage instead of OPRF values, making R miss matches, or send a repeated
  value (R detects a value matching twice and aborts).
- Deviate in the OT extension (e.g. a malicious R choosing codewords, or S choosing
  related base-OT points): KKRT16 is not secure against this; a malicious-secure PSI
  (e.g. RR22's malicious variant) would be needed.  All messages are authenticated by
  mutual TLS, so only a consortium member can deviate, and it leaves a signed trail.
- Make the run fail: any malformed, truncated, replayed or out-of-order message ends the
  run on both sides with a clear error (``PsiProtocolError`` where detected,
  ``PeerAbortedError`` on the other side) — tested by protocol-error probes.

API (docs/interfaces.md)
========================

``ElementSet.from_fixed(rows)`` / ``ElementSet.from_bytes(items)``; ``PsiResult``;
``PsiServicer(config).add_to_server(server)``, ``servicer.offer(session_id, elements,
timeout_s, peer=member_id, protocol=...).result()``; ``run_psi_client(channel, session_id,
elements, timeout_s, protocol=...)`` on a channel from ``secure_channel(target, credentials,
server_member_id)``; ``PsiConfig`` (timeouts and bounds); ``PROTOCOLS``,
``DEFAULT_PROTOCOL``.  The same roles (:func:`client_role`, :func:`server_role`; KKRT16:
:class:`ClientRole`, :class:`ServerRole`) run over the in-memory sink
(:mod:`protocols.psi.sink`) in tests.

Modules, in import order: ``errors``, ``kernels`` (numba), ``primitives`` (AES, KDF,
base OT), ``kkrt`` (the KKRT16 core), ``okvs``, ``vole`` (numba kernels and steps of the
RR22 building blocks), ``rr22`` (the RR22 core), ``mutual`` (pair ids, match claims),
``elements``, ``psi_pb2``/``psi_pb2_grpc`` (generated), ``roles`` (both protocols), ``sink``,
``transport`` (gRPC), ``cli``.

Regenerate the protobuf modules from the repository root with::

    python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. protocols/psi/psi.proto

(``tests/unit/psi/test_psi_messages.py`` regenerates into a temporary directory and
compares.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Exports load lazily (PEP 562) so that ``settlechain --help`` and the CLI's ``register``
# do not import numba, grpc and polars.
_EXPORTS = {
    "ElementSet": "elements", "PsiResult": "elements",
    "DuplicateElementError": "errors", "InputBoundsError": "errors", "PeerAbortedError": "errors",
    "PsiError": "errors", "PsiProtocolError": "errors", "PsiTimeoutError": "errors",
    "SessionError": "errors", "TransportError": "errors", "PeerRefusedError": "errors",
    "ClientRole": "roles", "PsiConfig": "roles", "ServerRole": "roles",
    "Rr22ClientRole": "roles", "Rr22ServerRole": "roles", "client_role": "roles",
    "server_role": "roles", "PROTOCOLS": "roles", "DEFAULT_PROTOCOL": "roles",
    "PsiServicer": "transport", "PsiSession": "transport", "channel_credentials": "transport",
    "run_psi_client": "transport", "server_credentials": "transport", "secure_channel": "transport",
    "PeerIdentity": "transport",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .elements import ElementSet, PsiResult
    from .errors import (DuplicateElementError, InputBoundsError, PeerAbortedError, PeerRefusedError,
                         PsiError, PsiProtocolError, PsiTimeoutError, SessionError, TransportError)
    from .roles import (DEFAULT_PROTOCOL, PROTOCOLS, ClientRole, PsiConfig, Rr22ClientRole,
                        Rr22ServerRole, ServerRole, client_role, server_role)
    from .transport import (PeerIdentity, PsiServicer, PsiSession, channel_credentials,
                            run_psi_client, secure_channel, server_credentials)
