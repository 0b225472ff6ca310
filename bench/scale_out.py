"""What bucket workers give on this machine: the same job without workers and with a local
pool of N workers per operator, interleaved, several runs each (bench/README.md).

    flock /tmp/settlechain-bench.lock python bench/scale_out.py --records 200000 \
        --records-per-bucket 50000 --workers 2 --runs 3 --out /tmp/scale-bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration" / "engine"))

from engine.job.jobfile import Timeouts  # noqa: E402
from engine.job.local import LocalJob  # noqa: E402
from jobs import generate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--records-per-bucket", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from engine.job.demo import warm_up_psi

    warm_up_psi()
    data = generate(args.out / "data", records=args.records, seed=5)
    timings: dict[int, list[dict]] = {0: [], args.workers: []}
    for run in range(args.runs):
        for workers in (0, args.workers):
            extra = ["--workers", str(workers)] if workers else []
            job = LocalJob.prepare(args.out / f"w{workers}-r{run}", data.data, data.rules,
                                   job_id=f"bench-w{workers}-r{run}",
                                   records_per_bucket=args.records_per_bucket,
                                   party_args={"A": extra, "B": extra},
                                   timeouts=Timeouts(connect_s=120, stage_s=1200,
                                                     peer_silence_s=10))
            began = time.perf_counter()
            job.start()
            codes = job.wait(3600)
            wall = time.perf_counter() - began
            if any(codes.values()):
                print(f"job failed: {codes}", file=sys.stderr)
                return 1
            stages = json.loads((job.folder / "A" / "summary.json").read_text())["stages"]
            timings[workers].append({
                "wall": wall, "psi": stages["psi_exact"]["seconds"] + stages["psi_key"]["seconds"],
                "total_A": stages["total"]["seconds"]})
            print(f"run {run} workers {workers}: wall {wall:.1f} s, A's PSI stages "
                  f"{timings[workers][-1]['psi']:.1f} s", flush=True)
    for workers, runs in timings.items():
        print(f"workers={workers}: median wall {statistics.median(r['wall'] for r in runs):.1f} s, "
              f"median A PSI {statistics.median(r['psi'] for r in runs):.1f} s over {len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
