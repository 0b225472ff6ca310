"""The ``settlechain`` console script.

One program, subcommands registered per area so that each area owns its own
parser code.  A registration module exposes ``register(subparsers)``, which adds
its subcommands and sets ``handler`` on each of them to a callable
``handler(args) -> int``.  Handlers import their heavy dependencies lazily, so that
``settlechain --help`` is fast and MPyC's import-time argument parsing never runs
for subcommands that do not need it.

Only this module catches broadly: a :class:`~engine.errors.SettlechainError` (or
the root error of ``protocols``/``ledger_anchor``/``data_gen``) is printed with its
diagnostics and the process exits non-zero; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

# Modules that register subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "engine.job.cli",          # demo, party, keys
    "data_gen.cli",            # gen
    "engine.ingest.cli",       # validate
    "engine.reference_cli",    # reconcile-plain
    "engine.export.cli",       # export (a party's worklists as CSV / Parquet / XLSX)
    "ledger_anchor.cli",       # ledger ...
    "governance.cli",          # governance, people, approve, audit
    "protocols.psi.cli",       # psi (standalone two-party PSI, for benchmarks and debugging)
    "protocols.mpc.cli",       # mpc (standalone three-party run, for benchmarks and debugging)
    "billing.cli",             # billing ... (invoices, payments, aging, adjustments, netting)
)

# Root error types whose diagnostics the CLI prints instead of a traceback.
_ROOT_ERRORS: tuple[tuple[str, str], ...] = (
    ("engine.errors", "SettlechainError"),
    ("data_gen.errors", "DataGenError"),
    ("ledger_anchor.errors", "LedgerError"),
    ("governance.errors", "GovernanceError"),
    ("protocols.errors", "ProtocolError"),
    ("billing.errors", "BillingError"),
)


def _root_errors() -> tuple[type[BaseException], ...]:
    return tuple(getattr(importlib.import_module(module), name) for module, name in _ROOT_ERRORS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="settlechain",
        description=(
            "Privacy-preserving reconciliation between telecom operators: "
            "PSI + MPC over each operator's own billing export, results anchored in an "
            "SM3 Merkle ledger."
        ),
    )
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="logging level on stderr (default: warning)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    root_errors = _root_errors()
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("settlechain: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`settlechain ledger show | head`): not an error of ours;
        # point stdout at devnull so the interpreter's final flush does not complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except root_errors as exc:  # type: ignore[misc]
        diagnose = getattr(exc, "diagnostics", None)
        text = diagnose() if callable(diagnose) else str(exc)
        print(f"settlechain {args.command}: error: {text}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
