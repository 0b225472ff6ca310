"""The three-party discrepancy computation: one role object per party over a message layer.

Parties A (0), B (1), H (2); Shamir secret sharing over GF(p) (protocols.mpc.field)
with threshold t = 1 and share points x = 1, 2, 3 -- MPyC's conventions -- and
MPyC's pseudorandom secret sharing for the randomness parties agree on without
talking.  The transport is behind :class:`Net` (MPyC's message layer in production,
:class:`LocalNet` in unit tests); the randomness behind :class:`Randomness`
(protocols.mpc.runtime.PseudorandomSource).

The secure circuit
==================

For each candidate pair and each compared value x in {start, duration, charge,
rated charge} with tolerance tau, the question is ok_x = |d| <= tau with
d = x_A - x_B.  Instead of comparisons (bit decompositions, Theta(bits) secure
multiplications each) the circuit uses the polynomial whose roots are the accepted
differences [Freedman, Nissim, Pinkas, "Efficient private matching and set
intersection", EUROCRYPT 2004: a set as the roots of a polynomial]:

    R_tau(z) = prod_{j=-tau..tau} (z - j),     ok_x  <=>  R_tau(d) = 0.

Bilinear form.  Interpolating u -> R_tau(u - v) at the nodes 0..D (D = 2 tau + 1):

    R_tau(x_A - x_B) = sum_{k=0..D} L_k(x_A) * R_tau(k - x_B),

so A alone computes the vector a_k = s_A L_k(x_A) and B alone b_k = s_B R_tau(k - x_B),
with blinding factors s_A, s_B uniform in GF(p)* chosen privately by A and B.  Each
side shares its vector (one field element per entry on the wire: the third party's
share comes from a pairwise PRSS key, the remaining share is sent), every party
multiplies its shares entry-wise and sums: a degree-2 sharing of

    Q = s_A s_B R_tau(d)

without any multiplication protocol (a product of two degree-1 sharings is a
degree-2 sharing [Gennaro, Rabin, Rabin, PODC 1998]).  Q is opened to A and B only,
after adding a pseudorandom degree-2 sharing of zero [Cramer, Damgard, Ishai,
TCC 2005] so that the opened share vector is a uniformly random polynomial through Q.
Q = 0 exactly when ok_x; otherwise A sees s_A s_B R_tau(d), which is uniform in
GF(p)* given A's knowledge (s_B is unknown to A), and symmetrically for B.  H only
sends its opening shares and learns nothing.  Cost per pair and check: 2(D + 1)
field elements between A and B and 4 in the opening, no secure multiplication,
no comparison, three message rounds per chunk shared by all checks.

Disclosure-dependent steps:
- flags / differences: Q_t, Q_d, Q_c are opened; ok_r = |d_r| <= delta_c is only
  disclosed for pairs with not ok_c, so the opened value is Q_r + R ok_c, with R a
  PRSS random value and ok_c shared by A and B for free (H's share 0): for ok_c pairs
  A and B see a uniformly random value.  differences: for each value, d + R' (1 -
  disputed) is opened, d shared for free as a degree-2 sharing (A's share
  (x_A + rho)/3, B's (x_B + rho)/3, H's 0, rho from the A-B key).
- aggregate: per-pair status is opened as Q_t + Q_d + Q_c (independent blinding:
  zero iff all three are zero, except with probability < 2^-88).  Per-reason counts and
  sums must not be linkable to pairs, so the pairs are shuffled three times
  independently (one shuffle for the start reason, one for duration, one for the
  charge reasons) with pi = pi_2 o pi_1, pi_1 known to A and H, pi_2 to B and H
  [resharing-based shuffle in the style of Laur, Willemson, Zhang, "Round-efficient
  oblivious database manipulation", ISC 2011]: afterwards every value is held as
  beta + eta, beta known to B, eta to H (masked by A-B and A-H keys), and the same
  bilinear zero test runs with B and H as the two holders.  The shuffled flags are
  opened to A and B (so they learn the multiset of flags -- the counts -- and nothing
  linkable); the charge category of a shuffled pair is opened step by step (ok_c,
  then ok_r masked where ok_c, then ok_d masked where ok_c or ok_r), so only the
  category is revealed.  Sums per reason are opened as inner products of the
  (public to A and B) shuffled indicators with the shared charges.

Bit lengths.  Every input satisfies |x| <= 2^62 - 1 (checked, MpcInputError
otherwise), so |d - j| < 2^63 + 2^12 < p = 2^89 - 1 and R_tau(d) = 0 in GF(p) iff
some d - j = 0 over the integers: no false match for any difference, however
large, and no wrap-around.  Chunk sums stay below 2^78 < p/2.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from protocols.mpc import field as F
from protocols.mpc.errors import MalformedMessageError, ParameterMismatchError, PeerLostError
from protocols.mpc.params import (
    DIFFERENCE_KEYS,
    PARTY_NAMES,
    REASON_BITS,
    REASON_CODES,
    DiscrepancyResult,
    PairValues,
    ToleranceParams,
)
from protocols.mpc.reference import reasons_from_flags

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = b"settlechain-mpc-discrepancy-v1"
A, B, H = 0, 1, 2
CHECKS = ("t", "d", "c", "r")
_INV3 = F.inv(3)


class Net(Protocol):
    """A message layer among the three parties.  Every party calls :meth:`exchange` at
    the same points of the protocol, in the same order; one call is one message
    round (a party may send nothing or expect nothing)."""

    pid: int

    async def exchange(self, sends: Mapping[int, bytes], receive_from: Sequence[int],
                       what: str, tag: int | None = None) -> dict[int, bytes]: ...

    def bytes_sent(self) -> int: ...


class Randomness(Protocol):
    """Pseudorandomness shared along the pairwise PRSS keys, and private randomness."""

    def pair(self, peers: tuple[int, int], label: bytes, count: int) -> np.ndarray: ...
    def random_shares(self, label: bytes, count: int) -> np.ndarray: ...
    def zero_shares(self, label: bytes, count: int) -> np.ndarray: ...
    def permutation(self, peers: tuple[int, int], label: bytes, count: int) -> np.ndarray: ...
    def private(self, count: int, *, nonzero: bool = False) -> np.ndarray: ...


# ---------------------------------------------------------------------------
# message rounds


class _TaggedNet:
    """The rounds of one chunk get their own tag range, so that several chunks can be
    in flight at once and still pair up the same messages on every party."""

    def __init__(self, base: Net, chunk: int) -> None:
        self.base = base
        self.pid = base.pid
        self.first = (chunk + 1) * 1024
        self.step = 0

    async def exchange(self, sends, receive_from, what, tag=None):
        self.step += 1
        if self.step >= 1024:
            raise RuntimeError("too many rounds in one chunk")
        return await self.base.exchange(sends, receive_from, what, tag=self.first + self.step)

    def bytes_sent(self) -> int:
        return self.base.bytes_sent()


class _Pending:
    __slots__ = ("value", "peer", "slot", "shape")

    def __init__(self, value=None, peer=None, slot=None, shape=None):
        self.value, self.peer, self.slot, self.shape = value, peer, slot, shape


class _Round:
    """Collects what this party sends and expects in one message round."""

    def __init__(self, net: Net, what: str) -> None:
        self.net = net
        self.what = what
        self.out: dict[int, list[np.ndarray]] = {}
        self.sizes: dict[int, list[int]] = {}
        self.received: dict[int, list[np.ndarray]] = {}

    def send(self, peer: int, values: np.ndarray) -> None:
        self.out.setdefault(peer, []).append(np.asarray(values, dtype=object).reshape(-1))

    def expect(self, peer: int, count: int, shape) -> _Pending:
        sizes = self.sizes.setdefault(peer, [])
        sizes.append(count)
        return _Pending(peer=peer, slot=len(sizes) - 1, shape=shape)

    async def run(self) -> None:
        sends = {peer: F.encode(np.concatenate(parts)) for peer, parts in self.out.items()}
        got = await self.net.exchange(sends, sorted(self.sizes), self.what)
        for peer, sizes in self.sizes.items():
            total = sum(sizes)
            values = F.decode(got[peer], total, what=f"{self.what} from {PARTY_NAMES[peer]}")
            parts, start = [], 0
            for size in sizes:
                parts.append(values[start:start + size])
                start += size
            self.received[peer] = parts

    def get(self, pending: _Pending) -> np.ndarray:
        if pending.slot is None:
            return pending.value
        return self.received[pending.peer][pending.slot].reshape(pending.shape)


# ---------------------------------------------------------------------------
# the role object


@dataclass
class _Accumulator:
    per_reason: dict[str, list[int]]
    tolerance_local: int = 0
    disputed_local: int = 0

    @classmethod
    def empty(cls) -> "_Accumulator":
        return cls(per_reason={code: [0, 0, 0] for code in REASON_CODES})


def job_digest(n_pairs: int, params: ToleranceParams, chunk_size: int) -> bytes:
    text = (f"{PROTOCOL_VERSION.decode()}|n={n_pairs}|t={params.time_tolerance_s}|"
            f"d={params.duration_tolerance_s}|c={params.charge_tolerance}|policy={params.policy}|"
            f"chunk={chunk_size}")
    return hashlib.sha256(text.encode()).digest()


def chunk_size_for(params: ToleranceParams, budget_elements: int = 1_500_000) -> int:
    """Pairs per chunk so that the live field elements stay within a fixed budget
    (about 100 bytes each): the per-party memory does not grow with the input size."""
    per_pair = sum(2 * params.tolerance(check) + 2 for check in CHECKS)
    if params.policy == "aggregate":
        per_pair = 3 * per_pair + 40
    else:
        per_pair = 2 * per_pair + 16
    return int(max(64, min(1 << 14, budget_elements // per_pair)))


class DiscrepancyParty:
    """One party's role in the computation over ``n_pairs`` candidate pairs."""

    def __init__(self, net: Net, rand: Randomness, params: ToleranceParams, n_pairs: int,
                 values: PairValues | None, *, chunk_size: int | None = None) -> None:
        self.net = net
        self.rand = rand
        self.pid = net.pid
        self.params = params
        self.n_pairs = n_pairs
        self.values = values
        self.chunk_size = chunk_size or chunk_size_for(params)

    # -- small building blocks ------------------------------------------------

    def _share_owned(self, rnd: _Round, owner: int, partner: int, values: np.ndarray | None,
                     shape: tuple[int, ...], label: bytes) -> _Pending:
        """Degree-1 sharing of values known to ``owner``: the ``partner``'s share is the
        pairwise pseudorandom value, the remaining party's share is sent by the owner."""
        receiver = 3 - owner - partner
        count = int(np.prod(shape))
        peers = (min(owner, partner), max(owner, partner))
        if self.pid == receiver:
            return rnd.expect(owner, count, shape)
        z = self.rand.pair(peers, label, count).reshape(shape)
        if self.pid == partner:
            return _Pending(value=z)
        # f(X) = v + (z - v) X / x_partner, so that f(0) = v and f(x_partner) = z
        step = z - values
        inv_partner = F.inv(partner + 1)
        own = (values + step * ((owner + 1) * inv_partner % F.P)) % F.P
        rnd.send(receiver, (values + step * ((receiver + 1) * inv_partner % F.P)) % F.P)
        return _Pending(value=own)

    def _common_shares(self, values: np.ndarray | None, count: int, knowers: tuple[int, int]) -> np.ndarray:
        """Degree-1 sharing of values known to both ``knowers``, for free: the third party's
        share is 0, f(X) = v (1 - X / x_third)."""
        third = 3 - knowers[0] - knowers[1]
        if self.pid == third:
            return F.zeros(count)
        factor = (1 - (self.pid + 1) * F.inv(third + 1)) % F.P
        return values % F.P * factor % F.P

    async def _open_to_operators(self, shares: list[np.ndarray], label: bytes, what: str) -> list[np.ndarray] | None:
        """Open degree-2 sharings to A and B (re-randomised by a PRSS zero sharing)."""
        sizes = [s.shape[0] for s in shares]
        flat = np.concatenate(shares) if shares else F.zeros(0)
        masked = (flat + self.rand.zero_shares(label, flat.shape[0])) % F.P
        rnd = _Round(self.net, what)
        mine = {}
        if self.pid == H:
            rnd.send(A, masked)
            rnd.send(B, masked)
        else:
            other = B if self.pid == A else A
            rnd.send(other, masked)
            mine[other] = rnd.expect(other, flat.shape[0], flat.shape)
            mine[H] = rnd.expect(H, flat.shape[0], flat.shape)
        await rnd.run()
        if self.pid == H:
            return None
        points = {self.pid: masked, **{peer: rnd.get(p) for peer, p in mine.items()}}
        secret = (points[A] * F.LAGRANGE_DEG2[0] + points[B] * F.LAGRANGE_DEG2[1]
                  + points[H] * F.LAGRANGE_DEG2[2]) % F.P
        out, start = [], 0
        for size in sizes:
            out.append(secret[start:start + size])
            start += size
        return out

    def _zero_test_vectors(self, rnd: _Round, powers_holder: int, coeff_holder: int,
                           u: np.ndarray | None, v: np.ndarray | None, tolerance: int, count: int,
                           label: bytes) -> tuple[_Pending, _Pending]:
        """Share the two halves of Q = s_X s_Y R_tau(u - v) (u known to the powers
        holder X, v to the coefficient holder Y)."""
        rows = 2 * tolerance + 2
        third = 3 - powers_holder - coeff_holder
        a_vec = b_vec = None
        if self.pid == powers_holder:
            blind = self.rand.private(count, nonzero=True)
            a_vec = F.lagrange_basis(u, tolerance) * blind % F.P
        if self.pid == coeff_holder:
            blind = self.rand.private(count, nonzero=True)
            b_vec = F.shifted_roots_products(v, tolerance) * blind % F.P
        # X's vector: pseudorandom share for the third party, the share of Y is sent;
        # Y's vector: pseudorandom share for the third party, the share of X is sent.
        a_share = self._share_owned(rnd, powers_holder, third, a_vec, (rows, count), label + b":a")
        b_share = self._share_owned(rnd, coeff_holder, third, b_vec, (rows, count), label + b":b")
        return a_share, b_share

    @staticmethod
    def _inner(rnd: _Round, pending: tuple[_Pending, _Pending]) -> np.ndarray:
        a = rnd.get(pending[0])
        b = rnd.get(pending[1])
        return (a * b).sum(axis=0) % F.P

    # -- the job --------------------------------------------------------------

    async def run(self) -> DiscrepancyResult | None:
        started = time.perf_counter()
        cpu_started = time.process_time()
        await self._agree()
        acc = _Accumulator.empty()
        disputed_parts: list[np.ndarray] = []
        reasons_parts: list[np.ndarray] = []
        diff_parts: dict[str, list[np.ndarray]] = {key: [] for key in DIFFERENCE_KEYS}
        window = 2  # chunks in flight: one computes while the other waits for messages

        async def one_chunk(chunk: int, lo: int, hi: int):
            worker = copy.copy(self)
            worker.net = _TaggedNet(self.net, chunk)
            if self.params.policy == "aggregate":
                return await worker._chunk_aggregate(chunk, lo, hi, acc), None, None
            return await worker._chunk_flags(chunk, lo, hi, acc)

        in_flight: list[asyncio.Future] = []
        outputs = []
        try:
            for chunk, lo in enumerate(range(0, self.n_pairs, self.chunk_size)):
                hi = min(self.n_pairs, lo + self.chunk_size)
                if len(in_flight) >= window:
                    outputs.append(await in_flight.pop(0))
                in_flight.append(asyncio.ensure_future(one_chunk(chunk, lo, hi)))
            while in_flight:
                outputs.append(await in_flight.pop(0))
        finally:
            for task in in_flight:
                task.cancel()
        for disputed, reasons, diffs in outputs:
            if self.pid != H:
                disputed_parts.append(disputed)
                if reasons is not None:
                    reasons_parts.append(reasons)
                if diffs is not None:
                    for key in DIFFERENCE_KEYS:
                        diff_parts[key].append(diffs[key])
        totals = await self._exchange_totals(acc)
        if self.pid == H:
            return None
        stats = {
            "party": PARTY_NAMES[self.pid],
            "pairs": self.n_pairs,
            "chunk_size": self.chunk_size,
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_started,
            "bytes_sent": self.net.bytes_sent(),
        }
        disputed = np.concatenate(disputed_parts) if disputed_parts else np.zeros(0, dtype=bool)
        reasons = None
        if self.params.policy != "aggregate":
            reasons = np.concatenate(reasons_parts) if reasons_parts else np.zeros(0, dtype=np.uint8)
        differences = None
        if self.params.policy == "differences":
            differences = {key: (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
                           for key, parts in diff_parts.items()}
        return DiscrepancyResult(disputed=disputed, reasons=reasons, differences=differences,
                                 per_reason=totals[0], tolerance_charge=totals[1],
                                 disputed_charge=totals[2], stats=stats)

    async def _agree(self) -> None:
        """Every party sends every other the digest of its view of the job."""
        digest = job_digest(self.n_pairs, self.params, self.chunk_size)
        peers = [p for p in (A, B, H) if p != self.pid]
        got = await self.net.exchange({p: digest for p in peers}, peers, "job parameters")
        for peer, theirs in got.items():
            if theirs != digest:
                raise ParameterMismatchError(
                    f"party {PARTY_NAMES[peer]} runs a different job: expected the same number of pairs "
                    f"({self.n_pairs}), tolerances, policy ({self.params.policy}) and protocol version "
                    f"({PROTOCOL_VERSION.decode()}); the job digests differ")

    async def _exchange_totals(self, acc: _Accumulator):
        """A and B swap their own charge sums (per reason, tolerance, disputed)."""
        if self.pid == H:
            await self.net.exchange({}, [], "charge totals")  # keeps the round sequence aligned
            return None
        other = B if self.pid == A else A
        # per reason: this party's own charge sum is at index 1 for A and 2 for B
        own_index = 1 if self.pid == A else 2
        mine = [acc.per_reason[code][own_index] for code in REASON_CODES]
        mine += [acc.tolerance_local, acc.disputed_local]
        payload = ",".join(str(int(x)) for x in mine).encode()
        got = await self.net.exchange({other: payload}, [other], "charge totals")
        try:
            theirs = [int(x) for x in got[other].decode("ascii").split(",")]
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedMessageError(f"charge totals from {PARTY_NAMES[other]}: expected integers, {exc}") from exc
        if len(theirs) != len(mine):
            raise MalformedMessageError(
                f"charge totals from {PARTY_NAMES[other]}: expected {len(mine)} integers, found {len(theirs)}")
        other_index = 3 - own_index
        per_reason = {}
        for i, code in enumerate(REASON_CODES):
            entry = list(acc.per_reason[code])
            entry[other_index] = theirs[i]
            per_reason[code] = (int(entry[0]), int(entry[1]), int(entry[2]))
        if self.pid == A:
            tolerance = (acc.tolerance_local, theirs[-2])
            disputed = (acc.disputed_local, theirs[-1])
        else:
            tolerance = (theirs[-2], acc.tolerance_local)
            disputed = (theirs[-1], acc.disputed_local)
        return per_reason, tolerance, disputed

    def _own_column(self, check: str, lo: int, hi: int) -> np.ndarray | None:
        if self.values is None:
            return None
        return F.from_int64(self.values.column(check)[lo:hi])

    # -- flags and differences -------------------------------------------------

    async def _chunk_flags(self, chunk: int, lo: int, hi: int, acc: _Accumulator):
        count = hi - lo
        tag = f"c{chunk}".encode()
        rnd = _Round(self.net, f"chunk {chunk}: range-check vectors")
        pending = {}
        for check in CHECKS:
            own = self._own_column(check, lo, hi)
            pending[check] = self._zero_test_vectors(
                rnd, A, B, own if self.pid == A else None, own if self.pid == B else None,
                self.params.tolerance(check), count, tag + b":zt:" + check.encode())
        await rnd.run()
        q = {check: self._inner(rnd, pending[check]) for check in CHECKS}
        del pending, rnd
        opened = await self._open_to_operators([q["t"], q["d"], q["c"]], tag + b":open1",
                                               f"chunk {chunk}: opening of the t/d/c range checks")
        ok_t = ok_d = ok_c = None
        if self.pid != H:
            ok_t, ok_d, ok_c = (x == 0 for x in opened)
        # round 2: ok_r where the charge is beyond tolerance; differences of disputed pairs
        mask_c = self._common_shares(None if ok_c is None else ok_c.astype(object), count, (A, B))
        noise = self.rand.random_shares(tag + b":mask:r", count)
        items = [(q["r"] + noise * mask_c) % F.P]
        disputed = None
        if self.pid != H:
            disputed = ~(ok_t & ok_d & ok_c)
        if self.params.policy == "differences":
            keep = self._common_shares(None if disputed is None else (~disputed).astype(object), count, (A, B))
            rho_label = tag + b":diff"
            for check in CHECKS:
                diff = self._free_difference(check, lo, hi, rho_label + check.encode())
                noise = self.rand.random_shares(tag + b":mask:diff:" + check.encode(), count)
                items.append((diff + noise * keep) % F.P)
        opened2 = await self._open_to_operators(items, tag + b":open2",
                                                f"chunk {chunk}: opening of rate check and differences")
        if self.pid == H:
            return None, None, None
        ok_r = opened2[0] == 0
        # for pairs with ok_c the opened value is random: ok_r is meaningless there
        ok_r = np.where(ok_c, False, ok_r)
        reasons = reasons_from_flags(ok_t, ok_d, ok_c, ok_r)
        self._accumulate_local(acc, reasons, lo, hi)
        diffs = None
        if self.params.policy == "differences":
            diffs = {}
            sign = 1 if self.pid == A else -1
            for key, opened_diff in zip(DIFFERENCE_KEYS, opened2[1:]):
                signed = F.to_signed(opened_diff)
                signed = np.where(disputed, signed, 0)
                diffs[key] = (signed * sign).astype(np.int64)
        return disputed, reasons, diffs

    def _free_difference(self, check: str, lo: int, hi: int, label: bytes) -> np.ndarray:
        """Degree-2 sharing of x_A - x_B without communication: A holds (x_A + rho)/3,
        B holds (x_B + rho)/3, H holds 0 (3 s_A - 3 s_B + s_H = x_A - x_B)."""
        count = hi - lo
        if self.pid == H:
            return F.zeros(count)
        rho = self.rand.pair((A, B), label, count)
        return (self._own_column(check, lo, hi) + rho) % F.P * _INV3 % F.P

    def _accumulate_local(self, acc: _Accumulator, reasons: np.ndarray, lo: int, hi: int) -> None:
        own_charge = self.values.charge[lo:hi]
        own_index = 1 if self.pid == A else 2
        for code in REASON_CODES:
            mask = (reasons & REASON_BITS[code]) != 0
            acc.per_reason[code][0] += int(mask.sum())
            acc.per_reason[code][own_index] += int(own_charge[mask].astype(object).sum()) if mask.any() else 0
        disputed = reasons != 0
        acc.tolerance_local += int(own_charge[~disputed].astype(object).sum()) if (~disputed).any() else 0
        acc.disputed_local += int(own_charge[disputed].astype(object).sum()) if disputed.any() else 0

    # -- aggregate ------------------------------------------------------------

    async def _shuffle(self, tag: bytes, columns: list[tuple[int, np.ndarray | None]], count: int,
                       what: str) -> list[np.ndarray | None]:
        """Shuffle columns (owner A or B, values known to the owner) by pi_2 o pi_1.

        Returns, for each column, this party's part of the shuffled value: B gets beta,
        H gets eta with shuffled value = beta + eta; A gets None."""
        pi1 = self.rand.permutation((A, H), tag + b":pi1", count) if self.pid in (A, H) else None
        pi2 = self.rand.permutation((B, H), tag + b":pi2", count) if self.pid in (B, H) else None
        # round 1: B -> H, B-owned columns masked with the A-B key
        rnd = _Round(self.net, what + " (shuffle, first permutation)")
        a_part: list[np.ndarray | None] = []
        expected: dict[int, _Pending] = {}
        for index, (owner, values) in enumerate(columns):
            if owner == B:
                mask = None
                if self.pid in (A, B):
                    mask = self.rand.pair((A, B), tag + b":m1:" + str(index).encode(), count)
                if self.pid == B:
                    rnd.send(H, (values + mask) % F.P)
                if self.pid == H:
                    expected[index] = rnd.expect(B, count, (count,))
                a_part.append((-mask[pi1]) % F.P if self.pid == A else None)
            else:
                a_part.append(values[pi1] if self.pid == A else None)
        await rnd.run()
        h_part: list[np.ndarray | None] = [
            rnd.get(expected[index])[pi1] if index in expected else None for index in range(len(columns))]
        # round 2: A -> B, every column's A part masked with the A-H key
        rnd = _Round(self.net, what + " (shuffle, second permutation)")
        pendings = []
        masks = []
        for index in range(len(columns)):
            mask = None
            if self.pid in (A, H):
                mask = self.rand.pair((A, H), tag + b":m2:" + str(index).encode(), count)
            masks.append(mask)
            if self.pid == A:
                rnd.send(B, (a_part[index] + mask) % F.P)
            if self.pid == B:
                pendings.append(rnd.expect(A, count, (count,)))
        await rnd.run()
        out: list[np.ndarray | None] = []
        for index in range(len(columns)):
            if self.pid == B:
                out.append(rnd.get(pendings[index])[pi2])
            elif self.pid == H:
                h = h_part[index] if h_part[index] is not None else F.zeros(count)
                out.append((h - masks[index])[pi2] % F.P)
            else:
                out.append(None)
        return out

    def _held_difference(self, parts: list[np.ndarray | None], i_a: int, i_b: int) -> np.ndarray | None:
        """After a shuffle: d = x_A - x_B = u - v with u = beta_A - beta_B (B's) and
        v = eta_B - eta_A (H's)."""
        if self.pid == B:
            return (parts[i_a] - parts[i_b]) % F.P
        if self.pid == H:
            return (parts[i_b] - parts[i_a]) % F.P
        return None

    async def _shuffled_sums(self, rnd_tag: bytes, indicators: list[np.ndarray | None],
                             parts: list[np.ndarray | None], charge_columns: tuple[int, int], count: int,
                             what: str) -> list[tuple[int, int]] | None:
        """For each indicator vector (known to A and B), open sum(ind * charge_A) and
        sum(ind * charge_B) of the shuffled charges (beta + eta)."""
        rnd = _Round(self.net, what + " (charge shares)")
        eta = {}
        for col in charge_columns:
            # H's parts are shared by H: A's share pseudorandom (A-H key), B's share sent
            values = parts[col] if self.pid == H else None
            eta[col] = self._share_owned(rnd, H, A, values, (count,), rnd_tag + b":eta:" + str(col).encode())
        await rnd.run()
        shares = []
        for indicator in indicators:
            ind_share = self._common_shares(indicator, count, (A, B))
            for col in charge_columns:
                total = (ind_share * rnd.get(eta[col])).sum() % F.P
                if self.pid == B:
                    beta_sum = int((indicator * parts[col]).sum() % F.P)
                    total = (total + beta_sum * F.inv(F.LAGRANGE_DEG2[1])) % F.P
                shares.append(np.array([total], dtype=object))
        opened = await self._open_to_operators(shares, rnd_tag + b":sums", what + " (sums)")
        if opened is None:
            return None
        values = [int(F.to_signed(x)[0]) for x in opened]
        return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]

    async def _chunk_aggregate(self, chunk: int, lo: int, hi: int, acc: _Accumulator):
        count = hi - lo
        tag = f"c{chunk}".encode()
        own = {check: self._own_column(check, lo, hi) for check in CHECKS}

        # status per pair, unshuffled: Q_t + Q_d + Q_c = 0 iff all three within tolerance
        rnd = _Round(self.net, f"chunk {chunk}: status vectors")
        pending = {check: self._zero_test_vectors(
            rnd, A, B, own[check] if self.pid == A else None, own[check] if self.pid == B else None,
            self.params.tolerance(check), count, tag + b":st:" + check.encode()) for check in ("t", "d", "c")}
        await rnd.run()
        q = sum(self._inner(rnd, pending[check]) for check in ("t", "d", "c")) % F.P
        del pending, rnd
        opened = await self._open_to_operators([q], tag + b":status", f"chunk {chunk}: opening of the status")
        disputed = None
        if self.pid != H:
            disputed = opened[0] != 0
            own_charge = self.values.charge[lo:hi].astype(object)
            acc.tolerance_local += int(own_charge[~disputed].sum()) if (~disputed).any() else 0
            acc.disputed_local += int(own_charge[disputed].sum()) if disputed.any() else 0

        def owned(check: str) -> list[tuple[int, np.ndarray | None]]:
            return [(A, own[check] if self.pid == A else None), (B, own[check] if self.pid == B else None)]

        # three independent shuffles
        groups = {
            "t": owned("t") + owned("c"),
            "d": owned("d") + owned("c"),
            "c": owned("c") + owned("r") + owned("d"),
        }
        shuffled = {}
        for name, columns in groups.items():
            shuffled[name] = await self._shuffle(tag + b":sh:" + name.encode(), columns, count,
                                                 f"chunk {chunk}: group {name}")
        # zero-test vectors on shuffled data, B = powers holder, H = coefficient holder
        rnd = _Round(self.net, f"chunk {chunk}: shuffled range-check vectors")
        tests = {
            ("t", "t"): (shuffled["t"], 0, 1),
            ("d", "d"): (shuffled["d"], 0, 1),
            ("c", "c"): (shuffled["c"], 0, 1),
            ("c", "r"): (shuffled["c"], 2, 3),
            ("c", "d"): (shuffled["c"], 4, 5),
        }
        pending = {}
        for (group, check), (parts, i_a, i_b) in tests.items():
            diff = self._held_difference(parts, i_a, i_b)
            pending[(group, check)] = self._zero_test_vectors(
                rnd, B, H, diff if self.pid == B else None, diff if self.pid == H else None,
                self.params.tolerance(check), count, tag + b":szt:" + (group + check).encode())
        await rnd.run()
        qs = {key: self._inner(rnd, value) for key, value in pending.items()}
        del pending, rnd
        opened = await self._open_to_operators([qs[("t", "t")], qs[("d", "d")], qs[("c", "c")]],
                                               tag + b":sopen1", f"chunk {chunk}: opening of shuffled checks")
        okc = None
        if self.pid != H:
            ok_t_s, ok_d_s, okc = (x == 0 for x in opened)
        mask = self._common_shares(None if okc is None else okc.astype(object), count, (A, B))
        noise = self.rand.random_shares(tag + b":smask:r", count)
        opened = await self._open_to_operators([(qs[("c", "r")] + noise * mask) % F.P], tag + b":sopen2",
                                               f"chunk {chunk}: opening of the shuffled rate check")
        okr = None
        if self.pid != H:
            okr = (opened[0] == 0) & ~okc
        hide = None if okr is None else (okc | okr).astype(object)
        mask = self._common_shares(hide, count, (A, B))
        noise = self.rand.random_shares(tag + b":smask:d", count)
        opened = await self._open_to_operators([(qs[("c", "d")] + noise * mask) % F.P], tag + b":sopen3",
                                               f"chunk {chunk}: opening of the shuffled duration check")
        indicators_t = indicators_d = indicators_c = [None] * 3
        if self.pid != H:
            okd_c = (opened[0] == 0) & ~okc & ~okr
            unexplained = ~okc & ~okr & ~okd_c
            rounding = ~okc & ~okr & okd_c
            indicators_t = [(~ok_t_s).astype(object)]
            indicators_d = [(~ok_d_s).astype(object)]
            indicators_c = [(~okc & okr).astype(object), rounding.astype(object), unexplained.astype(object)]
        sums_t = await self._shuffled_sums(tag + b":sum:t", indicators_t[:1], shuffled["t"], (2, 3), count,
                                           f"chunk {chunk}: start-time sums")
        sums_d = await self._shuffled_sums(tag + b":sum:d", indicators_d[:1], shuffled["d"], (2, 3), count,
                                           f"chunk {chunk}: duration sums")
        sums_c = await self._shuffled_sums(tag + b":sum:c", indicators_c, shuffled["c"], (0, 1), count,
                                           f"chunk {chunk}: charge sums")
        if self.pid == H:
            return None
        for code, indicator, sums in (
                ("start_time", indicators_t[0], sums_t[0]),
                ("duration", indicators_d[0], sums_d[0]),
                ("charge_rate_mismatch", indicators_c[0], sums_c[0]),
                ("charge_rounding", indicators_c[1], sums_c[1]),
                ("charge_unexplained", indicators_c[2], sums_c[2])):
            entry = acc.per_reason[code]
            entry[0] += int(indicator.sum())
            # both operators open both sums; keep the remote one here and the own one
            # is overwritten by the exchange at the end with the same value
            entry[1] += sums[0]
            entry[2] += sums[1]
        return disputed


# ---------------------------------------------------------------------------
# in-memory message layer (unit tests, single-process experiments)


class LocalNet:
    """Three parties in one event loop, messages through queues.  ``log`` (optional)
    receives every (sender, receiver, what, payload) for inspection in tests."""

    def __init__(self, hub: dict, pid: int, log: list | None = None) -> None:
        self.hub = hub
        self.pid = pid
        self.tag = 0
        self.sent = 0
        self.log = log

    @classmethod
    def mesh(cls, log: list | None = None) -> list["LocalNet"]:
        hub: dict = {}
        return [cls(hub, pid, log) for pid in (A, B, H)]

    def _queue(self, src: int, dst: int, tag: int) -> asyncio.Queue:
        return self.hub.setdefault((src, dst, tag), asyncio.Queue())

    async def exchange(self, sends, receive_from, what, tag=None):
        if tag is None:
            self.tag += 1
            tag = self.tag
        for peer, payload in sends.items():
            if peer == self.pid:
                raise ValueError("a party does not send to itself")
            self.sent += len(payload)
            if self.log is not None:
                self.log.append((self.pid, peer, what, bytes(payload)))
            self._queue(self.pid, peer, tag).put_nowait(bytes(payload))
        out = {}
        for peer in receive_from:
            try:
                out[peer] = await asyncio.wait_for(self._queue(peer, self.pid, tag).get(), 30)
            except TimeoutError as exc:
                raise PeerLostError(f"{what}: no message from {PARTY_NAMES[peer]}") from exc
        return out

    def bytes_sent(self) -> int:
        return self.sent


async def run_local(params: ToleranceParams, values_a: PairValues, values_b: PairValues,
                    rands: Sequence[Randomness], *, chunk_size: int | None = None,
                    log: list | None = None) -> list[DiscrepancyResult | None]:
    """All three roles in one event loop (tests)."""
    nets = LocalNet.mesh(log)
    n = len(values_a)
    parties = [DiscrepancyParty(nets[pid], rands[pid], params, n, values, chunk_size=chunk_size)
               for pid, values in ((A, values_a), (B, values_b), (H, None))]
    return list(await asyncio.gather(*(p.run() for p in parties)))
