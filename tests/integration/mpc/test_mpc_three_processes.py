"""Three OS processes (A, B, H) on loopback, MPyC runtime, real sockets (and mutual TLS)."""

from __future__ import annotations

import multiprocessing
import pickle
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from mpc_party_process import make_tls_material, party_main

from protocols.mpc import field as F
from protocols.mpc.cli import generate_pairs
from protocols.mpc.params import MpcTls, PairValues, ToleranceParams
from protocols.mpc.reference import plaintext_discrepancy

PORT_RANGE = range(17330, 17400)
NAMES = ("a.operators.test", "b.operators.test", "h.helpers.test")


def free_ports(count: int = 3) -> list[int]:
    ports = []
    for port in PORT_RANGE:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free port in 17330-17399")


def start_parties(tmp_path: Path, params, n, a, b, *, timeout_s=20.0, tls=(None, None, None), options=None):
    ctx = multiprocessing.get_context("spawn")
    addresses = [f"127.0.0.1:{p}" for p in free_ports()]
    procs = []
    for index, values in enumerate((a, b, None)):
        out = tmp_path / f"party{index}.pickle"
        opts = (options or {}).get(index)
        proc = ctx.Process(target=party_main, args=(index, addresses, params, n, values, timeout_s, tls[index],
                                                    str(out), opts))
        proc.start()
        procs.append((proc, out))
    return procs


def collect(procs, limit_s=120.0):
    outcomes = []
    deadline = time.monotonic() + limit_s
    for proc, out in procs:
        proc.join(max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
            outcomes.append({"ok": False, "type": "still running", "message": "did not exit"})
            continue
        outcomes.append(pickle.loads(out.read_bytes()) if out.exists() else
                        {"ok": False, "type": "no output", "message": f"exit code {proc.exitcode}"})
    return outcomes


def check_equal(params, a, b, outcomes) -> None:
    assert all(o["ok"] for o in outcomes), [o.get("traceback", o) for o in outcomes if not o["ok"]]
    expected = plaintext_discrepancy(a, b, params)
    ra, rb, rh = (o["result"] for o in outcomes)
    assert rh is None
    for result in (ra, rb):
        assert np.array_equal(result.disputed, expected.disputed)
        assert result.reason_pairs == expected.reason_pairs
        assert result.cells == expected.cells
        if expected.reasons is not None:
            assert np.array_equal(result.reasons, expected.reasons)
    if expected.differences is not None:
        for key, diff in expected.differences.items():
            assert np.array_equal(ra.differences[key], diff) and np.array_equal(rb.differences[key], -diff)
    # the protocol never unpickles peer data (MPyC's array paths would)
    assert [o["pickle_loads_calls"] for o in outcomes] == [0, 0, 0]


@pytest.mark.parametrize("policy,n", [("flags", 10_000), ("differences", 1_500), ("aggregate", 1_500)])
def test_three_processes_equal_plaintext(tmp_path, policy, n) -> None:
    params = ToleranceParams(5, 2, 2, policy)
    a, b = generate_pairs(n, seed=5)
    options = {i: {"chunk_size": 600} for i in range(3)} if n < 5000 else None
    check_equal(params, a, b, collect(start_parties(tmp_path, params, n, a, b, options=options)))


def tls_for(directory: Path, material, ca_path) -> tuple:
    return tuple(MpcTls(ca_path, cert, key, NAMES) for cert, key in material)


def test_mutual_tls_run(tmp_path) -> None:
    ca, material = make_tls_material(tmp_path / "pki", NAMES)
    params = ToleranceParams(3, 1, 1, "differences")
    a, b = generate_pairs(400, seed=8)
    outcomes = collect(start_parties(tmp_path, params, 400, a, b, tls=tls_for(tmp_path, material, ca)))
    check_equal(params, a, b, outcomes)


def test_peer_not_issued_by_the_consortium_ca_is_refused(tmp_path) -> None:
    ca, material = make_tls_material(tmp_path / "pki", NAMES)
    rogue_ca, rogue = make_tls_material(tmp_path / "rogue", NAMES, ca_name="rogue CA")
    tls = list(tls_for(tmp_path, material, ca))
    tls[0] = MpcTls(rogue_ca, rogue[0][0], rogue[0][1], NAMES)  # "A" with a certificate of another CA
    params = ToleranceParams(3, 1, 1, "flags")
    a, b = generate_pairs(50, seed=9)
    started = time.monotonic()
    outcomes = collect(start_parties(tmp_path, params, 50, a, b, timeout_s=4.0, tls=tuple(tls)), limit_s=60)
    elapsed = time.monotonic() - started
    assert not any(o["ok"] for o in outcomes)
    assert all(o.get("protocol_error") for o in outcomes), outcomes
    assert outcomes[0]["type"] == "PeerAuthenticationError"  # the rogue does not trust the consortium either
    # B and H wait for A in vain; whichever gives up first drops its link to the other
    assert {outcomes[1]["type"], outcomes[2]["type"]} <= {"PeerTimeoutError", "PeerAuthenticationError",
                                                          "PeerLostError"}
    assert any("did not connect" in o["message"] for o in outcomes[1:]), outcomes
    assert elapsed < 40


def test_consortium_member_claiming_another_identity_is_refused(tmp_path) -> None:
    ca, material = make_tls_material(tmp_path / "pki", NAMES)
    tls = list(tls_for(tmp_path, material, ca))
    tls[0] = MpcTls(ca, material[2][0], material[2][1], NAMES)  # H's certificate used by the party claiming A
    params = ToleranceParams(3, 1, 1, "flags")
    a, b = generate_pairs(50, seed=9)
    outcomes = collect(start_parties(tmp_path, params, 50, a, b, timeout_s=4.0, tls=tuple(tls)), limit_s=60)
    assert not any(o["ok"] for o in outcomes)
    assert all(o.get("protocol_error") for o in outcomes), outcomes
    refusals = [o for o in outcomes[1:] if o["type"] == "PeerAuthenticationError"]
    assert refusals and "expected a.operators.test" in refusals[0]["message"], outcomes


@pytest.mark.parametrize("victim", [1, 2])
def test_party_killed_mid_computation(tmp_path, victim) -> None:
    params = ToleranceParams(5, 2, 2, "flags")
    n = 400_000
    a, b = generate_pairs(n, seed=3)
    timeout_s = 8.0
    marker = tmp_path / "chunk-10-reached"
    options = {i: {"chunk_size": 2000} for i in range(3)}
    options[victim]["progress_marker"] = (str(marker), "(chunk 10)")
    procs = start_parties(tmp_path, params, n, a, b, timeout_s=timeout_s, options=options)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:  # spawned, connected, computing
        time.sleep(0.02)
    assert marker.exists(), "the victim never reached chunk 10"
    assert all(proc.is_alive() for proc, _ in procs)
    procs[victim][0].kill()
    killed_at = time.monotonic()
    survivors = [procs[i] for i in range(3) if i != victim]
    outcomes = collect(survivors, limit_s=timeout_s + 10)
    elapsed = time.monotonic() - killed_at
    procs[victim][0].join()
    assert elapsed < timeout_s + 5
    for outcome in outcomes:
        assert not outcome["ok"]
        assert outcome["protocol_error"], outcome
        assert outcome["type"] in ("PeerLostError", "PeerTimeoutError"), outcome
        assert any(text in outcome["message"] for text in ("lost", "no message", "did not connect"))


def test_oversized_frame_ends_the_job_on_every_party(tmp_path) -> None:
    """B announces a frame larger than MAX_MESSAGE_BYTES to A, the header split across two
    writes right after another frame: A refuses it before buffering, names B, and drops
    its connections; B and H stop with a protocol error instead of waiting."""
    params = ToleranceParams(5, 2, 2, "flags")
    a, b = generate_pairs(200, seed=2)
    timeout_s = 10.0
    started = time.monotonic()
    outcomes = collect(start_parties(tmp_path, params, 200, a, b, timeout_s=timeout_s,
                                     options={1: {"oversized_frame_to": 0}}), limit_s=60)
    elapsed = time.monotonic() - started
    assert not any(o["ok"] for o in outcomes), outcomes
    assert all(o.get("protocol_error") for o in outcomes), outcomes
    assert outcomes[0]["type"] == "MalformedMessageError", outcomes[0]
    assert "party B announced a message of" in outcomes[0]["message"]
    assert "more than the limit" in outcomes[0]["message"]
    for outcome in outcomes[1:]:
        assert outcome["type"] in ("PeerLostError", "PeerTimeoutError"), outcome
    assert elapsed < 45


def test_canary_helper_process_receives_no_operator_value(tmp_path) -> None:
    """H's process records every byte it receives (after TLS); planted values and their
    encodings never occur in it, and H's output is None."""
    params = ToleranceParams(5, 2, 2, "differences")
    n = 500
    rng = np.random.default_rng(4)
    planted = [0x5EC7E7C4A9A1 + i * 0x1000003 for i in range(n)]
    a = PairValues(np.array(planted), rng.integers(1, 3600, n), np.array(planted) // 7, np.array(planted) // 9)
    b = PairValues(a.start + rng.integers(-9, 10, n), a.duration_s + rng.integers(-4, 5, n),
                   a.charge + rng.integers(-4, 5, n), a.rated_charge + rng.integers(-4, 5, n))
    ca, material = make_tls_material(tmp_path / "pki", NAMES)
    record = tmp_path / "h-received.bin"
    outcomes = collect(start_parties(tmp_path, params, n, a, b, tls=tls_for(tmp_path, material, ca),
                                     options={2: {"record_received": str(record)}}))
    check_equal(params, a, b, outcomes)
    received = record.read_bytes()
    assert len(received) > 0
    values = set(planted) | set(int(x) for x in b.start) | set(int(x) for x in a.charge) | set(
        int(x) for x in b.rated_charge)
    for value in values:
        for encoding in (value.to_bytes(8, "little"), value.to_bytes(8, "big"), str(value).encode(),
                         F.encode(F.from_ints([value]))):
            assert encoding not in received
