"""Record ids: each operator's own opaque id, a pure function of the row number.

Row r (1-based) of an operator's file for period YYYY-MM gets
``<operator><YYYYMM><10 digits>`` with the digits (r·M + O) mod 10^10: a bijection
of 0..10^10-1 (M is coprime to 10), so ids are unique within a file and do not
read as row numbers.  Being a function of the row, an id can be computed in a
polars expression wherever it is needed (a row's own id, its counterpart's id,
the id of the first part of its call) without materialising a column of them.
"""

from __future__ import annotations

import polars as pl

MULTIPLIER = 2_654_435_761   # r·M stays far below 2^63 for every allowed size
OFFSET = 104_729


def prefix(operator: str, period: str) -> str:
    return f"{operator}{period.replace('-', '')}"


def digits_expr(row: pl.Expr) -> pl.Expr:
    """The 10 digits of the record_id of 1-based row number ``row`` (an Int64 expression)."""
    return ((row * MULTIPLIER + OFFSET) % 10**10).cast(pl.String).str.zfill(10)


def id_expr(id_prefix: str, row: pl.Expr) -> pl.Expr:
    """The record_id of 1-based row number ``row`` (an Int64 expression)."""
    return pl.lit(id_prefix) + digits_expr(row)
