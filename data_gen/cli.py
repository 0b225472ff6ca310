"""``settlechain gen``: write a synthetic scenario (both files, rules, truth) to a folder.

One flag per knob of :class:`~data_gen.config.GenConfig`, generated from its fields,
so that ``--help`` lists every knob with its documented default.  Heavy imports
(numpy, polars) happen inside the handler.
"""

from __future__ import annotations

import argparse
import dataclasses

from data_gen.config import GenConfig

_TYPES = {"int": int, "float": float, "str": str}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "gen",
        help="generate synthetic paired billing exports with the true answer",
        description=(
            "Generate a synthetic settlement period: true call events, operator A's and "
            "B's billing exports derived from them with tunable perturbations, the rules "
            "they were priced with, and the true answer (truth.parquet: the status each "
            "row must get).  Writes a.<fmt>, b.<fmt>, rules.toml, truth.parquet and "
            "manifest.json into --out."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"],
                        help="file format of a.<fmt> and b.<fmt>")
    for f in dataclasses.fields(GenConfig):
        kind = _TYPES[f.type] if isinstance(f.type, str) else f.type
        metavar = ("SHARE" if "_share" in f.name else "N" if kind is int
                   else "X" if kind is float else "TEXT")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind,
                            default=f.default, metavar=metavar, help=f.metadata["help"])
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    import json
    import time

    from data_gen.dataset import generate, write_dataset

    config = GenConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GenConfig)})
    t0 = time.perf_counter()
    dataset = generate(config, args.format)
    t1 = time.perf_counter()
    write_dataset(dataset, args.out)
    t2 = time.perf_counter()
    manifest = dataset.manifest()
    print(f"wrote {args.out}: {manifest['rows']['A']} rows in a.{args.format}, "
          f"{manifest['rows']['B']} rows in b.{args.format} from {manifest['events']} events "
          f"(generate {t1 - t0:.2f} s, write {t2 - t1:.2f} s)")
    print("pairs: " + json.dumps(manifest["pairs"]))
    print(f"rows evaluated by the key pass (MPC): {manifest['rows_in_key_pass_share']:.2%}")
    return 0
