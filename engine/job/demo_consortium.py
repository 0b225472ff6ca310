"""``settlechain demo --consortium``: three operators, their three pairs, one period run.

1. generate each pair's two exports with the true answer (``data_gen``, one scenario per
   pair, seeds ``seed``, ``seed+1``, ``seed+2``) into ``data/<A>+<B>/`` (the layout of
   :mod:`engine.job.period_run`);
2. create the consortium CMCC, CUCC, CTCC and adopt each pair's rules by vote (a rule
   package per pair, ``interconnect-<a>-<b>`` (lowercase), in force from the period);
3. ``settlechain period run`` without ``--as``: every party of every pair here, each pair
   helped by the third operator;
4. print the outcome across pairs and compare every pair's statuses with its truth.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

from engine.errors import JobError
from engine.job.demo import _prepare_out, _say, _shown, _verify_ledger, warm_up_kernels
from engine.job.local import adopt_rules, create_consortium
from engine.job.period_run import PAIR_SEPARATOR, run_period, summary_lines
from engine.rules import load_rules

OPERATORS = ("CMCC", "CUCC", "CTCC")
PAIRS = (("CMCC", "CUCC"), ("CMCC", "CTCC"), ("CUCC", "CTCC"))


def run_consortium_demo(*, records: int, seed: int, file_format: str, out: Path,
                        force: bool) -> int:
    from data_gen.config import GenConfig
    from data_gen.dataset import generate, write_dataset

    began = time.perf_counter()
    out = out.resolve()
    _prepare_out(out, force)
    data_dir = out / "data"
    _say(f"settlechain demo --consortium: {', '.join(OPERATORS)} and their "
         f"{len(PAIRS)} pairs, {records:,} call events per pair, seed {seed}; everything "
         f"goes to {_shown(out)}/")
    t0 = time.perf_counter()
    period = None
    for i, (a, b) in enumerate(PAIRS):
        dataset = generate(GenConfig(records=records, seed=seed + i, operator_a=a,
                                     operator_b=b), file_format)
        period = dataset.config.period
        folder = data_dir / f"{a}{PAIR_SEPARATOR}{b}"
        with tempfile.TemporaryDirectory(dir=out) as scratch:
            write_dataset(dataset, Path(scratch))
            folder.mkdir(parents=True)
            for side, member in (("a", a), ("b", b)):
                shutil.move(Path(scratch) / f"{side}.{file_format}", folder / f"{member}.{file_format}")
            for name in ("rules.toml", "truth.parquet"):
                shutil.move(Path(scratch) / name, folder / name)
    assert period is not None
    _say(f"  1. generated the exports of {len(PAIRS)} pairs into {_shown(data_dir)}/<A>+<B>/ "
         f"in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    config = create_consortium(out / "consortium", {r: m for r, m in zip("ABH", OPERATORS)},
                               name="demo-consortium")
    for a, b in PAIRS:
        rules = load_rules(data_dir / f"{a}{PAIR_SEPARATOR}{b}" / "rules.toml")
        size = adopt_rules(config, rules.sm3_hash(), rules.version, name=f"interconnect-{a}-{b}".lower(),
                           effective_from=period)
    _say(f"  2. consortium of {', '.join(OPERATORS)}; each pair's rules adopted by vote "
         f"({size} ledger entries) in {time.perf_counter() - t0:.1f} s")

    warm_up_kernels()
    t0 = time.perf_counter()
    _say(f"  3. settlechain period run --config {_shown(config)} --period {period} "
         f"--data-dir {_shown(data_dir)} --out {_shown(out / 'period')}")
    summary = run_period(config, period, data_dir, out / "period",
                         on_pair=lambda row: _say(f"     {row['pair']} (helper {row['H']}): "
                                                  f"{row['state']} in {row.get('seconds', 0):.1f} s"))
    _say(f"     all pairs done in {time.perf_counter() - t0:.1f} s\n")
    for line in summary_lines(summary):
        _say(line)
    failed = [r["pair"] for r in summary["pairs"] if r["state"] != "settled"]
    if failed:
        raise JobError(f"the period run did not settle {', '.join(failed)}; see "
                       f"{_shown(out / 'period')}/<pair>/<role>/console.log")
    agree = total = 0
    for a, b in PAIRS:
        name = f"{a}{PAIR_SEPARATOR}{b}"
        truth = pl.read_parquet(data_dir / name / "truth.parquet")
        for role in "AB":
            got = pl.read_parquet(out / "period" / name / role / "records.parquet").select(
                "row", "status")
            want = truth.filter(pl.col("side") == role).select("row", "expected_status")
            joined = want.join(got, on="row", how="left")
            agree += int((joined["status"] == joined["expected_status"]).sum())
            total += joined.height
    _say(f"  statuses equal to the generators' true answers: {agree:,} of {total:,} rows")
    _verify_ledger(config)
    _say(f"Summary across pairs: {_shown(out / 'period' / 'period-summary.json')}")
    _say(f"Total: {time.perf_counter() - began:.1f} s")
    return 0
