"""Benchmarks of the three-party discrepancy computation (protocols.mpc).

Three OS processes on loopback through ``settlechain mpc`` (what a party runs), and
the peer: MPyC as-is, secure comparisons on secint arrays, measured in the same run.
Run under the machine-wide lock::

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_mpc.py \\
        -o python_files='bench_*.py' --benchmark-enable -s

Before and after.  With ``MPC_BENCH_BASELINE`` naming a source tree of an earlier
commit (``git archive <commit> | tar -x -C DIR``), ``test_bench_before_after`` runs
the same job with that tree's code and with this one, alternating round by round so
that both see the same machine load, and reports the median of each.

Each case reports pairs/s (pairs over the protocol's own seconds, the slower of A
and B), CPU microseconds and bytes sent per pair per party, and each party's peak RSS
(``extra_info``; printed with ``-s``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADDRESSES = "127.0.0.1:17381,127.0.0.1:17382,127.0.0.1:17383"
ENTRY = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
TARGET_PAIRS_PER_S = 10_000
ROUNDS = int(os.environ.get("MPC_BENCH_ROUNDS", "5"))


def run_three(n: int, policy: str, extra: list[str] | None = None, *, tree: Path | None = None) -> dict:
    """One job, three processes; ``tree``: run that source tree's code instead of ours."""
    extra = extra or []
    env = dict(os.environ)
    cwd = ROOT
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
        cwd = tree
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        started = time.perf_counter()
        for party in ("H", "B", "A"):
            out = Path(tmp) / f"{party}.json"
            cmd = [sys.executable, "-c", ENTRY, "mpc", "--party", party, "--addresses", ADDRESSES,
                   "--generate", str(n), "--policy", policy, "--out", str(out), *extra]
            procs.append((party, out, subprocess.Popen(cmd, cwd=cwd, env=env)))
        for party, _, proc in procs:
            assert proc.wait(timeout=900) == 0, f"party {party} failed"
        elapsed = time.perf_counter() - started
        outs = {party: json.loads(out.read_text()) for party, out, _ in procs}
    report = {"pairs": n, "policy": policy, "code": "baseline" if tree else "current",
              "wall_seconds_incl_startup": elapsed}
    protocol_seconds = max(o["stats"]["seconds"] for o in (outs["A"], outs["B"]))
    report["protocol_seconds"] = protocol_seconds
    report["pairs_per_s"] = n / protocol_seconds
    for party, o in outs.items():
        proc = o["process"]
        report[f"{party}_cpu_us_per_pair"] = 1e6 * proc["cpu_seconds"] / n
        report[f"{party}_peak_rss_mib"] = proc["peak_rss_mib"]
        if o.get("stats"):
            report[f"{party}_bytes_per_pair"] = o["stats"]["bytes_sent"] / n
            report[f"{party}_protocol_cpu_us_per_pair"] = 1e6 * o["stats"]["cpu_seconds"] / n
            if "phase_seconds" in o["stats"]:
                report[f"{party}_phase_seconds"] = o["stats"]["phase_seconds"]
        if o.get("check"):
            report["check"] = o["check"]
    return report


def median_report(reports: list[dict]) -> dict:
    best = sorted(reports, key=lambda r: r["pairs_per_s"])[len(reports) // 2]
    return {**best, "rounds": len(reports), "pairs_per_s_all_rounds": [round(r["pairs_per_s"]) for r in reports],
            "pairs_per_s_median": statistics.median(r["pairs_per_s"] for r in reports)}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@pytest.mark.parametrize("policy,n", [("flags", 50_000), ("aggregate", 50_000)])
def test_bench_before_after(benchmark, policy, n) -> None:
    """Both codes, alternating, ``ROUNDS`` rounds each; the current one must reach
    TARGET_PAIRS_PER_S."""
    baseline = os.environ.get("MPC_BENCH_BASELINE")
    trees = [None] + ([Path(baseline)] if baseline else [])
    reports: dict[str, list[dict]] = {"current": [], "baseline": []}
    loads = [load_average()]

    def one_round():
        for tree in trees:
            extra = ["--check"] if tree is None else []  # the baseline's --check predates the cells
            report = run_three(n, policy, extra, tree=tree)
            reports[report["code"]].append(report)
        loads.append(load_average())

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    summary = {"policy": policy, "pairs": n, "load_average_per_round": loads,
               "current": median_report(reports["current"])}
    if reports["baseline"]:
        summary["baseline"] = median_report(reports["baseline"])
        summary["baseline_tree"] = baseline
    benchmark.extra_info.update(summary)
    print(json.dumps(summary, indent=1))
    assert summary["current"].get("check") == "equal to the plaintext computation"
    assert summary["current"]["pairs_per_s_median"] >= TARGET_PAIRS_PER_S


def test_bench_differences(benchmark) -> None:
    reports = []
    benchmark.pedantic(lambda: reports.append(run_three(20_000, "differences", ["--check"])), rounds=3,
                       iterations=1)
    best = median_report(reports)
    benchmark.extra_info.update(best)
    print(json.dumps(best, indent=1))
    assert best.get("check") == "equal to the plaintext computation"


@pytest.mark.parametrize("bit_length", [32, 64])
def test_bench_peer_mpyc_comparisons(benchmark, bit_length) -> None:
    n = 5000
    script = str(ROOT / "bench" / "mpyc_comparisons_peer.py")
    env = dict(os.environ, MPC_N=str(n), MPC_L=str(bit_length))
    outputs = []

    def once():
        procs = [subprocess.Popen([sys.executable, script, "-M3", f"-I{i}", "-B", "17390", "--no-log"],
                                  env=env, stdout=subprocess.PIPE, text=True) for i in (2, 1, 0)]
        lines = [p.communicate(timeout=600)[0] for p in procs]
        outputs.append([json.loads(line.strip().splitlines()[-1]) for line in lines])

    benchmark.pedantic(once, rounds=3, iterations=1)
    runs = sorted(outputs, key=lambda r: r[2]["comparisons_per_s"])
    median = runs[len(runs) // 2]
    info = {"n": n, "bit_length": bit_length,
            "comparisons_per_s": median[2]["comparisons_per_s"],
            "cpu_us_per_comparison_party0": 1e6 * median[2]["cpu_seconds"] / n,
            "bytes_per_comparison_party0": median[2]["bytes_sent"] / n,
            "correct": all(o["correct"] for o in median if o["party"] == 0)}
    benchmark.extra_info.update(info)
    print(json.dumps(info, indent=1))
