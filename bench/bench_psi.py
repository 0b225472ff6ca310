"""PSI benchmarks: two processes over loopback gRPC, Parquet files in, matched record ids out,
on a direct link (LAN) and on simulated WAN links (bench/wan.py), beside SecretFlow's RR22.

Run under the global lock (never collected by the default test run)::

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_psi.py \\
        -o python_files='bench_*.py' --benchmark-enable -s

Environment:

- ``PSI_BENCH_SIZES`` (default ``100000,1000000,10000000``): n per side;
- ``PSI_BENCH_LINKS`` (default ``lan,1g10ms,100m30ms``): link classes of bench/wan.py; on
  every class but ``lan`` each party-to-party TCP connection goes through a shaping relay
  process (one link per pair of parties, its bandwidth shared by all their connections);
- ``PSI_BENCH_PROTOCOLS`` (default: every protocol of ``protocols.psi.PROTOCOLS``);
- ``PSI_BENCH_ROUNDS`` (default 3) and ``PSI_BENCH_ROUNDS_LARGE`` (rounds at n >= 10^7,
  default the same); medians are reported;
- ``PSI_BENCH_DIR`` (data directory, default /tmp/settlechain-psi-bench; files are reused);
- ``PSI_BENCH_PORT`` (default 17260): first of the ports used (up to +40);
- ``PSI_BENCH_PEER_SIZES`` (OpenMined PSI on the LAN, default ``100000,1000000``).

The cases run in one ordered list (``test_psi``): for each n, for each link class,
settlechain with each protocol, then SecretFlow RR22 (one key column and six key columns)
when ``PSI_BENCH_SECRETFLOW_PYTHON`` names the interpreter of a separate venv with ``spu``
0.9.5 and ``pyarrow`` (RESULTS-psi.md gives the steps; without it those cases are recorded
as "not measured"), so every system meets the same link in the same run.
``PSI_BENCH_SECRETFLOW_SIZES`` (default: the sizes above) selects SecretFlow's sizes.

Each side is a separate ``settlechain psi serve|connect`` process (mutual TLS, ECDSA P-256
certificates made for the run, each side naming the other's member id), started together;
the client waits for the server's port.  Records are canonical-looking (record_id,
service, calling, called, start_time, duration_s, charge), 50 % overlap; the element is
every column but the id.  Per party: wall seconds (process start to exit), CPU seconds
(user + sys, from wait4), peak RSS (VmHWM read by each process at its end), protocol bytes
sent per element; on a relayed link also the TCP bytes the relay carried each way (TLS and
gRPC framing included).  The numbers go to pytest-benchmark's extra_info and to
``$PSI_BENCH_DIR/results.json``; bench/RESULTS-psi.md records a run.

SecretFlow PSI (spu 0.9.5 from PyPI, ``bench/secretflow_peer.py``): both parties get the
intersection (``broadcast_result``); each round starts both processes together (they meet
on a plain TCP rendezvous before linking: started apart, brpc sleeps 1-4 s before it dials
again), from CSV files written once from the same Parquet files (untimed; SecretFlow's
input format), and the outputs are checked against the expected record-id pairs, row by
row.  Each party dials the other (brpc), so on a relayed link both connections go through
one relay process and share its link; its byte counts are SecretFlow's bytes on the wire.
On the LAN, bytes come from one more, untimed round through a counting relay.  Further
SecretFlow cases on the LAN (``test_secretflow_other``: KKRT, ECDH over Curve25519, RR22
reading Parquet) run at ``PSI_BENCH_SECRETFLOW_OTHER_SIZES`` (default ``1000000``).

OpenMined PSI 2.0.4 (ECDH over P-256, ``bench/openmined_peer.py``) runs on the LAN only; it
gives only the client the intersection.
"""

from __future__ import annotations

import json
import os
import re
import signal
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
import wan  # noqa: E402
from psi_pki import write_pki  # noqa: E402

from protocols.psi.roles import PROTOCOLS  # noqa: E402


def _ints(name: str, default: str) -> list[int]:
    return [int(x) for x in os.environ.get(name, default).split(",") if x]


SIZES = _ints("PSI_BENCH_SIZES", "100000,1000000,10000000")
PEER_SIZES = _ints("PSI_BENCH_PEER_SIZES", "100000,1000000")
LINKS = [wan.link_class(x) for x in os.environ.get("PSI_BENCH_LINKS", "lan,1g10ms,100m30ms").split(",") if x]
BENCH_PROTOCOLS = [x for x in os.environ.get("PSI_BENCH_PROTOCOLS", ",".join(PROTOCOLS)).split(",") if x]
ROUNDS = int(os.environ.get("PSI_BENCH_ROUNDS", "3"))
ROUNDS_LARGE = int(os.environ.get("PSI_BENCH_ROUNDS_LARGE", str(ROUNDS)))
DATA = Path(os.environ.get("PSI_BENCH_DIR", "/tmp/settlechain-psi-bench"))
PORT = int(os.environ.get("PSI_BENCH_PORT", "17260"))
SECRETFLOW_PYTHON = os.environ.get("PSI_BENCH_SECRETFLOW_PYTHON", "")
SF_SIZES = _ints("PSI_BENCH_SECRETFLOW_SIZES", ",".join(map(str, SIZES)))
SF_OTHER_SIZES = _ints("PSI_BENCH_SECRETFLOW_OTHER_SIZES", "1000000")
SF_BYTES_SIZES = _ints("PSI_BENCH_SECRETFLOW_BYTES_SIZES", "1000000")
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


class RelayProcess:
    """``bench/wan.py relay`` as a separate process (its threads must not share a GIL with
    anything timed), with the routes given; ``stats()`` after ``close()``: bytes per direction."""

    def __init__(self, link: wan.LinkClass, routes: list[str], tag: str) -> None:
        self.ready = DATA / f"relay-{tag}.ready"
        self.stats_path = DATA / f"relay-{tag}.json"
        for path in (self.ready, self.stats_path):
            path.unlink(missing_ok=True)
        DATA.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, str(BENCH / "wan.py"), "relay", "--link", link.name,
                "--ready-file", str(self.ready), "--stats-json", str(self.stats_path)]
        for route in routes:
            args += ["--route", route]
        self.proc = subprocess.Popen(args, cwd=ROOT)
        end = time.monotonic() + 30
        while not (self.ready.exists() and self.ready.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"relay for {link.name} did not start (exit {self.proc.poll()})")
            time.sleep(0.02)

    def close(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        return json.loads(self.stats_path.read_text())["default"]


def _settlechain(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())", *args]


def run_settlechain(directory: Path, pki: dict, session: str, port: int, link: wan.LinkClass = wan.LINKS["lan"],
                    protocol: str | None = None) -> dict:
    cols = ",".join(psi_data.COLUMNS)
    common = ["--columns", cols, "--id-column", "record_id", "--session-id", session,
              "--timeout", "1800", "--peer-timeout", "300"]
    if protocol is not None:
        common += ["--protocol", protocol]

    def tls(name):
        return ["--ca", str(pki[name]["ca"]), "--cert", str(pki[name]["cert"]), "--key", str(pki[name]["key"]),
                "--peer", "B" if name == "A" else "A"]

    relay = None
    target = f"localhost:{port}"
    if not link.direct:  # B (client) dials A through the link: B's data flows b -> a
        relay = RelayProcess(link, [f"127.0.0.1:{port + 20}=127.0.0.1:{port}:ba"], f"sc-{port}")
        target = f"localhost:{port + 20}"
    start = time.perf_counter()
    server = subprocess.Popen(_settlechain(
        "psi", "serve", "--listen", f"127.0.0.1:{port}", "--input", str(directory / "a.parquet"),
        "--output", str(directory / "a-out.parquet"), "--stats-json", str(directory / "a.json"),
        *common, *tls("A")), cwd=ROOT, stderr=subprocess.PIPE)
    client = subprocess.Popen(_settlechain(
        "psi", "connect", "--server", target, "--input", str(directory / "b.parquet"),
        "--output", str(directory / "b-out.parquet"), "--stats-json", str(directory / "b.json"),
        *common, *tls("B")), cwd=ROOT, stderr=subprocess.PIPE)
    c_code, c_cpu, c_rss = _wait(client)
    c_wall = time.perf_counter() - start
    s_code, s_cpu, s_rss = _wait(server)
    wall = time.perf_counter() - start
    wire = relay.close() if relay is not None else None
    if c_code or s_code:
        raise AssertionError(f"PSI failed: server {s_code} {server.stderr.read()!r}, "
                             f"client {c_code} {client.stderr.read()!r}")
    a = json.loads((directory / "a.json").read_text())
    b = json.loads((directory / "b.json").read_text())
    out = {"wall_s": wall, "server_wall_s": wall, "client_wall_s": c_wall,
           "server_cpu_s": s_cpu, "client_cpu_s": c_cpu,
           "server_peak_rss_mib": a["peak_rss_mib"], "client_peak_rss_mib": b["peak_rss_mib"],
           "server_bytes_sent": a["stats"]["bytes_sent"], "client_bytes_sent": b["stats"]["bytes_sent"],
           "matches": a["matches"], "server_steps": a["seconds"], "client_steps": b["seconds"],
           "server_psi_steps": a["stats"]["seconds"], "client_psi_steps": b["stats"]["seconds"]}
    if wire is not None:
        out.update(server_tcp_bytes=wire["ab_bytes"], client_tcp_bytes=wire["ba_bytes"])
    return out


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


def _record(name: str, n: int, runs: list[dict], benchmark, extra: dict | None = None) -> dict:
    summary = {"n": n, "rounds": len(runs), "measured": True}
    for key in runs[0]:
        if isinstance(runs[0][key], (int, float)):
            summary[key] = statistics.median(r[key] for r in runs)
    summary.update(extra or {})
    for a_key, b_key, out in (("server_bytes_sent", "client_bytes_sent", "bytes_per_element"),
                              ("a_bytes_sent", "b_bytes_sent", "bytes_per_element"),
                              ("server_tcp_bytes", "client_tcp_bytes", "tcp_bytes_per_element")):
        if a_key in summary:
            summary[out] = (summary[a_key] + summary[b_key]) / n
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
    """One small run per protocol so that every kernel is compiled and cached before the timed runs."""
    directory, expected = _dataset(1000)
    for i, protocol in enumerate(BENCH_PROTOCOLS):
        assert run_settlechain(directory, pki, f"warm-{i}", PORT, protocol=protocol)["matches"] == expected


def _check_settlechain_outputs(directory: Path, expected: int) -> None:
    out_a = pl.read_parquet(directory / "a-out.parquet")
    out_b = pl.read_parquet(directory / "b-out.parquet")
    assert out_a.height == out_b.height == expected
    assert out_a["pair_id"].equals(out_b["pair_id"]), "both sides list the same pairs in one order"


def _cases() -> list[tuple[int, str, str]]:
    """(n, link, system) in the order they run: per size, per link, every system back to back."""
    out = []
    for n in SIZES:
        for link in LINKS:
            out += [(n, link.name, f"settlechain-{p}") for p in BENCH_PROTOCOLS]
            if n in SF_SIZES:
                out += [(n, link.name, "secretflow-rr22-onekey"), (n, link.name, "secretflow-rr22")]
    return out


@pytest.mark.timeout(6 * 3600)
@pytest.mark.parametrize(("n", "link_name", "system"), _cases(), ids=lambda v: str(v))
def test_psi(benchmark, pki, n, link_name, system) -> None:
    link = wan.link_class(link_name)
    name = f"{system}@{link_name}"
    rounds = ROUNDS_LARGE if n >= 10_000_000 else ROUNDS
    if system.startswith("secretflow"):
        if not SECRETFLOW_PYTHON:
            _not_measured(name, n, "PSI_BENCH_SECRETFLOW_PYTHON is not set (the venv with spu 0.9.5)")
        protocol, layout = SF_CASES[system]
        directory, expected = _dataset(n)
        runs: list[dict] = []

        def once():
            result = run_secretflow(directory, protocol, layout, PORT + 4, link=link)
            runs.append(result)
            return result

        result = benchmark.pedantic(once, rounds=rounds, iterations=1)
        assert result["matches"] == result["b_matches"] == expected
        _check_secretflow(directory, n)
        extra = {}
        if link.direct and n in SF_BYTES_SIZES:  # one more round through counting relays, not timed
            traffic = run_secretflow(directory, protocol, layout, PORT + 4, count_bytes=True)
            assert traffic["matches"] == expected
            _check_secretflow(directory, n)
            extra = {"a_bytes_sent": traffic["a_bytes_sent"], "b_bytes_sent": traffic["b_bytes_sent"],
                     "traffic_round_wall_s": traffic["wall_s"]}
        _record(name, n, runs, benchmark, extra)
        return
    protocol = system.removeprefix("settlechain-")
    directory, expected = _dataset(n)
    runs = []
    counter = iter(range(1000))

    def once():
        result = run_settlechain(directory, pki, f"{protocol}-{link_name}-{n}-{next(counter)}", PORT + 1,
                                 link, protocol)
        runs.append(result)
        return result

    result = benchmark.pedantic(once, rounds=rounds, iterations=1)
    assert result["matches"] == expected
    _check_settlechain_outputs(directory, expected)
    _record(name, n, runs, benchmark)


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


# --- SecretFlow PSI, the second peer -------------------------------------------------------

SF_KEYS = list(psi_data.COLUMNS)
SF_TIMEOUT = 1800.0
# input layouts, each a CSV per side written once from the Parquet files: the key columns
# come first (SecretFlow sorts its aligned output by the leading columns, so an id in
# front would break the common order), the record id last
SF_LAYOUTS = {"columns": SF_KEYS, "onekey": ["key"]}
SF_CASES = {  # name: (protocol, layout or "parquet")
    "secretflow-rr22": ("rr22", "columns"),
    "secretflow-rr22-onekey": ("rr22", "onekey"),
    "secretflow-kkrt-onekey": ("kkrt", "onekey"),
    "secretflow-ecdh-25519-onekey": ("ecdh-25519", "onekey"),
    "secretflow-rr22-parquet": ("rr22", "parquet"),
}
_EXPECTED_PAIRS: dict[int, pl.DataFrame] = {}


def counting_relay(port: int, target: str, link: wan.Link) -> wan.Relay:
    """An unshaped relay (bench/wan.py with an unlimited link) that counts the bytes each way
    (``link.ab``: from the dialling party, ``link.ba``: back to it).  Used only in the untimed
    traffic round on the LAN (it adds a copy through Python to every message)."""
    return wan.Relay(f"127.0.0.1:{port}", target, link, "ab")


def _expected_pairs(directory: Path, n: int) -> pl.DataFrame:
    """(record_id_a, record_id_b) of every matching pair, sorted: the plaintext join."""
    if n not in _EXPECTED_PAIRS:
        a = pl.read_parquet(directory / "a.parquet")
        b = pl.read_parquet(directory / "b.parquet")
        pairs = a.join(b, on=SF_KEYS, how="inner", suffix="_b").select(
            pl.col("record_id").alias("a"), pl.col("record_id_b").alias("b"))
        _EXPECTED_PAIRS[n] = pairs.sort("a", "b")
    return _EXPECTED_PAIRS[n]


def _secretflow_inputs(directory: Path, layout: str) -> tuple[Path, Path]:
    if layout == "parquet":
        return directory / "a.parquet", directory / "b.parquet"
    paths = directory / f"sf-a-{layout}.csv", directory / f"sf-b-{layout}.csv"
    for side, path in zip("ab", paths):
        if path.exists():
            continue
        frame = pl.read_parquet(directory / f"{side}.parquet")
        if layout == "onekey":
            frame = frame.select(pl.concat_str([pl.col(c).cast(pl.String) for c in SF_KEYS],
                                               separator="|").alias("key"), "record_id")
        else:
            frame = frame.select(*SF_KEYS, "record_id")
        frame.write_csv(path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return paths


def _kill_unreaped(procs: list[subprocess.Popen]) -> None:
    # os.kill, not Popen.send_signal: that polls, and would reap the process before wait4
    for proc in procs:
        if proc.returncode is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_both(procs: list[subprocess.Popen], start: float, timeout: float) -> list[dict]:
    """Reaps both processes (wait4: CPU of each with its reaped children, ru_maxrss); kills
    the other when one fails and both at the deadline, so that no process is left."""
    out: list[dict | None] = [None, None]
    while None in out:
        for i, proc in enumerate(procs):
            if out[i] is not None:
                continue
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == 0:
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)
            out[i] = {"code": proc.returncode, "exited_s": time.perf_counter() - start,
                      "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_mib": usage.ru_maxrss / 1024.0}
            if proc.returncode:
                _kill_unreaped(procs)
        if time.perf_counter() - start > timeout:
            _kill_unreaped(procs)
        time.sleep(0.005)
    return out  # type: ignore[return-value]


def run_secretflow(directory: Path, protocol: str, layout: str, port: int, count_bytes: bool = False,
                   link: wan.LinkClass = wan.LINKS["lan"]) -> dict:
    # SecretFlow caches key statistics in <input>.meta; every round starts without them,
    # as every settlechain round reads and checks its input afresh
    for meta in directory.glob("*.meta"):
        meta.unlink()
    inputs = _secretflow_inputs(directory, layout)
    keys = SF_KEYS if layout in ("columns", "parquet") else SF_LAYOUTS[layout]
    listen = [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"]
    relays: list[wan.Relay] = []
    counted = [wan.Link(1e15, 0.0), wan.Link(1e15, 0.0)]
    shaped = None
    views = [listen, listen]
    if not link.direct:  # each party dials the other through one shaping relay process, one link
        shaped = RelayProcess(link, [f"127.0.0.1:{port + 2}={listen[0]}:ba",    # B dials A: b -> a
                                     f"127.0.0.1:{port + 3}={listen[1]}:ab"],   # A dials B: a -> b
                              f"sf-{port}")
        views = [[listen[0], f"127.0.0.1:{port + 3}"], [f"127.0.0.1:{port + 2}", listen[1]]]
    elif count_bytes:  # each party dials the other through a counting relay
        relays = [counting_relay(port + 2, listen[0], counted[0]), counting_relay(port + 3, listen[1], counted[1])]
        views = [[listen[0], relays[1].address], [relays[0].address, listen[1]]]
    procs, logs = [], []
    start = time.perf_counter()
    for rank, side in enumerate("ab"):
        log = open(directory / f"sf-{side}.log", "wb")
        logs.append(log)
        procs.append(subprocess.Popen(
            [SECRETFLOW_PYTHON, str(BENCH / "secretflow_peer.py"), "--rank", str(rank),
             "--addresses", ",".join(views[rank]), "--rendezvous", f"127.0.0.1:{port + 4}",
             "--protocol", protocol,
             "--input", str(inputs[rank]), "--keys", ",".join(keys),
             "--output", str(directory / f"sf-{side}-out.csv"), "--work-dir", str(directory),
             "--stats-json", str(directory / f"sf-{side}.json"), "--timeout", str(SF_TIMEOUT)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    reaped = _wait_both(procs, start, SF_TIMEOUT + 60)
    wall = max(r["exited_s"] for r in reaped)
    for log in logs:
        log.close()
    for relay in relays:
        relay.close()
    wire = shaped.close() if shaped is not None else None
    texts = [(directory / f"sf-{side}.log").read_text(errors="replace") for side in "ab"]
    for text in texts:  # libpsi leaves a perfetto trace per run in /tmp
        for trace in re.findall(r"Trace has been written to (\S+?\.trace)", text):
            Path(trace).unlink(missing_ok=True)
    if any(r["code"] for r in reaped):
        raise AssertionError("SecretFlow PSI failed: " + "; ".join(
            f"rank {rank} exit {r['code']}: {text[-2000:]}" for rank, (r, text) in enumerate(zip(reaped, texts))))
    stats = [json.loads((directory / f"sf-{side}.json").read_text()) for side in "ab"]
    result = {"wall_s": wall, "a_wall_s": reaped[0]["exited_s"], "b_wall_s": reaped[1]["exited_s"],
              "a_cpu_s": reaped[0]["cpu_s"], "b_cpu_s": reaped[1]["cpu_s"],
              "a_peak_rss_mib": stats[0]["peak_rss_mib"], "b_peak_rss_mib": stats[1]["peak_rss_mib"],
              "a_tree_maxrss_mib": reaped[0]["maxrss_mib"], "b_tree_maxrss_mib": reaped[1]["maxrss_mib"],
              "matches": stats[0]["intersection_count"], "b_matches": stats[1]["intersection_count"],
              "a_steps": stats[0]["seconds"], "b_steps": stats[1]["seconds"]}
    if count_bytes:
        # relay 1 carries A's dialled connection (A -> B up), relay 0 B's (B -> A up)
        result.update(a_bytes_sent=counted[1].ab.bytes + counted[0].ba.bytes,
                      b_bytes_sent=counted[0].ab.bytes + counted[1].ba.bytes)
    if wire is not None:
        result.update(a_bytes_sent=wire["ab_bytes"], b_bytes_sent=wire["ba_bytes"])
    return result


def _check_secretflow(directory: Path, n: int) -> None:
    """Both outputs hold exactly the expected record ids, row i of A's matching row i of B's."""
    out_a = pl.read_csv(directory / "sf-a-out.csv", columns=["record_id"], infer_schema=False)
    out_b = pl.read_csv(directory / "sf-b-out.csv", columns=["record_id"], infer_schema=False)
    assert out_a.height == out_b.height, (out_a.height, out_b.height)
    got = pl.DataFrame({"a": out_a["record_id"], "b": out_b["record_id"]}).sort("a", "b")
    assert got.equals(_expected_pairs(directory, n)), "SecretFlow's aligned outputs are not the expected pairs"


def _not_measured(name: str, n: int, reason: str) -> None:
    RESULTS[f"{name}/{n}"] = {"n": n, "measured": False, "reason": reason}
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "results.json").write_text(json.dumps(RESULTS, indent=2, default=float))
    pytest.skip(f"{name} n={n} not measured: {reason}")


SF_OTHER_PARAMS = [(name, n) for name in ("secretflow-kkrt-onekey", "secretflow-ecdh-25519-onekey",
                                           "secretflow-rr22-parquet") for n in SF_OTHER_SIZES]


@pytest.mark.timeout(4 * 3600)
@pytest.mark.parametrize(("name", "n"), SF_OTHER_PARAMS)
def test_secretflow_other(benchmark, name, n) -> None:
    """SecretFlow's other protocols and input paths, on the LAN."""
    if not SECRETFLOW_PYTHON:
        _not_measured(name, n, "PSI_BENCH_SECRETFLOW_PYTHON is not set (the venv with spu 0.9.5)")
    protocol, layout = SF_CASES[name]
    directory, expected = _dataset(n)
    runs: list[dict] = []

    def once():
        result = run_secretflow(directory, protocol, layout, PORT + 4)
        runs.append(result)
        return result

    result = benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    assert result["matches"] == result["b_matches"] == expected
    _check_secretflow(directory, n)
    _record(name, n, runs, benchmark)
