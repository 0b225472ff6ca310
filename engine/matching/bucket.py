"""Matching one bucket: the passes, what they leave for the evaluation, and the bucket's rows.

A :class:`BucketMatcher` holds one party's canonical records of one bucket and is driven
through the passes (docs/matching.md)::

    matcher = BucketMatcher("A", bucket, records, rules)
    while matcher.next_pass is not None:
        elements = matcher.build_pass(matcher.next_pass)   # PassElements
        ... the intersection with the counterparty's elements (PSI, or a plaintext join)
        matcher.record_pass(elements, element_indices, pair_ids)
    state = matcher.psi_state()          # what the bucket keeps (saved between stages)

After the evaluation of every bucket's candidate pairs (one MPC for the whole job), each
bucket is finished from its saved state alone (:func:`finish_bucket`), so that a party
never holds more than one bucket's records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import polars as pl

from engine.matching.elements import PassElements, encode_elements, pair_ids_hex, ranks
from engine.matching.errors import MatchingError
from engine.names import (
    DIFF_COLUMNS, ELEMENT_ID_BYTES, OPERATOR_ROLES, PASSES, REASON_BITS, REASON_CODES,
    RECORD_STAGES, VALUE_NAMES, PassSpec,
)
from engine.rules import Rules

log = logging.getLogger(__name__)

_MATCHED_EXACT, _MATCHED_TOLERANCE, _DISPUTED, _UNMATCHED = 0, 1, 2, 3


def class_key(payer: np.ndarray, payee: np.ndarray, service: np.ndarray,
              call_type: np.ndarray) -> np.ndarray:
    """One int64 per record for its rate class (payer, payee, service, call type codes of
    engine.ingest.rating); :func:`class_codes` inverts it."""
    return (((np.asarray(payer, dtype=np.int64) * 256 + np.asarray(payee, dtype=np.int64)) * 4
             + np.asarray(service, dtype=np.int64)) * 256 + np.asarray(call_type, dtype=np.int64))


def class_codes(key: int) -> tuple[int, int, int, int]:
    """(payer, payee, service, call type) of a :func:`class_key`."""
    call_type = key % 256
    key //= 256
    service = key % 4
    key //= 4
    return key // 256, key % 256, service, call_type


def sums_by(keys: np.ndarray, values: np.ndarray) -> dict[int, int]:
    """``values`` summed per distinct key."""
    if not len(keys):
        return {}
    # a hash aggregation in int64 (exact), about 3x faster than np.unique's sort
    frame = pl.DataFrame({"k": np.asarray(keys, dtype=np.int64),
                          "v": np.asarray(values, dtype=np.int64)})
    totals = frame.group_by("k").agg(pl.col("v").sum(), pl.col("v").max().alias("most"))
    # a class of ~10^8 calls of at most 2^40 fen each stays far below 2^63; checked anyway
    if totals.height and int(totals.get_column("most").max()) * len(keys) >= 2**62:
        raise MatchingError("a rate class could sum beyond 2^62 minor units")
    return {int(k): int(v) for k, v, _ in totals.iter_rows()}
_UNIT_STATUSES = ("matched_exact", "matched_tolerance", "disputed", "unmatched")
#: codes of the bucket rows frame (engine.ingest.stream.ROW_STATUS_CODES)
_ROW_OK, _ROW_INVALID, _ROW_DUPLICATE, _ROW_EXCLUDED = 0, 1, 2, 3
_ROW_STATUS_NAMES = {_ROW_INVALID: "invalid", _ROW_DUPLICATE: "duplicate",
                     _ROW_EXCLUDED: "excluded"}


@dataclass(frozen=True)
class CandidateValues:
    """One side's compared values of the candidate pairs, in the common pair order (the
    field names of ``protocols.mpc.PairValues``)."""

    start: np.ndarray
    duration_s: np.ndarray
    charge: np.ndarray
    rated_charge: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @classmethod
    def concat(cls, parts: list[CandidateValues]) -> CandidateValues:
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty, empty)
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


@dataclass(frozen=True)
class PsiState:
    """What one bucket keeps after its passes (positions are the matcher's sort order)."""

    bucket: int
    units: np.ndarray
    """int64 (m,): the unit of each considered record."""
    stage: np.ndarray
    """int8 (m,): 0 not paired, else the RECORD_STAGES code of its pass."""
    pair_ids: np.ndarray
    """uint8 (m, 16)."""
    candidates: np.ndarray
    """int64 (k,): positions of the candidate pairs, in the common pair order."""
    charge: np.ndarray
    parts: np.ndarray
    klass: np.ndarray
    """int64 (m,): the rate class of each considered record (:func:`class_key`)."""
    pass_sizes: np.ndarray
    """int64 (passes, 2): elements offered and pairs found per pass."""

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **{f.name: getattr(self, f.name) for f in fields(self)})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> PsiState:
        with np.load(path) as data:
            values = {f.name: data[f.name] for f in fields(cls)}
        values["bucket"] = int(values["bucket"])
        return cls(**values)


class BucketMatcher:
    """One party's matching state over one bucket's canonical records (see the module)."""

    def __init__(self, party: str, bucket: int, records: pl.DataFrame, rules: Rules) -> None:
        if party not in OPERATOR_ROLES:
            raise MatchingError("unknown party", expected="A | B", found=repr(party))
        self.party = party
        self.bucket = bucket
        self.rules = rules
        units = records.get_column("unit").to_numpy()
        if not np.array_equal(units, np.arange(records.height)):
            raise MatchingError(f"bucket {bucket}: units must be 0..n-1 in order", column="unit")
        considered = records.filter(~pl.col("excluded"))
        self.n_units = records.height
        self.considered = considered.height
        self._parts_all = records.get_column("parts").to_numpy().astype(np.int64)
        frame = considered.select(
            "service", "calling", "called", "start", "duration_s", "charge", "unit",
            "rated_charge", "parts", "payer", "payee", "call_type")
        order = frame.select(pl.arg_sort_by(["service", "calling", "called", "start",
                                             "duration_s", "charge", "unit"])) \
            .to_series().to_numpy().astype(np.int64)
        self._service = frame.get_column("service").to_numpy()[order].astype(np.uint8)
        self._calling = frame.get_column("calling").to_numpy()[order].astype(np.int64) \
            .view(np.uint64)
        self._called = frame.get_column("called").to_numpy()[order].astype(np.int64) \
            .view(np.uint64)
        self._start = frame.get_column("start").to_numpy()[order].astype(np.int64)
        self._duration = frame.get_column("duration_s").to_numpy()[order].astype(np.int64)
        self._charge = frame.get_column("charge").to_numpy()[order].astype(np.int64)
        self._rated = frame.get_column("rated_charge").to_numpy()[order].astype(np.int64)
        self._unit_of = frame.get_column("unit").to_numpy()[order].astype(np.int64)
        self._parts = frame.get_column("parts").to_numpy()[order].astype(np.int64)
        self._klass = class_key(frame.get_column("payer").to_numpy()[order],
                                frame.get_column("payee").to_numpy()[order],
                                self._service, frame.get_column("call_type").to_numpy()[order])
        change = np.zeros(self.considered, dtype=bool)
        if self.considered:
            change[0] = True
            for a in (self._service, self._calling, self._called):
                change[1:] |= a[1:] != a[:-1]
        self._line = np.cumsum(change) - 1
        m = self.considered
        self._stage = np.zeros(m, dtype=np.int8)
        self._pair_ids = np.zeros((m, ELEMENT_ID_BYTES), dtype=np.uint8)
        self._candidate_parts: list[np.ndarray] = []
        self._next_pass = 0
        self._pending: PassElements | None = None
        self._pass_sizes = np.zeros((len(PASSES), 2), dtype=np.int64)

    # -- passes -------------------------------------------------------------

    @property
    def next_pass(self) -> PassSpec | None:
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
            fields_ = [start, duration, charge]
            group = [line, start, duration, charge]
        elif spec.stage == "tolerant_values":
            v = tol.value_window_s
            window = (start // v) if spec.name == "S2a" else ((start + v // 2) // v)
            perm = np.lexsort((charge, duration, window, line))
            seq, line, window = seq[perm], line[perm], window[perm]
            duration, charge = duration[perm], charge[perm]
            fields_ = [window, duration, charge]
            group = [line, window, duration, charge]
        else:
            w = tol.time_window_s
            window = (start // w) if spec.name == "S3a" else ((start + w // 2) // w)
            fields_ = [window]
            group = [line, window]
        rank = ranks(group).astype(np.uint32)
        elements = encode_elements(spec.tag, self._service[seq], self._calling[seq],
                                   self._called[seq], fields_, rank)
        self._pending = PassElements(spec=spec, elements=elements, records=seq, ranks=rank,
                                     units=self._unit_of[seq])
        return self._pending

    def record_pass(self, elements: PassElements, element_indices: np.ndarray,
                    pair_ids: np.ndarray) -> None:
        """Record the pairs a pass found: ``element_indices`` into ``elements.elements`` of
        this side's matched elements in the common pair order, ``pair_ids`` ``(k, 16)``
        uint8 aligned with them and equal on both sides."""
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
        self._pass_sizes[self._next_pass] = (len(elements), len(idx))
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

    # -- after the passes ----------------------------------------------------

    def _candidates(self) -> np.ndarray:
        if self.next_pass is not None:
            raise MatchingError("candidates are known after the last pass",
                                expected="passes S1..S3b recorded",
                                found=f"next pass {self.next_pass.name}")
        return (np.concatenate(self._candidate_parts) if self._candidate_parts
                else np.zeros(0, dtype=np.int64))

    def candidate_values(self) -> CandidateValues:
        """The compared values of the candidate pairs (S3a's, then S3b's)."""
        cand = self._candidates()
        return CandidateValues(start=self._start[cand], duration_s=self._duration[cand],
                               charge=self._charge[cand], rated_charge=self._rated[cand])

    def psi_state(self) -> PsiState:
        return PsiState(bucket=self.bucket, units=self._unit_of, stage=self._stage,
                        pair_ids=self._pair_ids, candidates=self._candidates(),
                        charge=self._charge, parts=self._parts, klass=self._klass,
                        pass_sizes=self._pass_sizes)


# ---------------------------------------------------------------------------
# finishing a bucket


@dataclass(frozen=True)
class EvaluationSlice:
    """The per-pair part of the evaluation for one bucket's candidates."""

    disputed: np.ndarray
    reasons: np.ndarray | None
    """Bitmask per pair; None under ``aggregate``."""
    differences: dict[str, np.ndarray] | None
    """Local − remote per value name; None unless the policy is ``differences``."""


@dataclass(frozen=True)
class BucketTally:
    """What one bucket adds to the job's numbers (this party's side only)."""

    rows: dict[str, int]
    """Rows per output status."""
    excluded_by_reason: dict[str, int]
    invalid_by_reason: dict[str, int]
    """Rows found invalid in the bucket (no tariff, oversize merged sums) by reason."""
    pairs: dict[str, int]
    """exact, tolerant_values, key (candidates), disputed."""
    class_agreed: dict[int, int]
    """Per rate class: charge of the exact and tolerant-values pairs (equal on both sides)."""
    class_tolerance: dict[int, int]
    """Per rate class: this side's charge of the key-matched pairs within tolerance."""
    considered: int
    unmatched_records: int
    unmatched_rows: int
    local_charge: int
    exact_charge: int
    values_charge: int
    unmatched_charge: int


ROW_OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(), "status": pl.String(), "pair_id": pl.String(), "stage": pl.String(),
    "reasons": pl.String(), "head_row": pl.Int64(),
    **{c: pl.Int64() for c in DIFF_COLUMNS},
}
"""A bucket's rows as they go into records.parquet (without record_id and merged_into,
which the assembly adds from the ids side files)."""


def reasons_text(mask: int) -> str | None:
    codes = [code for code in REASON_CODES if mask & REASON_BITS[code]]
    return ",".join(codes) if codes else None


_MASK_NAMES = pl.Series([reasons_text(m) for m in range(1 << len(REASON_CODES))],
                        dtype=pl.String)


_STATUS_NAMES = pl.Series([*_UNIT_STATUSES, "ok", "invalid", "duplicate", "excluded"],
                          dtype=pl.String)


def finish_bucket(party: str, policy: str, state: PsiState, rows: pl.DataFrame,
                  n_units: int, evaluation: EvaluationSlice) -> tuple[pl.DataFrame, BucketTally]:
    """The bucket's row outcomes (ROW_OUTCOME_SCHEMA, row order) and its tally."""
    cand = state.candidates
    if len(evaluation.disputed) != len(cand):
        raise MatchingError(f"bucket {state.bucket}: one evaluation per candidate pair",
                            expected=str(len(cand)), found=str(len(evaluation.disputed)))
    m = len(state.units)
    status = np.full(m, _UNMATCHED, dtype=np.int64)
    status[state.stage == 1] = _MATCHED_EXACT
    status[state.stage == 2] = _MATCHED_TOLERANCE
    status[cand] = np.where(evaluation.disputed, _DISPUTED, _MATCHED_TOLERANCE)

    size = max(n_units, 1)  # rows that are not ok index unit 0 (then masked)
    unit_status = np.zeros(size, dtype=np.int64)
    unit_status[state.units] = status
    unit_stage = np.zeros(size, dtype=np.int64)
    unit_stage[state.units] = state.stage
    unit_pair = np.zeros((size, ELEMENT_ID_BYTES), dtype=np.uint8)
    unit_pair[state.units] = state.pair_ids
    cand_units = state.units[cand]
    unit_disputed = np.zeros(size, dtype=bool)
    unit_disputed[cand_units] = evaluation.disputed
    unit_mask = np.zeros(size, dtype=np.int64)
    if policy in ("flags", "differences"):
        if evaluation.reasons is None:
            raise MatchingError(f"reasons are required under policy {policy!r}")
        unit_mask[cand_units] = evaluation.reasons
    sign = 1 if party == "A" else -1
    diffs = {}
    for name, column in zip(VALUE_NAMES, DIFF_COLUMNS):
        values = np.zeros(size, dtype=np.int64)
        if policy == "differences":
            if evaluation.differences is None:
                raise MatchingError("differences are required under policy 'differences'")
            values[cand_units] = sign * evaluation.differences[name]
        diffs[column] = values

    row_unit = rows.get_column("unit").fill_null(-1).to_numpy()
    row_status = rows.get_column("status").to_numpy()
    is_ok = row_status == _ROW_OK
    if np.any(is_ok & (row_unit < 0)) or np.any(row_unit >= n_units):
        raise MatchingError(f"bucket {state.bucket}: an ok row points at no record",
                            column="unit")
    u = np.where(is_ok, row_unit, 0)
    # one code per row: a unit's status for ok rows, after them the row statuses
    out_status = np.where(is_ok, unit_status[u], len(_UNIT_STATUSES) + row_status)
    stage = np.where(is_ok, unit_stage[u], 0)
    disputed_row = is_ok & unit_disputed[u]
    pair_hex = pair_ids_hex(unit_pair[u])
    frame = pl.DataFrame({
        "row": rows.get_column("row"),
        "status": _STATUS_NAMES.gather(out_status),
        "pair_id": pair_hex,
        "stage": pl.Series(RECORD_STAGES, dtype=pl.String).gather(stage),
        "reasons": _MASK_NAMES.gather(np.where(is_ok, unit_mask[u], 0)),
        "head_row": rows.get_column("head_row"),
        **{c: pl.Series(np.where(is_ok, diffs[c][u], 0), dtype=pl.Int64) for c in DIFF_COLUMNS},
    })
    paired = pl.Series(is_ok & (stage > 0))
    show_diff = pl.Series(disputed_row & (policy == "differences"))
    frame = frame.with_columns(
        pl.when(paired).then(pl.col("pair_id")).alias("pair_id"),
        pl.when(pl.Series(is_ok)).then(pl.col("reasons")).otherwise(rows.get_column("reason"))
        .alias("reasons"),
        *(pl.when(show_diff).then(pl.col(c)).alias(c) for c in DIFF_COLUMNS),
    )

    parts = state.parts
    by_status = {name: int(parts[status == code].sum())
                 for code, name in enumerate(_UNIT_STATUSES)}
    for code, name in _ROW_STATUS_NAMES.items():
        by_status[name] = int((row_status == code).sum())
    unmatched = status == _UNMATCHED

    def by_reason(code: int) -> dict[str, int]:
        return dict(rows.filter(pl.col("status") == code).group_by("reason").len().iter_rows())

    agreed_pairs = (state.stage == 1) | (state.stage == 2)
    tolerance_pairs = np.zeros(m, dtype=bool)
    tolerance_pairs[cand] = ~np.asarray(evaluation.disputed, dtype=bool)
    tally = BucketTally(
        rows=by_status,
        class_agreed=sums_by(state.klass[agreed_pairs], state.charge[agreed_pairs]),
        class_tolerance=sums_by(state.klass[tolerance_pairs], state.charge[tolerance_pairs]),
        excluded_by_reason=by_reason(_ROW_EXCLUDED),
        invalid_by_reason=by_reason(_ROW_INVALID),
        pairs={"exact": int((state.stage == 1).sum()),
               "tolerant_values": int((state.stage == 2).sum()),
               "key": len(cand), "disputed": int(evaluation.disputed.sum())},
        considered=m,
        unmatched_records=int(unmatched.sum()),
        unmatched_rows=int(parts[unmatched].sum()),
        local_charge=int(state.charge.sum()),
        exact_charge=int(state.charge[state.stage == 1].sum()),
        values_charge=int(state.charge[state.stage == 2].sum()),
        unmatched_charge=int(state.charge[unmatched].sum()),
    )
    return frame, tally


def check_pair_ids_unique(state: PsiState) -> None:
    """Pair ids of one bucket are unique (each pass's PSI session gives its own ids, bound
    to the bucket, the pass and the run)."""
    halves = state.pair_ids[state.stage > 0].view("<u8")
    if not len(halves) or pl.Series(halves[:, 0]).n_unique() == len(halves):
        return
    dup = pl.DataFrame({"hi": halves[:, 0], "lo": halves[:, 1]}).is_duplicated()
    if dup.any():
        raise MatchingError(f"bucket {state.bucket}: pair ids are not unique",
                            expected="one id per pair",
                            found=f"{int(dup.sum())} records sharing ids")


__all__ = ["BucketMatcher", "BucketTally", "CandidateValues", "EvaluationSlice", "PsiState",
           "ROW_OUTCOME_SCHEMA", "check_pair_ids_unique", "finish_bucket", "reasons_text"]
