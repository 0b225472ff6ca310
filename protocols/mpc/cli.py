"""``settlechain mpc``: one party of a standalone three-party run (benchmarks, debugging).

Start three processes, one per party (the order of the addresses is A, B, H)::

    settlechain mpc --party H --addresses 127.0.0.1:17311,127.0.0.1:17312,127.0.0.1:17313 --generate 20000 &
    settlechain mpc --party B --addresses 127.0.0.1:17311,127.0.0.1:17312,127.0.0.1:17313 --generate 20000 &
    settlechain mpc --party A --addresses 127.0.0.1:17311,127.0.0.1:17312,127.0.0.1:17313 --generate 20000 \\
        --out a.json

A and B read their pair values (columns ``start``, ``duration_s``, ``charge``,
``rated_charge``, int64, in the common pair order) from ``--pairs FILE.parquet`` or
synthesise them with ``--generate N --seed S`` (both sides from the same seed, each
taking its own side); H only needs the number of pairs (``--n-pairs`` or
``--generate``).  Without ``--ca-cert`` the run is a local demo and every address must
be a loopback address.  MPyC is imported only inside the handler.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    from protocols.mpc.params import DEFAULT_MIN_CELL_PAIRS  # numpy only, no MPyC

    parser = subparsers.add_parser(
        "mpc",
        help="run one party (A, B or H) of the three-party discrepancy computation",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--party", required=True, choices=["A", "B", "H"], help="this party's role")
    parser.add_argument("--addresses", required=True,
                        help="host:port of A, B and H, comma-separated (the MPC ports, open only during the job)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--pairs", type=Path, help="A/B: Parquet file with start, duration_s, charge, rated_charge")
    source.add_argument("--generate", type=int, metavar="N", help="synthesise N candidate pairs (all parties)")
    parser.add_argument("--seed", type=int, default=1, help="seed of --generate (same on A and B)")
    parser.add_argument("--n-pairs", type=int, help="H: number of pairs (with --pairs on A and B)")
    parser.add_argument("--time-tolerance-s", type=int, default=5)
    parser.add_argument("--duration-tolerance-s", type=int, default=2)
    parser.add_argument("--charge-tolerance", type=int, default=2)
    parser.add_argument("--policy", choices=["aggregate", "flags", "differences"], default="flags")
    parser.add_argument("--min-cell-pairs", type=int, default=DEFAULT_MIN_CELL_PAIRS,
                        help="k of the small-cell rule: no charge sum over fewer than k pairs "
                             f"(default {DEFAULT_MIN_CELL_PAIRS})")
    parser.add_argument("--timeout-s", type=float, default=60.0,
                        help="connection phase and longest wait for a peer's message (default 60)")
    parser.add_argument("--chunk-size", type=int, help="pairs per chunk (default: from the tolerances)")
    parser.add_argument("--ca-cert", type=Path, help="consortium CA certificate (enables mutual TLS)")
    parser.add_argument("--cert", type=Path, help="this party's TLS certificate")
    parser.add_argument("--key", type=Path, help="this party's TLS private key")
    parser.add_argument("--peer-names", help="DNS names in the certificates of A, B and H, comma-separated")
    parser.add_argument("--out", type=Path, help="write the result summary (JSON) here; default: stdout")
    parser.add_argument("--out-pairs", type=Path, help="A/B: write per-pair results (Parquet) here")
    parser.add_argument("--check", action="store_true",
                        help="with --generate: compare with the plaintext computation and fail on a difference")
    parser.set_defaults(handler=_handle)


def generate_pairs(n: int, seed: int):
    """Synthetic candidate pairs: realistic magnitudes, about a third of the pairs beyond
    some tolerance.  Returns (A's values, B's values)."""
    import numpy as np

    from protocols.mpc.params import PairValues

    rng = np.random.default_rng(seed)
    start = rng.integers(1_767_225_600, 1_769_904_000, n)  # a month of epoch seconds
    duration = rng.integers(1, 3_600, n)
    charge = rng.integers(0, 200_000, n)
    rated = charge + rng.integers(-1, 2, n)
    a = PairValues(start, duration, charge, rated)
    b = PairValues(start + rng.integers(-7, 8, n), duration + rng.integers(-3, 4, n),
                   charge + rng.integers(-3, 4, n), rated + rng.integers(-3, 4, n))
    return a, b


def _read_pairs(path: Path):
    import polars as pl

    from protocols.mpc.errors import MpcInputError
    from protocols.mpc.params import VALUE_COLUMNS, PairValues

    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for unreadable files
        raise MpcInputError(f"{path}: cannot be read as Parquet ({exc})") from exc
    missing = [c for c in VALUE_COLUMNS if c not in frame.columns]
    if missing:
        raise MpcInputError(f"{path}: expected columns {', '.join(VALUE_COLUMNS)}, missing {', '.join(missing)}")
    columns = {}
    for name in VALUE_COLUMNS:
        series = frame[name]
        if series.null_count():
            index = int(series.is_null().arg_max())
            raise MpcInputError(f"{path}: row {index + 1}, column {name}: expected an integer, found null",
                                column=name, index=index)
        if not series.dtype.is_integer():
            raise MpcInputError(f"{path}: column {name}: expected integers, found {series.dtype}", column=name)
        columns[name] = series.to_numpy().astype("int64")
    return PairValues(**columns)


def cells_json(cells) -> dict:
    """The cells of a result as JSON: per cell its pairs and its (A, B) charge sums or null."""
    def cell(c):
        out = {"pairs": c.pairs, "charge": None if c.charge is None else list(c.charge)}
        if c.in_other:
            out["in_other"] = True
        return out

    return {"min_cell_pairs": cells.min_cell_pairs,
            "matched_tolerance": cell(cells.matched_tolerance), "disputed": cell(cells.disputed),
            "candidates": cell(cells.candidates),
            "by_reason": {code: cell(c) for code, c in cells.by_reason.items()},
            "other": cell(cells.other)}


def _result_json(result, n_pairs: int) -> dict:
    if result is None:
        return {"party": "H", "pairs": n_pairs, "result": None}
    return {
        "pairs": n_pairs,
        "disputed": int(result.disputed.sum()),
        "reason_pairs": dict(result.reason_pairs),
        "cells": cells_json(result.cells),
        "stats": result.stats,
    }


def same_result(result, expected) -> bool:
    """Whether a party's result equals the plaintext computation (A's view; B's
    differences are negated)."""
    import numpy as np

    if not (np.array_equal(result.disputed, expected.disputed) and result.reason_pairs == expected.reason_pairs
            and result.cells == expected.cells):
        return False
    if (expected.reasons is None) != (result.reasons is None):
        return False
    if expected.reasons is not None and not np.array_equal(result.reasons, expected.reasons):
        return False
    if (expected.differences is None) != (result.differences is None):
        return False
    if expected.differences is not None:
        sign = 1 if result.stats.get("party", "A") == "A" else -1
        return all(np.array_equal(result.differences[key], sign * expected.differences[key])
                   for key in expected.differences)
    return True


def _handle(args: argparse.Namespace) -> int:
    import resource
    import time

    from protocols.mpc.api import run_discrepancy
    from protocols.mpc.errors import MpcConfigError, MpcInputError
    from protocols.mpc.params import MpcParties, MpcTls, ToleranceParams

    index = "ABH".index(args.party)
    addresses = tuple(a.strip() for a in args.addresses.split(","))
    tls = None
    if args.ca_cert is not None:
        if args.cert is None or args.key is None or args.peer_names is None:
            raise MpcConfigError("--ca-cert needs --cert, --key and --peer-names")
        tls = MpcTls(args.ca_cert, args.cert, args.key, tuple(n.strip() for n in args.peer_names.split(",")))
    parties = MpcParties(addresses, index, tls)
    params = ToleranceParams(args.time_tolerance_s, args.duration_tolerance_s, args.charge_tolerance, args.policy,
                             args.min_cell_pairs)

    values = None
    both = None
    if args.generate is not None:
        both = generate_pairs(args.generate, args.seed)
        n_pairs = args.generate
        if index < 2:
            values = both[index]
    elif args.pairs is not None:
        if index == 2:
            raise MpcConfigError("party H holds no data: give --n-pairs instead of --pairs")
        values = _read_pairs(args.pairs)
        n_pairs = len(values)
    elif args.n_pairs is not None and index == 2:
        n_pairs = args.n_pairs
    else:
        raise MpcConfigError("expected --pairs (A, B), --n-pairs (H) or --generate N")

    started = time.perf_counter()
    cpu = time.process_time()
    result = run_discrepancy(parties, params, n_pairs, values, args.timeout_s, chunk_size=args.chunk_size)
    summary = _result_json(result, n_pairs)
    summary["process"] = {
        "party": args.party,
        "wall_seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.check and result is not None:
        if both is None:
            raise MpcConfigError("--check needs --generate (both sides' values)")
        from protocols.mpc.reference import plaintext_discrepancy

        expected = plaintext_discrepancy(both[0], both[1], params)
        same = same_result(result, expected)
        summary["check"] = "equal to the plaintext computation" if same else "DIFFERENT from the plaintext computation"
        if not same:
            print(json.dumps(summary, indent=2), file=sys.stderr)
            raise MpcInputError("the MPC result differs from the plaintext computation")
    text = json.dumps(summary, indent=2, sort_keys=True)
    if args.out is not None:
        args.out.write_text(text + "\n")
    else:
        print(text)
    if args.out_pairs is not None and result is not None:
        import polars as pl

        frame = {"disputed": result.disputed}
        if result.reasons is not None:
            frame["reasons"] = result.reasons
        for key, diff in (result.differences or {}).items():
            frame[f"diff_{key}"] = diff
        pl.DataFrame(frame).write_parquet(args.out_pairs)
    return 0
