"""``settlechain export``: write a party's disputes, unmatched and invalid lists.

::

    settlechain export --from out/A --data data/a.csv --rules data/rules.toml --out lists/
    settlechain export --from out/A --data data/a.csv --job job.toml --out lists/ --format xlsx
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "write a party's disputes, unmatched and invalid lists as CSV, Parquet and XLSX"

DESCRIPTION = (
    "From a party's output folder (summary.json, records.parquet, statement.json, "
    "quarantine) and the billing export it ran on, write every disputed pair, every "
    "unmatched record and every invalid row, uncapped, as DIR/disputes.csv, "
    "DIR/unmatched.csv, DIR/invalid.csv, the same as .parquet, and as one-sheet .xlsx "
    "workbooks (with the 'xlsx' extra: pip install 'settlechain[xlsx]').  The columns are "
    "those of report.html's lists; the job's disclosure policy decides which exist.  The "
    "rules must be the job's (SM3) and the data file the one the job read (same rows, "
    "record ids, statuses and Merkle commitment), or nothing is written.  Money in "
    "integer minor units (fen)."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help=HELP, description=DESCRIPTION)
    parser.add_argument("--from", dest="party_dir", type=Path, default=Path("."), metavar="DIR",
                        help="the party's output folder (settlechain party --out; default: .)")
    parser.add_argument("--data", required=True, type=Path, metavar="FILE",
                        help="the billing export the party ran on (CSV or Parquet)")
    rules = parser.add_mutually_exclusive_group(required=True)
    rules.add_argument("--rules", type=Path, metavar="FILE", help="the job's rules TOML")
    rules.add_argument("--job", type=Path, metavar="FILE",
                       help="the job file (its rules are used)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="where to write the lists (created if needed)")
    parser.add_argument("--format", default=None, metavar="LIST",
                        help="comma-separated: csv, parquet, xlsx (default: all three; "
                             "xlsx only when XlsxWriter is installed)")
    parser.add_argument("--lists", default="disputes,unmatched,invalid", metavar="LIST",
                        help="comma-separated: disputes, unmatched, invalid (default: all)")
    parser.set_defaults(handler=handle)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def handle(args: argparse.Namespace) -> int:
    from engine.export import FORMATS, export_lists, xlsx_available
    from engine.rules import load_rules

    notes = []
    if args.format is None:
        formats = [f for f in FORMATS if f != "xlsx" or xlsx_available()]
        if "xlsx" not in formats:
            notes.append("no .xlsx: XlsxWriter is not installed "
                         "(pip install 'settlechain[xlsx]')")
    else:
        formats = _split(args.format)
    if args.job is not None:
        from engine.job.jobfile import load_job

        rules_path = load_job(args.job).rules_path
    else:
        rules_path = args.rules
    rules = load_rules(rules_path)
    result = export_lists(args.party_dir, args.out, data=args.data, rules=rules,
                          rules_file=rules_path, formats=formats, lists=_split(args.lists))
    print(f"settlechain export: job {result.job_id}, party {result.party}, disclosure "
          f"{result.policy}; {args.data} checked against records.parquet "
          f"({result.input_rows:,} rows"
          + (", and the Merkle commitment in statement.json)" if result.commitment_checked
             else "; the Merkle commitment was not checked)"))
    width = max(len(item.kind) for item in result.lists) if result.lists else 0
    for item in result.lists:
        names = ", ".join(str(f) for f in item.files) or "nothing written"
        print(f"  {item.kind:<{width}}  {item.rows:>10,} rows  {names}")
        for skipped in item.skipped:
            print(f"  {'':<{width}}  {'':>10}       not written: {skipped}")
    for note in notes:
        print(f"  note: {note}")
    return 0
