"""Per-party matching: the pass logic shared by the private pipeline and the reference.

The semantics are those of ``docs/matching.md``; the input frames and the output
columns those of ``docs/records.md``.  This module is pure: no I/O, no networking,
no timing.  One :class:`PartyMatcher` holds one party's canonical records and is
driven through a fixed sequence of steps::

    matcher = PartyMatcher("A", rows, records, rules)
    for spec in PASSES:                                   # S1, S2a, S2b, S3a, S3b
        elements = matcher.build_pass(spec)               # PassElements: (k, w) uint8 + ranks
        ... find the intersection with the counterparty ...   # PSI, or a plaintext join
        matcher.record_pass(elements, element_indices, pair_ids)
    values = matcher.candidate_values()                   # S3 pairs, in the common pair order
    ... evaluate the candidate pairs ...                  # MPC, or engine.tolerance
    matcher.record_evaluation(result)                     # DiscrepancyResult shape
    facts = matcher.side_facts()                          # what this party tells the other
    outcome = matcher.finish(counterparty_facts)          # records.parquet frame + summary numbers

The private pipeline and ``engine.reference`` differ only in the two "..." lines.

Vectorised throughout (numpy / polars); no per-record Python loop, so that 10^7
records per side are fine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from engine.errors import InputError
from engine.rules import Rules
from protocols.mpc.params import DiscrepancyResult

logger = logging.getLogger(__name__)

PARTIES: tuple[str, str] = ("A", "B")
SERVICES: tuple[str, ...] = ("voice", "sms", "data")

#: statuses of ``records.parquet``, in the order of their codes
STATUSES: tuple[str, ...] = (
    "matched_exact", "matched_tolerance", "disputed", "unmatched",
    "duplicate", "invalid", "excluded",
)
_MATCHED_EXACT, _MATCHED_TOLERANCE, _DISPUTED, _UNMATCHED = 0, 1, 2, 3

#: statuses of the canonical ``rows`` frame (docs/records.md)
ROW_STATUSES: tuple[str, ...] = ("ok", "invalid", "duplicate", "excluded")

#: disputed-pair reason codes in output order, and their bits in the MPC bitmask
REASON_CODES: tuple[str, ...] = (
    "start_time", "duration", "charge_rate_mismatch", "charge_rounding", "charge_unexplained",
)
REASON_BITS: dict[str, int] = {code: 1 << i for i, code in enumerate(REASON_CODES)}

#: the four compared values of a candidate pair (names of ``differences`` keys too)
VALUE_NAMES: tuple[str, ...] = ("start", "duration_s", "charge", "rated_charge")
#: their columns in records.parquet (local − remote)
DIFF_COLUMNS: tuple[str, ...] = ("diff_start_s", "diff_duration_s", "diff_charge",
                                 "diff_rated_charge")

DISCLOSURE_POLICIES: tuple[str, ...] = ("aggregate", "flags", "differences")

ELEMENT_ID_BYTES = 16
"""Pair ids are 16 bytes (32 lowercase hex characters in records.parquet)."""

_STAGE_NAMES: tuple[str | None, ...] = (None, "exact", "tolerant_values", "key")


class MatchingError(InputError):
    """The matcher was given inconsistent input or driven out of order.

    Bad canonical frames name the frame, row and column; an inconsistent pass or
    evaluation result says what was expected and what was found.
    """


# ---------------------------------------------------------------------------
# passes


@dataclass(frozen=True)
class PassSpec:
    """One matching pass (docs/matching.md, table "Passes")."""

    name: str
    """``S1``, ``S2a``, ``S2b``, ``S3a``, ``S3b``."""
    tag: int
    """First byte of the pass's elements."""
    stage: str
    """``exact`` | ``tolerant_values`` | ``key``: the ``stage`` column of its pairs."""

    @property
    def stage_code(self) -> int:
        return _STAGE_NAMES.index(self.stage)

    @property
    def width(self) -> int:
        """Element width in bytes: 46 for S1/S2, 30 for S3."""
        return 46 if self.stage != "key" else 30


PASSES: tuple[PassSpec, ...] = (
    PassSpec("S1", 1, "exact"),
    PassSpec("S2a", 2, "tolerant_values"),
    PassSpec("S2b", 3, "tolerant_values"),
    PassSpec("S3a", 4, "key"),
    PassSpec("S3b", 5, "key"),
)


def element_dtype(n_fields: int) -> np.dtype:
    """The packed little-endian record layout of an element with ``n_fields`` i64 fields."""
    return np.dtype(
        [("tag", "u1"), ("service", "u1"), ("calling", "<u8"), ("called", "<u8")]
        + [(f"field{i}", "<i8") for i in range(n_fields)]
        + [("rank", "<u4")]
    )


def encode_elements(tag: int, service: np.ndarray, calling: np.ndarray, called: np.ndarray,
                    fields: Sequence[np.ndarray], rank: np.ndarray) -> np.ndarray:
    """Element bytes of docs/matching.md as a ``(k, w)`` uint8 array.

    ``calling``/``called`` are already number codes (:func:`number_codes`).
    """
    dtype = element_dtype(len(fields))
    out = np.empty(len(rank), dtype=dtype)
    out["tag"] = tag
    out["service"] = service
    out["calling"] = calling
    out["called"] = called
    for i, values in enumerate(fields):
        out[f"field{i}"] = values
    out["rank"] = rank
    return out.view(np.uint8).reshape(len(rank), dtype.itemsize)


def number_codes(digits: pl.Series) -> np.ndarray:
    """``int(digits) | (len(digits) << 56)`` as uint64, for strings of 1-15 ASCII digits.

    Callers check the strings first (:meth:`PartyMatcher.__init__` does).
    """
    lengths = digits.str.len_bytes().cast(pl.UInt64).to_numpy()
    values = digits.str.to_integer(base=10, strict=True).cast(pl.UInt64).to_numpy()
    return values | (lengths << np.uint64(56))


def _ranks(keys: Sequence[np.ndarray]) -> np.ndarray:
    """0-based position of each item within its run of equal ``keys`` (runs contiguous)."""
    n = len(keys[0]) if keys else 0
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new_group = np.zeros(n, dtype=bool)
    new_group[0] = True
    for key in keys:
        new_group[1:] |= key[1:] != key[:-1]
    positions = np.arange(n, dtype=np.int64)
    group_start = np.maximum.accumulate(np.where(new_group, positions, 0))
    return positions - group_start


@dataclass(frozen=True)
class PassElements:
    """One party's elements of one pass: what it offers to the PSI (or the join)."""

    spec: PassSpec
    elements: np.ndarray
    """``(k, spec.width)`` uint8, distinct rows (the rank makes them so)."""
    records: np.ndarray
    """int64 ``(k,)``: the matcher's record index (its position in the sorted considered
    records) of each element; for information and tests."""
    ranks: np.ndarray
    """uint32 ``(k,)``: the rank written into each element."""
    units: np.ndarray
    """int64 ``(k,)``: the ``unit`` (records frame) of each element."""

    def __len__(self) -> int:
        return len(self.records)


# ---------------------------------------------------------------------------
# values exchanged with the evaluation and with the counterparty


@dataclass(frozen=True)
class CandidateValues:
    """One side's compared values of the S3 candidate pairs, in the common pair order.

    Same field names as ``protocols.mpc.PairValues``.
    """

    start: np.ndarray
    duration_s: np.ndarray
    charge: np.ndarray
    rated_charge: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class SideFacts:
    """What a party tells its counterparty at the end of a job (docs/matching.md
    § Disclosure: input sizes, the unmatched count and total charge).

    ``local_charge`` is derivable by the counterparty from the other disclosed sums;
    it is sent so that each side can check the identity of the totals.
    """

    party: str
    rows: int
    considered: int
    unmatched_records: int
    unmatched_rows: int
    unmatched_charge: int
    local_charge: int

    def to_json(self) -> dict[str, Any]:
        return {"party": self.party, "rows": self.rows, "considered": self.considered,
                "unmatched_records": self.unmatched_records,
                "unmatched_rows": self.unmatched_rows,
                "unmatched_charge": self.unmatched_charge, "local_charge": self.local_charge}


@dataclass(frozen=True)
class Review:
    settlement: str
    """``automatic`` | ``manual_review``."""
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class MatchOutcome:
    """A party's result: the ``records.parquet`` frame and the summary numbers."""

    party: str
    disclosure: str
    records: pl.DataFrame
    """One row per input row, the columns of docs/records.md ``records.parquet``."""
    counts: dict[str, int]
    pairs: dict[str, int]
    reasons: dict[str, dict[str, int]]
    totals: dict[str, int]
    review: Review
    local: SideFacts
    remote: SideFacts


# ---------------------------------------------------------------------------
# circuit breaker on input sizes (before any protocol runs)


def check_input_sizes(rows_a: int, rows_b: int, rules: Rules, *, invalid_a: int = 0,
                      invalid_b: int = 0) -> None:
    """Raise :class:`~engine.errors.JobError` when the inputs break the circuit breaker
    (the one definition: :func:`engine.breaker.check_sizes`)."""
    from engine.breaker import SideSizes, check_sizes
    from engine.errors import JobError

    reason = check_sizes({"A": SideSizes(rows_a, invalid_a), "B": SideSizes(rows_b, invalid_b)},
                         rules.circuit_breaker)
    if reason is not None:
        raise JobError(reason)


# ---------------------------------------------------------------------------
# the canonical frames

ROWS_SCHEMA: dict[str, Any] = {
    "row": pl.Int64, "record_id": pl.String, "status": pl.String, "reason": pl.String,
    "unit": pl.Int64,
}
RECORDS_SCHEMA: dict[str, Any] = {
    "unit": pl.Int64, "record_id": pl.String, "row": pl.Int64, "service": pl.UInt8,
    "calling": pl.String, "called": pl.String, "start": pl.Int64, "duration_s": pl.Int64,
    "volume_kb": pl.Int64, "trunk_group": pl.String, "charge": pl.Int64,
    "rated_charge": pl.Int64, "parts": pl.Int32, "excluded": pl.Boolean,
}
_NON_NULL_CONSIDERED = ("service", "calling", "called", "start", "duration_s", "charge",
                        "rated_charge")

_DIGITS_PATTERN = r"^[0-9]{1,15}$"


def _conform(frame: pl.DataFrame, schema: Mapping[str, Any], what: str) -> pl.DataFrame:
    """``frame`` restricted to ``schema``'s columns with exactly its dtypes.

    Integer columns of another integer dtype are cast (exactly, or an error); any
    other dtype difference is an error naming the column.
    """
    if not isinstance(frame, pl.DataFrame):
        raise MatchingError(f"{what} is not a polars DataFrame", expected="polars.DataFrame",
                            found=type(frame).__name__)
    columns = []
    for name, dtype in schema.items():
        if name not in frame.columns:
            raise MatchingError(f"{what}: missing column", column=name,
                                expected=f"a column {name!r} of dtype {dtype}",
                                found=f"columns {frame.columns}")
        found = frame.schema[name]
        if found == dtype:
            columns.append(pl.col(name))
        elif found.is_integer() and dtype.is_integer():
            try:
                columns.append(pl.col(name).cast(dtype, strict=True))
                frame.select(columns[-1])
            except pl.exceptions.InvalidOperationError:
                raise MatchingError(f"{what}: integer values out of range", column=name,
                                    expected=str(dtype), found=str(found)) from None
        elif found == pl.Null:
            columns.append(pl.col(name).cast(dtype))
        else:
            raise MatchingError(f"{what}: wrong dtype", column=name, expected=str(dtype),
                                found=str(found))
    return frame.select(columns)


# ---------------------------------------------------------------------------
# the matcher


class PartyMatcher:
    """One party's matching state over its canonical ``rows`` and ``records`` frames.

    The steps must be taken in order (module docstring); a step out of order raises
    :class:`MatchingError`.  The considered records are those that rows with status
    ``ok`` point at; internally they are indexed by their position in one sort
    (:meth:`_sort_considered`).
    """

    def __init__(self, party: str, rows: pl.DataFrame, records: pl.DataFrame,
                 rules: Rules) -> None:
        if party not in PARTIES:
            raise MatchingError("unknown party", expected="A | B", found=repr(party))
        if rules.disclosure not in DISCLOSURE_POLICIES:
            raise MatchingError("unknown disclosure policy",
                                expected=" | ".join(DISCLOSURE_POLICIES),
                                found=repr(rules.disclosure))
        self.party = party
        self.rules = rules
        self.policy = rules.disclosure
        self._rows = _conform(rows, ROWS_SCHEMA, f"party {party} canonical rows")
        self._records = _conform(records, RECORDS_SCHEMA, f"party {party} canonical records")
        self._check_and_index()
        self._sort_considered()

        m = self.considered
        self._stage = np.zeros(m, dtype=np.int8)            # 0 = not paired yet
        self._pair_ids = np.zeros((m, ELEMENT_ID_BYTES), dtype=np.uint8)
        self._candidate_parts: list[np.ndarray] = []
        self._candidates: np.ndarray | None = None
        self._next_pass = 0
        self._pending: PassElements | None = None
        self._evaluation: DiscrepancyResult | None = None
        self._pass_sizes: dict[str, tuple[int, int]] = {}

    # -- input checks -------------------------------------------------------

    def _check_and_index(self) -> None:
        rows, records = self._rows, self._records
        what_rows = f"party {self.party} canonical rows"
        what_records = f"party {self.party} canonical records"
        n = records.height
        for frame, what in ((rows, what_rows), (records, what_records)):
            if frame.get_column("row").null_count():
                i = int(frame.get_column("row").is_null().arg_true()[0])
                raise MatchingError(f"{what}: missing row number", column="row",
                                    expected="a row number", found=f"null at position {i}")
        units = records.get_column("unit").to_numpy()
        if records.get_column("unit").null_count() or not np.array_equal(
                units, np.arange(n, dtype=np.int64)):
            bad = int(np.flatnonzero(np.asarray(units) != np.arange(n))[0]) \
                if not records.get_column("unit").null_count() else 0
            raise MatchingError(f"{what_records}: units must be 0..n-1 in order", column="unit",
                                expected=f"unit {bad} at position {bad}",
                                found=str(records.get_column("unit")[bad]))

        status = rows.get_column("status")
        unknown = ~status.is_in(ROW_STATUSES) | status.is_null()
        if unknown.any():
            i = int(unknown.arg_true()[0])
            raise MatchingError(f"{what_rows}: unknown status", row=int(rows["row"][i]),
                                column="status", expected=" | ".join(ROW_STATUSES),
                                found=repr(status[i]))
        status_np = status.to_numpy()
        ok = status_np == "ok"
        excluded_row = status_np == "excluded"
        unit_col = rows.get_column("unit")
        has_unit = ~unit_col.is_null().to_numpy()
        row_unit = unit_col.fill_null(-1).to_numpy()
        needs_unit = ok | excluded_row
        wrong = (needs_unit != has_unit) | (has_unit & ((row_unit < 0) | (row_unit >= n)))
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise MatchingError(
                f"{what_rows}: unit must point into the records frame for status ok/excluded "
                "and be null otherwise", row=int(rows["row"][i]), column="unit",
                expected=f"0..{n - 1}" if needs_unit[i] else "null",
                found=str(unit_col[i]))
        excluded_flag = records.get_column("excluded").fill_null(False).to_numpy()
        mismatch = excluded_flag[row_unit[has_unit]] != excluded_row[has_unit]
        if mismatch.any():
            i = int(np.flatnonzero(has_unit)[np.flatnonzero(mismatch)[0]])
            raise MatchingError(
                f"{what_rows}: the row's status disagrees with its record's excluded flag",
                row=int(rows["row"][i]), column="status",
                expected="excluded" if excluded_flag[row_unit[i]] else "ok",
                found=str(status_np[i]))
        referenced = np.bincount(row_unit[has_unit], minlength=n)
        parts = records.get_column("parts").fill_null(0).to_numpy().astype(np.int64)
        bad_parts = (referenced > 0) & (referenced != parts)
        if bad_parts.any():
            u = int(np.flatnonzero(bad_parts)[0])
            raise MatchingError(f"{what_records}: parts must equal the number of rows of the "
                                "record", row=int(records["row"][u]), column="parts",
                                expected=str(int(referenced[u])), found=str(int(parts[u])))
        considered_mask = np.zeros(n, dtype=bool)
        considered_mask[row_unit[ok]] = True
        considered_units = np.flatnonzero(considered_mask)

        considered = records[considered_units]
        for name in _NON_NULL_CONSIDERED:
            nulls = considered.get_column(name).is_null()
            if nulls.any():
                i = int(nulls.arg_true()[0])
                raise MatchingError(f"{what_records}: missing value in a considered record",
                                    row=int(considered["row"][i]), column=name,
                                    expected="a value", found="null")
        service = considered.get_column("service").to_numpy()
        if (service > 2).any():
            i = int(np.flatnonzero(service > 2)[0])
            raise MatchingError(f"{what_records}: unknown service code",
                                row=int(considered["row"][i]), column="service",
                                expected="0 voice | 1 sms | 2 data", found=str(service[i]))
        for name in ("calling", "called"):
            malformed = ~considered.get_column(name).str.contains(_DIGITS_PATTERN)
            if malformed.any():
                i = int(malformed.arg_true()[0])
                raise MatchingError(f"{what_records}: number must be 1-15 ASCII digits",
                                    row=int(considered["row"][i]), column=name,
                                    expected="E.164 digits without '+'",
                                    found=repr(considered[name][i]))
        for name in ("duration_s", "charge", "rated_charge"):
            negative = considered.get_column(name) < 0
            if negative.any():
                i = int(negative.arg_true()[0])
                raise MatchingError(f"{what_records}: negative value",
                                    row=int(considered["row"][i]), column=name,
                                    expected="an integer >= 0", found=str(considered[name][i]))

        self.rows_count = rows.height
        self.considered = len(considered_units)
        self._considered_units = considered_units.astype(np.int64)
        self._service = service.astype(np.uint8)
        self._calling = number_codes(considered.get_column("calling"))
        self._called = number_codes(considered.get_column("called"))
        self._start = considered.get_column("start").to_numpy().astype(np.int64)
        self._duration = considered.get_column("duration_s").to_numpy().astype(np.int64)
        self._charge = considered.get_column("charge").to_numpy().astype(np.int64)
        self._rated = considered.get_column("rated_charge").to_numpy().astype(np.int64)
        self._parts = parts
        self.local_charge = int(self._charge.sum())

    def _sort_considered(self) -> None:
        """Sort the considered records once by (line, start, duration, charge, unit) and
        keep every per-record array in that order.

        The matcher's record index ("position") is the place in this order.  The groups
        of S1, S3a and S3b are contiguous runs of it, already ordered for the rank
        (⌊start/W⌋ is monotone in start); S2 re-sorts its (smaller) input stably.  A
        pass's unpaired records are an increasing subset of positions, so gathering
        their fields walks memory forward (this matters at 10^7 records).
        """
        frame = pl.DataFrame({
            "service": self._service, "calling": self._calling, "called": self._called,
            "start": self._start, "duration": self._duration, "charge": self._charge,
            "unit": self._considered_units,
        })
        order = frame.select(pl.arg_sort_by(list(frame.columns))).to_series() \
            .to_numpy().astype(np.int64)
        self._unit_of = self._considered_units[order]
        """unit of each position"""
        for name in ("_service", "_calling", "_called", "_start", "_duration", "_charge",
                     "_rated"):
            setattr(self, name, getattr(self, name)[order])
        self._record_parts = self._parts[self._unit_of]
        change = np.zeros(self.considered, dtype=bool)
        if self.considered:
            change[0] = True
            for a in (self._service, self._calling, self._called):
                change[1:] |= a[1:] != a[:-1]
        self._line = np.cumsum(change) - 1

    # -- passes -------------------------------------------------------------

    @property
    def next_pass(self) -> PassSpec | None:
        """The pass :meth:`build_pass` expects next; None after the last one."""
        return PASSES[self._next_pass] if self._next_pass < len(PASSES) else None

    def build_pass(self, spec: PassSpec | str) -> PassElements:
        """The elements of pass ``spec`` for this side's records not paired yet."""
        spec = self._expect_pass(spec)
        if self._pending is not None:
            raise MatchingError("pass built twice without recording its result",
                                expected=f"record_pass for {self._pending.spec.name}",
                                found=f"build_pass({spec.name})")
        seq = np.flatnonzero(self._stage == 0)
        start, duration, charge = self._start[seq], self._duration[seq], self._charge[seq]
        line = self._line[seq]
        tol = self.rules.tolerances
        if spec.stage == "exact":
            fields = [start, duration, charge]
            group = [line, start, duration, charge]
        elif spec.stage == "tolerant_values":
            v = tol.value_window_s
            window = (start // v) if spec.name == "S2a" else ((start + v // 2) // v)
            # stable: within a group the global order is (start, unit) already
            perm = np.lexsort((charge, duration, window, line))
            seq, line, window = seq[perm], line[perm], window[perm]
            start, duration, charge = start[perm], duration[perm], charge[perm]
            fields = [window, duration, charge]
            group = [line, window, duration, charge]
        else:
            w = tol.time_window_s
            window = (start // w) if spec.name == "S3a" else ((start + w // 2) // w)
            fields = [window]
            group = [line, window]
        ranks = _ranks(group).astype(np.uint32)
        elements = encode_elements(spec.tag, self._service[seq], self._calling[seq],
                                   self._called[seq], fields, ranks)
        self._pending = PassElements(spec=spec, elements=elements, records=seq, ranks=ranks,
                                     units=self._unit_of[seq])
        return self._pending

    def record_pass(self, elements: PassElements, element_indices: np.ndarray,
                    pair_ids: np.ndarray) -> None:
        """Record the pairs found by a pass.

        ``element_indices``: indices into ``elements.elements`` of this side's
        matched elements, in the common pair order (``PsiResult.local_indices``);
        ``pair_ids``: ``(k, 16)`` uint8 aligned with them, equal on both sides.
        """
        if self._pending is None or elements is not self._pending:
            raise MatchingError("record_pass needs the elements of the last build_pass",
                                expected=self._pending.spec.name if self._pending else
                                "build_pass first", found=elements.spec.name)
        spec = elements.spec
        idx = np.asarray(element_indices)
        ids = np.asarray(pair_ids)
        if idx.ndim != 1 or not (idx.dtype.kind in "iu" or idx.size == 0):
            raise MatchingError(f"pass {spec.name}: element indices must be a 1-D integer array",
                                expected="int64 (k,)", found=f"{idx.dtype} {idx.shape}")
        idx = idx.astype(np.int64)
        if ids.dtype != np.uint8 or ids.shape != (len(idx), ELEMENT_ID_BYTES):
            raise MatchingError(f"pass {spec.name}: pair ids must be (k, 16) uint8 aligned "
                                "with the element indices",
                                expected=f"uint8 ({len(idx)}, {ELEMENT_ID_BYTES})",
                                found=f"{ids.dtype} {ids.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(elements)):
            raise MatchingError(f"pass {spec.name}: element index out of range",
                                expected=f"0..{len(elements) - 1}",
                                found=f"{int(idx.min())}..{int(idx.max())}")
        if len(idx) and np.bincount(idx, minlength=len(elements)).max() > 1:
            raise MatchingError(f"pass {spec.name}: an element is paired twice",
                                expected="distinct element indices", found="a repeated index")
        local = elements.records[idx]
        self._stage[local] = spec.stage_code
        self._pair_ids[local] = ids
        if spec.stage == "key":
            self._candidate_parts.append(local)
        self._pass_sizes[spec.name] = (len(elements), len(idx))
        logger.debug("party %s pass %s: %d elements, %d pairs", self.party, spec.name,
                     len(elements), len(idx))
        self._pending = None
        self._next_pass += 1

    def _expect_pass(self, spec: PassSpec | str) -> PassSpec:
        name = spec if isinstance(spec, str) else spec.name
        expected = self.next_pass
        if expected is None or expected.name != name:
            raise MatchingError("passes must run in order S1, S2a, S2b, S3a, S3b",
                                expected=expected.name if expected else "no further pass",
                                found=name)
        return expected

    @property
    def pass_sizes(self) -> dict[str, tuple[int, int]]:
        """Per pass run so far: (elements offered, pairs found)."""
        return dict(self._pass_sizes)

    # -- evaluation ---------------------------------------------------------

    def candidate_values(self) -> CandidateValues:
        """The compared values of the S3 candidate pairs (S3a's, then S3b's, each in
        its common pair order)."""
        if self.next_pass is not None:
            raise MatchingError("candidate values are known after the last pass",
                                expected="passes S1..S3b recorded",
                                found=f"next pass {self.next_pass.name}")
        cand = self._candidate_local()
        return CandidateValues(start=self._start[cand], duration_s=self._duration[cand],
                               charge=self._charge[cand], rated_charge=self._rated[cand])

    def _candidate_local(self) -> np.ndarray:
        if self._candidates is None:
            self._candidates = (np.concatenate(self._candidate_parts) if self._candidate_parts
                                else np.zeros(0, dtype=np.int64))
        return self._candidates

    @property
    def candidate_count(self) -> int:
        return len(self._candidate_local()) if self.next_pass is None else 0

    def record_evaluation(self, result: DiscrepancyResult) -> None:
        """Record the evaluation of the candidate pairs (MPC or engine.tolerance).

        Checks the result against what this party knows: its length, its own charge
        sums over the matched-tolerance and disputed pairs, and, where reasons are
        given, that they agree with the disputed flags and the per-reason counts.
        """
        if self.next_pass is not None:
            raise MatchingError("evaluation before the last pass",
                                expected="passes S1..S3b recorded",
                                found=f"next pass {self.next_pass.name}")
        if self._evaluation is not None:
            raise MatchingError("evaluation recorded twice", expected="one evaluation",
                                found="a second one")
        self._evaluation = _checked_evaluation(result, self)

    # -- results ------------------------------------------------------------

    def _unit_status(self) -> np.ndarray:
        """Status code per record position (0..3 of STATUSES)."""
        if self.next_pass is not None:
            raise MatchingError("results are known after the last pass",
                                expected="passes S1..S3b recorded",
                                found=f"next pass {self.next_pass.name}")
        cand = self._candidate_local()
        if self._evaluation is None:
            if len(cand):
                raise MatchingError("the candidate pairs were not evaluated",
                                    expected=f"record_evaluation for {len(cand)} pairs",
                                    found="none")
            self._evaluation = _empty_evaluation()
        status = np.full(self.considered, _UNMATCHED, dtype=np.int8)
        status[self._stage == 1] = _MATCHED_EXACT
        status[self._stage == 2] = _MATCHED_TOLERANCE
        status[cand] = np.where(self._evaluation.disputed, _DISPUTED, _MATCHED_TOLERANCE)
        return status

    def side_facts(self) -> SideFacts:
        """What this party sends its counterparty at the end (:class:`SideFacts`)."""
        status = self._unit_status()
        unmatched = status == _UNMATCHED
        parts = self._record_parts
        return SideFacts(party=self.party, rows=self.rows_count, considered=self.considered,
                         unmatched_records=int(unmatched.sum()),
                         unmatched_rows=int(parts[unmatched].sum()),
                         unmatched_charge=int(self._charge[unmatched].sum()),
                         local_charge=self.local_charge)

    def finish(self, remote: SideFacts) -> MatchOutcome:
        """The per-row statuses and the summary numbers, given the counterparty's facts."""
        status = self._unit_status()
        ev = self._evaluation
        assert ev is not None  # set by _unit_status
        local = self.side_facts()
        other = PARTIES[1 - PARTIES.index(self.party)]
        if remote.party != other:
            raise MatchingError("counterparty facts from the wrong party", expected=other,
                                found=remote.party)
        self._check_pair_ids_unique()
        cand = self._candidate_local()
        li, ri = PARTIES.index(self.party), 1 - PARTIES.index(self.party)

        n_exact = int((self._stage == 1).sum())
        n_values = int((self._stage == 2).sum())
        n_disputed = int(ev.disputed.sum())
        n_key_tolerance = len(cand) - n_disputed
        pairs = {"matched_exact": n_exact, "matched_tolerance": n_values + n_key_tolerance,
                 "disputed": n_disputed}
        total_pairs = n_exact + n_values + len(cand)
        if remote.considered - remote.unmatched_records != total_pairs:
            raise MatchingError("counterparty facts disagree with the pairs",
                                expected=f"{total_pairs} paired records of {other}",
                                found=f"{remote.considered - remote.unmatched_records}")

        exact_charge = int(self._charge[self._stage == 1].sum())
        values_charge = int(self._charge[self._stage == 2].sum())
        key_tol = ev.tolerance_charge
        agreed_local = exact_charge + values_charge + key_tol[li]
        agreed_remote = exact_charge + values_charge + key_tol[ri]
        agreed = exact_charge + values_charge + (key_tol[0] + key_tol[1]) // 2
        disputed_local, disputed_remote = ev.disputed_charge[li], ev.disputed_charge[ri]
        unmatched_local = int(self._charge[status == _UNMATCHED].sum())
        totals = {
            "local_charge": self.local_charge, "remote_charge": remote.local_charge,
            "agreed_charge": agreed,
            "agreed_local_charge": agreed_local, "agreed_remote_charge": agreed_remote,
            "disputed_local_charge": disputed_local, "disputed_remote_charge": disputed_remote,
            "unmatched_local_charge": unmatched_local,
            "unmatched_remote_charge": remote.unmatched_charge,
        }
        if remote.local_charge != agreed_remote + disputed_remote + remote.unmatched_charge:
            raise MatchingError(
                "counterparty totals do not add up",
                expected=f"remote_charge = agreed + disputed + unmatched = "
                         f"{agreed_remote + disputed_remote + remote.unmatched_charge}",
                found=str(remote.local_charge))

        reasons = {code: {"pairs": ev.per_reason[code][0],
                          "local_charge": ev.per_reason[code][1 + li],
                          "remote_charge": ev.per_reason[code][1 + ri]}
                   for code in REASON_CODES}

        frame = self._records_frame(status, ev)
        # row counts: a considered record's status counts once per row of it
        parts = self._record_parts
        by_status = {name: int(parts[status == code].sum())
                     for code, name in enumerate(STATUSES[:_UNMATCHED + 1])}
        row_status = self._rows.get_column("status")
        for name in ("invalid", "excluded", "duplicate"):
            by_status[name] = int((row_status == name).sum())
        counts = {"records": self.rows_count}
        for name in ("invalid", "excluded", "duplicate", "matched_exact", "matched_tolerance",
                     "disputed"):
            counts[name] = by_status[name]
        counts["unmatched_local"] = by_status["unmatched"]
        counts["unmatched_remote"] = remote.unmatched_rows

        review = self._review(pairs, total_pairs, local, remote)
        return MatchOutcome(party=self.party, disclosure=self.policy, records=frame,
                            counts=counts, pairs=pairs, reasons=reasons, totals=totals,
                            review=review, local=local, remote=remote)

    def _review(self, pairs: dict[str, int], total_pairs: int, local: SideFacts,
                remote: SideFacts) -> Review:
        """Circuit-breaker shares (engine.breaker); reasons are party-neutral."""
        from engine.breaker import review_reasons

        facts = {local.party: local, remote.party: remote}
        reasons = review_reasons(pairs["disputed"], total_pairs,
                                 {p: (facts[p].unmatched_records, facts[p].considered)
                                  for p in PARTIES}, self.rules.circuit_breaker)
        return Review("manual_review" if reasons else "automatic", reasons)

    def _check_pair_ids_unique(self) -> None:
        paired = self._stage > 0
        if not paired.any():
            return
        halves = self._pair_ids[paired].view("<u8")
        if pl.Series(halves[:, 0]).n_unique() == len(halves):
            return  # the usual case, decided on the first 8 bytes alone
        dup = pl.DataFrame({"hi": halves[:, 0], "lo": halves[:, 1]}).is_duplicated()
        if dup.any():
            raise MatchingError("pair ids are not unique", expected="one id per pair",
                                found=f"{int(dup.sum())} records sharing ids")

    def _records_frame(self, status: np.ndarray, ev: DiscrepancyResult) -> pl.DataFrame:
        """The ``records.parquet`` frame: one row per input row, in input order."""
        n_units = self._records.height
        considered = self._unit_of  # unit of each position

        # per unit (index = unit): what its ok rows show
        unit_status = np.zeros(n_units, dtype=np.int64)
        unit_status[considered] = status
        unit_stage = np.zeros(n_units, dtype=np.int64)
        unit_stage[considered] = self._stage
        unit_pair = np.zeros((n_units, ELEMENT_ID_BYTES), dtype=np.uint8)
        unit_pair[considered] = self._pair_ids
        cand_units = considered[self._candidate_local()]
        unit_disputed = np.zeros(n_units, dtype=bool)
        unit_disputed[cand_units] = ev.disputed
        unit_mask = np.zeros(n_units, dtype=np.int64)
        disclose_reasons = self.policy in ("flags", "differences")
        if disclose_reasons:
            assert ev.reasons is not None  # checked by _checked_evaluation
            unit_mask[cand_units] = ev.reasons
        mask_names = pl.Series([_reasons_text(m) for m in range(1 << len(REASON_CODES))],
                               dtype=pl.String)
        per_unit = {
            "status": pl.Series(STATUSES).gather(unit_status),
            "stage": pl.Series(_STAGE_NAMES, dtype=pl.String).gather(unit_stage),
            "pair_id": _masked(pair_ids_hex(unit_pair), unit_stage > 0),
            "reasons": mask_names.gather(unit_mask),
            "merged_into": _masked(self._records.get_column("record_id"), self._parts > 1),
        }
        sign = 1 if self.party == "A" else -1
        for name, column in zip(VALUE_NAMES, DIFF_COLUMNS):
            values = np.zeros(n_units, dtype=np.int64)
            if self.policy == "differences":
                assert ev.differences is not None  # checked by _checked_evaluation
                values[cand_units] = sign * ev.differences[name]
            per_unit[column] = _masked(pl.Series(values),
                                       unit_disputed & (self.policy == "differences"))

        ok = pl.col("status") == "ok"
        unit_of_ok = pl.when(ok).then(pl.col("unit"))
        return self._rows.select(
            pl.col("row"),
            pl.col("record_id"),
            pl.when(ok).then(pl.lit(per_unit["status"]).gather(unit_of_ok))
            .otherwise(pl.col("status")).alias("status"),
            pl.lit(per_unit["pair_id"]).gather(unit_of_ok).alias("pair_id"),
            pl.lit(per_unit["stage"]).gather(unit_of_ok).alias("stage"),
            pl.when(ok).then(pl.lit(per_unit["reasons"]).gather(unit_of_ok))
            .otherwise(pl.col("reason")).alias("reasons"),
            pl.lit(per_unit["merged_into"]).gather(pl.col("unit")).alias("merged_into"),
            *(pl.lit(per_unit[c]).gather(unit_of_ok).alias(c) for c in DIFF_COLUMNS),
        )


def _masked(values: pl.Series, keep: np.ndarray) -> pl.Series:
    """``values`` with null where ``keep`` is false."""
    return pl.select(pl.when(pl.lit(pl.Series(keep, dtype=pl.Boolean)))
                     .then(pl.lit(values))).to_series()


def _reasons_text(mask: int) -> str | None:
    codes = [code for code in REASON_CODES if mask & REASON_BITS[code]]
    return ",".join(codes) if codes else None


def pair_ids_hex(ids: np.ndarray) -> pl.Series:
    """``(k, 16)`` uint8 pair ids as a String series of 32 lowercase hex characters."""
    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = np.empty((len(ids), 2 * ELEMENT_ID_BYTES), dtype=np.uint8)
    text[:, 0::2] = digits[ids >> 4]
    text[:, 1::2] = digits[ids & 15]
    if len(ids) == 0:
        return pl.Series("pair_id", [], dtype=pl.String)
    return pl.Series("pair_id", text.view(f"S{2 * ELEMENT_ID_BYTES}").ravel()).cast(pl.String)


# ---------------------------------------------------------------------------
# evaluation, checked


def _empty_evaluation() -> DiscrepancyResult:
    return DiscrepancyResult(disputed=np.zeros(0, dtype=bool), reasons=np.zeros(0, dtype=np.uint8),
                             differences={n: np.zeros(0, dtype=np.int64) for n in VALUE_NAMES},
                             per_reason={c: (0, 0, 0) for c in REASON_CODES},
                             tolerance_charge=(0, 0), disputed_charge=(0, 0))


def _checked_evaluation(result: DiscrepancyResult, matcher: PartyMatcher) -> DiscrepancyResult:
    """``result`` checked against what ``matcher`` knows (see record_evaluation), as
    arrays of the documented dtypes."""
    cand = matcher._candidate_local()
    k = len(cand)
    charge = matcher._charge[cand]
    li = PARTIES.index(matcher.party)
    policy = matcher.policy

    def fail(message: str, expected: Any, found: Any) -> MatchingError:
        return MatchingError(f"evaluation result: {message}", expected=str(expected),
                             found=str(found))

    disputed = np.asarray(result.disputed)
    if disputed.shape != (k,):
        raise fail("one disputed flag per candidate pair", f"({k},)", disputed.shape)
    disputed = disputed.astype(bool)

    def pair_of_ints(value: Any, name: str) -> tuple[int, int]:
        try:
            a, b = value
            return int(a), int(b)
        except (TypeError, ValueError):
            raise fail(f"{name} must be (sum A, sum B)", "two integers", value) from None

    tolerance_charge = pair_of_ints(result.tolerance_charge, "tolerance_charge")
    disputed_charge = pair_of_ints(result.disputed_charge, "disputed_charge")
    own_tolerance = int(charge[~disputed].sum())
    own_disputed = int(charge[disputed].sum())
    if tolerance_charge[li] != own_tolerance:
        raise fail(f"party {matcher.party}'s charge over matched_tolerance pairs",
                   own_tolerance, tolerance_charge[li])
    if disputed_charge[li] != own_disputed:
        raise fail(f"party {matcher.party}'s charge over disputed pairs",
                   own_disputed, disputed_charge[li])

    per_reason: dict[str, tuple[int, int, int]] = {}
    unknown = set(result.per_reason) - set(REASON_CODES)
    if unknown:
        raise fail("unknown reason code", " | ".join(REASON_CODES), sorted(unknown)[0])
    for code in REASON_CODES:
        entry = result.per_reason.get(code, (0, 0, 0))
        try:
            pairs, a, b = (int(x) for x in entry)
        except (TypeError, ValueError):
            raise fail(f"per_reason[{code!r}] must be (pairs, sum A, sum B)",
                       "three integers", entry) from None
        per_reason[code] = (pairs, a, b)

    reasons = None
    if policy in ("flags", "differences"):
        if result.reasons is None:
            raise fail(f"reasons are required under policy {policy!r}", "a bitmask per pair",
                       None)
        reasons = np.asarray(result.reasons)
        if reasons.shape != (k,):
            raise fail("one reasons bitmask per candidate pair", f"({k},)", reasons.shape)
        reasons = reasons.astype(np.uint8)
        if ((reasons != 0) != disputed).any():
            raise fail("reasons must be non-empty exactly for disputed pairs",
                       "agreement with the disputed flags", "a pair that disagrees")
        if (reasons >> len(REASON_CODES)).any():
            raise fail("unknown reason bit", f"< {1 << len(REASON_CODES)}",
                       int(reasons.max()))
        for code in REASON_CODES:
            has = (reasons & REASON_BITS[code]) != 0
            own = (int(has.sum()), int(charge[has].sum()))
            if (per_reason[code][0], per_reason[code][1 + li]) != own:
                raise fail(f"per_reason[{code!r}] disagrees with the per-pair reasons",
                           own, (per_reason[code][0], per_reason[code][1 + li]))

    differences = None
    if policy == "differences":
        if result.differences is None:
            raise fail("differences are required under policy 'differences'",
                       "a difference per value", None)
        differences = {}
        for name in VALUE_NAMES:
            if name not in result.differences:
                raise fail("missing difference", name, sorted(result.differences))
            d = np.asarray(result.differences[name])
            if d.shape != (k,):
                raise fail(f"one {name} difference per candidate pair", f"({k},)", d.shape)
            differences[name] = d.astype(np.int64)
    return DiscrepancyResult(disputed=disputed, reasons=reasons, differences=differences,
                             per_reason=per_reason, tolerance_charge=tolerance_charge,
                             disputed_charge=disputed_charge)


__all__ = [
    "CandidateValues", "DISCLOSURE_POLICIES", "MatchOutcome",
    "MatchingError", "PASSES", "PartyMatcher", "PassElements", "PassSpec", "REASON_BITS",
    "REASON_CODES", "Review", "STATUSES", "SideFacts", "VALUE_NAMES", "check_input_sizes",
    "element_dtype", "encode_elements", "number_codes", "pair_ids_hex",
]
