"""Root exception of the data_gen package."""

from __future__ import annotations


class DataGenError(Exception):
    """Base class of all deliberate data_gen errors (bad knob values, unwritable output)."""

    exit_code = 2

    def diagnostics(self) -> str:
        return str(self)
