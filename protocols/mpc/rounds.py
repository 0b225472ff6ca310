"""Message rounds among the three parties, independent of the transport.

- :class:`Net`: the message layer the protocol talks to (MPyC's connections in
  production, protocols.mpc.runtime.SessionNet; :class:`LocalNet` in tests);
- :class:`Randomness`: pairwise pseudorandomness, PRSS shares, private randomness
  (protocols.mpc.runtime.PseudorandomSource);
- :class:`TaggedNet`: the rounds of one chunk (or shuffle block) in their own tag range,
  so that several chunks can be in flight and still pair up on every party;
- :class:`Round`: what one party sends and expects in one round, as field arrays
  (protocols.mpc.field) encoded with the fixed-width codec.

A round's ``what`` names the kind of message; the chunk number is appended as
`` (chunk N)`` so that a transcript can be grouped by kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from protocols.mpc import field as F
from protocols.mpc.errors import MalformedMessageError, PeerLostError
from protocols.mpc.params import PARTY_NAMES

ROUNDS_PER_SLOT = 1024
SLOTS_PER_PHASE = 1 << 27
"""A phase (status chunks, shuffle blocks, shuffled chunks, ...) has at most 2^27 slots of
1024 rounds each: with at most 2^26 pairs (params.MAX_PAIRS) every chunk fits, and
every tag stays below 2^40 (runtime.MpcSession.exchange)."""


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


class TaggedNet:
    """The rounds of one slot (a chunk of one phase) in their own tag range."""

    def __init__(self, base: Net, phase: int, slot: int) -> None:
        if not 0 <= slot < SLOTS_PER_PHASE:
            raise ValueError(f"slot {slot} out of range")
        self.base = base
        self.pid = base.pid
        self.first = (phase * SLOTS_PER_PHASE + slot + 1) * ROUNDS_PER_SLOT
        self.label = f" (chunk {slot})"
        self.step = 0

    async def exchange(self, sends, receive_from, what, tag=None):
        self.step += 1
        if self.step >= ROUNDS_PER_SLOT:
            raise RuntimeError("too many rounds in one chunk")
        return await self.base.exchange(sends, receive_from, what + self.label, tag=self.first + self.step)

    def bytes_sent(self) -> int:
        return self.base.bytes_sent()


class Pending:
    """A value this party will have after a round: its own (``value``) or one expected
    from ``peer`` (slot ``slot`` of that peer's message, reshaped to ``shape``)."""

    __slots__ = ("value", "peer", "slot", "shape")

    def __init__(self, value=None, peer=None, slot=None, shape=None):
        self.value, self.peer, self.slot, self.shape = value, peer, slot, shape


class Round:
    """Collects what this party sends and expects in one message round."""

    def __init__(self, net: Net, what: str) -> None:
        self.net = net
        self.what = what
        self.out: dict[int, list[np.ndarray]] = {}
        self.sizes: dict[int, list[int]] = {}
        self.received: dict[int, list[np.ndarray]] = {}

    def send(self, peer: int, values: np.ndarray) -> None:
        self.out.setdefault(peer, []).append(np.asarray(values, dtype=np.uint64).reshape(-1, 2))

    def expect(self, peer: int, count: int, shape: tuple[int, ...]) -> Pending:
        sizes = self.sizes.setdefault(peer, [])
        sizes.append(count)
        return Pending(peer=peer, slot=len(sizes) - 1, shape=shape)

    async def run(self) -> None:
        sends = {peer: F.encode(np.concatenate(parts)) for peer, parts in self.out.items()}
        got = await self.net.exchange(sends, sorted(self.sizes), self.what)
        for peer, sizes in self.sizes.items():
            values = F.decode(got[peer], sum(sizes), what=f"{self.what} from {PARTY_NAMES[peer]}")
            parts, start = [], 0
            for size in sizes:
                parts.append(values[start:start + size])
                start += size
            self.received[peer] = parts

    def get(self, pending: Pending) -> np.ndarray:
        if pending.slot is None:
            return pending.value
        return self.received[pending.peer][pending.slot].reshape(*pending.shape, 2)


def decode_integers(payload: bytes, count: int, what: str) -> list[int]:
    """A message of ``count`` ASCII decimal integers separated by commas."""
    try:
        text = payload.decode("ascii")
        values = [int(x) for x in text.split(",")] if text else []
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedMessageError(f"{what}: expected decimal integers, {exc}") from exc
    if len(values) != count:
        raise MalformedMessageError(f"{what}: expected {count} integers, found {len(values)}")
    return values


def encode_integers(values: Sequence[int]) -> bytes:
    return ",".join(str(int(v)) for v in values).encode("ascii")


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
        return [cls(hub, pid, log) for pid in (0, 1, 2)]

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
                out[peer] = await asyncio.wait_for(self._queue(peer, self.pid, tag).get(), 60)
            except TimeoutError as exc:
                raise PeerLostError(f"{what}: no message from {PARTY_NAMES[peer]}") from exc
        return out

    def bytes_sent(self) -> int:
        return self.sent
