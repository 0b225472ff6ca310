"""``settlechain gen``: write a synthetic scenario (both files, rules, truth) to a folder.

One flag per knob of :class:`~data_gen.config.GenConfig`, generated from its fields,
so that ``--help`` lists every knob with its documented default, plus ``--block-events``
(memory, not data).  Heavy imports (numpy, polars) happen inside the handler; a progress
bar is shown on a terminal.
"""

from __future__ import annotations

import argparse
import dataclasses

from data_gen.blocks import CHUNK, DEFAULT_BLOCK_EVENTS
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
    parser.add_argument("--block-events", type=int, default=DEFAULT_BLOCK_EVENTS, metavar="N",
                        help="events generated and written at a time (rounded up to whole "
                             f"chunks of {CHUNK}); bounds the peak memory (under 1 GiB at the "
                             "default), never changes the files")
    for f in dataclasses.fields(GenConfig):
        kind = _TYPES[f.type] if isinstance(f.type, str) else f.type
        metavar = ("SHARE" if "_share" in f.name else "N" if kind is int
                   else "X" if kind is float else "TEXT")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind,
                            default=f.default, metavar=metavar, help=f.metadata["help"])
    parser.set_defaults(handler=_handle)


def _return_freed_memory() -> None:
    """Have glibc give freed arrays back to the system.

    Every block allocates and frees arrays of 0.1-10 MB.  glibc raises its mmap threshold
    after such frees, so later ones come from its heap, which fragments: the process's
    resident size crept by about 7 MiB per 10^6 events (0.99 GiB peak at 2 * 10^7
    events, 1.62 GiB at 10^8).  Fixed thresholds of 128 KiB (mmap and trim) keep it flat
    (0.69 GiB at 2 * 10^7, measured in bench/RESULTS-data_gen.md).  Nothing happens
    where the C library is not glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 128 * 1024)
    mallopt(m_trim_threshold, 128 * 1024)


def _handle(args: argparse.Namespace) -> int:
    import json
    import sys

    from data_gen.dataset import generate, write_dataset
    from data_gen.errors import DataGenError

    config = GenConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GenConfig)})
    if args.block_events < 1:
        raise DataGenError(f"bad --block-events: expected an integer >= 1, found "
                           f"{args.block_events}")
    _return_freed_memory()
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=config.records, unit=" events", unit_scale=True, file=sys.stderr,
                        desc="gen")
    last = [0]

    def on_block(done: int, total: int) -> None:
        if progress is not None:
            progress.update(done - last[0])
        last[0] = done

    try:
        written = write_dataset(generate(config, args.format), args.out,
                                block_events=args.block_events, on_block=on_block)
    finally:
        if progress is not None:
            progress.close()
    manifest, seconds = written.manifest, written.seconds
    fmt = args.format
    print(f"wrote {args.out}: {manifest['rows']['A']} rows in a.{fmt}, "
          f"{manifest['rows']['B']} rows in b.{fmt} from {manifest['events']} events in "
          f"{seconds['total']:.2f} s (generate {seconds['generate']:.2f} s, a.{fmt} "
          f"{seconds['a.' + fmt]:.2f} s, b.{fmt} {seconds['b.' + fmt]:.2f} s, truth "
          f"{seconds['truth.parquet']:.2f} s)")
    print("pairs: " + json.dumps(manifest["pairs"]))
    print("out of period: " + json.dumps(manifest["out_of_period_events"]))
    print(f"rows evaluated by the key pass (MPC): {manifest['rows_in_key_pass_share']:.2%}")
    return 0
