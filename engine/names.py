"""The names every stage of the engine shares, declared once.

Services, statuses, reason codes, disclosure policies, the PSI passes and the stage
each belongs to, the job's stages, and the canonical table schemas with the one check
that holds a frame to them.  docs/records.md and docs/matching.md specify them; the
disputed-pair reason codes come from :mod:`protocols.mpc.params` (the MPC computes the
bitmask), so the engine and the protocol cannot drift apart.

Nothing here computes anything; every other engine module imports its names from
here instead of declaring them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from engine.errors import InputError
from protocols.mpc.params import POLICIES, REASON_BITS, REASON_CODES

__all__ = [
    "DIFF_COLUMNS", "DISCLOSURE_POLICIES", "ELEMENT_ID_BYTES", "JOB_STAGES", "OPERATOR_ROLES",
    "OUTPUT_STATUSES", "PASSES", "PASS_STAGE", "PassSpec", "QUARANTINE_SCHEMA",
    "REASON_BITS", "REASON_CODES", "RECORDS_OUTPUT_SCHEMA", "RECORD_STAGES", "ROLES",
    "ROW_STATUSES", "SERVICES", "SERVICE_CODE", "SchemaError", "VALUE_NAMES", "conform",
]

# -- parties ----------------------------------------------------------------------

ROLES: Final[tuple[str, str, str]] = ("A", "B", "H")
"""A hosts the session and serves PSI; B is the counterparty operator; H the helper."""
OPERATOR_ROLES: Final[tuple[str, str]] = ("A", "B")

# -- records ----------------------------------------------------------------------

SERVICES: Final[tuple[str, ...]] = ("voice", "sms", "data")
"""Service names; a record's ``service`` code is the index (UInt8)."""
SERVICE_CODE: Final[dict[str, int]] = {name: code for code, name in enumerate(SERVICES)}
VOICE, SMS, DATA = 0, 1, 2

ROW_STATUSES: Final[tuple[str, ...]] = ("ok", "invalid", "duplicate", "excluded")
"""Statuses after ingest (the rows frame); ``ok`` rows go on to matching."""

OUTPUT_STATUSES: Final[tuple[str, ...]] = (
    "matched_exact", "matched_tolerance", "disputed", "unmatched",
    "duplicate", "invalid", "excluded",
)
"""Statuses of records.parquet, in the order of their codes."""

OUT_OF_PERIOD: Final = "out_of_period"
"""Reason of an ``excluded`` record whose start lies outside the job's period."""

# -- disclosure and reasons ---------------------------------------------------------

DISCLOSURE_POLICIES: Final[tuple[str, ...]] = tuple(POLICIES)
VALUE_NAMES: Final[tuple[str, ...]] = ("start", "duration_s", "charge", "rated_charge")
"""The four compared values of a candidate pair (the keys of ``differences``)."""
DIFF_COLUMNS: Final[tuple[str, ...]] = ("diff_start_s", "diff_duration_s", "diff_charge",
                                        "diff_rated_charge")
"""Their columns in records.parquet (local − remote), aligned with VALUE_NAMES."""

# -- PSI passes ---------------------------------------------------------------------

ELEMENT_ID_BYTES: Final = 16
"""Pair ids are 16 bytes (32 lowercase hex characters in records.parquet)."""

RECORD_STAGES: Final[tuple[str | None, ...]] = (None, "exact", "tolerant_values", "key")
"""The ``stage`` column of records.parquet by code (0: not paired)."""


@dataclass(frozen=True)
class PassSpec:
    """One matching pass (docs/matching.md, table "Passes")."""

    name: str
    """``S1``, ``S2a``, ``S2b``, ``S3a``, ``S3b``."""
    tag: int
    """First byte of the pass's elements."""
    stage: str
    """``exact`` | ``tolerant_values`` | ``key``: the ``stage`` column of its pairs."""
    job_stage: str
    """The summary.json stage the pass counts towards: ``psi_exact`` or ``psi_key``."""

    @property
    def stage_code(self) -> int:
        return RECORD_STAGES.index(self.stage)

    @property
    def width(self) -> int:
        """Element width in bytes: 46 for S1/S2, 30 for S3."""
        return 46 if self.stage != "key" else 30


PASSES: Final[tuple[PassSpec, ...]] = (
    PassSpec("S1", 1, "exact", "psi_exact"),
    PassSpec("S2a", 2, "tolerant_values", "psi_exact"),
    PassSpec("S2b", 3, "tolerant_values", "psi_exact"),
    PassSpec("S3a", 4, "key", "psi_key"),
    PassSpec("S3b", 5, "key", "psi_key"),
)
PASS_STAGE: Final[dict[str, str]] = {p.name: p.job_stage for p in PASSES}

# -- the job ------------------------------------------------------------------------

JOB_STAGES: Final[tuple[str, ...]] = (
    "ingest", "agree", "commit", "psi_exact", "psi_key", "mpc", "report", "anchor",
)
"""The stages of a job, in order (summary.json ``stages`` adds ``total``)."""

# -- canonical tables ---------------------------------------------------------------

RECORDS_OUTPUT_SCHEMA: Final[dict[str, Any]] = {
    "row": pl.Int64, "record_id": pl.String, "status": pl.String, "pair_id": pl.String,
    "stage": pl.String, "reasons": pl.String, "merged_into": pl.String,
    "diff_start_s": pl.Int64, "diff_duration_s": pl.Int64, "diff_charge": pl.Int64,
    "diff_rated_charge": pl.Int64,
}
"""records.parquet (docs/records.md): one row per input row, in input order."""

INPUT_COLUMNS: Final[tuple[str, ...]] = (
    "record_id", "service", "calling", "called", "start_time",
    "duration_s", "volume_kb", "trunk_group", "part_seq", "charge",
)
"""The billing export's columns, in the order of docs/records.md."""

QUARANTINE_SCHEMA: Final[dict[str, Any]] = {
    "row": pl.Int64, "record_id": pl.String, "code": pl.String, "column": pl.String,
    "reason": pl.String, "message": pl.String,
    **{name: pl.String for name in INPUT_COLUMNS if name != "record_id"},
}
"""quarantine.parquet: one entry per invalid row, then the row's input fields as text."""


class SchemaError(InputError):
    """A frame does not have a documented table's columns and types."""


def conform(frame: Any, schema: Mapping[str, Any], what: str, *,
            exact: bool = False) -> pl.DataFrame:
    """``frame`` restricted to ``schema``'s columns, in its order, with exactly its dtypes.

    Integer columns of another integer dtype are cast when every value fits (else an
    error naming the column); any other difference is an error.  ``exact``: the frame must
    have exactly these columns and dtypes already (for outputs about to be written).
    """
    if not isinstance(frame, pl.DataFrame):
        raise SchemaError(f"{what} is not a polars DataFrame", expected="polars.DataFrame",
                          found=type(frame).__name__)
    found = dict(frame.schema)
    if exact:
        if list(found) != list(schema) or any(found[c] != t for c, t in schema.items()):
            raise SchemaError(f"{what}: columns differ from the documented table",
                              expected=str(dict(schema)), found=str(found))
        return frame
    columns = []
    for name, dtype in schema.items():
        if name not in found:
            raise SchemaError(f"{what}: missing column", column=name, expected=str(dtype),
                              found="no such column")
        have = found[name]
        if have == dtype:
            columns.append(pl.col(name))
            continue
        want = dtype() if isinstance(dtype, type) else dtype
        if have.is_integer() and want.is_integer():
            try:
                frame.select(pl.col(name).cast(want, strict=True))
            except pl.exceptions.PolarsError:
                raise SchemaError(f"{what}: values do not fit the documented type",
                                  column=name, expected=str(want), found=str(have)) from None
            columns.append(pl.col(name).cast(want))
            continue
        if have == pl.Null:
            columns.append(pl.col(name).cast(want))
            continue
        raise SchemaError(f"{what}: wrong column type", column=name, expected=str(want),
                          found=str(have))
    return frame.select(columns)


__all__ += ["DATA", "INPUT_COLUMNS", "OUT_OF_PERIOD", "SMS", "VOICE"]
