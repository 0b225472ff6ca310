"""Test support for the matching tests: canonical frames built from plain Python
records, and a brute-force matcher written straight from docs/matching.md and
docs/records.md in plain Python (dicts, sorting, no numpy), independent of
engine.matching.  The two are compared by the property tests.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import polars as pl

REASONS = ("start_time", "duration", "charge_rate_mismatch", "charge_rounding",
           "charge_unexplained")


@dataclass
class Record:
    """A canonical record (one unit) and the rows that make it up."""

    service: int
    calling: str
    called: str
    start: int
    duration_s: int
    charge: int
    rated_charge: int
    parts: int = 1
    excluded: bool = False
    record_id: str = ""
    unit: int = -1


@dataclass
class Side:
    """One party's input: canonical records plus rows that are not records."""

    records: list[Record]
    other_rows: list[tuple[str, str]] = field(default_factory=list)
    """(status, reason) of rows with no unit: invalid / duplicate."""
    row_order: list[int] | None = None
    """A permutation of all rows (records' rows first, then other rows) giving the
    input order; None = that order."""

    # filled by build()
    rows: list[dict[str, Any]] = field(default_factory=list)

    def build(self) -> SimpleNamespace:
        """Number rows and units as ingest would and return the canonical frames."""
        slots: list[tuple[str, Any]] = []
        for i, rec in enumerate(self.records):
            for part in range(rec.parts):
                slots.append(("record", (i, part)))
        for j, (status, reason) in enumerate(self.other_rows):
            slots.append(("other", (status, reason)))
        order = self.row_order if self.row_order is not None else list(range(len(slots)))
        assert sorted(order) == list(range(len(slots)))
        ordered = [slots[k] for k in order]
        # units in order of the record's first row; every row's record_id is
        # "id<row>", a record's is that of its first row
        unit_of: dict[int, int] = {}
        self.rows = []
        for row_number, (kind, info) in enumerate(ordered, start=1):
            if kind == "record":
                i, _part = info
                rec = self.records[i]
                if i not in unit_of:
                    unit_of[i] = len(unit_of)
                    rec.unit = unit_of[i]
                    rec.record_id = f"id{row_number}"
                    rec.first_row = row_number  # type: ignore[attr-defined]
                self.rows.append({
                    "row": row_number, "record_id": f"id{row_number}",
                    "status": "excluded" if rec.excluded else "ok",
                    "reason": "zero_duration_voice" if rec.excluded else None,
                    "unit": unit_of[i], "_record": i,
                })
            else:
                status, reason = info
                self.rows.append({"row": row_number, "record_id": f"id{row_number}",
                                  "status": status, "reason": reason, "unit": None,
                                  "_record": None})
        by_unit = sorted(self.records, key=lambda r: r.unit)
        records = pl.DataFrame({
            "unit": [r.unit for r in by_unit],
            "record_id": [r.record_id for r in by_unit],
            "row": [r.first_row for r in by_unit],  # type: ignore[attr-defined]
            "service": pl.Series([r.service for r in by_unit], dtype=pl.UInt8),
            "calling": pl.Series([r.calling for r in by_unit], dtype=pl.String),
            "called": pl.Series([r.called for r in by_unit], dtype=pl.String),
            "start": pl.Series([r.start for r in by_unit], dtype=pl.Int64),
            "duration_s": pl.Series([r.duration_s for r in by_unit], dtype=pl.Int64),
            "volume_kb": pl.Series([0] * len(by_unit), dtype=pl.Int64),
            "trunk_group": pl.Series(["tg1"] * len(by_unit), dtype=pl.String),
            "charge": pl.Series([r.charge for r in by_unit], dtype=pl.Int64),
            "rated_charge": pl.Series([r.rated_charge for r in by_unit], dtype=pl.Int64),
            "parts": pl.Series([r.parts for r in by_unit], dtype=pl.Int32),
            "excluded": pl.Series([r.excluded for r in by_unit], dtype=pl.Boolean),
        })
        rows = pl.DataFrame({
            "row": pl.Series([r["row"] for r in self.rows], dtype=pl.Int64),
            "record_id": pl.Series([r["record_id"] for r in self.rows], dtype=pl.String),
            "status": pl.Series([r["status"] for r in self.rows], dtype=pl.String),
            "reason": pl.Series([r["reason"] for r in self.rows], dtype=pl.String),
            "unit": pl.Series([r["unit"] for r in self.rows], dtype=pl.Int64),
        })
        return SimpleNamespace(rows=rows, records=records)


# ---------------------------------------------------------------------------
# brute force, from the docs


def _pass_fields(name: str, r: Record, delta: int, window: int) -> tuple[int, ...]:
    v = delta + 1
    if name == "S1":
        return (r.start, r.duration_s, r.charge)
    if name == "S2a":
        return (r.start // v, r.duration_s, r.charge)
    if name == "S2b":
        return ((r.start + v // 2) // v, r.duration_s, r.charge)
    if name == "S3a":
        return (r.start // window,)
    return ((r.start + window // 2) // window,)


PASS_TABLE = (("S1", 1, "exact"), ("S2a", 2, "tolerant_values"), ("S2b", 3, "tolerant_values"),
              ("S3a", 4, "key"), ("S3b", 5, "key"))


def brute_force_pairs(a: list[Record], b: list[Record], delta: int, window: int
                      ) -> list[tuple[Record, Record, str, str]]:
    """Pairs (record of A, record of B, pass name, stage) in pass order."""
    unpaired = {"A": [r for r in a if not r.excluded], "B": [r for r in b if not r.excluded]}
    pairs = []
    for name, tag, stage in PASS_TABLE:
        elements: dict[str, dict[tuple, Record]] = {}
        for side, recs in unpaired.items():
            groups: dict[tuple, list[Record]] = defaultdict(list)
            for r in recs:
                groups[(tag, r.service, r.calling, r.called)
                       + _pass_fields(name, r, delta, window)].append(r)
            elements[side] = {}
            for key, members in groups.items():
                members.sort(key=lambda r: (r.start, r.duration_s, r.charge, r.unit))
                for rank, r in enumerate(members):
                    elements[side][key + (rank,)] = r
        common = [k for k in elements["A"] if k in elements["B"]]
        for key in common:
            pairs.append((elements["A"][key], elements["B"][key], name, stage))
        paired_a = {id(elements["A"][k]) for k in common}
        paired_b = {id(elements["B"][k]) for k in common}
        unpaired = {"A": [r for r in unpaired["A"] if id(r) not in paired_a],
                    "B": [r for r in unpaired["B"] if id(r) not in paired_b]}
    return pairs


def evaluate(ra: Record, rb: Record, delta: int, dd: int, dc: int) -> list[str]:
    """Reason codes of a candidate pair (empty: matched_tolerance)."""
    d_t, d_d = ra.start - rb.start, ra.duration_s - rb.duration_s
    d_c, d_r = ra.charge - rb.charge, ra.rated_charge - rb.rated_charge
    ok_t, ok_d, ok_c = abs(d_t) <= delta, abs(d_d) <= dd, abs(d_c) <= dc
    reasons = []
    if not ok_t:
        reasons.append("start_time")
    if not ok_d:
        reasons.append("duration")
    if not ok_c:
        if abs(d_r) <= dc:
            reasons.append("charge_rate_mismatch")
        elif ok_d:
            reasons.append("charge_rounding")
        else:
            reasons.append("charge_unexplained")
    return reasons


def brute_force(a: Side, b: Side, rules: Any) -> dict[str, Any]:
    """Every output of both parties that does not depend on pair-id values or timing.

    Per party: ``rows`` (row -> (status, pair index or None, stage, reasons, diffs,
    merged_into)), ``counts``, ``pairs``, ``reasons``, ``totals``, ``review``.
    """
    tol = rules.tolerances
    policy = rules.disclosure
    delta, window = tol.time_tolerance_s, tol.time_window_s
    pairs = brute_force_pairs(a.records, b.records, delta, window)
    outcome: dict[int, dict[str, Any]] = {}  # id(record) -> per record outcome
    n_exact = n_tol = n_disp = 0
    exact_charge = values_charge = 0
    tol_sum = {"A": 0, "B": 0}
    disp_sum = {"A": 0, "B": 0}
    per_reason = {c: [0, 0, 0] for c in REASONS}
    by_class = {c: [0, 0, 0] for c in REASONS}
    for k, (ra, rb, name, stage) in enumerate(pairs):
        reasons: list[str] = []
        if stage == "exact":
            status = "matched_exact"
            n_exact += 1
            exact_charge += ra.charge
            assert ra.charge == rb.charge
        elif stage == "tolerant_values":
            status = "matched_tolerance"
            n_tol += 1
            values_charge += ra.charge
            assert ra.charge == rb.charge
        else:
            reasons = evaluate(ra, rb, delta, tol.duration_tolerance_s, tol.charge_tolerance)
            if reasons:
                status = "disputed"
                n_disp += 1
                disp_sum["A"] += ra.charge
                disp_sum["B"] += rb.charge
                for code in reasons:
                    per_reason[code][0] += 1
                # charges by primary reason: the last of the pair's codes in REASONS order
                primary = max(reasons, key=REASONS.index)
                by_class[primary][0] += 1
                by_class[primary][1] += ra.charge
                by_class[primary][2] += rb.charge
            else:
                status = "matched_tolerance"
                n_tol += 1
                tol_sum["A"] += ra.charge
                tol_sum["B"] += rb.charge
        diffs = (ra.start - rb.start, ra.duration_s - rb.duration_s, ra.charge - rb.charge,
                 ra.rated_charge - rb.rated_charge)
        for side, rec, sign in (("A", ra, 1), ("B", rb, -1)):
            outcome[id(rec)] = {
                "status": status, "pair": k, "stage": stage,
                "reasons": ",".join(reasons) if reasons and policy != "aggregate" else None,
                "diffs": tuple(sign * d for d in diffs)
                if status == "disputed" and policy == "differences" else None,
            }
    total_pairs = len(pairs)
    agreed = exact_charge + values_charge + (tol_sum["A"] + tol_sum["B"]) // 2

    facts = {}
    for party, side in (("A", a), ("B", b)):
        considered = [r for r in side.records if not r.excluded]
        unmatched = [r for r in considered if id(r) not in outcome]
        facts[party] = {
            "rows": len(side.rows), "considered": len(considered),
            "unmatched_records": len(unmatched),
            "unmatched_rows": sum(r.parts for r in unmatched),
            "unmatched_charge": sum(r.charge for r in unmatched),
            "local_charge": sum(r.charge for r in considered),
        }

    cb = rules.circuit_breaker
    review_reasons = []
    if total_pairs and n_disp > cb.max_disputed_share * total_pairs:
        review_reasons.append(f"disputed_share: {n_disp} of {total_pairs} pairs "
                              f"> {cb.max_disputed_share!r}")
    for party in ("A", "B"):
        f = facts[party]
        if f["considered"] and f["unmatched_records"] > cb.max_unmatched_share * f["considered"]:
            review_reasons.append(f"unmatched_share_{party}: {f['unmatched_records']} of "
                                  f"{f['considered']} records > {cb.max_unmatched_share!r}")

    result: dict[str, Any] = {"pairs_list": pairs}
    for party, other, side in (("A", "B", a), ("B", "A", b)):
        rows = {}
        for row in side.rows:
            if row["_record"] is None:
                rows[row["row"]] = {"status": row["status"], "pair": None, "stage": None,
                                    "reasons": row["reason"], "diffs": None,
                                    "merged_into": None}
                continue
            rec = side.records[row["_record"]]
            merged = rec.record_id if rec.parts > 1 else None
            if rec.excluded:
                rows[row["row"]] = {"status": "excluded", "pair": None, "stage": None,
                                    "reasons": row["reason"], "diffs": None,
                                    "merged_into": merged}
            elif id(rec) in outcome:
                rows[row["row"]] = {**outcome[id(rec)], "merged_into": merged}
            else:
                rows[row["row"]] = {"status": "unmatched", "pair": None, "stage": None,
                                    "reasons": None, "diffs": None, "merged_into": merged}
        statuses = [r["status"] for r in rows.values()]
        li, ri = (1, 2) if party == "A" else (2, 1)
        result[party] = {
            "rows": rows,
            "counts": {
                "records": len(side.rows),
                "invalid": statuses.count("invalid"), "excluded": statuses.count("excluded"),
                "duplicate": statuses.count("duplicate"),
                "matched_exact": statuses.count("matched_exact"),
                "matched_tolerance": statuses.count("matched_tolerance"),
                "disputed": statuses.count("disputed"),
                "unmatched_local": statuses.count("unmatched"),
                "unmatched_remote": facts[other]["unmatched_rows"],
            },
            "pairs": {"matched_exact": n_exact, "matched_tolerance": n_tol,
                      "disputed": n_disp},
            # min_cell_pairs = 1 in these scenarios: every cell is given
            "reasons": {**{c: {"pairs": per_reason[c][0], "class_pairs": v[0],
                               "local_charge": v[li], "remote_charge": v[ri], "in_other": False}
                           for c, v in by_class.items()},
                        "other": {"pairs": 0, "class_pairs": 0, "local_charge": 0,
                                  "remote_charge": 0, "in_other": False}},
            "totals": {
                "local_charge": facts[party]["local_charge"],
                "remote_charge": facts[other]["local_charge"],
                "agreed_charge": agreed,
                "agreed_local_charge": exact_charge + values_charge + tol_sum[party],
                "agreed_remote_charge": exact_charge + values_charge + tol_sum[other],
                "disputed_local_charge": disp_sum[party],
                "disputed_remote_charge": disp_sum[other],
                "unmatched_local_charge": facts[party]["unmatched_charge"],
                "unmatched_remote_charge": facts[other]["unmatched_charge"],
            },
            "review": {"settlement": "manual_review" if review_reasons else "automatic",
                       "reasons": review_reasons},
        }
    return result


# ---------------------------------------------------------------------------
# rules and hypothesis strategies

def make_rules(delta: int, window: int, duration_tol: int, charge_tol: int,
               policy: str = "flags", max_disputed_share: float = 0.05,
               max_unmatched_share: float = 0.05) -> Any:
    """The example rules with these tolerances, policy and review shares."""
    import dataclasses
    from pathlib import Path

    from engine.rules import Tolerances, load_rules

    base = load_rules(Path(__file__).resolve().parents[3] / "docs" / "example_rules.toml")
    return dataclasses.replace(
        base,
        tolerances=Tolerances(time_tolerance_s=delta, time_window_s=window,
                              duration_tolerance_s=duration_tol, charge_tolerance=charge_tol),
        disclosure=policy,
        # the small-cell rule has its own tests (tests/unit/mpc/test_mpc_cells.py); here every
        # sum is given, so that the brute force can check each one
        min_cell_pairs=1,
        circuit_breaker=dataclasses.replace(base.circuit_breaker,
                                            max_disputed_share=max_disputed_share,
                                            max_unmatched_share=max_unmatched_share,
                                            # these scenarios test matching; invalid rows
                                            # are only carried along (engine.breaker has its
                                            # own tests)
                                            max_invalid_share=1.0,
                                            min_records_for_ratio=10**9),
    )


# Numbers as canonical records hold them (validation refuses a leading 0): near-collisions
# ("86138" / "186138"), a 15-digit maximum, 1 digit.
NUMBERS = ("86138", "186138", "8613800000001", "999999999999999", "1")


def scenarios(bursty: bool = False) -> Any:
    """Hypothesis strategy: (Side A, Side B, rules) with bursts, skews around δ, W and
    the grid boundaries, equal values, value-duplicates, chains, exclusions,
    invalid/duplicate rows, negative epoch seconds, shuffled input order.

    ``bursty``: one line, start times within about one window, few distinct values:
    many records per pass group, so the ranks decide the pairing."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Any) -> tuple[Side, Side, Any]:
        delta = draw(st.integers(0, 4))
        window = draw(st.integers(max(2 * delta, 2), 2 * delta + 4))
        rules = make_rules(
            delta, window, draw(st.integers(0, 2)), draw(st.integers(0, 3)),
            policy=draw(st.sampled_from(("aggregate", "flags", "differences"))),
            max_disputed_share=draw(st.sampled_from((0.0, 0.05, 0.5, 1.0))),
            max_unmatched_share=draw(st.sampled_from((0.0, 0.05, 0.5, 1.0))),
        )
        lines = draw(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(NUMBERS),
                                        st.sampled_from(NUMBERS)),
                              min_size=1, max_size=1 if bursty else 3, unique=True))
        base = draw(st.sampled_from((0, -37, 1_790_000_003)))
        span = draw(st.integers(0, window + 1) if bursty
                    else st.sampled_from((window, 3 * window, 60)))
        small = st.one_of(st.just(0), st.integers(-4, 4))
        durations = st.sampled_from((60, 61)) if bursty else st.integers(0, 130)
        charges = st.sampled_from((6, 7)) if bursty else st.integers(0, 12)
        recs: dict[str, list[Record]] = {"A": [], "B": []}
        for _ in range(draw(st.integers(0, 18))):
            service, calling, called = draw(st.sampled_from(lines))
            start = base + draw(st.integers(0, span))
            duration = draw(durations)
            charge = draw(charges)
            rated = draw(st.one_of(st.just(charge), charges))
            presence = draw(st.sampled_from(("both", "both", "both", "A", "B")))

            def record(**changes: int) -> Record:
                return Record(service=service, calling=calling, called=called,
                              start=start + changes.get("skew", 0),
                              duration_s=max(0, duration + changes.get("dd", 0)),
                              charge=max(0, charge + changes.get("dc", 0)),
                              rated_charge=max(0, rated + changes.get("dr", 0)),
                              parts=draw(st.sampled_from((1, 1, 1, 1, 2, 3))),
                              excluded=draw(st.sampled_from((False,) * 9 + (True,))))

            if presence in ("both", "A"):
                recs["A"].append(record())
            if presence in ("both", "B"):
                kind = draw(st.sampled_from(("same", "skew", "values", "rounding")))
                skew = 0 if kind == "same" else draw(st.one_of(
                    st.just(0), st.integers(-delta, delta),
                    st.integers(-window - 2, window + 2),
                    st.sampled_from((delta, -delta, delta + 1, -delta - 1, window, -window))))
                if kind == "values":
                    recs["B"].append(record(skew=skew, dd=draw(small), dc=draw(small),
                                            dr=draw(small)))
                elif kind == "rounding":  # own and rated charges differ alike
                    diff = draw(small)
                    recs["B"].append(record(skew=skew, dd=draw(st.integers(-1, 1)), dc=diff,
                                            dr=diff))
                else:
                    recs["B"].append(record(skew=skew))
            # bursts: more records of the line close by, same or other values
            for _copy in range(draw(st.sampled_from((0, 0, 0, 1, 2)))):
                recs[draw(st.sampled_from(("A", "B")))].append(record(
                    skew=draw(st.one_of(st.just(0), st.integers(-delta - 1, delta + 1))),
                    dd=draw(st.sampled_from((0, 0, 1)))))
        sides = []
        for party in ("A", "B"):
            other_rows = draw(st.lists(st.sampled_from(
                (("invalid", "wrong_type:duration_s"), ("duplicate", "duplicate_of:1"),
                 ("invalid", "no_tariff"))), max_size=3))
            n_rows = sum(r.parts for r in recs[party]) + len(other_rows)
            order = draw(st.permutations(list(range(n_rows))))
            sides.append(Side(records=recs[party], other_rows=other_rows, row_order=list(order)))
        return sides[0], sides[1], rules

    return build()
