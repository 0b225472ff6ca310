"""A slow, literal reconciler for small files: the test oracle of data_gen's truth.

It reads the written files (not the generator's arrays) and follows docs/records.md
and docs/matching.md step by step in plain Python: validation column by column,
exact local duplicates, partial chains, exclusions, rating (through
``engine.rules``' lookups and the amount formula of docs/rules.md), then the five
passes S1, S2a, S2b, S3a, S3b over elements with their ranks, and the tolerance
evaluation of S3 pairs.  No numpy, no shortcut through the isolation guarantee,
so it checks the generator's analytic truth independently.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from engine.rules import Rules, load_rules

COLUMNS = ("record_id", "service", "calling", "called", "start_time", "duration_s",
           "volume_kb", "trunk_group", "part_seq", "charge")
SERVICES = ("voice", "sms", "data")
_NUMBER = re.compile(r"^\+?[1-9][0-9]{5,14}$")
_INT = re.compile(r"^-?[0-9]+$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


@dataclass
class Row:
    row: int
    record_id: str | None
    status: str = "ok"
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    unit: Unit | None = None


@dataclass
class Unit:
    rows: list[Row]
    service: str
    calling: str
    called: str
    start: int
    duration: int
    volume: int
    charge: int
    rated: int = 0
    excluded: str | None = None
    invalid: str | None = None

    @property
    def record_id(self) -> str:
        return self.rows[0].record_id  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# reading and validating


def read_rows(path: Path) -> list[Row]:
    if path.suffix == ".csv":
        return _read_csv(path)
    return _read_parquet(path)


def _read_csv(path: Path) -> list[Row]:
    lines = path.read_bytes().split(b"\n")
    header = lines[0].decode("utf-8").split(",")
    assert tuple(header) == COLUMNS, header
    rows: list[Row] = []
    seen_ids: set[str] = set()
    for number, raw in enumerate(lines[1:], start=1):
        if raw == b"" and number == len(lines) - 1:
            break
        fields = raw.split(b",")
        assert len(fields) == len(COLUMNS), (number, raw)
        texts: dict[str, str | None] = {}
        undecodable = None
        for name, value in zip(COLUMNS, fields, strict=True):
            try:
                texts[name] = next(csv.reader(io.StringIO(value.decode("utf-8"))), [""])[0]
            except UnicodeDecodeError:
                texts[name] = None
                undecodable = undecodable or name
        rows.append(_validate(number, texts, undecodable, seen_ids, csv_text=True))
    return rows


def _read_parquet(path: Path) -> list[Row]:
    frame = pl.read_parquet(path)
    assert tuple(frame.columns) == COLUMNS, frame.columns
    rows: list[Row] = []
    seen_ids: set[str] = set()
    for number, record in enumerate(frame.iter_rows(named=True), start=1):
        rows.append(_validate(number, record, None, seen_ids, csv_text=False))
    return rows


def _validate(number: int, texts: dict[str, Any], undecodable: str | None, seen_ids: set[str],
              csv_text: bool) -> Row:
    row = Row(row=number, record_id=texts.get("record_id"))
    if undecodable is not None:
        row.status, row.reason = "invalid", f"undecodable_bytes:{undecodable}"
        if row.record_id:
            seen_ids.add(row.record_id)
        return row
    values: dict[str, Any] = {}
    problem = None
    for name in COLUMNS:
        value = texts[name]
        if value is None or value == "":
            problem = ("missing_value", name)
            break
        if name == "record_id":
            if len(value) > 64:
                problem = ("oversize_field", name)
            elif value in seen_ids:
                problem = ("duplicate_record_id", name)
        elif name == "service" and value not in SERVICES:
            problem = ("unknown_service", name)
        elif name in ("calling", "called") and not _NUMBER.match(value):
            problem = ("malformed_number", name)
        elif name == "trunk_group" and len(value) > 32:
            problem = ("oversize_field", name)
        elif name == "start_time":
            if csv_text:
                match = _ISO.match(value)
                if not match:
                    problem = ("malformed_timestamp", name)
                elif match.group(8) is None:
                    problem = ("missing_utc_offset", name)
                else:
                    try:
                        value = _epoch(match)
                    except ValueError:
                        problem = ("malformed_timestamp", name)
            else:
                value = int(value.timestamp())
        elif name in ("duration_s", "volume_kb", "part_seq", "charge"):
            if csv_text:
                if not _INT.match(value):
                    problem = ("wrong_type", name)
                else:
                    value = int(value)
            elif isinstance(value, bool) or not isinstance(value, int):
                problem = ("wrong_type", name)     # money is never a float
            if problem is None and value < 0:
                problem = ("negative_value", name)
        if problem:
            break
        values[name] = value
    if problem is None:
        if values["service"] == "sms" and values["duration_s"] != 0:
            problem = ("inconsistent_service", "duration_s")
        elif values["service"] in ("voice", "sms") and values["volume_kb"] != 0:
            problem = ("inconsistent_service", "volume_kb")
    if row.record_id:
        seen_ids.add(row.record_id)
    if problem:
        row.status, row.reason = "invalid", f"{problem[0]}:{problem[1]}"
        return row
    values["calling"] = values["calling"].lstrip("+")
    values["called"] = values["called"].lstrip("+")
    row.values = values
    return row


def _epoch(match: re.Match[str]) -> int:
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    offset = match.group(8)
    if offset == "Z":
        tz = dt.UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp())


# ---------------------------------------------------------------------------
# local processing


def period_bounds(period: str, rules: Rules) -> tuple[int, int]:
    """[first, end) of a period YYYY-MM in the rules' time zone, UTC epoch seconds."""
    year, month = int(period[:4]), int(period[5:7])
    tz = dt.timezone(dt.timedelta(seconds=rules.timezone_offset_s))
    first = dt.datetime(year, month, 1, tzinfo=tz)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return int(first.timestamp()), int(end.timestamp())


def local_units(rows: list[Row], rules: Rules, period: tuple[int, int]) -> list[Unit]:
    """Duplicates, partial chains, exclusions (the period first, then the rules'),
    rating.  Returns the considered units."""
    first_copy: dict[tuple[Any, ...], int] = {}
    for row in rows:
        if row.status != "ok":
            continue
        key = tuple(row.values[c] for c in COLUMNS if c != "record_id")
        if key in first_copy:
            row.status, row.reason = "duplicate", f"duplicate_of:{first_copy[key]}"
        else:
            first_copy[key] = row.row

    units: list[Unit] = []
    chains: dict[tuple[str, str, str, str], list[Row]] = {}
    for row in rows:
        if row.status != "ok":
            continue
        v = row.values
        if v["part_seq"] == 0:
            units.append(_unit([row]))
        else:
            chains.setdefault((v["service"], v["calling"], v["called"], v["trunk_group"]),
                              []).append(row)
    for parts in chains.values():
        parts.sort(key=lambda r: (r.values["start_time"], r.values["part_seq"], r.row))
        chain = [parts[0]]
        for part in parts[1:]:
            prev = chain[-1].values
            if (part.values["part_seq"] == prev["part_seq"] + 1
                    and abs(part.values["start_time"] - (prev["start_time"] + prev["duration_s"]))
                    <= rules.partial_max_gap_s):
                chain.append(part)
            else:
                units.append(_unit(chain))
                chain = [part]
        units.append(_unit(chain))
    units.sort(key=lambda u: u.rows[0].row)

    for unit in units:
        if not period[0] <= unit.start < period[1]:
            unit.excluded = "out_of_period"
        for ex in rules.exclusions:
            if unit.excluded:
                break
            value = {"duration_s": unit.duration, "volume_kb": unit.volume,
                     "charge": unit.charge}[ex.field]
            if value == ex.equals and (ex.service is None or ex.service == unit.service):
                unit.excluded = ex.name
                break
        if unit.excluded:
            for row in unit.rows:
                row.status, row.reason = "excluded", unit.excluded
            continue
        rated = rate_one(rules, unit.service, unit.calling, unit.called, unit.start,
                         unit.duration, unit.volume)
        if rated is None:
            unit.invalid = "no_tariff"
            for row in unit.rows:
                row.status, row.reason = "invalid", "no_tariff"
            continue
        unit.rated = rated
    return [u for u in units if u.excluded is None and u.invalid is None]


def _unit(rows: list[Row]) -> Unit:
    first = rows[0].values
    unit = Unit(rows=rows, service=first["service"], calling=first["calling"],
                called=first["called"], start=first["start_time"],
                duration=sum(r.values["duration_s"] for r in rows),
                volume=sum(r.values["volume_kb"] for r in rows),
                charge=sum(r.values["charge"] for r in rows))
    for row in rows:
        row.unit = unit
    return unit


def rate_one(rules: Rules, service: str, calling: str, called: str, start: int, duration: int,
             volume: int) -> int | None:
    """docs/rules.md § Rating for one record, through engine.rules' lookups."""
    payer, payee = rules.operator_of(calling), rules.operator_of(called)
    call_type, band = rules.call_type_of(called), rules.time_band_of(start)
    for t in rules.tariffs:
        if (t.payer in ("*", payer) and t.payee in ("*", payee) and t.service == service
                and t.call_type in ("*", call_type) and t.time_band in ("*", band)
                and t.effective_from <= start
                and (t.effective_to is None or start < t.effective_to)):
            amount = volume if service == "data" else duration
            units = 0 if amount == 0 else max(t.minimum, -(-amount // t.increment) * t.increment)
            if service == "voice":
                return (units * t.rate + 30) // 60
            if service == "sms":
                return t.rate
            return (units * t.rate + 512) // 1024
    return None


# ---------------------------------------------------------------------------
# matching


@dataclass
class Outcome:
    status: str
    stage: str | None = None
    pair: Unit | None = None
    reasons: str | None = None


def match(units_a: list[Unit], units_b: list[Unit], rules: Rules) -> dict[int, Outcome]:
    """Outcome per unit (keyed by id()) of both sides."""
    tol = rules.tolerances
    delta, window = tol.time_tolerance_s, tol.time_window_s
    value_window = delta + 1
    service_code = {s: i for i, s in enumerate(SERVICES)}

    def base(u: Unit) -> tuple[int, str, str]:
        return (service_code[u.service], u.calling, u.called)

    passes = [
        ("exact", lambda u: base(u) + (u.start, u.duration, u.charge)),
        ("tolerant_values", lambda u: base(u) + (u.start // value_window, u.duration, u.charge)),
        ("tolerant_values", lambda u: base(u) + ((u.start + value_window // 2) // value_window,
                                                 u.duration, u.charge)),
        ("key", lambda u: base(u) + (u.start // window,)),
        ("key", lambda u: base(u) + ((u.start + window // 2) // window,)),
    ]
    outcome: dict[int, Outcome] = {}
    free_a, free_b = list(units_a), list(units_b)
    for tag, (stage, element_of) in enumerate(passes, start=1):
        elements_a = _ranked(free_a, element_of, tag)
        elements_b = _ranked(free_b, element_of, tag)
        for element, ua in elements_a.items():
            ub = elements_b.get(element)
            if ub is None:
                continue
            if stage == "exact":
                status, reasons = "matched_exact", None
            elif stage == "tolerant_values":
                status, reasons = "matched_tolerance", None
            else:
                status, reasons = _evaluate(ua, ub, rules)
            outcome[id(ua)] = Outcome(status, stage, ub, reasons)
            outcome[id(ub)] = Outcome(status, stage, ua, reasons)
        free_a = [u for u in free_a if id(u) not in outcome]
        free_b = [u for u in free_b if id(u) not in outcome]
    for u in free_a + free_b:
        outcome[id(u)] = Outcome("unmatched")
    return outcome


def _ranked(units: list[Unit], element_of: Any, tag: int) -> dict[tuple[Any, ...], Unit]:
    groups: dict[tuple[Any, ...], list[Unit]] = {}
    for u in units:
        groups.setdefault((tag,) + element_of(u), []).append(u)
    out: dict[tuple[Any, ...], Unit] = {}
    for key, members in groups.items():
        members.sort(key=lambda u: (u.start, u.duration, u.charge, u.rows[0].row))
        for rank, u in enumerate(members):
            out[key + (rank,)] = u
    return out


def _evaluate(ua: Unit, ub: Unit, rules: Rules) -> tuple[str, str | None]:
    tol = rules.tolerances
    d_t, d_d = ua.start - ub.start, ua.duration - ub.duration
    d_c, d_r = ua.charge - ub.charge, ua.rated - ub.rated
    ok_t = abs(d_t) <= tol.time_tolerance_s
    ok_d = abs(d_d) <= tol.duration_tolerance_s
    ok_c = abs(d_c) <= tol.charge_tolerance
    if ok_t and ok_d and ok_c:
        return "matched_tolerance", None
    codes = []
    if not ok_t:
        codes.append("start_time")
    if not ok_d:
        codes.append("duration")
    if not ok_c:
        if abs(d_r) <= tol.charge_tolerance:
            codes.append("charge_rate_mismatch")
        elif ok_d:
            codes.append("charge_rounding")
        else:
            codes.append("charge_unexplained")
    return "disputed", ",".join(codes)


# ---------------------------------------------------------------------------
# the whole thing


def reconcile(folder: Path, fmt: str) -> pl.DataFrame:
    """Rows of both sides with the literal outcome, in the truth's column names.  The job's
    period is the scenario's (manifest.json)."""
    rules = load_rules(folder / "rules.toml")
    period = period_bounds(json.loads((folder / "manifest.json").read_text())["knobs"]["period"],
                           rules)
    rows_a = read_rows(folder / f"a.{fmt}")
    rows_b = read_rows(folder / f"b.{fmt}")
    units_a = local_units(rows_a, rules, period)
    units_b = local_units(rows_b, rules, period)
    outcome = match(units_a, units_b, rules)
    records = []
    for side, rows in (("A", rows_a), ("B", rows_b)):
        for row in rows:
            status, pair, reasons, stage, merged = row.status, None, row.reason, None, None
            unit = row.unit
            if unit is not None and len(unit.rows) > 1:
                merged = unit.record_id
            if status == "ok":
                result = outcome[id(unit)]
                status, stage, reasons = result.status, result.stage, result.reasons
                pair = result.pair.record_id if result.pair is not None else None
            records.append({"side": side, "row": row.row, "record_id": row.record_id,
                            "expected_status": status, "expected_pair_record_id": pair,
                            "expected_reasons": reasons, "expected_stage": stage,
                            "expected_merged_into": merged})
    return pl.DataFrame(records, schema={"side": pl.String, "row": pl.Int64,
                                         "record_id": pl.String, "expected_status": pl.String,
                                         "expected_pair_record_id": pl.String,
                                         "expected_reasons": pl.String,
                                         "expected_stage": pl.String,
                                         "expected_merged_into": pl.String})
