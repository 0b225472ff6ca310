"""PSI benchmarks: two processes over loopback gRPC, Parquet files in, matched record ids out.

Run under the global lock (never collected by the default test run)::

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_psi.py \\
        -o python_files='bench_*.py' --benchmark-enable -s

Environment: ``PSI_BENCH_SIZES`` (default ``100000,1000000,10000000``),
``PSI_BENCH_PEER_SIZES`` (OpenMined PSI, default ``100000,1000000``), ``PSI_BENCH_ROUNDS``
(default 3; the OpenMined 10^6 run is done once), ``PSI_BENCH_DIR`` (data directory,
default /tmp/settlechain-psi-bench; files are reused between runs).

Each side is a separate ``settlechain psi serve|connect`` process (mutual TLS, ECDSA
P-256 certificates made for the run), started together; the client waits for the
server's port.  Records are canonical-looking (record_id, service, calling, called,
start_time, duration_s, charge), 50 % overlap; the element is every column but the id.
Per party: wall seconds (process start to exit), CPU seconds (user + sys of the process,
from wait4), peak RSS (VmHWM read by each process at its end), bytes sent per element.  The numbers go to pytest-benchmark's
extra_info and to ``$PSI_BENCH_DIR/results.json``; bench/RESULTS-psi.md records a run.

The peer, OpenMined PSI 2.0.4 (ECDH over P-256, ``bench/openmined_peer.py``), runs on the
same files in the same session; it gives only the client the intersection.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "psi"))

import psi_data  # noqa: E402
from psi_pki import write_pki  # noqa: E402

SIZES = [int(x) for x in os.environ.get("PSI_BENCH_SIZES", "100000,1000000,10000000").split(",") if x]
PEER_SIZES = [int(x) for x in os.environ.get("PSI_BENCH_PEER_SIZES", "100000,1000000").split(",") if x]
ROUNDS = int(os.environ.get("PSI_BENCH_ROUNDS", "3"))
DATA = Path(os.environ.get("PSI_BENCH_DIR", "/tmp/settlechain-psi-bench"))
PORT = 17260
RESULTS: dict[str, dict] = {}


def _dataset(n: int) -> tuple[Path, int]:
    directory = DATA / f"n{n}"
    marker = directory / "expected.txt"
    if not marker.exists():
        expected = psi_data.write_pair(directory, n)
        marker.write_text(f"{expected}\n")
    return directory, int(marker.read_text())


@pytest.fixture(scope="session")
def pki():
    return write_pki(DATA / "pki")


def _wait(proc: subprocess.Popen) -> tuple[int, float, float]:
    """(exit code, CPU seconds, peak RSS MiB) of a child, from wait4."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def _settlechain(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())", *args]


def run_settlechain(directory: Path, pki: dict, session: str, port: int) -> dict:
    cols = ",".join(psi_data.COLUMNS)
    common = ["--columns", cols, "--id-column", "record_id", "--session-id", session,
              "--timeout", "900", "--peer-timeout", "120"]

    def tls(name):
        return ["--ca", str(pki[name]["ca"]), "--cert", str(pki[name]["cert"]), "--key", str(pki[name]["key"])]

    start = time.perf_counter()
    server = subprocess.Popen(_settlechain(
        "psi", "serve", "--listen", f"127.0.0.1:{port}", "--input", str(directory / "a.parquet"),
        "--output", str(directory / "a-out.parquet"), "--stats-json", str(directory / "a.json"),
        *common, *tls("A")), cwd=ROOT, stderr=subprocess.PIPE)
    client = subprocess.Popen(_settlechain(
        "psi", "connect", "--server", f"localhost:{port}", "--input", str(directory / "b.parquet"),
        "--output", str(directory / "b-out.parquet"), "--stats-json", str(directory / "b.json"),
        *common, *tls("B")), cwd=ROOT, stderr=subprocess.PIPE)
    c_code, c_cpu, c_rss = _wait(client)
    c_wall = time.perf_counter() - start
    s_code, s_cpu, s_rss = _wait(server)
    wall = time.perf_counter() - start
    if c_code or s_code:
        raise AssertionError(f"PSI failed: server {s_code} {server.stderr.read()!r}, "
                             f"client {c_code} {client.stderr.read()!r}")
    a = json.loads((directory / "a.json").read_text())
    b = json.loads((directory / "b.json").read_text())
    return {"wall_s": wall, "server_wall_s": wall, "client_wall_s": c_wall,
            "server_cpu_s": s_cpu, "client_cpu_s": c_cpu,
            "server_peak_rss_mib": a["peak_rss_mib"], "client_peak_rss_mib": b["peak_rss_mib"],
            "server_bytes_sent": a["stats"]["bytes_sent"], "client_bytes_sent": b["stats"]["bytes_sent"],
            "matches": a["matches"], "server_steps": a["seconds"], "client_steps": b["seconds"],
            "server_psi_steps": a["stats"]["seconds"], "client_psi_steps": b["stats"]["seconds"]}


def run_openmined(directory: Path, n: int, port: int) -> dict:
    peer = [sys.executable, str(BENCH / "openmined_peer.py")]
    start = time.perf_counter()
    server = subprocess.Popen(peer + ["serve", "--listen", f"127.0.0.1:{port}", "--input",
                                      str(directory / "a.parquet"), "--client-size", str(n),
                                      "--timeout", "1800",
                                      "--stats-json", str(directory / "om-a.json")], cwd=ROOT)
    client = subprocess.Popen(peer + ["connect", "--server", f"127.0.0.1:{port}", "--input",
                                      str(directory / "b.parquet"), "--output",
                                      str(directory / "om-b-out.parquet"),
                                      "--stats-json", str(directory / "om-b.json")], cwd=ROOT)
    c_code, c_cpu, c_rss = _wait(client)
    c_wall = time.perf_counter() - start
    if c_code:
        server.kill()
    s_code, s_cpu, s_rss = _wait(server)
    wall = time.perf_counter() - start
    assert c_code == 0 and s_code == 0, (s_code, c_code)
    a = json.loads((directory / "om-a.json").read_text())
    b = json.loads((directory / "om-b.json").read_text())
    return {"wall_s": wall, "client_wall_s": c_wall, "server_cpu_s": s_cpu, "client_cpu_s": c_cpu,
            "server_peak_rss_mib": a["peak_rss_mib"], "client_peak_rss_mib": b["peak_rss_mib"],
            "server_bytes_sent": a["bytes_sent"], "client_bytes_sent": b["bytes_sent"],
            "matches": b["matches"]}


def _record(name: str, n: int, runs: list[dict], benchmark) -> dict:
    summary = {"n": n, "rounds": len(runs)}
    for key in runs[0]:
        if isinstance(runs[0][key], (int, float)):
            summary[key] = statistics.median(r[key] for r in runs)
    summary["bytes_per_element"] = (summary["server_bytes_sent"] + summary["client_bytes_sent"]) / n
    summary["runs"] = runs
    benchmark.extra_info.update({k: v for k, v in summary.items() if k != "runs"})
    RESULTS[f"{name}/{n}"] = summary
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "results.json").write_text(json.dumps(RESULTS, indent=2, default=float))
    print(f"\n{name} n={n}: " + ", ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in summary.items() if k not in ("runs",)))
    return summary


def test_warm_numba_cache(pki) -> None:
    """One small run so that every kernel is compiled and cached before the timed runs."""
    directory, expected = _dataset(1000)
    assert run_settlechain(directory, pki, "warm", PORT)["matches"] == expected


@pytest.mark.parametrize("n", SIZES)
def test_settlechain_kkrt(benchmark, pki, n) -> None:
    directory, expected = _dataset(n)
    runs: list[dict] = []
    counter = iter(range(1000))

    def once():
        result = run_settlechain(directory, pki, f"kkrt-{n}-{next(counter)}", PORT + 1)
        runs.append(result)
        return result

    result = benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    assert result["matches"] == expected
    out_a = pl.read_parquet(directory / "a-out.parquet")
    out_b = pl.read_parquet(directory / "b-out.parquet")
    assert out_a.height == out_b.height == expected
    assert out_a["pair_id"].equals(out_b["pair_id"]), "both sides list the same pairs in one order"
    _record("settlechain-kkrt", n, runs, benchmark)


@pytest.mark.parametrize("n", PEER_SIZES)
def test_openmined_ecdh(benchmark, n) -> None:
    directory, expected = _dataset(n)
    runs: list[dict] = []

    def once():
        result = run_openmined(directory, n, PORT + 2)
        runs.append(result)
        return result

    rounds = 1 if n >= 1_000_000 else ROUNDS
    result = benchmark.pedantic(once, rounds=rounds, iterations=1)
    assert result["matches"] == expected
    _record("openmined-psi-ecdh-p256", n, runs, benchmark)
