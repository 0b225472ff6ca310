"""Builds one party's realistic report inputs without running a job.

``build_job`` returns what the job runner hands to ``render_report``: a summary
dict, the records.parquet frame (``statuses``), the canonical ``records`` and
``rows`` frames of ingest, the rules (docs/example_rules.toml), the signed
statement document (operators CMCC and CUCC) and the quarantine frame.  The
summary's ledger checkpoint is a well-formed signed note whose key ids the Job
records (``key_ids``), so that a test can check what the page reads from it.  The frames
follow docs/records.md: invalid and duplicate rows without a unit, excluded
zero-duration voice records, partial calls merged into one canonical record whose
rows share its status, pair ids shared by a pair's rows, reasons and differences per
the disclosure policy.  The summary is computed here with numpy from the same
draws, so that it agrees with the frames (tests that want an inconsistent summary
edit it).  Vectorised, so that 10^6 rows build in a few seconds for timing runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.rules import Rules, parse_rules

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_RULES = ROOT / "docs" / "example_rules.toml"

REASON_BITS = ("start_time", "duration", "charge_rate_mismatch", "charge_rounding",
               "charge_unexplained")
OCT_2026_LOCAL = int(dt.datetime(2026, 10, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
                     .timestamp())


CHECKPOINT_ORIGIN = "settlechain.example/demo"
OPERATORS = {"A": "CMCC", "B": "CUCC"}


@dataclass(frozen=True)
class Job:
    summary: dict[str, Any]
    statuses: pl.DataFrame
    records: pl.DataFrame
    rows: pl.DataFrame
    rules: Rules
    statement: dict[str, Any] = field(default_factory=dict)
    quarantine: pl.DataFrame | None = None
    key_ids: dict[str, str] = field(default_factory=dict)
    """key name in the checkpoint -> the 8 hex digits of its key id."""

    def render_args(self) -> tuple[Any, ...]:
        return (self.summary, self.statuses, self.records, self.rows, self.rules)

    def render_kwargs(self) -> dict[str, Any]:
        return {"statement": self.statement, "quarantine": self.quarantine}


def example_rules(policy: str = "flags") -> Rules:
    rules = parse_rules(EXAMPLE_RULES.read_text(encoding="utf-8"), source=str(EXAMPLE_RULES))
    return rules.with_disclosure(policy)


def _strings(values: np.ndarray) -> pl.Series:
    """A String series from a numpy array of str / np.str_ / None."""
    return pl.Series([None if v is None else str(v) for v in values.tolist()], dtype=pl.String)


def _numbers(rng: np.random.Generator, prefixes: list[str], n: int) -> np.ndarray:
    """n E.164 digit strings of 13 digits starting with one of ``prefixes``."""
    chosen = rng.choice(np.array(prefixes, dtype=object), size=n)
    tails = rng.integers(0, 10**8, size=n)
    return np.array([p + f"{t:08d}"[: 13 - len(p)]
                     for p, t in zip(chosen, tails, strict=True)], dtype=object)


def build_job(n_rows: int = 2000, *, seed: int = 1, policy: str = "flags",
              exact_share: float = 0.90, tolerance_share: float = 0.04,
              disputed_share: float = 0.03, invalid_share: float = 0.01,
              duplicate_share: float = 0.005, chain_share: float = 0.01,
              excluded_share: float = 0.01, period: str = "2026-10",
              record_ids: dict[int, str] | None = None) -> Job:
    """One party's inputs with about ``n_rows`` input rows (exactly ``n_rows``).

    Shares are of input rows (approximately); the rest of the considered records
    are ``unmatched``.  ``record_ids`` overrides the record id of given 1-based rows.
    """
    rng = np.random.default_rng(seed)
    rules = example_rules(policy)

    n_invalid = int(round(n_rows * invalid_share))
    n_duplicate = int(round(n_rows * duplicate_share))
    n_unit_rows = n_rows - n_invalid - n_duplicate
    # parts per unit: mostly 1; chains of 2 or 3 rows for about chain_share of rows
    parts: list[int] = []
    remaining = n_unit_rows
    while remaining > 0:
        k = int(rng.choice([2, 3])) if rng.random() < chain_share / 2 else 1
        k = min(k, remaining)
        parts.append(k)
        remaining -= k
    parts_arr = np.array(parts, dtype=np.int64)
    n_units = len(parts_arr)

    # row order: every entry (unit part / invalid / duplicate) gets a random position
    kinds = np.concatenate([np.repeat(np.arange(n_units), parts_arr),
                            np.full(n_invalid, -1), np.full(n_duplicate, -2)])
    order = rng.permutation(len(kinds))
    kind_at_row = kinds[order]  # row i+1 holds entry kind_at_row[i]
    rows_no = np.arange(1, n_rows + 1, dtype=np.int64)

    # units are numbered in order of their first row
    is_unit = kind_at_row >= 0
    first_row = np.full(n_units, n_rows + 1, dtype=np.int64)
    np.minimum.at(first_row, kind_at_row[is_unit], rows_no[is_unit])
    unit_of_draw = np.empty(n_units, dtype=np.int64)
    unit_of_draw[np.argsort(first_row, kind="stable")] = np.arange(n_units)
    unit_at_row = np.where(is_unit, unit_of_draw[np.where(is_unit, kind_at_row, 0)], -1)
    unit_first_row = np.sort(first_row)
    unit_parts = np.empty(n_units, dtype=np.int64)
    unit_parts[unit_of_draw] = parts_arr

    record_id = np.array([f"CDR-{seed:03d}-{r:09d}" for r in rows_no], dtype=object)
    for row, rid in (record_ids or {}).items():
        record_id[row - 1] = rid

    # canonical records
    service = rng.choice(np.array([0, 1, 2], dtype=np.uint8), size=n_units, p=[0.7, 0.2, 0.1])
    cmcc = list(rules.operators[0].prefixes)
    cucc = list(rules.operators[1].prefixes)
    calling = _numbers(rng, cmcc + cucc + ["86199", "86177"], n_units)
    called = _numbers(rng, cmcc + cucc + ["86199", "4420", "1212"], n_units)
    start = OCT_2026_LOCAL + rng.integers(0, 31 * 86400, size=n_units)
    # a few records just outside the period (clock skew, late files)
    if n_units > 200:
        late_or_early = rng.choice(n_units, size=3, replace=False)
        start[late_or_early[:2]] = OCT_2026_LOCAL - 2 * 86400 + 3600   # 2026-09-29
        start[late_or_early[2]] = OCT_2026_LOCAL + 31 * 86400 + 7200   # 2026-11-01
    excluded = (service == 0) & (rng.random(n_units) < excluded_share / 0.7)
    duration = np.where(service == 0, rng.integers(1, 1800, size=n_units), 0)
    duration = np.where(excluded, 0, duration)
    volume = np.where(service == 2, rng.integers(1, 500_000, size=n_units), 0)
    duration = np.where(service == 2, rng.integers(1, 3600, size=n_units), duration)
    charge = np.where(service == 0, (duration + 59) // 60 * 6,
                      np.where(service == 1, 1, (volume * 3 + 512) // 1024))
    charge = np.where(excluded, 0, charge).astype(np.int64)
    rated = charge + rng.integers(-1, 2, size=n_units) * (rng.random(n_units) < 0.02)

    records = pl.DataFrame({
        "unit": np.arange(n_units, dtype=np.int64),
        "record_id": _strings(record_id[unit_first_row - 1]),
        "row": unit_first_row,
        "service": service,
        "calling": _strings(calling), "called": _strings(called),
        "start": start.astype(np.int64), "duration_s": duration.astype(np.int64),
        "volume_kb": volume.astype(np.int64),
        "trunk_group": pl.Series([f"TG{i % 7}" for i in range(n_units)], dtype=pl.String),
        "charge": charge, "rated_charge": rated.astype(np.int64),
        "parts": unit_parts.astype(np.int32), "excluded": excluded,
    })

    # per-unit status
    draw = rng.random(n_units)
    cuts = np.cumsum([exact_share, tolerance_share, disputed_share])
    status_code = np.select([draw < cuts[0], draw < cuts[1], draw < cuts[2]], [0, 1, 2], 3)
    status_names = np.array(["matched_exact", "matched_tolerance", "disputed", "unmatched"],
                            dtype=object)
    unit_status = np.where(excluded, "excluded", status_names[status_code]).astype(object)
    paired = np.isin(unit_status, ["matched_exact", "matched_tolerance", "disputed"])
    pair_id = np.array([rng.bytes(16).hex() if p else None for p in paired], dtype=object)
    stage = np.select([unit_status == "matched_exact", unit_status == "matched_tolerance",
                       unit_status == "disputed"], ["exact", "tolerant_values", "key"], None)
    disputed = unit_status == "disputed"
    # reason bitmask: any of start/duration, at most one charge code, at least one bit
    bits = (rng.random((n_units, 2)) < 0.35) @ np.array([1, 2])
    charge_code = rng.integers(0, 4, size=n_units)  # 0 none, 1..3 one of the charge codes
    mask = bits + np.where(charge_code > 0, 2 ** (charge_code + 1), 0)
    mask = np.where((mask == 0), 4, mask) * disputed
    reasons = np.array([",".join(c for b, c in enumerate(REASON_BITS) if m >> b & 1) or None
                        for m in mask], dtype=object)
    remote_charge = charge + np.where(disputed & ((mask & 28) > 0),
                                      rng.integers(-30, 31, size=n_units), 0)
    remote_charge = np.where(unit_status == "matched_tolerance",
                             charge + rng.integers(-2, 3, size=n_units), remote_charge)
    remote_charge = np.maximum(remote_charge, 0)
    diffs = {
        "diff_start_s": np.where(mask & 1, rng.integers(-11, 12, size=n_units), 0),
        "diff_duration_s": np.where(mask & 2, rng.integers(-90, 91, size=n_units), 0),
        "diff_charge": charge - remote_charge,
        "diff_rated_charge": np.where(mask & 4, 0, rng.integers(-5, 6, size=n_units)),
    }

    # rows frame (ingest) and statuses (records.parquet)
    unit_idx = np.where(unit_at_row >= 0, unit_at_row, 0)
    row_is_unit = unit_at_row >= 0
    ingest_status = np.where(kind_at_row == -1, "invalid",
                             np.where(kind_at_row == -2, "duplicate",
                                      np.where(excluded[unit_idx], "excluded", "ok")))
    dup_target = np.maximum(1, rng.integers(1, n_rows + 1, size=n_rows))
    row_reason = np.where(kind_at_row == -1, "wrong_type:duration_s",
                          np.where(kind_at_row == -2,
                                   np.char.add("duplicate_of:",
                                               dup_target.astype(str)).astype(object),
                                   np.where(ingest_status == "excluded", "zero_duration_voice",
                                            None)))
    rows = pl.DataFrame({
        "row": rows_no, "record_id": _strings(record_id), "status": _strings(ingest_status),
        "reason": _strings(row_reason),
        "unit": pl.Series(np.where(row_is_unit, unit_at_row, 0)).cast(pl.Int64),
    })
    rows = rows.with_columns(pl.when(pl.Series(row_is_unit)).then(pl.col("unit"))
                             .otherwise(None).alias("unit"))

    row_status = np.where(row_is_unit, unit_status[unit_idx], ingest_status).astype(object)
    row_disputed = row_is_unit & disputed[unit_idx]
    disclosed = policy != "aggregate"
    row_reasons = np.where(row_disputed, reasons[unit_idx] if disclosed else None,
                           np.where(row_is_unit & ~excluded[unit_idx], None, row_reason))
    merged = np.where(row_is_unit & (unit_parts[unit_idx] > 1),
                      record_id[unit_first_row[unit_idx] - 1], None)
    statuses = pl.DataFrame({
        "row": rows_no, "record_id": _strings(record_id), "status": _strings(row_status),
        "pair_id": _strings(np.where(row_is_unit, pair_id[unit_idx], None)),
        "stage": _strings(np.where(row_is_unit, stage[unit_idx], None)),
        "reasons": _strings(row_reasons), "merged_into": _strings(merged),
    })
    diff_cols = []
    for name, values in diffs.items():
        show = row_disputed if policy == "differences" else np.zeros(n_rows, dtype=bool)
        diff_cols.append(pl.Series(name, values[unit_idx].astype(np.int64))
                         .set(pl.Series(~show), None))  # type: ignore[arg-type]
    statuses = statuses.with_columns(diff_cols)

    summary = _summary(rules, policy, period, seed, row_status, unit_status, charge,
                       remote_charge, mask, rng)
    checkpoint, key_ids = _checkpoint(rng)
    summary["anchor"]["checkpoint"] = checkpoint
    statement = {
        "kind": "settlement_statement", "job_id": summary["job_id"], "period": period,
        "rules_sm3": summary["rules_sm3"], "disclosure": policy, "operators": dict(OPERATORS),
        "commitments": {"A": rng.bytes(32).hex(), "B": rng.bytes(32).hex()},
        "settlement": summary["review"]["settlement"],
        "signatures": [{"signer": OPERATORS[r], "sig": rng.bytes(64).hex()} for r in "AB"],
    }
    invalid_rows = rows_no[kind_at_row == -1]
    quarantine = pl.DataFrame({
        "row": invalid_rows.astype(np.int64),
        "record_id": _strings(record_id[invalid_rows - 1]),
        "code": ["wrong_type"] * len(invalid_rows),
        "column": ["duration_s"] * len(invalid_rows),
        "reason": ["wrong_type:duration_s"] * len(invalid_rows),
        "message": [f"duration_s: expected an integer >= 0 (seconds), found '{r}.5'"
                    for r in invalid_rows.tolist()],
    }, schema={"row": pl.Int64, "record_id": pl.String, "code": pl.String,
               "column": pl.String, "reason": pl.String, "message": pl.String})
    return Job(summary, statuses, records, rows, rules, statement, quarantine, key_ids)


def _checkpoint(rng: np.random.Generator) -> tuple[str, dict[str, str]]:
    """A C2SP signed note: the log's signature and three witnesses' cosignatures."""
    origin = CHECKPOINT_ORIGIN
    text = f"{origin}\n42\n{base64.b64encode(rng.bytes(32)).decode()}\n"
    names = [origin] + [f"{origin}/witness/{m}" for m in ("CMCC", "CTCC", "CUCC")]
    key_ids, lines = {}, []
    for name in names:
        key_id = rng.bytes(4)
        key_ids[name] = key_id.hex()
        payload = key_id + (rng.bytes(64) if name == origin else rng.bytes(72))
        lines.append(f"\u2014 {name} {base64.b64encode(payload).decode()}\n")
    return text + "\n" + "".join(lines), key_ids


def _summary(rules: Rules, policy: str, period: str, seed: int, row_status: np.ndarray,
             unit_status: np.ndarray, charge: np.ndarray, remote_charge: np.ndarray,
             mask: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    def rows_with(status: str) -> int:
        return int((row_status == status).sum())

    def units(status: str) -> np.ndarray:
        return unit_status == status

    exact, tol, disp, unm = (units(s) for s in ("matched_exact", "matched_tolerance",
                                                "disputed", "unmatched"))
    unmatched_remote = int(unm.sum() * 0.8) + 3
    unmatched_remote_charge = unmatched_remote * 41
    agreed_local = int(charge[exact].sum() + charge[tol].sum())
    agreed_remote = int(charge[exact].sum() + remote_charge[tol].sum())
    agreed = int(charge[exact].sum()) + (int(charge[tol].sum())
                                         + int(remote_charge[tol].sum())) // 2
    totals = {
        "local_charge": int(charge[exact | tol | disp | unm].sum()),
        "agreed_charge": agreed,
        "agreed_local_charge": agreed_local, "agreed_remote_charge": agreed_remote,
        "disputed_local_charge": int(charge[disp].sum()),
        "disputed_remote_charge": int(remote_charge[disp].sum()),
        "unmatched_local_charge": int(charge[unm].sum()),
        "unmatched_remote_charge": unmatched_remote_charge,
    }
    totals["remote_charge"] = (totals["agreed_remote_charge"] + totals["disputed_remote_charge"]
                               + unmatched_remote_charge)
    reasons = {}
    for bit, code in enumerate(REASON_BITS):
        has = disp & ((mask >> bit) & 1).astype(bool)
        if has.any():
            reasons[code] = {"pairs": int(has.sum()), "local_charge": int(charge[has].sum()),
                             "remote_charge": int(remote_charge[has].sum())}
    n_pairs = int(exact.sum() + tol.sum() + disp.sum())
    considered = int((exact | tol | disp | unm).sum())
    review_reasons = []
    if n_pairs and disp.sum() / n_pairs > rules.circuit_breaker.max_disputed_share:
        review_reasons.append(f"disputed share {disp.sum() / n_pairs:.3f} > "
                              f"{rules.circuit_breaker.max_disputed_share}")
    if considered and unm.sum() / considered > rules.circuit_breaker.max_unmatched_share:
        review_reasons.append(f"unmatched share {unm.sum() / considered:.3f} > "
                              f"{rules.circuit_breaker.max_unmatched_share}")
    n = len(row_status)
    return {
        "job_id": f"job-2026-10-demo-{seed}", "party": "A", "counterparty": "B",
        "period": period, "rules_sm3": rules.sm3_hash(), "disclosure": policy,
        "counts": {"records": n, "invalid": rows_with("invalid"),
                   "excluded": rows_with("excluded"), "duplicate": rows_with("duplicate"),
                   "matched_exact": rows_with("matched_exact"),
                   "matched_tolerance": rows_with("matched_tolerance"),
                   "disputed": rows_with("disputed"), "unmatched_local": rows_with("unmatched"),
                   "unmatched_remote": unmatched_remote},
        "pairs": {"matched_exact": int(exact.sum()), "matched_tolerance": int(tol.sum()),
                  "disputed": int(disp.sum())},
        "reasons": reasons,
        "totals": totals,
        "review": {"settlement": "manual_review" if review_reasons else "automatic",
                   "reasons": review_reasons},
        "anchor": {"index": 41 + seed, "leaf_hash": rng.bytes(32).hex(),
                   "checkpoint": "settlechain.example/demo\n42\nq0rT...=\n\n— log sig"},
        "stages": {
            "ingest": {"seconds": 0.021 * n / 1000, "items": n},
            "psi_exact": {"seconds": 0.004 * n / 1000, "items": considered},
            "psi_key": {"seconds": 0.002 * n / 1000, "items": int((disp | unm).sum())},
            "mpc": {"seconds": 0.9 * disp.sum() / 1000 + 0.8, "items": int(disp.sum())},
            "report": {"seconds": 0.12, "items": n},
            "anchor": {"seconds": 0.05, "items": 3},
            "total": {"seconds": 0.028 * n / 1000 + 1.2, "items": n},
            "peak_memory_mib": 212.5,
        },
    }


# ---------------------------------------------------------------------------
# reading a rendered page back (stdlib html.parser)


class PageReader(HTMLParser):
    """Collects every chart's bars (their data-* attributes), every element id's text
    (script contents excluded), every start tag with its attributes, every script's
    text (``scripts``: (attributes, text)) and the worklists' embedded data
    (``lists``: kind -> the decoded JSON, with the category columns decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.bars: dict[str, list[dict[str, str]]] = {}
        self.charts: dict[str, dict[str, str]] = {}
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.texts: dict[str, str] = {}
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.lists: dict[str, dict[str, Any]] = {}
        self._chart: str | None = None
        self._open_ids: list[tuple[str, int]] = []
        self._depth = 0
        self._text: list[str] = []
        self._script: dict[str, str] | None = None
        self.feed(html)
        self.close()
        for attrs, text in self.scripts:
            if attrs.get("type") == "application/json":
                payload = json.loads(text)
                for name, values in payload["dicts"].items():
                    payload["data"][name] = [None if i is None else values[i]
                                             for i in payload["data"][name]]
                self.lists[payload["kind"]] = payload

    def rows(self, kind: str) -> list[dict[str, Any]]:
        """The embedded rows of a worklist, as dicts, in the embedded order."""
        data = self.lists[kind]["data"]
        names = [c["name"] for c in self.lists[kind]["columns"]]
        return [dict(zip(names, values, strict=True))
                for values in zip(*(data[n] for n in names), strict=True)]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        self.tags.append((tag, named))
        if tag == "script":
            self._script = named
            self.scripts.append((named, ""))
            return
        if tag == "svg" and "data-chart" in named:
            self._chart = named["data-chart"]
            self.charts[self._chart] = named
            self.bars[self._chart] = []
        if tag == "g" and self._chart and "bar" in named.get("class", "").split():
            self.bars[self._chart].append(named)
        if tag in VOID_TAGS or tag in ("rect", "line", "polygon"):
            return
        self._depth += 1
        if "id" in named:
            self._open_ids.append((named["id"], self._depth))
            self.texts[named["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None
            return
        if tag == "svg":
            self._chart = None
        if tag in VOID_TAGS or tag in ("rect", "line", "polygon"):
            return
        while self._open_ids and self._open_ids[-1][1] >= self._depth:
            self._open_ids.pop()
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
            return
        for element_id, _ in self._open_ids:
            self.texts[element_id] += data

    def values(self, chart: str, column: str | None = None) -> dict[str, int]:
        """row label -> data-value of a bar_grid chart (one column)."""
        return {b["data-row"]: int(b["data-value"]) for b in self.bars[chart]
                if column is None or b.get("data-column") == column}


VOID_TAGS = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}
