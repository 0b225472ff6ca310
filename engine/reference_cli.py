"""``settlechain reconcile-plain``: the plaintext reference reconciler.  NO PRIVACY.

A testing and debugging tool: it reads BOTH operators' billing exports in one
process and reconciles them in the clear (engine.reference), writing each party's
outputs exactly as a private job would (except the pair ids, the ledger anchor and
the timings)::

    settlechain reconcile-plain --a a.csv --b b.csv --rules rules.toml --out out/ [--period 2026-10]
    # -> out/A/{summary.json,records.parquet,statement.json,quarantine.parquet}
    #    out/B/{...}

It runs bucket by bucket like a job (engine.side), so it needs no more memory than one.

Never run it on real operators' data outside one operator's premises: whoever runs
it sees both files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "plaintext reference reconciliation of two files (testing/debugging; NO privacy)"

DESCRIPTION = (
    "Reconcile party A's and party B's billing exports IN THE CLEAR, in one process, and "
    "write each party's outputs (summary.json, records.parquet, statement.json, and the "
    "ingest quarantine file quarantine.parquet) to OUT/A and OUT/B.  This is the reference (oracle) the "
    "private pipeline is tested against.  It offers NO PRIVACY: whoever runs it sees both "
    "files.  Use it only for testing and debugging."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("reconcile-plain", help=HELP, description=DESCRIPTION)
    parser.add_argument("--a", required=True, type=Path, metavar="FILE",
                        help="party A's billing export (CSV or Parquet, docs/records.md)")
    parser.add_argument("--b", required=True, type=Path, metavar="FILE",
                        help="party B's billing export")
    parser.add_argument("--rules", required=True, type=Path, metavar="FILE",
                        help="rules TOML shared by the parties (docs/rules.md)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output folder; A's outputs go to DIR/A, B's to DIR/B")
    parser.add_argument("--disclosure", choices=("aggregate", "flags", "differences"),
                        default=None, metavar="POLICY",
                        help="override the rules' disclosure policy: aggregate | flags | "
                             "differences (changes the rules hash, as in a private job)")
    parser.add_argument("--job-id", default=None, metavar="ID",
                        help="job id (default: 'plain-' + SM3 of the rules hash and both "
                             "files, so that a rerun gives the same pair ids)")
    parser.add_argument("--period", default=None, metavar="YYYY-MM",
                        help="the job's settlement period: records starting outside it are "
                             "excluded (out_of_period), as in a job (default: no period "
                             "check; the outputs name the month(s) of the records)")
    parser.add_argument("--records-per-bucket", type=int, default=None, metavar="N",
                        help="records per bucket, as a job's partitioning (default 2^20)")
    parser.set_defaults(handler=handle)


def default_job_id(rules_sm3: str, paths: tuple[Path, Path]) -> str:
    """``plain-`` + 16 hex of SM3(rules hash ‖ len ‖ file A ‖ len ‖ file B)."""
    from engine.errors import InputError
    from ledger_anchor.sm3 import sm3_hasher

    hasher = sm3_hasher()
    hasher.update(bytes.fromhex(rules_sm3))
    for path in paths:
        try:
            hasher.update(path.stat().st_size.to_bytes(8, "big"))
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    hasher.update(chunk)
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror}", file=str(path)) from None
    return "plain-" + hasher.digest().hex()[:16]


def handle(args: argparse.Namespace) -> int:
    from engine.partition import DEFAULT_RECORDS_PER_BUCKET
    from engine.reference import reconcile_files
    from engine.rules import load_rules

    rules = load_rules(args.rules)
    if args.disclosure is not None:
        rules = rules.with_disclosure(args.disclosure)
    out = Path(args.out)
    job_id = args.job_id or default_job_id(rules.sm3_hash(), (args.a, args.b))
    result = reconcile_files(args.a, args.b, rules, out=out, job_id=job_id, period=args.period,
                             records_per_bucket=args.records_per_bucket
                             or DEFAULT_RECORDS_PER_BUCKET)
    summary = result.a.summary
    print(json.dumps({"job_id": job_id, "out": str(out), "pairs": summary["pairs"],
                      "settlement": summary["review"]["settlement"],
                      "counts": {"A": result.a.summary["counts"],
                                 "B": result.b.summary["counts"]}}, indent=2))
    return 0
