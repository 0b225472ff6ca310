"""``settlechain validate``: check one billing export against the rules.

    settlechain validate --data a.csv --rules rules.toml [--quarantine bad.csv]

prints the number of rows, how many are valid (and of those, how many are exact
duplicates or excluded by a rule), the invalid rows per reason and the canonical
records, and writes the quarantine file (default: beside the data,
``<name>.quarantine.csv``).  Exit status: 0 when every row is valid, 1 when some
rows are invalid, 2 when the file or the rules cannot be used at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Files at least this large get a progress bar when stderr is a terminal.
PROGRESS_MIN_BYTES = 16 * 1024 * 1024


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validate, normalise and rate one billing export; write its quarantine file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="the billing export: CSV (UTF-8, header row) or Parquet")
    parser.add_argument("--rules", required=True, metavar="RULES",
                        help="the rules TOML (docs/rules.md)")
    parser.add_argument("--quarantine", metavar="FILE",
                        help="where to write the invalid rows (CSV, or Parquet for .parquet); "
                             "default: <data name>.quarantine.csv beside the data")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object instead of text")
    parser.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                        help="progress bar on stderr (auto: for files of 16 MiB or more "
                             "when stderr is a terminal)")
    parser.set_defaults(handler=handle_validate)


def default_quarantine_path(data: Path) -> Path:
    return data.with_name(f"{data.stem}.quarantine.csv")


def handle_validate(args: argparse.Namespace) -> int:
    from engine.ingest.pipeline import STAGES, ingest
    from engine.rules import load_rules

    data = Path(args.data)
    rules = load_rules(args.rules)
    quarantine = Path(args.quarantine) if args.quarantine else default_quarantine_path(data)

    show = args.progress == "always" or (
        args.progress == "auto" and sys.stderr.isatty() and _size(data) >= PROGRESS_MIN_BYTES)
    bar = None
    progress = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=len(STAGES), desc="read", unit="stage", file=sys.stderr,
                   bar_format="{desc:<12}{bar}| {n_fmt}/{total_fmt} stages [{elapsed}]")

        def progress(stage: str, step: int, steps: int) -> None:
            bar.update(1)
            if step < steps:
                bar.set_description_str(STAGES[step])

    try:
        result = ingest(data, rules, quarantine_path=quarantine, progress=progress)
    finally:
        if bar is not None:
            bar.close()

    counts = result.counts
    summary = {
        "file": result.source,
        "format": result.format,
        "rules_sm3": rules.sm3_hash(),
        "rows": counts["rows"],
        "valid": counts["rows"] - counts["invalid"],
        "ok": counts["ok"],
        "duplicate": counts["duplicate"],
        "excluded": counts["excluded"],
        "invalid": counts["invalid"],
        "invalid_by_reason": result.invalid_by_reason,
        "records": counts["records"],
        "considered": counts["considered"],
        "chains": counts["chains"],
        "merged_rows": counts["merged_rows"],
        "extra_columns": list(result.extra_columns),
        "quarantine": str(quarantine),
        "seconds": round(result.seconds["total"], 3),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_text(summary))
    return 1 if counts["invalid"] else 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _text(s: dict[str, Any]) -> str:
    width = max([len(r) for r in s["invalid_by_reason"]] + [0])
    lines = [
        f"file:       {s['file']} ({s['format']})",
        f"rows:       {s['rows']}",
        f"valid:      {s['valid']}  (ok {s['ok']}, duplicate {s['duplicate']}, "
        f"excluded {s['excluded']})",
        f"invalid:    {s['invalid']}",
    ]
    lines += [f"  {reason:<{width}}  {n}" for reason, n in s["invalid_by_reason"].items()]
    lines += [
        f"records:    {s['records']}  ({s['considered']} to match, "
        f"{s['records'] - s['considered']} excluded; {s['chains']} merged calls "
        f"from {s['merged_rows']} partial rows)",
        f"quarantine: {s['quarantine']} ({s['invalid']} entries)",
    ]
    if s["extra_columns"]:
        lines.append("ignored columns: " + ", ".join(s["extra_columns"]))
    lines.append(f"seconds:    {s['seconds']}")
    return "\n".join(lines)
