"""A simulated WAN link for the benchmarks: a shaping TCP relay on loopback.

Operators run their parties in different clouds; the benchmarks put every party-to-party
connection through this relay to measure a slow or distant link on one machine.  (The
kernel's ``tc`` token-bucket shaping works here, but ``netem`` delay does not; a relay in
user space needs no privileges and behaves the same everywhere.)

Model of one link between two parties: each direction is a FIFO transmitter of ``rate``
bits per second followed by a one-way propagation delay of ``rtt / 2``.  A chunk read from
the sending side at time t starts transmitting at max(t, the end of the previous chunk's
transmission in that direction), occupies the transmitter for size / rate seconds (a
token bucket one chunk deep: at most ``rate`` bits per second, no bursts), and is written
to the receiving side rtt / 2 after its transmission ends.  All connections between the
same two parties share the link's two directions (gRPC uses one TCP connection; brpc, in
SecretFlow, one per direction), so two connections do not get twice the bandwidth.  The
relay buffers at most max(256 KiB, 2 x the bandwidth-delay product) per connection and
direction; beyond that it stops reading, and TCP flow control holds the sender back, as a
router's finite queue would.

Link classes (``LINKS``): ``lan`` (no relay: direct loopback), ``1g10ms`` (1 Gbit/s,
10 ms RTT), ``100m30ms`` (100 Mbit/s, 30 ms RTT).

Use as a library (``Relay``, ``Link``) or as a process::

    python bench/wan.py relay --link 100m30ms --route 127.0.0.1:18001=127.0.0.1:17261:ab \\
        [--route ...] [--ready-file F] [--stats-json S]

Each ``--route LISTEN=TARGET:DIR`` forwards connections made to LISTEN on to TARGET;
DIR says which link direction carries the data of the dialling side: ``ab`` (from party
a to party b) or ``ba``.  Routes with the same ``--pair`` name share one link (default:
all routes of the process share one).  The process runs until SIGTERM/SIGINT and then
writes the bytes carried in each direction to ``--stats-json``.

Fidelity (``python bench/wan.py check --link 100m30ms``): measures the ping-pong round
trip of one byte and the time of a bulk transfer through the relay against the model;
bench/RESULTS-psi.md records the figures.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CHUNK = 64 * 1024
CONNECT_WAIT_S = 60.0


@dataclass(frozen=True)
class LinkClass:
    name: str
    rate_bps: float | None   #: bits per second (None: no relay)
    rtt_s: float

    @property
    def direct(self) -> bool:
        return self.rate_bps is None


LINKS = {
    "lan": LinkClass("lan", None, 0.0),
    "1g10ms": LinkClass("1g10ms", 1e9, 0.010),
    "100m30ms": LinkClass("100m30ms", 100e6, 0.030),
}


def link_class(name: str) -> LinkClass:
    try:
        return LINKS[name]
    except KeyError:
        raise ValueError(f"link class: expected one of {', '.join(LINKS)}, found {name!r}") from None


class _Direction:
    """One direction of a link: a transmitter shared by every connection using it."""

    def __init__(self, rate_bps: float, delay_s: float) -> None:
        self.rate_bps = rate_bps
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._free_at = 0.0
        self.bytes = 0

    def schedule(self, size: int, now: float) -> float:
        """Delivery time of a chunk of ``size`` bytes that reached the transmitter at ``now``."""
        with self._lock:
            start = max(now, self._free_at)
            self._free_at = start + size * 8.0 / self.rate_bps
            self.bytes += size
            return self._free_at + self.delay_s


class Link:
    """A link between parties a and b: a rate and a round-trip time, two directions."""

    def __init__(self, rate_bps: float, rtt_s: float) -> None:
        if not rate_bps > 0 or rtt_s < 0:
            raise ValueError(f"link: expected rate > 0 and rtt >= 0, found {rate_bps} and {rtt_s}")
        self.rate_bps = rate_bps
        self.rtt_s = rtt_s
        self.ab = _Direction(rate_bps, rtt_s / 2)
        self.ba = _Direction(rate_bps, rtt_s / 2)
        self.buffer_bytes = max(256 * 1024, int(2 * rate_bps / 8 * rtt_s))

    @classmethod
    def of(cls, kind: LinkClass) -> Link:
        if kind.direct:
            raise ValueError(f"link class {kind.name} is direct: no relay")
        return cls(kind.rate_bps, kind.rtt_s)


class _Pipe:
    """One direction of one connection: a reader thread stamps chunks, a writer delivers them."""

    def __init__(self, src: socket.socket, dst: socket.socket, direction: _Direction,
                 capacity: int, on_close) -> None:
        self.src, self.dst, self.direction = src, dst, direction
        self.capacity = capacity
        self._queue: collections.deque = collections.deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._on_close = on_close
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.reader.start()
        self.writer.start()

    def _read(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._queued >= self.capacity:
                        self._cond.wait()
                data = self.src.recv(CHUNK)
                if not data:
                    break
                deliver_at = self.direction.schedule(len(data), time.monotonic())
                with self._cond:
                    self._queue.append((deliver_at, data))
                    self._queued += len(data)
                    self._cond.notify_all()
        except OSError:
            pass
        with self._cond:
            self._queue.append((None, None))
            self._cond.notify_all()

    def _write(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue:
                        self._cond.wait()
                    deliver_at, data = self._queue.popleft()
                if data is None:
                    self.dst.shutdown(socket.SHUT_WR)
                    return
                wait = deliver_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.dst.sendall(data)
                with self._cond:
                    self._queued -= len(data)
                    self._cond.notify_all()
        except OSError:
            self._on_close()


class Relay:
    """Forwards every TCP connection made to ``listen`` on to ``target`` over ``link``.

    ``upstream`` is the link direction ("ab" or "ba") of the data the dialling side sends.
    """

    def __init__(self, listen: str, target: str, link: Link, upstream: str = "ab") -> None:
        if upstream not in ("ab", "ba"):
            raise ValueError(f"upstream: expected 'ab' or 'ba', found {upstream!r}")
        host, port = listen.rsplit(":", 1)
        thost, tport = target.rsplit(":", 1)
        self.target = (thost, int(tport))
        self.link = link
        self.up = link.ab if upstream == "ab" else link.ba
        self.down = link.ba if upstream == "ab" else link.ab
        self._listener = socket.create_server((host, int(port)))
        self.address = f"{host}:{self._listener.getsockname()[1]}"
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                incoming, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connect, args=(incoming,), daemon=True).start()

    def _connect(self, incoming: socket.socket) -> None:
        """Dial the target for an accepted connection, retrying while it does not listen yet
        (the parties start together; a dialler that got through to the relay must not see its
        connection dropped), for at most CONNECT_WAIT_S."""
        end = time.monotonic() + CONNECT_WAIT_S
        while True:
            try:
                outgoing = socket.create_connection(self.target, timeout=5)
                break
            except OSError:
                if self._stop.is_set() or time.monotonic() > end:
                    incoming.close()
                    return
                time.sleep(0.02)
        for sock in (incoming, outgoing):
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sockets += [incoming, outgoing]

        def close(pair=(incoming, outgoing)):
            for sock in pair:
                try:
                    sock.close()
                except OSError:
                    pass

        _Pipe(incoming, outgoing, self.up, self.link.buffer_bytes, close)
        _Pipe(outgoing, incoming, self.down, self.link.buffer_bytes, close)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass


# -- fidelity check -----------------------------------------------------------------------

def _serve_once(handler) -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def run():
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            handler(conn)

    threading.Thread(target=run, daemon=True).start()
    return server, server.getsockname()[1]


def _echo(conn: socket.socket) -> None:
    while data := conn.recv(CHUNK):
        conn.sendall(data)


def _sink(conn: socket.socket) -> None:
    """Read an 8-byte length, then that many bytes; answer one byte."""
    header = b""
    while len(header) < 8:
        header += conn.recv(8 - len(header))
    size, total = int.from_bytes(header, "little"), 0
    while total < size:
        total += len(conn.recv(min(1 << 20, size - total)))
    conn.sendall(b"!")


def _dial(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    conn = socket.create_connection((host, int(port)))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def check(kind: LinkClass, bulk_bytes: int, pings: int = 20) -> dict:
    """Measure relayed connections against the model: the median round trip of one byte
    (ping-pong), and the time from the start of a bulk upload to its one-byte
    acknowledgement (model: size / rate + RTT)."""
    link = Link.of(kind)
    echo, echo_port = _serve_once(_echo)
    sink, sink_port = _serve_once(_sink)
    relays = [Relay("127.0.0.1:0", f"127.0.0.1:{echo_port}", link),
              Relay("127.0.0.1:0", f"127.0.0.1:{sink_port}", link)]
    try:
        conn = _dial(relays[0].address)
        rtts = []
        for _ in range(pings):
            t = time.perf_counter()
            conn.sendall(b"x")
            if conn.recv(1) != b"x":
                raise RuntimeError("echo: expected the byte back")
            rtts.append(time.perf_counter() - t)
        conn.close()
        conn = _dial(relays[1].address)
        payload = bytes(1 << 20)
        t = time.perf_counter()
        conn.sendall(bulk_bytes.to_bytes(8, "little"))
        sent = 0
        while sent < bulk_bytes:
            n = min(len(payload), bulk_bytes - sent)
            conn.sendall(payload[:n])
            sent += n
        if conn.recv(1) != b"!":
            raise RuntimeError("sink: expected the acknowledgement")
        bulk = time.perf_counter() - t
        conn.close()
    finally:
        for relay in relays:
            relay.close()
        echo.close()
        sink.close()
    rtts.sort()
    expected_bulk = (bulk_bytes + 8) * 8 / kind.rate_bps + kind.rtt_s
    return {"link": kind.name, "rate_mbit_s": kind.rate_bps / 1e6, "rtt_ms": kind.rtt_s * 1e3,
            "ping_rtt_ms_median": 1e3 * rtts[len(rtts) // 2], "ping_rtt_ms_min": 1e3 * rtts[0],
            "bulk_bytes": bulk_bytes, "bulk_s": bulk, "bulk_s_model": expected_bulk,
            "bulk_mbit_s": bulk_bytes * 8 / bulk / 1e6, "bulk_ratio_to_model": bulk / expected_bulk}


# -- process ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    relay = sub.add_parser("relay", help="run relays until SIGTERM")
    relay.add_argument("--link", required=True, help=f"one of {', '.join(k for k in LINKS if k != 'lan')}")
    relay.add_argument("--route", action="append", required=True,
                       help="LISTEN=TARGET:DIR[@PAIR] (DIR ab or ba; routes of one PAIR share a link)")
    relay.add_argument("--ready-file", type=Path, help="written (listen addresses) once listening")
    relay.add_argument("--stats-json", type=Path, help="bytes per link direction, written at exit")
    chk = sub.add_parser("check", help="measure the relay's fidelity against its model")
    chk.add_argument("--link", required=True)
    chk.add_argument("--bulk-mib", type=float, default=32)
    args = parser.parse_args(argv)
    try:
        kind = link_class(args.link)
    except ValueError as exc:
        print(f"wan: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(json.dumps(check(kind, int(args.bulk_mib * 2**20)), indent=2))
        return 0
    links: dict[str, Link] = {}
    relays = []
    for spec in args.route:
        try:
            route, _, pair = spec.partition("@")
            listen, rest = route.split("=", 1)
            target, direction = rest.rsplit(":", 1)
            link = links.setdefault(pair or "default", Link.of(kind))
            relays.append(Relay(listen, target, link, direction))
        except ValueError as exc:
            print(f"wan: --route {spec!r}: expected LISTEN=HOST:PORT:ab|ba[@PAIR] ({exc})", file=sys.stderr)
            return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.ready_file:
        args.ready_file.write_text("\n".join(r.address for r in relays) + "\n")
    stop.wait()
    for r in relays:
        r.close()
    if args.stats_json:
        args.stats_json.write_text(json.dumps(
            {pair: {"ab_bytes": link.ab.bytes, "ba_bytes": link.ba.bytes} for pair, link in links.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
