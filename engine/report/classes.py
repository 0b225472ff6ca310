"""Rate classes and directions of calls, over whole columns.

The same precedence as :meth:`engine.rules.Rules.operator_of`, ``call_type_of`` and
``time_band_of`` (docs/rules.md), but vectorised: one hash lookup per distinct
prefix length instead of a Python call per record.  Works on the report's schema
(:mod:`engine.report.frames`): ``calling``/``called`` digits, ``start`` epoch seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from engine.rules import Rules


def longest_prefix(column: str, table: Iterable[tuple[str, str]], default: str) -> pl.Expr:
    """The label of the longest item of ``table`` (prefix, label) that ``column``
    starts with, else ``default``.  Among equal prefixes the first in ``table`` wins,
    as in :meth:`Rules.operator_of`.  One hash lookup per distinct prefix length."""
    by_length: dict[int, dict[str, str]] = {}
    for prefix, label in table:
        by_length.setdefault(len(prefix), {}).setdefault(prefix, label)
    lookups = [
        pl.col(column).str.slice(0, length).replace_strict(
            mapping, default=None, return_dtype=pl.String)
        for length, mapping in sorted(by_length.items(), reverse=True)
    ]
    return pl.coalesce(*lookups, pl.lit(default, dtype=pl.String))


def classify(records: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """``records`` with the string columns ``payer``, ``payee``,
    ``call_type``, ``time_band`` added (the rate class of each record)."""
    operators = [(p, op.id) for op in rules.operators for p in op.prefixes]
    call_types = [(p, ct.name) for ct in rules.call_types for p in ct.called_prefixes]
    minute = ((pl.col("start") + rules.timezone_offset_s) // 60) % 1440
    band: Any = None  # when/then chain: the first band containing the minute
    for tb in rules.time_bands:
        if tb.start_minute < tb.end_minute:
            inside = (minute >= tb.start_minute) & (minute < tb.end_minute)
        else:
            inside = (minute >= tb.start_minute) | (minute < tb.end_minute)
        band = (pl.when(inside) if band is None else band.when(inside)).then(
            pl.lit(tb.name, dtype=pl.String))
    return records.with_columns(
        longest_prefix("calling", operators, rules.unknown_operator).alias("payer"),
        longest_prefix("called", operators, rules.unknown_operator).alias("payee"),
        longest_prefix("called", call_types, rules.default_call_type).alias("call_type"),
        band.otherwise(pl.lit(None, dtype=pl.String)).alias("time_band"),
    )


__all__ = ["classify", "longest_prefix"]
