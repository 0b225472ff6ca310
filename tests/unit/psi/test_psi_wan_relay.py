"""The benchmarks' simulated WAN link (bench/wan.py) behaves as its model says."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import wan  # noqa: E402


def test_ping_and_bulk_follow_the_model() -> None:
    kind = wan.LinkClass("test", 40e6, 0.020)
    result = wan.check(kind, bulk_bytes=2 * 2**20, pings=8)
    # never faster than the model (the relay enforces it); slower only by scheduling noise
    assert 20.0 <= result["ping_rtt_ms_median"] < 35.0, result
    assert 0.98 <= result["bulk_ratio_to_model"] < 1.3, result


def _sink(server: socket.socket, size: int, done: list) -> None:
    conn, _ = server.accept()
    total = 0
    while total < size:
        total += len(conn.recv(1 << 20))
    done.append(time.perf_counter())
    conn.close()


def test_connections_of_one_link_share_its_bandwidth() -> None:
    """Two uploads at once over one link take as long as one upload of both: no 2x bandwidth."""
    link = wan.Link(20e6, 0.010)
    size = 1 << 20
    servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    relays = [wan.Relay("127.0.0.1:0", f"127.0.0.1:{s.getsockname()[1]}", link) for s in servers]
    done: list[float] = []
    threads = [threading.Thread(target=_sink, args=(s, size, done)) for s in servers]
    for t in threads:
        t.start()
    try:
        start = time.perf_counter()
        conns = [wan._dial(r.address) for r in relays]
        senders = [threading.Thread(target=c.sendall, args=(bytes(size),)) for c in conns]
        for t in senders:
            t.start()
        for t in senders + threads:
            t.join(30)
        elapsed = max(done) - start
    finally:
        for r in relays:
            r.close()
        for s in servers:
            s.close()
    model = 2 * size * 8 / 20e6 + 0.005
    assert model * 0.98 <= elapsed < model * 1.4, (elapsed, model)
    assert link.ab.bytes == 2 * size and link.ba.bytes == 0


def test_unknown_link_class_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one of lan, 1g10ms, 100m30ms"):
        wan.link_class("10g")
    assert wan.main(["relay", "--link", "dsl", "--route", "127.0.0.1:0=127.0.0.1:1:ab"]) == 2
