"""Aggregation for the report: polars over the party's frames, small results out.

Everything heavy happens here, vectorised, so that rendering a report over 10^6
input rows costs a few joins and group-bys; the page and its charts are then built
from a :class:`ReportData` of a few hundred numbers plus the worklists, each capped
at ``max_list_rows`` rows (largest amount first).

The frames are read only through :class:`engine.report.frames.PartyFrames` (the
report's one adapter to ingest and records.parquet); the rate classes and payer /
payee operators come from :mod:`engine.report.classes`.  What only the protocol
knows (the counterparty's side, per-reason sums, the settlement decision) comes
from summary.json.

Money stays in integer minor units (fen) throughout.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from engine.errors import InputError
from engine.names import REASON_CODES, SERVICES
from engine.period import period_window
from engine.report.classes import classify
from engine.report.frames import (
    OUTCOMES, STATUSES, Disclosed, PartyFrames, ReportInputError,
)
from engine.report.lists import (
    DISPUTES, INVALID, POLICIES, UNMATCHED, ListSpec, label_calls, list_frame,
)
from engine.report.parties import Parties
from engine.rules import Rules

log = logging.getLogger(__name__)


_SECONDS_PER_DAY = 86_400
MAX_DAYS = 100
"""At most this many day bars; records outside the shown days go to 'before' / 'after'."""

MAX_LIST_ROWS = 20_000
"""Rows of each worklist embedded in the page (largest amount first); the rest are in
``settlechain export``'s files, and the page says so."""

FIRST_INVALID_ROWS = 20
"""Row numbers listed per invalid reason in the page's summary."""


# ---------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class ClassAmounts:
    """Local charges and record counts of one group (a rate class or an operator pair)."""

    key: tuple[Any, ...]
    charge: Mapping[str, int]
    """outcome (agreed / disputed / unmatched) -> Σ local charge, minor units."""
    records: Mapping[str, int]
    """outcome -> number of canonical records."""


@dataclass(frozen=True)
class DayVolume:
    label: str
    """ISO date of the local day, or 'before' / 'after' for records outside the shown days."""
    day: dt.date | None
    in_period: bool
    records: Mapping[str, int]
    """outcome -> canonical records whose local start falls on this day."""
    charge: Mapping[str, int]
    """outcome -> Σ local charge of those records."""


@dataclass(frozen=True)
class ReasonAmounts:
    code: str
    pairs: int
    local_charge: int
    remote_charge: int


@dataclass(frozen=True)
class Check:
    """One consistency check between the inputs (summary.json against the frames, or
    the frames against the disclosure policy)."""

    what: str
    expected: int | str
    """What summary.json (or the policy) says."""
    found: int | str
    """What the frames (or the rules) give."""

    @property
    def ok(self) -> bool:
        return self.expected == self.found


@dataclass(frozen=True)
class Direction:
    """This party's calls from ``payer``'s numbers to ``payee``'s: ``payer`` owes
    ``payee`` for them (docs/rules.md, tariffs keyed by payer and payee)."""

    payer: str
    payee: str
    charge: Mapping[str, int]
    """outcome -> Σ this party's charge, minor units."""
    records: Mapping[str, int]
    """outcome -> canonical records."""
    diff_charge: int | None
    """Σ (ours − theirs) of the charge over the disputed pairs in this direction, under
    the ``differences`` policy (None otherwise, or when a pair lacks it)."""


@dataclass(frozen=True)
class NetPosition:
    """The two directions between two operators, ``first`` (this party's operator when
    known) and ``second``."""

    first: str
    second: str
    forward: Direction
    """first -> second: first pays."""
    backward: Direction
    """second -> first: second pays."""

    def net(self, *outcomes: str) -> int:
        """What ``first`` owes ``second`` net over these outcomes (negative: second owes
        first), at this party's charges."""
        return (sum(self.forward.charge[o] for o in outcomes)
                - sum(self.backward.charge[o] for o in outcomes))


@dataclass(frozen=True)
class WorkList:
    spec: ListSpec
    """The list's columns as the policy discloses them."""
    frame: pl.DataFrame
    """The embedded rows (``start`` in epoch seconds), in the list's order."""
    total: int
    """Rows of the whole list (the embedded ones are the first ``frame.height``)."""


@dataclass(frozen=True)
class InvalidReason:
    reason: str
    rows: int
    first_rows: tuple[int, ...]


@dataclass(frozen=True)
class ReportData:
    policy: str
    """The disclosure policy the page follows."""
    status_rows: Mapping[str, int]
    """status -> input rows (every status, zero where absent)."""
    reasons: tuple[ReasonAmounts, ...]
    """per reason code, from summary.json (disclosed under every policy)."""
    rate_classes: tuple[ClassAmounts, ...]
    """key = (service, call type, time band)."""
    operator_pairs: tuple[ClassAmounts, ...]
    """key = (payer, payee)."""
    directions: tuple[Direction, ...]
    """Every payer -> payee present; the net position's two first."""
    net: NetPosition | None
    days: tuple[DayVolume, ...]
    period_days: tuple[dt.date, dt.date] | None
    """First and last local day of the job's period, when the period could be read."""
    disputes: WorkList
    unmatched: WorkList
    invalid: WorkList
    invalid_reasons: tuple[InvalidReason, ...]
    checks: tuple[Check, ...]
    parties: Parties


# ---------------------------------------------------------------------------
# period and days


def period_days(period: Any, offset_s: int) -> tuple[dt.date, dt.date] | None:
    """First and last local day of a period: a month ``YYYY-MM`` (a job's period,
    :mod:`engine.period`) or a span of months ``YYYY-MM/YYYY-MM`` (what the plaintext
    reference writes for records over several months); None for anything else."""
    if not isinstance(period, str):
        return None
    months = period.strip().split("/")
    if len(months) not in (1, 2):
        return None
    try:
        windows = [period_window(m, offset_s) for m in months]
    except InputError:
        return None
    tz = dt.timezone(dt.timedelta(seconds=offset_s))
    first = dt.datetime.fromtimestamp(windows[0].start, tz).date()
    last = dt.datetime.fromtimestamp(windows[-1].end - 1, tz).date()
    return (first, last) if first <= last else None


_EPOCH = dt.date(1970, 1, 1)


def _day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def _per_day(calls: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """Records and charge per local day and outcome (sums: parts add up)."""
    return (
        calls
        .group_by(((pl.col("start") + rules.timezone_offset_s) // _SECONDS_PER_DAY).alias("day"),
                  "outcome")
        .agg(pl.len().alias("records"), pl.col("charge").sum().alias("charge"))
        .filter(pl.col("outcome").is_not_null())
    )


def _days(per_day: pl.DataFrame, rules: Rules,
          period: tuple[dt.date, dt.date] | None) -> tuple[DayVolume, ...]:
    per_day = (per_day.group_by("day", "outcome")
               .agg(pl.col("records").sum(), pl.col("charge").sum()))
    if period is not None:
        first, last = _day_number(period[0]), _day_number(period[1])
        if last - first + 1 > MAX_DAYS:
            first = last - MAX_DAYS + 1
    elif per_day.height:
        first, last = int(per_day["day"].min()), int(per_day["day"].max())  # type: ignore[arg-type]
        if last - first + 1 > MAX_DAYS:
            first = last - MAX_DAYS + 1
    else:
        return ()
    bucket = (pl.when(pl.col("day") < first).then(pl.lit(first - 1))
              .when(pl.col("day") > last).then(pl.lit(last + 1))
              .otherwise(pl.col("day")))
    totals = (per_day.group_by(bucket.alias("bucket"), "outcome")
              .agg(pl.col("records").sum(), pl.col("charge").sum()))
    table: dict[int, dict[str, tuple[int, int]]] = {}
    for bucket_day, outcome, n, charge in totals.iter_rows():
        table.setdefault(bucket_day, {})[outcome] = (n, charge)

    def volume(day_number: int, label: str | None, in_period: bool) -> DayVolume:
        cells = table.get(day_number, {})
        day = _EPOCH + dt.timedelta(days=day_number)
        return DayVolume(
            label=label or day.isoformat(), day=None if label else day, in_period=in_period,
            records={o: cells.get(o, (0, 0))[0] for o in OUTCOMES},
            charge={o: cells.get(o, (0, 0))[1] for o in OUTCOMES},
        )

    days = []
    if first - 1 in table:
        days.append(volume(first - 1, "before", False))
    for number in range(first, last + 1):
        in_period = period is None or (
            _day_number(period[0]) <= number <= _day_number(period[1]))
        days.append(volume(number, None, in_period))
    if last + 1 in table:
        days.append(volume(last + 1, "after", False))
    return tuple(days)


# ---------------------------------------------------------------------------
# the aggregation


#: records classified at once: the four label columns and their prefix lookups of a
#: slice cost tens of megabytes, where the whole of 10^7 records would cost gigabytes
CLASSIFY_CHUNK_ROWS = 1 << 20
_CLASS_KEYS = ("service", "call_type", "time_band", "payer", "payee", "outcome")


def _by_class(calls: pl.DataFrame, rules: Rules, *,
              chunk_rows: int = CLASSIFY_CHUNK_ROWS) -> pl.DataFrame:
    """Records and charge per rate class, operator pair and outcome, classified and
    counted slice by slice (sums of per-slice sums)."""
    columns = calls.select("service", "calling", "called", "start", "charge", "outcome")
    partial = [
        classify(columns.slice(offset, chunk_rows).filter(pl.col("outcome").is_not_null()),
                 rules)
        .group_by(*_CLASS_KEYS)
        .agg(pl.len().cast(pl.Int64).alias("records"), pl.col("charge").sum().alias("charge"))
        for offset in range(0, max(columns.height, 1), chunk_rows)
    ]
    return (pl.concat(partial).group_by(*_CLASS_KEYS)
            .agg(pl.col("records").sum(), pl.col("charge").sum()))


def _group_amounts(frame: pl.DataFrame, keys: list[str]) -> tuple[ClassAmounts, ...]:
    grouped = (frame.group_by(*keys, "outcome")
               .agg(pl.col("records").sum(), pl.col("charge").sum())
               .sort(keys))
    table: dict[tuple[str, ...], tuple[dict[str, int], dict[str, int]]] = {}
    for row in grouped.iter_rows(named=True):
        key = tuple(row[k] for k in keys)
        charge, records = table.setdefault(key, ({o: 0 for o in OUTCOMES},
                                                 {o: 0 for o in OUTCOMES}))
        charge[row["outcome"]] = row["charge"]
        records[row["outcome"]] = row["records"]
    return tuple(ClassAmounts(key=k, charge=c, records=r) for k, (c, r) in table.items())


def _int(mapping: Any, key: str) -> int | None:
    if isinstance(mapping, Mapping):
        value = mapping.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _reasons(summary: Mapping[str, Any]) -> tuple[ReasonAmounts, ...]:
    given = summary.get("reasons") or {}
    if not isinstance(given, Mapping):
        raise ReportInputError("wrong type", file="summary.json", column="reasons",
                               expected="an object of reason code -> counts",
                               found=type(given).__name__)
    codes = list(REASON_CODES) + sorted(str(c) for c in given if c not in REASON_CODES)
    result = []
    for code in codes:
        entry = given.get(code, {})
        result.append(ReasonAmounts(
            code=code, pairs=_int(entry, "pairs") or 0,
            local_charge=_int(entry, "local_charge") or 0,
            remote_charge=_int(entry, "remote_charge") or 0,
        ))
    return tuple(result)


def disclosure_policy(summary: Mapping[str, Any], rules: Rules) -> tuple[str, list[Check]]:
    """The policy the page follows: summary.json's, which must be the rules' (the policy
    is part of the rules' hash); if they differ, or summary.json names none the rules
    know, the one that discloses less, and a failed check."""
    stated = summary.get("disclosure")
    if stated is None:
        return rules.disclosure, []
    if stated == rules.disclosure:
        return rules.disclosure, []
    known = [p for p in (stated, rules.disclosure) if p in POLICIES]
    least = min(known, key=POLICIES.index) if known else POLICIES[0]
    return least, [Check("disclosure policy (summary.json vs rules)", str(stated),
                         str(rules.disclosure))]


def _disclosure_checks(policy: str, disclosed: Disclosed) -> list[Check]:
    """records.parquet must not hold what the policy does not disclose; if it does, the
    page shows it nowhere and says so."""
    checks = []
    if policy == "aggregate":
        checks.append(Check("disputed rows with reasons (none under the 'aggregate' policy)",
                            0, disclosed.rows_with_reasons))
    if policy != "differences":
        checks.append(Check(f"rows with differences (none under the '{policy}' policy)",
                            0, disclosed.rows_with_differences))
    return checks


def _directions(by_class: pl.DataFrame, disputes: pl.DataFrame | None,
                ends: tuple[str, str] | None) -> tuple[tuple[Direction, ...],
                                                       NetPosition | None]:
    """Amounts per payer -> payee, and the net position between ``ends``."""
    amounts = {c.key: c for c in _group_amounts(by_class, ["payer", "payee"])}
    diffs: dict[tuple[str, str], int | None] = {}
    if disputes is not None:
        per = (disputes.group_by("payer", "payee")
               .agg(pl.col("diff_charge").sum().alias("sum"),
                    pl.col("diff_charge").null_count().alias("nulls")))
        for payer, payee, total, nulls in per.iter_rows():
            diffs[(payer, payee)] = None if nulls else int(total)

    def direction(key: tuple[str, str]) -> Direction:
        found = amounts.get(key)
        zero = {o: 0 for o in OUTCOMES}
        diff = diffs.get(key, 0) if disputes is not None else None
        return Direction(payer=key[0], payee=key[1],
                         charge=dict(found.charge) if found else zero,
                         records=dict(found.records) if found else dict(zero),
                         diff_charge=diff)

    net = None
    first: list[tuple[str, str]] = []
    if ends is not None:
        a, b = ends
        first = [(a, b), (b, a)]
        net = NetPosition(first=a, second=b, forward=direction((a, b)),
                          backward=direction((b, a)))
    rest = sorted((k for k in amounts if k not in first),
                  key=lambda k: (-sum(amounts[k].charge.values()), k))
    listed = [direction(k) for k in first] + [direction(k) for k in rest]
    return tuple(listed), net


def _net_ends(parties: Parties, rules: Rules) -> tuple[str, str] | None:
    """The two operators between whom the net position is shown: the job's operators
    when the rules know both ids, else the rules' operators when there are exactly
    two (this party's first when known)."""
    ids = [op.id for op in rules.operators]
    ours, theirs = parties.this.member_id, parties.other.member_id
    if ours in ids and theirs in ids and ours != theirs:
        return ours, theirs  # type: ignore[return-value]
    if len(ids) == 2:
        a, b = ids
        return (b, a) if ours == b or theirs == a else (a, b)
    return None


class WholeFile(Protocol):
    """The views of a party's records.parquet as a whole (PartyFrames in memory, or
    engine.report.frames.StatusFile streaming from disk)."""

    @property
    def status_rows(self) -> dict[str, int]: ...
    def disputed_pair_ids(self) -> int | None: ...
    def disclosed(self) -> Disclosed: ...
    def invalid_rows(self, limit: int | None = None) -> pl.DataFrame: ...
    def invalid_by_reason(self, first_rows: int) -> pl.DataFrame: ...
    def record_ids(self, rows: pl.Series) -> pl.DataFrame: ...


def _top(frames: list[pl.DataFrame], limit: int | None) -> pl.DataFrame:
    """The worklists of several parts as one: largest charge first, then by row."""
    merged = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    merged = merged.sort(["charge", "row"], descending=[True, False])
    return merged if limit is None else merged.head(max(0, limit))


def _with_record_ids(worklist: pl.DataFrame, whole: WholeFile) -> pl.DataFrame:
    """Record ids from records.parquet where the canonical frames do not carry them."""
    missing = worklist.filter(pl.col("record_id").is_null())["row"]
    if missing.len() == 0:
        return worklist
    ids = whole.record_ids(missing).rename({"record_id": "_id"})
    return (worklist.join(ids, on="row", how="left", maintain_order="left")
            .with_columns(pl.coalesce("record_id", "_id").alias("record_id")).drop("_id"))


def aggregate(summary: Mapping[str, Any], frames: PartyFrames, rules: Rules,
              parties: Parties, *, max_list_rows: int = MAX_LIST_ROWS) -> ReportData:
    """Everything the page shows, computed from the frames (and summary.json for what
    only the protocol knows: the counterparty's side and per-reason totals)."""
    return aggregate_parts(summary, frames, [frames], rules, parties,
                           max_list_rows=max_list_rows)


def aggregate_parts(summary: Mapping[str, Any], whole: WholeFile, parts: Iterable[PartyFrames],
                    rules: Rules, parties: Parties, *,
                    max_list_rows: int = MAX_LIST_ROWS) -> ReportData:
    """:func:`aggregate` over a party's calls given in parts (a job's buckets, one after
    the other: memory bounded by a part and the worklists), with the whole-file views of
    records.parquet from ``whole``.  Every sum is a sum of the parts' sums, and each
    worklist the top of the parts' tops, so the page is the same as from one part."""
    if max_list_rows < 0:
        raise ValueError(f"max_list_rows: expected >= 0, found {max_list_rows}")
    policy, checks = disclosure_policy(summary, rules)
    status_rows = whole.status_rows
    # the disputes in full only where the per-direction sums of differences need them
    differences = policy == "differences"
    dispute_limit = None if differences else max_list_rows
    class_parts, day_parts, dispute_parts, unmatched_parts = [], [], [], []
    n_disputed = n_unmatched = 0
    for frames in parts:
        calls = frames.calls
        class_parts.append(_by_class(calls, rules))
        day_parts.append(_per_day(calls, rules))
        dispute_parts.append(frames.worklist("disputed", dispute_limit))
        unmatched_parts.append(frames.worklist("unmatched", max_list_rows))
        n_disputed += frames.outcome_count("disputed")
        n_unmatched += frames.outcome_count("unmatched")
        del calls, frames
    if not class_parts:
        raise ReportInputError("no records", file="canonical records",
                               expected="at least one part of the calls", found="none")
    by_class = (pl.concat(class_parts).group_by(*_CLASS_KEYS)
                .agg(pl.col("records").sum(), pl.col("charge").sum()))
    # sorted by service code: voice, sms, data, then call type and band by name
    rate_classes = tuple(
        ClassAmounts(key=(SERVICES[c.key[0]], c.key[1], c.key[2]), charge=c.charge,
                     records=c.records)
        for c in _group_amounts(by_class, ["service", "call_type", "time_band"]))
    operator_pairs = _group_amounts(by_class, ["payer", "payee"])

    period = period_days(summary.get("period"), rules.timezone_offset_s)
    days = _days(pl.concat(day_parts), rules, period)

    disputes = label_calls(_with_record_ids(_top(dispute_parts, dispute_limit), whole), rules)
    directions, net = _directions(by_class, disputes if differences else None,
                                  _net_ends(parties, rules))
    unmatched = label_calls(_with_record_ids(_top(unmatched_parts, max_list_rows), whole),
                            rules)
    invalid = whole.invalid_rows(max_list_rows)

    def worklist(spec: ListSpec, frame: pl.DataFrame, total: int) -> WorkList:
        return WorkList(spec=spec.visible(policy),
                        frame=list_frame(spec, frame.head(max_list_rows), policy), total=total)

    invalid_reasons = tuple(
        InvalidReason(reason=r, rows=n, first_rows=tuple(first))
        for r, n, first in whole.invalid_by_reason(FIRST_INVALID_ROWS).iter_rows())

    checks += _checks(summary, status_rows, by_class, whole.disputed_pair_ids())
    checks += _disclosure_checks(policy, whole.disclosed())
    for check in checks:
        if not check.ok:
            log.warning("report: %s: expected %s, found %s", check.what, check.expected,
                        check.found)
    return ReportData(
        policy=policy, status_rows=status_rows, reasons=_reasons(summary),
        rate_classes=rate_classes, operator_pairs=operator_pairs, directions=directions,
        net=net, days=days, period_days=period,
        disputes=worklist(DISPUTES, disputes, n_disputed),
        unmatched=worklist(UNMATCHED, unmatched, n_unmatched),
        invalid=worklist(INVALID, invalid, status_rows["invalid"]),
        invalid_reasons=invalid_reasons, checks=tuple(checks), parties=parties,
    )


def _checks(summary: Mapping[str, Any], status_rows: Mapping[str, int],
            by_class: pl.DataFrame, disputed_pairs: int | None) -> list[Check]:
    """Compare summary.json with the frames wherever both say the same thing."""
    checks = []
    counts = summary.get("counts") or {}
    expected_rows = _int(counts, "records")
    if expected_rows is not None:
        checks.append(Check("input rows", expected_rows, sum(status_rows.values())))
    for status in STATUSES:
        key = "unmatched_local" if status == "unmatched" else status
        value = _int(counts, key)
        if value is not None:
            checks.append(Check(f"rows {status}", value, status_rows[status]))
    charge = dict(by_class.group_by("outcome").agg(pl.col("charge").sum()).iter_rows())
    totals = summary.get("totals") or {}
    for key, outcome in (("agreed_local_charge", "agreed"),
                         ("disputed_local_charge", "disputed"),
                         ("unmatched_local_charge", "unmatched")):
        value = _int(totals, key)
        if value is not None:
            checks.append(Check(f"{outcome} local charge", value, int(charge.get(outcome, 0))))
    value = _int(totals, "local_charge")
    if value is not None:
        checks.append(Check("local charge", value, int(sum(charge.values()))))
    pairs = summary.get("pairs") or {}
    value = _int(pairs, "disputed")
    if value is not None and status_rows["disputed"] and disputed_pairs is not None:
        checks.append(Check("disputed pairs", value, disputed_pairs))
    return checks
