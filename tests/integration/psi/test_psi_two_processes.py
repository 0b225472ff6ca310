"""Two real processes (``settlechain psi serve`` / ``psi connect``) over loopback gRPC with mutual TLS."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "psi"))
from psi_pki import write_pki  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
COLUMNS = "service,calling,called,start_time,duration_s,charge"


def _cli() -> list[str]:
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


def _records(rng, n, prefix):
    return pl.DataFrame({
        "record_id": [f"{prefix}{i}" for i in range(n)],
        "service": rng.choice(["voice", "sms", "data"], n).tolist(),
        "calling": [f"+86{x}" for x in rng.integers(13_000_000_000, 13_999_999_999, n)],
        "called": [str(x) for x in rng.integers(13_000_000_000, 18_999_999_999, n)],
        "start_time": pl.Series(1_748_736_000_000_000 + rng.integers(0, 10**12, n)).cast(
            pl.Datetime("us", "UTC")),
        "duration_s": rng.integers(0, 3600, n),
        "charge": rng.integers(0, 10_000, n),
    })


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("psi-2p")
    rng = np.random.default_rng(8)
    shared = _records(rng, 700, "S")
    a = pl.concat([shared.with_columns((pl.lit("A-") + pl.col("record_id")).alias("record_id")), _records(rng, 500, "A")])
    b = pl.concat([shared.with_columns((pl.lit("B-") + pl.col("record_id")).alias("record_id")), _records(rng, 900, "B")])
    a = a.sample(fraction=1.0, shuffle=True, seed=1)
    b = b.sample(fraction=1.0, shuffle=True, seed=2)
    a.write_parquet(base / "a.parquet")
    b.write_parquet(base / "b.parquet")
    return base, write_pki(base / "pki"), a, b


def _side(base, pki, name, role, endpoint, extra=()):
    tls = pki[name]
    other = "B" if name == "A" else "A"
    where = ["--listen", endpoint, "--port-file", str(base / "port")] if role == "serve" else ["--server", endpoint]
    return _cli() + ["psi", role, *where, "--input", str(base / f"{name.lower()}.parquet"),
                     "--columns", COLUMNS, "--id-column", "record_id", "--session-id", "it-1",
                     "--output", str(base / f"{name}-out.parquet"),
                     "--stats-json", str(base / f"{name}.json"),
                     "--ca", str(tls["ca"]), "--cert", str(tls["cert"]), "--key", str(tls["key"]),
                     "--peer", other, "--timeout", "120", "--peer-timeout", "20", *extra]


def _wait_port(path: Path, proc: subprocess.Popen, limit: float = 60.0) -> int:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("server did not start")


def test_two_processes_mutual_tls(files) -> None:
    base, pki, a, b = files
    (base / "port").unlink(missing_ok=True)
    server = subprocess.Popen(_side(base, pki, "A", "serve", "127.0.0.1:0"), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = _wait_port(base / "port", server)
        client = subprocess.run(_side(base, pki, "B", "connect", f"localhost:{port}"), cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        out, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert client.returncode == 0, client.stderr
    assert server.returncode == 0, err
    out_a = pl.read_parquet(base / "A-out.parquet")
    out_b = pl.read_parquet(base / "B-out.parquet")
    assert out_a.height == out_b.height == 700
    assert out_a["pair_id"].to_list() == out_b["pair_id"].to_list()
    # the i-th pair is the same call on both sides: A-S17 <-> B-S17
    assert [x[2:] for x in out_a["record_id"].to_list()] == [x[2:] for x in out_b["record_id"].to_list()]
    stats_a = json.loads((base / "A.json").read_text())
    stats_b = json.loads((base / "B.json").read_text())
    assert (stats_a["elements"], stats_a["peer_elements"], stats_a["matches"]) == (1200, 1600, 700)
    assert stats_a["stats"]["bytes_sent"] == stats_b["stats"]["bytes_received"]


def test_client_killed_mid_run_ends_the_server(files) -> None:
    """No process is left hanging: the serving side notices the vanished client and exits non-zero."""
    base, pki, _, _ = files
    (base / "port").unlink(missing_ok=True)
    server = subprocess.Popen(_side(base, pki, "A", "serve", "127.0.0.1:0", ("--peer-timeout", "3")),
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = _wait_port(base / "port", server)
        # a client that completes the TLS handshake and the hello, then is killed
        client = subprocess.Popen(
            [sys.executable, "-c", _HALF_CLIENT, f"localhost:{port}", str(pki["B"]["ca"]),
             str(pki["B"]["cert"]), str(pki["B"]["key"])],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "hello sent"
        client.send_signal(signal.SIGKILL)
        client.wait(10)
        start = time.monotonic()
        _, err = server.communicate(timeout=30)
        assert time.monotonic() - start < 20
    finally:
        server.kill()
    assert server.returncode != 0
    assert "error" in err and ("went away" in err or "within 3" in err or "stream" in err), err


_HALF_CLIENT = r"""
import sys, threading, grpc
from protocols.psi.psi_pb2 import ClientHello, PsiMessage
from protocols.psi.psi_pb2_grpc import PsiStub
from protocols.psi.primitives import BaseOtSender, random_scalar
from protocols.psi.roles import PROTOCOL_VERSION
from protocols.psi.transport import channel_credentials, secure_channel, SESSION_METADATA_KEY
target, ca, cert, key = sys.argv[1:5]
creds = channel_credentials(*(open(p, "rb").read() for p in (ca, cert, key)))
channel = secure_channel(target, creds, "A")
hold = threading.Event()
def requests():
    yield PsiMessage(seq=0, client_hello=ClientHello(version=PROTOCOL_VERSION, session_id=b"it-1", set_size=1000,
        seed=bytes(16), ot_sender_point=BaseOtSender(random_scalar()).point, code_width=512,
        statistical_security=40, protocol="kkrt16"))
    hold.wait()
call = PsiStub(channel).Run(requests(), timeout=60, metadata=((SESSION_METADATA_KEY, b"it-1"),))
first = next(call)
print("hello sent", flush=True)
hold.wait()
"""
