"""The three-party discrepancy computation: one role object per party over a message layer.

Parties A (0), B (1), H (2); Shamir secret sharing over GF(p) (protocols.mpc.field)
with threshold t = 1 and share points x = 1, 2, 3 -- MPyC's conventions -- and
pseudorandom secret sharing for the randomness parties agree on without talking.
The transport is behind :class:`~protocols.mpc.rounds.Net` (MPyC's message layer in
production, :class:`~protocols.mpc.rounds.LocalNet` in unit tests); the randomness
behind :class:`~protocols.mpc.rounds.Randomness`
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

Disclosure (docs/matching.md, "Disclosure")
===========================================

- flags / differences, per chunk of the pair order: Q_t, Q_d, Q_c are opened; ok_r =
  |d_r| <= delta_c is only disclosed for pairs with not ok_c, so the opened value is
  Q_r + R ok_c, with R a PRSS random value and ok_c shared by A and B for free (H's
  share 0): for ok_c pairs A and B see a uniformly random value.  differences: for each
  value, d + R' (1 - disputed) is opened, d shared for free as a degree-2 sharing (A's
  share (x_A + rho)/3, B's (x_B + rho)/3, H's 0, rho from the A-B key).  The charge
  sums are each operator's own sums over the cells the small-cell rule gives
  (protocols.mpc.cells), exchanged by A and B at the end.
- aggregate: nothing per pair is opened but its status:
  1. per chunk of the pair order, the status Q_t + Q_d + Q_c (independent blinding:
     zero iff all three are zero, except with probability < 2^-88);
  2. one shuffle of all pairs (protocols.mpc.shuffle) of the four differences and the
     two charges, before any chunking: afterwards B holds beta and H eta with
     beta + eta the column in shuffled order, and neither operator knows the
     permutation;
  3. per chunk of the *shuffled* order, the zero tests with B and H as the holders,
     opened to A and B like the flags policy (Q_t, Q_d, Q_c, then Q_r masked where
     ok_c): A and B learn the reason combination of every shuffled position, i.e. the
     histogram of reason combinations over the job, linked to no pair; and each
     class's charge sums accumulate as degree-2 shares (the class indicator is known
     to A and B, H's share of it is 0, so the products need no multiplication
     protocol);
  4. once per job: A and B decide from the counts which sums the small-cell rule gives,
     and all three open a fixed number of values (one per class and charge, and one
     per charge for ``other``), with a share of 0 for every withheld or merged class:
     a withheld sum is never computed in the clear, and H, which holds no count,
     does not learn which sums were given.
  The status sums (matched_tolerance, disputed, candidates) are each operator's own
  sums over its own pairs, exchanged by A and B as under the other policies.

What each party sees depends on the chunk size only through the message boundaries:
the opened values, in order, are the same for any chunk size (tested).

Bit lengths.  Every input satisfies |x| <= 2^62 - 1 (checked, MpcInputError
otherwise), so |d - j| < 2^63 + 2^12 < p = 2^89 - 1 and R_tau(d) = 0 in GF(p) iff
some d - j = 0 over the integers: no false match for any difference, however
large, and no wrap-around.  Sums over at most 2^26 pairs stay below 2^88 = p/2.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from protocols.mpc import field as F
from protocols.mpc.cells import OTHER, STATUS_CELLS, CellPlan, own_sums, plan_from_reasons
from protocols.mpc.cells import class_counts as count_classes
from protocols.mpc.cells import primary_reason, reason_pairs
from protocols.mpc.errors import MpcError, MpcInputError, ParameterMismatchError
from protocols.mpc.params import (
    DIFFERENCE_KEYS,
    MAX_PAIRS,
    PARTY_NAMES,
    REASON_CODES,
    DiscrepancyResult,
    PairValues,
    ToleranceParams,
)
from protocols.mpc.reference import reasons_from_flags
from protocols.mpc.rounds import LocalNet, Net, Pending, Randomness, Round, TaggedNet, decode_integers, \
    encode_integers
from protocols.mpc.shuffle import shuffle

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = b"settlechain-mpc-discrepancy-v2"
A, B, H = 0, 1, 2
CHECKS = ("t", "d", "c", "r")
_INV3 = F.inv(3)
WINDOW = 2
"""Chunks in flight: one computes while the other waits for messages."""

# phases of the tag space (protocols.mpc.rounds.TaggedNet)
_PHASE_PAIRS, _PHASE_SHUFFLE, _PHASE_SHUFFLED = 0, 1, 2

# the columns of the aggregate shuffle: the four differences, then A's and B's charge
_SHUFFLE_KINDS = ("diff", "diff", "diff", "diff", "a", "b")
_CHARGE_A, _CHARGE_B = 4, 5


def job_digest(n_pairs: int, params: ToleranceParams, chunk_size: int) -> bytes:
    text = (f"{PROTOCOL_VERSION.decode()}|n={n_pairs}|t={params.time_tolerance_s}|"
            f"d={params.duration_tolerance_s}|c={params.charge_tolerance}|policy={params.policy}|"
            f"k={params.min_cell_pairs}|chunk={chunk_size}")
    return hashlib.sha256(text.encode()).digest()


def chunk_size_for(params: ToleranceParams, budget_elements: int = 1_500_000) -> int:
    """Pairs per chunk so that the live field elements (16 bytes each) stay within a fixed
    budget: the per-party memory does not grow with the input size."""
    per_pair = 2 * sum(2 * params.tolerance(check) + 2 for check in CHECKS) + 16
    return int(max(64, min(1 << 14, budget_elements // per_pair)))


class DiscrepancyParty:
    """One party's role in the computation over ``n_pairs`` candidate pairs.

    ``openings`` (tests): a list that receives ``(what, values)`` for every value this
    party opens, in order (A and B only)."""

    def __init__(self, net: Net, rand: Randomness, params: ToleranceParams, n_pairs: int,
                 values: PairValues | None, *, chunk_size: int | None = None,
                 openings: list | None = None) -> None:
        if not 0 <= n_pairs <= MAX_PAIRS:
            raise MpcInputError(f"n_pairs: expected 0..{MAX_PAIRS} (partition larger jobs), found {n_pairs}")
        self.net = net
        self.rand = rand
        self.pid = net.pid
        self.params = params
        self.n_pairs = n_pairs
        self.values = values
        self.chunk_size = chunk_size or chunk_size_for(params)
        self.openings = openings
        self.phase_seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def _lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phase_seconds[phase] = round(now - self._clock, 4)
        self._clock = now

    # -- small building blocks ------------------------------------------------

    def _share_owned(self, rnd: Round, owner: int, partner: int, values: np.ndarray | None,
                     shape: tuple[int, ...], label: bytes) -> Pending:
        """Degree-1 sharing of values known to ``owner``: the ``partner``'s share is the
        pairwise pseudorandom value, the remaining party's share is sent by the owner."""
        receiver = 3 - owner - partner
        count = int(np.prod(shape))
        peers = (min(owner, partner), max(owner, partner))
        if self.pid == receiver:
            return rnd.expect(owner, count, shape)
        z = self.rand.pair(peers, label, count).reshape(*shape, 2)
        if self.pid == partner:
            return Pending(value=z)
        # f(X) = v + (z - v) X / x_partner, so that f(0) = v and f(x_partner) = z
        inv_partner = F.inv(partner + 1)
        own, sent = F.affine_pair(values, z, (owner + 1) * inv_partner, (receiver + 1) * inv_partner)
        rnd.send(receiver, sent)
        return Pending(value=own)

    def _common_shares(self, values: np.ndarray | None, count: int, knowers: tuple[int, int]) -> np.ndarray:
        """Degree-1 sharing of field values known to both ``knowers``, for free: the third
        party's share is 0, f(X) = v (1 - X / x_third)."""
        third = 3 - knowers[0] - knowers[1]
        if self.pid == third:
            return F.zeros(count)
        return F.scale(values, 1 - (self.pid + 1) * F.inv(third + 1))

    async def _open_to_operators(self, shares: list[np.ndarray], label: bytes, what: str) -> list[np.ndarray] | None:
        """Open degree-2 sharings to A and B (re-randomised by a PRSS zero sharing)."""
        net = self.net
        sizes = [s.shape[0] for s in shares]
        flat = np.concatenate(shares) if shares else F.zeros(0)
        count = flat.shape[0]
        masked = F.add(flat, self.rand.zero_shares(label, count))
        rnd = Round(net, what)
        mine = {}
        if self.pid == H:
            rnd.send(A, masked)
            rnd.send(B, masked)
        else:
            other = B if self.pid == A else A
            rnd.send(other, masked)
            mine[other] = rnd.expect(other, count, (count,))
            mine[H] = rnd.expect(H, count, (count,))
        await rnd.run()
        if self.pid == H:
            return None
        points = {self.pid: masked, **{peer: rnd.get(p) for peer, p in mine.items()}}
        secret = F.add(F.add(F.scale(points[A], F.LAGRANGE_DEG2[0]), F.scale(points[B], F.LAGRANGE_DEG2[1])),
                       points[H])
        out, start = [], 0
        for size in sizes:
            out.append(secret[start:start + size])
            start += size
        if self.openings is not None:
            self.openings.append((what + getattr(net, "label", ""), [x.copy() for x in out]))
        return out

    def _zero_test_vectors(self, rnd: Round, powers_holder: int, coeff_holder: int,
                           u: np.ndarray | None, v: np.ndarray | None, tolerance: int, count: int,
                           label: bytes) -> tuple[Pending, Pending]:
        """Share the two halves of Q = s_X s_Y R_tau(u - v) (u known to the powers
        holder X, v to the coefficient holder Y)."""
        rows = 2 * tolerance + 2
        third = 3 - powers_holder - coeff_holder
        a_vec = b_vec = None
        if self.pid == powers_holder:
            a_vec = F.lagrange_basis(u, tolerance, self.rand.private(count, nonzero=True))
        if self.pid == coeff_holder:
            b_vec = F.shifted_roots_products(v, tolerance, self.rand.private(count, nonzero=True))
        # X's vector: pseudorandom share for the third party, the share of Y is sent;
        # Y's vector: pseudorandom share for the third party, the share of X is sent.
        a_share = self._share_owned(rnd, powers_holder, third, a_vec, (rows, count), label + b":a")
        b_share = self._share_owned(rnd, coeff_holder, third, b_vec, (rows, count), label + b":b")
        return a_share, b_share

    @staticmethod
    def _inner(rnd: Round, pending: tuple[Pending, Pending]) -> np.ndarray:
        return F.inner_rows(rnd.get(pending[0]), rnd.get(pending[1]))

    def _own_column(self, check: str, lo: int, hi: int) -> np.ndarray | None:
        if self.values is None:
            return None
        return F.from_int64(self.values.column(check)[lo:hi])

    async def _chunked(self, phase: int, work: Callable, n: int | None = None) -> list:
        """Run ``work(worker, chunk, lo, hi)`` over the chunks of ``n`` positions, WINDOW
        at a time, each on its own tag range; the outputs in chunk order."""
        n = self.n_pairs if n is None else n

        async def one(chunk: int, lo: int, hi: int):
            worker = copy.copy(self)
            worker.net = TaggedNet(self.net, phase, chunk)
            return await work(worker, chunk, lo, hi)

        in_flight: list[asyncio.Future] = []
        outputs = []
        try:
            for chunk, lo in enumerate(range(0, n, self.chunk_size)):
                hi = min(n, lo + self.chunk_size)
                if len(in_flight) >= WINDOW:
                    outputs.append(await in_flight.pop(0))
                in_flight.append(asyncio.ensure_future(one(chunk, lo, hi)))
            while in_flight:
                outputs.append(await in_flight.pop(0))
        finally:
            for task in in_flight:
                task.cancel()
        return outputs

    # -- the job --------------------------------------------------------------

    async def run(self) -> DiscrepancyResult | None:
        started = time.perf_counter()
        cpu_started = time.process_time()
        self._clock = started
        await self._agree()
        self._lap("agree")
        if self.params.policy == "aggregate":
            result = await self._run_aggregate()
        else:
            result = await self._run_flags()
        if self.pid == H:
            return None
        result.stats.update({
            "party": PARTY_NAMES[self.pid],
            "pairs": self.n_pairs,
            "chunk_size": self.chunk_size,
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_started,
            "bytes_sent": self.net.bytes_sent(),
            "phase_seconds": dict(self.phase_seconds),
        })
        return result

    async def _agree(self) -> None:
        """Every party sends every other the digest of its view of the job."""
        digest = job_digest(self.n_pairs, self.params, self.chunk_size)
        peers = [p for p in (A, B, H) if p != self.pid]
        got = await self.net.exchange({p: digest for p in peers}, peers, "job parameters")
        for peer, theirs in got.items():
            if theirs != digest:
                raise ParameterMismatchError(
                    f"party {PARTY_NAMES[peer]} runs a different job: expected the same number of pairs "
                    f"({self.n_pairs}), tolerances, policy ({self.params.policy}), min_cell_pairs "
                    f"({self.params.min_cell_pairs}), chunk size ({self.chunk_size}) and protocol version "
                    f"({PROTOCOL_VERSION.decode()}); the job digests differ")

    async def _exchange_sums(self, names: Sequence[str], own: dict[str, int]) -> dict[str, tuple[int, int]] | None:
        """A and B swap their own charge sums over the cells ``names`` (the disclosed ones:
        both sides derive the same list from the same counts)."""
        what = "charge sums of the disclosed cells"
        if self.pid == H:
            await self.net.exchange({}, [], what)  # keeps the untagged round sequence aligned
            return None
        other = B if self.pid == A else A
        got = await self.net.exchange({other: encode_integers([own[name] for name in names])}, [other], what)
        theirs = decode_integers(got[other], len(names), f"{what} from {PARTY_NAMES[other]}")
        if self.pid == A:
            return {name: (own[name], t) for name, t in zip(names, theirs)}
        return {name: (t, own[name]) for name, t in zip(names, theirs)}

    # -- flags and differences -------------------------------------------------

    async def _run_flags(self) -> DiscrepancyResult | None:
        outputs = await self._chunked(_PHASE_PAIRS, DiscrepancyParty._chunk_flags)
        self._lap("checks")
        if self.pid == H:
            await self._exchange_sums((), {})
            return None
        reasons = np.concatenate([o[0] for o in outputs]) if outputs else np.zeros(0, dtype=np.uint8)
        plan = plan_from_reasons(reasons, self.params.min_cell_pairs)
        sums = await self._exchange_sums(plan.wire_order, own_sums(plan, reasons, self.values.charge))
        self._lap("sums")
        differences = None
        if self.params.policy == "differences":
            differences = {key: (np.concatenate([o[1][key] for o in outputs]) if outputs
                                 else np.zeros(0, dtype=np.int64)) for key in DIFFERENCE_KEYS}
        return DiscrepancyResult(disputed=reasons != 0, reasons=reasons, differences=differences,
                                 reason_pairs=reason_pairs(reasons), cells=plan.cells(sums))

    async def _chunk_flags(self, chunk: int, lo: int, hi: int):
        count = hi - lo
        tag = f"f{chunk}".encode()
        rnd = Round(self.net, "range-check vectors")
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
                                               "opening of the start, duration and charge checks")
        ok_t = ok_d = ok_c = None
        bits = None
        disputed = None
        if self.pid != H:
            ok_t, ok_d, ok_c = (F.is_zero(x) for x in opened)
            bits = F.from_bits(ok_c)
            disputed = ~(ok_t & ok_d & ok_c)
        # round 2: ok_r where the charge is beyond tolerance; differences of disputed pairs
        mask_c = self._common_shares(bits, count, (A, B))
        items = [F.muladd(q["r"], self.rand.random_shares(tag + b":mask:r", count), mask_c)]
        if self.params.policy == "differences":
            keep = self._common_shares(None if disputed is None else F.from_bits(~disputed), count, (A, B))
            for check in CHECKS:
                diff = self._free_difference(check, lo, hi, tag + b":diff" + check.encode())
                noise = self.rand.random_shares(tag + b":mask:diff:" + check.encode(), count)
                items.append(F.muladd(diff, noise, keep))
        opened2 = await self._open_to_operators(items, tag + b":open2",
                                                "opening of the rate check and the differences")
        if self.pid == H:
            return None
        # for pairs with ok_c the opened value is random: ok_r is meaningless there
        ok_r = F.is_zero(opened2[0]) & ~ok_c
        reasons = reasons_from_flags(ok_t, ok_d, ok_c, ok_r)
        diffs = None
        if self.params.policy == "differences":
            diffs = {}
            sign = 1 if self.pid == A else -1
            for key, opened_diff in zip(DIFFERENCE_KEYS, opened2[1:]):
                signed = F.to_int64(np.where(disputed[:, None], opened_diff, np.uint64(0)),
                                    what=f"difference {key}")
                diffs[key] = (signed * sign).astype(np.int64)
        return reasons, diffs

    def _free_difference(self, check: str, lo: int, hi: int, label: bytes) -> np.ndarray:
        """Degree-2 sharing of x_A - x_B without communication: A holds (x_A + rho)/3,
        B holds (x_B + rho)/3, H holds 0 (3 s_A - 3 s_B + s_H = x_A - x_B)."""
        count = hi - lo
        if self.pid == H:
            return F.zeros(count)
        rho = self.rand.pair((A, B), label, count)
        return F.scale(F.add(self._own_column(check, lo, hi), rho), _INV3)

    # -- aggregate ------------------------------------------------------------

    async def _run_aggregate(self) -> DiscrepancyResult | None:
        n = self.n_pairs

        async def status_phase():
            # 1. status per pair, in the pair order
            started = time.perf_counter()
            out = await self._chunked(_PHASE_PAIRS, DiscrepancyParty._chunk_status)
            self.phase_seconds["status"] = round(time.perf_counter() - started, 4)
            return out

        async def shuffled_phase():
            # 2. one shuffle of all pairs
            started = time.perf_counter()
            columns = None
            if self.pid != H:
                columns = [self.values.column(check) for check in CHECKS] + [self.values.charge] * 2
            self._held = await shuffle(lambda block: TaggedNet(self.net, _PHASE_SHUFFLE, block), self.rand,
                                       self.pid, n, b"shuffle", _SHUFFLE_KINDS,
                                       columns if self.pid == A else None, columns if self.pid == B else None)
            self.phase_seconds["shuffle"] = round(time.perf_counter() - started, 4)
            # 3. zero tests over the shuffled order; class sums as shares
            started = time.perf_counter()
            out = await self._chunked(_PHASE_SHUFFLED, DiscrepancyParty._chunk_shuffled)
            self.phase_seconds["shuffled checks"] = round(time.perf_counter() - started, 4)
            return out

        # the status and the shuffle are independent: they run side by side (own tag ranges)
        tasks = [asyncio.ensure_future(status_phase()), asyncio.ensure_future(shuffled_phase())]
        try:
            status, outputs = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        self._lap("status, shuffle and shuffled checks")
        # 4. decide, open the allowed class sums once, swap the status sums
        plan = None
        shares = F.zeros(2 * (len(REASON_CODES) + 1))
        disputed = None
        if self.pid != H:
            disputed = np.concatenate(status) if status else np.zeros(0, dtype=bool)
            shuffled_reasons = (np.concatenate([o[0] for o in outputs]) if outputs
                                else np.zeros(0, dtype=np.uint8))
            if int((shuffled_reasons != 0).sum()) != int(disputed.sum()):
                raise MpcError(
                    f"party {PARTY_NAMES[self.pid]}: the shuffled checks find {int((shuffled_reasons != 0).sum())} "
                    f"disputed pairs, the status {int(disputed.sum())}; the parties computed different things")
            plan = CellPlan.from_counts(n - int(disputed.sum()), int(disputed.sum()),
                                        count_classes(shuffled_reasons), self.params.min_cell_pairs)
            class_shares = F.zeros(len(REASON_CODES), 2)
            for o in outputs:
                class_shares = F.add(class_shares, o[1])
            shares = self._cell_shares(plan, class_shares)
        opened = await self._open_to_operators([shares], b"cells", "opening of the class charge sums")
        status_names = [name for name in STATUS_CELLS if plan is None or name in plan.disclosed]
        own = {}
        if self.pid != H:
            charge = self.values.charge.astype(object)
            own = {"matched_tolerance": int(charge[~disputed].sum()) if (~disputed).any() else 0,
                   "disputed": int(charge[disputed].sum()) if disputed.any() else 0,
                   "candidates": int(charge.sum()) if n else 0}
        sums = await self._exchange_sums(status_names if self.pid != H else (), own)
        self._lap("sums")
        if self.pid == H:
            return None
        values = [F.to_signed_int(x) for x in opened[0]]
        for slot, name in enumerate((*REASON_CODES, OTHER)):
            if name in plan.disclosed:
                sums[name] = (values[2 * slot], values[2 * slot + 1])
        return DiscrepancyResult(disputed=disputed, reasons=None, differences=None,
                                 reason_pairs=reason_pairs(shuffled_reasons), cells=plan.cells(sums))

    @staticmethod
    def _cell_shares(plan: CellPlan, class_shares: np.ndarray) -> np.ndarray:
        """This operator's shares of (sum A, sum B) for every class given on its own and for
        ``other`` (the sum of the merged classes' shares), 0 for everything withheld; the
        layout is fixed: 5 classes and ``other``, two values each, as a (12, 2) array."""
        out = F.zeros(len(REASON_CODES) + 1, 2)
        for slot, code in enumerate(REASON_CODES):
            if code in plan.disclosed:
                out[slot] = class_shares[slot]
            elif code in plan.in_other:
                out[len(REASON_CODES)] = F.add(out[len(REASON_CODES)], class_shares[slot])
        return out.reshape(-1, 2)

    async def _chunk_status(self, chunk: int, lo: int, hi: int):
        """Status per pair: Q_t + Q_d + Q_c = 0 iff all three values are within tolerance."""
        count = hi - lo
        tag = f"s{chunk}".encode()
        rnd = Round(self.net, "status range-check vectors")
        pending = {}
        for check in ("t", "d", "c"):
            own = self._own_column(check, lo, hi)
            pending[check] = self._zero_test_vectors(
                rnd, A, B, own if self.pid == A else None, own if self.pid == B else None,
                self.params.tolerance(check), count, tag + b":zt:" + check.encode())
        await rnd.run()
        q = self._inner(rnd, pending["t"])
        for check in ("d", "c"):
            q = F.add(q, self._inner(rnd, pending[check]))
        opened = await self._open_to_operators([q], tag + b":status", "opening of the status")
        if self.pid == H:
            return None
        return ~F.is_zero(opened[0])

    async def _chunk_shuffled(self, chunk: int, lo: int, hi: int):
        """Zero tests over positions lo..hi of the shuffled order (B: powers, H: coefficients),
        the reasons of these positions (A, B) and this party's shares of every class's sums."""
        count = hi - lo
        tag = f"x{chunk}".encode()
        held = self._held
        rnd = Round(self.net, "shuffled range-check vectors and charges")
        pending = {}
        for index, check in enumerate(CHECKS):
            # d = beta + eta = u - v with u = beta (B's) and v = -eta (H's)
            u = held[index][lo:hi] if self.pid == B else None
            v = F.neg(held[index][lo:hi]) if self.pid == H else None
            pending[check] = self._zero_test_vectors(rnd, B, H, u, v, self.params.tolerance(check), count,
                                                     tag + b":zt:" + check.encode())
        # H's parts of the two charges, shared: A's share pseudorandom (A-H key), B's sent
        charges = [self._share_owned(rnd, H, A, held[col][lo:hi] if self.pid == H else None, (count,),
                                     tag + b":eta:" + str(col).encode()) for col in (_CHARGE_A, _CHARGE_B)]
        await rnd.run()
        q = {check: self._inner(rnd, pending[check]) for check in CHECKS}
        eta_shares = [rnd.get(p) for p in charges]
        del pending, rnd
        opened = await self._open_to_operators([q["t"], q["d"], q["c"]], tag + b":open1",
                                               "opening of the shuffled start, duration and charge checks")
        ok_t = ok_d = ok_c = bits = None
        if self.pid != H:
            ok_t, ok_d, ok_c = (F.is_zero(x) for x in opened)
            bits = F.from_bits(ok_c)
        mask_c = self._common_shares(bits, count, (A, B))
        opened = await self._open_to_operators(
            [F.muladd(q["r"], self.rand.random_shares(tag + b":mask:r", count), mask_c)], tag + b":open2",
            "opening of the shuffled rate check")
        if self.pid == H:
            return None
        ok_r = F.is_zero(opened[0]) & ~ok_c
        reasons = reasons_from_flags(ok_t, ok_d, ok_c, ok_r)
        primary = primary_reason(reasons)
        # share of sum over the class of (beta + eta): the indicator is known to A and B
        # (degree-1 sharing with H's share 0: A's share ind 2/3, B's ind/3); H's eta is
        # degree-1 shared; B adds its beta sum divided by the Lagrange coefficient -3.
        factor = 1 - (self.pid + 1) * _INV3
        class_shares = F.zeros(len(REASON_CODES), 2)
        for slot in range(len(REASON_CODES)):
            members = primary == slot
            if not members.any():
                continue
            for side, col in enumerate((_CHARGE_A, _CHARGE_B)):
                share = F.scale(F.total(eta_shares[side][members]), factor)
                if self.pid == B:
                    share = F.add(share, F.scale(F.total(held[col][lo:hi][members]), F.inv(F.LAGRANGE_DEG2[1])))
                class_shares[slot, side] = share
        return reasons, class_shares


async def run_local(params: ToleranceParams, values_a: PairValues, values_b: PairValues,
                    rands: Sequence[Randomness], *, chunk_size: int | None = None,
                    log: list | None = None, openings: Sequence[list] | None = None) -> list[DiscrepancyResult | None]:
    """All three roles in one event loop (tests).  ``openings``: three lists that receive
    what each party opened."""
    nets = LocalNet.mesh(log)
    n = len(values_a)
    parties = [DiscrepancyParty(nets[pid], rands[pid], params, n, values, chunk_size=chunk_size,
                                openings=None if openings is None else openings[pid])
               for pid, values in ((A, values_a), (B, values_b), (H, None))]
    return list(await asyncio.gather(*(p.run() for p in parties)))


__all__ = ["DiscrepancyParty", "PROTOCOL_VERSION", "chunk_size_for", "job_digest", "run_local"]
