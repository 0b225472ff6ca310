"""Each operator's view of the true events: perturbed rows, in file order.

The perturbations (every one a knob of :class:`~data_gen.config.GenConfig`):

- **missing**: an event is absent from A's or from B's file;
- **skew**: B's start time is A's minus Δ: mostly |Δ| ∈ {1, 2}, a tail up to
  ``skew_tail_max_s``, a small share beyond the tolerance;
- **duration**: one side's duration differs by ±1-2 s (or beyond the tolerance);
- **split**: B writes voice calls longer than ``partial_interval_s`` as parts
  1..k, contiguous (each part starts where the previous one ends) and each rated
  on its own;
- **UTC-offset error**: a side writes the local wall-clock time of a record with
  the wrong offset, so that the time read back is off by whole hours;
- **own rating**: A rates with a table that switches to the new voice peak rate
  ``stale_rate_hours`` late; B bills a share of its voice records with its own
  increment;
- **duplicates**: exact copies with a new record_id, later in the file;
- **invalid rows**: one row of a plain event per invalid kind (docs/records.md)
  that the file format can express; the corruption is applied to the row's values
  here where it is numeric, and to its text when the file is written;
- zero-duration attempts come from the true events (excluded by the rules).

All of it is vectorised and runs block by block (``blocks.py``): each block's rows
are written into arrays allocated once, with its invalid rows placed (blocks are
drawn for them in advance, weighted by size) and its duplicate copies inserted
after their originals.  The only Python loops run over blocks, invalid rows (a
dozen) and the rounds of the isolation fix (normally one).

**Isolation.**  Two different events with the same (service, calling, called)
could be paired with each other by the tolerant passes, which would make the
expected status depend on the matcher's tie-breaking.  After the views are
built, every event that shares its triple with another is checked on both sides;
whenever two events' records (as the matcher will read them, wrong offsets
included) come within :meth:`GenConfig.isolation_gap_s` of each other, the
later event's called number gets new subscriber digits (same range, so the same
operator, tariff and charges) until no such conflict is left.  Every true pair
is then isolated in the sense of docs/matching.md and its status follows from
the guarantees there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from data_gen import blocks
from data_gen.blocks import spans, stream
from data_gen.config import LOCAL_OFFSET_S, GenConfig
from data_gen.errors import DataGenError
from data_gen.events import Events
from data_gen.numbers import with_subscribers
from data_gen.tariff import SMS, VOICE, NumberClasses, ScenarioRules, classify, excluded, rate

log = logging.getLogger(__name__)

#: Names of the per-event perturbation bits (truth.parquet ``perturbations``).
PERTURBATIONS: tuple[str, ...] = (
    "missing_a", "missing_b", "skew", "skew_tail", "skew_beyond",
    "duration_diff_a", "duration_diff_b", "duration_beyond_a", "duration_beyond_b",
    "utc_offset_error_a", "utc_offset_error_b", "split_b", "increment_quirk_b",
    "stale_rate_a", "zero_duration", "repeat_pair", "renumbered", "invalid_a", "invalid_b",
    "duplicate_copy",
)
BIT = {name: np.uint32(1 << i) for i, name in enumerate(PERTURBATIONS)}


@dataclass(frozen=True)
class InvalidKind:
    code: str
    column: str | None
    csv_only: bool
    sms_only: bool = False

    @property
    def reason(self) -> str:
        return self.code if self.column is None else f"{self.code}:{self.column}"


#: Every invalid kind of docs/records.md, the column it is reported on, and whether only a
#: CSV file can express it (Parquet columns are typed, UTF-8 and timezone-aware).
INVALID_KINDS: tuple[InvalidKind, ...] = (
    InvalidKind("missing_value", "calling", False),
    InvalidKind("wrong_type", "duration_s", True),
    InvalidKind("negative_value", "charge", False),
    InvalidKind("malformed_number", "called", False),
    InvalidKind("malformed_timestamp", "start_time", True),
    InvalidKind("missing_utc_offset", "start_time", True),
    InvalidKind("unknown_service", "service", False),
    InvalidKind("oversize_field", "trunk_group", False),
    InvalidKind("undecodable_bytes", "trunk_group", True),
    InvalidKind("duplicate_record_id", "record_id", False),
    InvalidKind("inconsistent_service", "duration_s", False, sms_only=True),
    InvalidKind("no_tariff", None, False),
)
KIND_INDEX = {kind.code: i for i, kind in enumerate(INVALID_KINDS)}
#: How far back a ``no_tariff`` row's start time is moved: three years, before every tariff's
#: start (the rules' tariffs start on 1 January of the year before the period).
NO_TARIFF_SHIFT_S = 1096 * 86_400
#: The duration an ``inconsistent_service`` SMS row carries.
INCONSISTENT_SMS_DURATION = 7


def kinds_for(file_format: str) -> tuple[InvalidKind, ...]:
    return tuple(k for k in INVALID_KINDS if file_format == "csv" or not k.csv_only)


@dataclass
class SideRows:
    """One operator's file, row by row in file order (index i is data row i + 1)."""

    side: str
    event: np.ndarray        # int64
    part_seq: np.ndarray     # int16
    clock: np.ndarray        # int64: the switch's own UTC instant of the start
    start: np.ndarray        # int64: the UTC instant as ingest reads it (wrong offsets applied)
    utc_error: np.ndarray    # bool: written with the wrong offset
    duration: np.ndarray     # int32
    volume: np.ndarray       # int32
    charge: np.ndarray       # int32: the operator's own charge
    copy_of: np.ndarray      # int64: for a duplicate copy the index of its original, else -1
    invalid: np.ndarray      # int8: index into INVALID_KINDS, -1 for a valid row
    id_from: dict[int, int]  # duplicate_record_id rows: index of the row whose record_id they reuse

    def __len__(self) -> int:
        return int(self.event.shape[0])


@dataclass
class SideEvents:
    """One side's canonical record of each event (docs/records.md "records" frame)."""

    present: np.ndarray      # bool: the side has rows of the event
    first_row: np.ndarray    # int64: index of the canonical record's first row, -1 if absent
    parts: np.ndarray        # int16: rows merged into it (0 if absent)
    start: np.ndarray        # int64 canonical start (UTC, as read)
    duration: np.ndarray     # int32
    charge: np.ndarray       # int32 own charge, summed over parts
    rated: np.ndarray        # int32 rated_charge under the agreed rules
    invalid: np.ndarray      # bool: its row is invalid
    excluded: np.ndarray     # bool: excluded by a rule (and not invalid)
    exclusion: np.ndarray    # int8 index of the exclusion, -1
    considered: np.ndarray   # bool: present, valid, not excluded: enters matching


@dataclass
class Views:
    a: SideRows
    b: SideRows
    ea: SideEvents
    eb: SideEvents
    flags: np.ndarray        # uint32 per event, bits of PERTURBATIONS
    invalid_placed: dict[str, dict[str, int]]
    renumbered: int


@dataclass(frozen=True)
class _Setting:
    config: GenConfig
    rules: ScenarioRules
    rules_a: ScenarioRules        # A's own table: the new peak rate stale_rate_hours late
    rules_b_quirk: ScenarioRules  # B's own table for its quirky voice rows
    classes: NumberClasses
    shift: int                    # read-back start minus true start of a wrong-offset row
    change: int
    stale_until: int


@dataclass
class _Draws:
    """The perturbations of one block of events."""

    missing_a: np.ndarray
    missing_b: np.ndarray
    skew: np.ndarray       # int64: A's start minus B's start
    split: np.ndarray
    dur_a: np.ndarray      # int64
    dur_b: np.ndarray
    utc_a: np.ndarray
    utc_b: np.ndarray
    quirk_b: np.ndarray
    flags: np.ndarray      # uint32


_ROW_DTYPES = {"event": np.int64, "part_seq": np.int16, "clock": np.int64, "start": np.int64,
               "utc_error": bool, "duration": np.int32, "volume": np.int32, "charge": np.int32,
               "copy_of": np.int64, "invalid": np.int8}


@dataclass
class _Canonical:
    """Per present event of one side (event order): its canonical record's values."""

    event: np.ndarray
    first_pre: np.ndarray  # index of its first row among the block's rows (before duplicates)
    start: np.ndarray
    duration: np.ndarray
    charge: np.ndarray
    rated: np.ndarray
    parts: np.ndarray


def build_views(config: GenConfig, events: Events, rules: ScenarioRules,
                file_format: str) -> Views:
    n = len(events)
    change = config.rate_change_epoch()
    stale_until = change + config.stale_rate_hours * 3600
    setting = _Setting(
        config=config, rules=rules, rules_a=rules.with_rate_change_at(stale_until, change),
        rules_b_quirk=rules.with_voice_increment(config.increment_quirk_s),
        classes=classify(rules, events.calling, events.called),
        shift=LOCAL_OFFSET_S - config.wrong_utc_offset_s(), change=change,
        stale_until=stale_until,
    )
    kinds = kinds_for(file_format)
    side_a = _SideBuilder(config, rules, events, "A", kinds)
    side_b = _SideBuilder(config, rules, events, "B", kinds)
    flags = np.zeros(n, dtype=np.uint32)
    for block, lo, hi in spans(n):
        draws = _draw(config, events, block, lo, hi)
        side_a.add_block(block, *_rows_a(setting, events, lo, draws))
        side_b.add_block(block, *_rows_b(setting, events, lo, draws))
        flags[lo:hi] = draws.flags
    final_a, ea = side_a.finish()
    final_b, eb = side_b.finish()
    _flag(flags, final_a.event[final_a.invalid >= 0], "invalid_a")
    _flag(flags, final_b.event[final_b.invalid >= 0], "invalid_b")
    renumbered = _isolate(config, events, ea, eb, flags)
    return Views(a=final_a, b=final_b, ea=ea, eb=eb, flags=flags,
                 invalid_placed={"A": side_a.placed, "B": side_b.placed}, renumbered=renumbered)


class _SideBuilder:
    """Collects one side's rows block by block into arrays allocated once: places the
    block's invalid rows, inserts its duplicate copies later in the file, and records
    each event's canonical record."""

    def __init__(self, config: GenConfig, rules: ScenarioRules, events: Events, side: str,
                 kinds: tuple[InvalidKind, ...]) -> None:
        n = len(events)
        self.config, self.rules, self.events, self.side = config, rules, events, side
        self.capacity = n + n // 32 + 1024
        self.size = 0
        self.rows = {name: np.empty(self.capacity, dtype=dtype)
                     for name, dtype in _ROW_DTYPES.items()}
        self.id_from: dict[int, int] = {}
        self.placed = {kind.code: 0 for kind in kinds}
        self.plan = _plan_invalid(config, kinds, n, side)
        self.canonical = SideEvents(
            present=np.zeros(n, dtype=bool), first_row=np.full(n, -1, dtype=np.int64),
            parts=np.zeros(n, dtype=np.int16), start=np.zeros(n, dtype=np.int64),
            duration=np.zeros(n, dtype=np.int32), charge=np.zeros(n, dtype=np.int32),
            rated=np.zeros(n, dtype=np.int32), invalid=np.zeros(n, dtype=bool),
            excluded=np.zeros(n, dtype=bool), exclusion=np.full(n, -1, dtype=np.int8),
            considered=np.zeros(n, dtype=bool),
        )

    def add_block(self, block: int, rows: dict[str, np.ndarray], canonical: _Canonical) -> None:
        m = rows["event"].shape[0]
        invalid = np.full(m, -1, dtype=np.int8)
        self._place_invalid(block, rows, invalid)

        # duplicates: copies of valid rows, each after its original within the block
        rng = stream(self.config.seed, f"duplicate_{self.side}", block)
        source = np.flatnonzero((invalid < 0) & (rng.random(m) < self.config.duplicate_share))
        after = source + (rng.random(source.shape[0]) * (m - source)).astype(np.int64)
        order = np.argsort(after, kind="stable")
        source, after = source[order], after[order]
        d = source.shape[0]
        pos = np.arange(m, dtype=np.int64)
        if d:
            # each row moves down by the number of copies placed before it
            pos[1:] += np.cumsum(np.bincount(after, minlength=m)[:-1])
            pos_copy = after + 1 + np.arange(d, dtype=np.int64)
            take = np.empty(m + d, dtype=np.int64)   # block row i shows pre-order row take[i]
            take[pos] = np.arange(m, dtype=np.int64)
            take[pos_copy] = source
        total = m + d
        self._reserve(self.size + total)
        o = self.size
        for name, values in rows.items():
            self.rows[name][o:o + total] = values[take] if d else values
        copy_of = self.rows["copy_of"][o:o + total]
        copy_of[:] = -1
        block_invalid = self.rows["invalid"][o:o + total]
        block_invalid[:] = invalid[take] if d else invalid
        if d:
            copy_of[pos_copy] = o + pos[source]
            block_invalid[pos_copy] = -1
        self.size += total
        # duplicate_record_id rows reuse the record_id of the nearest earlier valid row (so
        # that "appeared in an earlier row" holds however an ingest tracks earlier ids)
        invalid_rows = self.rows["invalid"]
        for i in np.flatnonzero(block_invalid == KIND_INDEX["duplicate_record_id"]).tolist():
            earlier = o + i - 1
            while invalid_rows[earlier] >= 0:
                earlier -= 1
            self.id_from[o + i] = earlier

        # the canonical records of the block's events
        out = self.canonical
        idx = canonical.event
        out.present[idx] = True
        out.first_row[idx] = o + pos[canonical.first_pre]
        out.parts[idx] = canonical.parts
        out.start[idx] = canonical.start
        out.duration[idx] = canonical.duration
        out.charge[idx] = canonical.charge
        out.rated[idx] = canonical.rated
        out.invalid[rows["event"][invalid >= 0]] = True
        is_invalid = out.invalid[idx]
        is_excluded, which = excluded(self.rules, self.events.service[idx], canonical.duration,
                                      self.events.volume[idx], canonical.charge)
        is_excluded &= ~is_invalid
        out.excluded[idx] = is_excluded
        out.exclusion[idx] = np.where(is_excluded, which, -1)
        out.considered[idx] = ~is_invalid & ~is_excluded

    def finish(self) -> tuple[SideRows, SideEvents]:
        r = {name: values[:self.size] for name, values in self.rows.items()}
        rows = SideRows(side=self.side, event=r["event"], part_seq=r["part_seq"],
                        clock=r["clock"], start=r["start"], utc_error=r["utc_error"],
                        duration=r["duration"], volume=r["volume"], charge=r["charge"],
                        copy_of=r["copy_of"], invalid=r["invalid"], id_from=self.id_from)
        return rows, self.canonical

    def _reserve(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        self.capacity = max(needed, self.capacity + self.capacity // 4)
        for name, values in self.rows.items():
            grown = np.empty(self.capacity, dtype=values.dtype)
            grown[:self.size] = values[:self.size]
            self.rows[name] = grown

    def _place_invalid(self, block: int, rows: dict[str, np.ndarray], invalid: np.ndarray) -> None:
        """Turn the rows of plain events planned for this block into invalid rows."""
        kinds = self.plan.get(block)
        if not kinds:
            return
        rng = stream(self.config.seed, f"invalid_{self.side}", block)
        service = self.events.service[rows["event"]]
        plain = (rows["part_seq"] == 0) & ~((service == VOICE) & (rows["duration"] == 0))
        # SMS-only kinds first: they draw from the smaller pool
        for kind in sorted(kinds, key=lambda k: not k.sms_only):
            pool = plain & (invalid < 0)
            if kind.sms_only:
                pool &= service == SMS
            if kind.code == "duplicate_record_id" and self.size == 0:
                # it needs an earlier valid row to copy the id of
                pool[:np.argmax(invalid < 0) + 1] = False
            candidates = np.flatnonzero(pool)
            if candidates.size == 0:
                log.warning("side %s: no row left to make %s in block %d", self.side,
                            kind.code, block)
                continue
            chosen = int(candidates[rng.integers(0, candidates.size)])
            invalid[chosen] = KIND_INDEX[kind.code]
            self.placed[kind.code] += 1
            if kind.code == "no_tariff":
                rows["clock"][chosen] -= NO_TARIFF_SHIFT_S
                rows["start"][chosen] -= NO_TARIFF_SHIFT_S
            elif kind.code == "negative_value":
                rows["charge"][chosen] = -rows["charge"][chosen] - 1
            elif kind.code == "inconsistent_service":
                rows["duration"][chosen] = INCONSISTENT_SMS_DURATION


def _plan_invalid(config: GenConfig, kinds: tuple[InvalidKind, ...], n: int,
                  side: str) -> dict[int, list[InvalidKind]]:
    """The block of each invalid row to place (blocks weighted by their size)."""
    rng = stream(config.seed, f"invalid_plan_{side}")
    plan: dict[int, list[InvalidKind]] = {}
    for kind in kinds:
        for event in rng.integers(0, n, size=config.invalid_per_kind).tolist():
            plan.setdefault(event // blocks.BLOCK, []).append(kind)
    return plan


# ---------------------------------------------------------------------------
# helpers


def _flag(flags: np.ndarray, where: np.ndarray, name: str) -> None:
    """Set bit ``name`` on the events selected by a boolean mask or an index array."""
    if where.dtype == bool:
        np.bitwise_or(flags, BIT[name], out=flags, where=where)
    else:
        flags[where] |= BIT[name]


def _draw(config: GenConfig, events: Events, block: int, lo: int, hi: int) -> _Draws:
    """Every perturbation of events lo..hi (each from its own stream)."""
    m = hi - lo
    seed = config.seed
    service = events.service[lo:hi]
    duration = events.duration[lo:hi].astype(np.int64)
    flags = np.zeros(m, dtype=np.uint32)
    _flag(flags, events.repeat[lo:hi], "repeat_pair")
    _flag(flags, (service == VOICE) & (duration == 0), "zero_duration")

    # which side has the event
    u = stream(seed, "missing", block).random(m)
    missing_a = u < config.missing_share_a
    missing_b = ~missing_a & (u < config.missing_share_a + config.missing_share_b)
    _flag(flags, missing_a, "missing_a")
    _flag(flags, missing_b, "missing_b")

    # start-time skew: B's clock reads A's minus skew (magnitudes drawn for skewed events only)
    rng = stream(seed, "skew", block)
    u = rng.random(m)
    beyond = u < config.skew_beyond_share
    skewed = ~beyond & (u < config.skew_beyond_share + config.skew_share)
    skew = np.zeros(m, dtype=np.int64)
    at = np.flatnonzero(skewed)
    in_tail = rng.random(at.shape[0]) < config.skew_tail_share
    skew[at] = np.where(in_tail, rng.integers(3, config.skew_tail_max_s + 1, at.shape[0]),
                        rng.integers(1, 3, at.shape[0]))
    tail = np.zeros(m, dtype=bool)
    tail[at[in_tail]] = True
    at = np.flatnonzero(beyond)
    skew[at] = rng.integers(config.time_tolerance_s + 1, config.skew_beyond_max_s + 1, at.shape[0])
    at = np.flatnonzero(skew)
    skew[at] *= np.where(rng.random(at.shape[0]) < 0.5, -1, 1)
    _flag(flags, skewed, "skew")
    _flag(flags, tail, "skew_tail")
    _flag(flags, beyond, "skew_beyond")

    # partial records on B
    split = (service == VOICE) & (duration > config.partial_interval_s)
    at = np.flatnonzero(split)
    split[at] = stream(seed, "split", block).random(at.shape[0]) < config.split_share
    _flag(flags, split, "split_b")

    # duration differences on one side (drawn for the affected events only)
    rng = stream(seed, "duration_diff", block)
    eligible = (service != SMS) & (duration > 0)
    u = rng.random(m)
    d_beyond = eligible & (u < config.duration_beyond_share)
    d_small = eligible & ~d_beyond & (u < config.duration_beyond_share + config.duration_diff_share)
    low = config.duration_tolerance_s + 1
    diff = np.zeros(m, dtype=np.int64)
    at = np.flatnonzero(d_small)
    diff[at] = rng.integers(1, 3, at.shape[0])
    at = np.flatnonzero(d_beyond)
    diff[at] = rng.integers(low, max(60, low) + 1, at.shape[0])
    at = np.flatnonzero(diff)
    diff[at] *= np.where(rng.random(at.shape[0]) < 0.5, -1, 1)
    diff[at] = np.where(duration[at] + diff[at] < 1, np.abs(diff[at]), diff[at])
    on_b = np.zeros(m, dtype=bool)
    on_b[at] = (rng.random(at.shape[0]) < 0.5) & ~split[at]  # split calls keep B's duration
    _flag(flags, d_small & ~on_b, "duration_diff_a")
    _flag(flags, d_small & on_b, "duration_diff_b")
    _flag(flags, d_beyond & ~on_b, "duration_beyond_a")
    _flag(flags, d_beyond & on_b, "duration_beyond_b")

    # wrong UTC offsets and B's billing increment
    rng = stream(seed, "utc_offset", block)
    utc_a = rng.random(m) < config.utc_offset_error_share
    utc_b = rng.random(m) < config.utc_offset_error_share
    _flag(flags, utc_a, "utc_offset_error_a")
    _flag(flags, utc_b, "utc_offset_error_b")
    quirk_b = service == VOICE
    at = np.flatnonzero(quirk_b)
    quirk_b[at] = stream(seed, "increment_quirk", block).random(at.shape[0]) < \
        config.increment_quirk_share
    _flag(flags, quirk_b, "increment_quirk_b")
    dur_a, dur_b = duration.copy(), duration
    dur_a[~on_b] += diff[~on_b]
    dur_b[on_b] += diff[on_b]
    return _Draws(missing_a=missing_a, missing_b=missing_b, skew=skew, split=split,
                  dur_a=dur_a, dur_b=dur_b, utc_a=utc_a, utc_b=utc_b, quirk_b=quirk_b,
                  flags=flags)


def _rows_a(setting: _Setting, events: Events, lo: int,
            draws: _Draws) -> tuple[dict[str, np.ndarray], _Canonical]:
    """A's rows of one block: one per present event.  Rated once under the agreed rules
    at A's clock; A's own charge differs from that only in its stale window, the
    canonical rated_charge only where the offset is wrong."""
    local = np.flatnonzero(~draws.missing_a)
    event = lo + local
    clock = events.start[event]
    service = events.service[event]
    duration = draws.dur_a[local]
    volume = events.volume[event].astype(np.int64)
    utc = draws.utc_a[local]
    start = clock.copy()
    wrong = np.flatnonzero(utc)
    start[wrong] += setting.shift
    rules, classes = setting.rules, setting.classes
    charge = _rate_checked(rules, service, classes, event, clock, duration, volume)
    rated = charge.copy()
    rated[wrong] = _rate_checked(rules, service[wrong], classes, event[wrong], start[wrong],
                                 duration[wrong], volume[wrong])
    stale = np.flatnonzero((service == VOICE) & (clock >= setting.change)
                           & (clock < setting.stale_until))
    charge[stale] = _rate_checked(setting.rules_a, service[stale], classes, event[stale],
                                  clock[stale], duration[stale], volume[stale])
    draws.flags[local[stale]] |= BIT["stale_rate_a"]
    rows = {"event": event, "part_seq": np.zeros(event.shape[0], dtype=np.int16),
            "clock": clock, "start": start, "utc_error": utc, "duration": duration,
            "volume": volume, "charge": charge}
    canonical = _Canonical(event=event, first_pre=np.arange(event.shape[0]),
                           start=start.copy(), duration=duration, charge=charge.copy(),
                           rated=rated, parts=np.ones(event.shape[0], dtype=np.int16))
    return rows, canonical


def _rows_b(setting: _Setting, events: Events, lo: int,
            draws: _Draws) -> tuple[dict[str, np.ndarray], _Canonical]:
    """B's rows of one block: split calls expand into parts 1..k, each rated on its own."""
    interval = setting.config.partial_interval_s
    local = np.flatnonzero(~draws.missing_b)
    event = lo + local
    split_at = np.flatnonzero(draws.split[local])   # positions in `event` of split calls
    total = draws.dur_b[local]
    k = np.ones(event.shape[0], dtype=np.int64)
    k[split_at] = -(-total[split_at] // interval)
    first = np.cumsum(k) - k                        # index of each event's first row
    row_local = np.repeat(local, k) if split_at.size else local
    row_event = lo + row_local
    canonical_start = events.start[event] - draws.skew[local]
    clock = np.repeat(canonical_start, k) if split_at.size else canonical_start.copy()
    duration = np.repeat(total, k) if split_at.size else total.copy()
    part_seq = np.zeros(row_event.shape[0], dtype=np.int16)
    if split_at.size:
        k_split = k[split_at]
        within = (np.arange(int(k_split.sum()), dtype=np.int64)
                  - np.repeat(np.cumsum(k_split) - k_split, k_split))
        part_rows = np.repeat(first[split_at], k_split) + within
        clock[part_rows] += within * interval
        duration[part_rows] = np.minimum(np.repeat(total[split_at], k_split) - within * interval,
                                         interval)
        part_seq[part_rows] = within + 1
    utc = draws.utc_b[row_local]
    start = clock.copy()
    start[np.flatnonzero(utc)] += setting.shift
    canonical_start[np.flatnonzero(draws.utc_b[local])] += setting.shift
    service = events.service[row_event]
    volume = events.volume[row_event].astype(np.int64)
    rules, classes = setting.rules, setting.classes
    charge = _rate_checked(rules, service, classes, row_event, clock, duration, volume)
    # the canonical record's rated_charge: its single row's agreed charge, except for merged
    # calls, quirky rows and wrong offsets, which are rated again on their canonical values
    rated = charge[first]
    redo = np.flatnonzero(draws.split[local] | draws.quirk_b[local] | draws.utc_b[local])
    rated[redo] = _rate_checked(rules, events.service[event[redo]], classes, event[redo],
                                canonical_start[redo], total[redo],
                                events.volume[event[redo]].astype(np.int64))
    quirky = np.flatnonzero(draws.quirk_b[row_local])
    charge[quirky] = _rate_checked(setting.rules_b_quirk, service[quirky], classes,
                                   row_event[quirky], clock[quirky], duration[quirky],
                                   volume[quirky])
    canonical_charge = np.add.reduceat(charge, first) if split_at.size else charge.copy()
    rows = {"event": row_event, "part_seq": part_seq, "clock": clock, "start": start,
            "utc_error": utc, "duration": duration, "volume": volume, "charge": charge}
    canonical = _Canonical(event=event, first_pre=first, start=canonical_start,
                           duration=total, charge=canonical_charge, rated=rated,
                           parts=k.astype(np.int16))
    return rows, canonical


def _rate_checked(rules: ScenarioRules, service: np.ndarray, classes: NumberClasses,
                  event: np.ndarray, start: np.ndarray, duration: np.ndarray,
                  volume: np.ndarray) -> np.ndarray:
    """Charges under ``rules``; every generated (valid) record must have a tariff."""
    rated = rate(rules, service, classes, event, start, duration, volume)
    if np.any(rated.tariff < 0):
        raise DataGenError("internal error: the generated rules do not rate every valid record")
    return rated.charge


def _triple_keys(events: Events, which: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit hash of (service, calling, called) of every event (or of ``which``).
    Equal triples have equal keys; two different triples sharing a key would only be
    checked together (harmless)."""
    index = np.arange(len(events)) if which is None else which
    keys = np.empty(index.shape[0], dtype=np.uint64)
    for _, lo, hi in spans(index.shape[0]):
        part = index[lo:hi] if which is not None else slice(lo, hi)
        key = events.calling[part].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        key ^= events.called[part].astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        key ^= events.service[part].astype(np.uint64) * np.uint64(0x165667B19E3779F9)
        key ^= key >> np.uint64(31)
        keys[lo:hi] = key
    return keys


def _isolate(config: GenConfig, events: Events, ea: SideEvents, eb: SideEvents,
             flags: np.ndarray, max_rounds: int = 20) -> int:
    """Renumber events until no two events of one triple come within the gap (module doc).

    Called numbers are unique per event, so only repeat events and their sources can
    share a triple; renumbered events get fresh unique numbers, so one round normally
    settles it and the next round only confirms."""
    gap = config.isolation_gap_s()
    keys = _triple_keys(events)
    suspects = keys[events.repeat]
    total = 0
    for _ in range(max_rounds):
        if suspects.size == 0:
            return total
        shared = np.flatnonzero(pl.Series(keys).is_in(pl.Series(suspects).implode()).to_numpy())
        parts = []
        for side in (ea, eb):
            keep = shared[side.present[shared] & ~side.invalid[shared]]
            parts.append((keep, side.start[keep], side.start[keep] + side.duration[keep]))
        ev = np.concatenate([p[0] for p in parts])
        start = np.concatenate([p[1] for p in parts])
        end = np.concatenate([p[2] for p in parts])
        key = keys[ev]
        order = np.lexsort((start, key))
        ev, start, end, key = ev[order], start[order], end[order], key[order]
        new_group = np.ones(ev.shape[0], dtype=bool)
        new_group[1:] = key[1:] != key[:-1]
        group = np.cumsum(new_group) - 1
        base = int(start.min()) if start.size else 0
        reach = np.maximum.accumulate((group << 34) + (end - base))  # running max end per group
        new_cluster = new_group.copy()
        new_cluster[1:] |= start[1:] - base >= (reach[:-1] - (group[1:] << 34)) + gap
        cluster = np.cumsum(new_cluster) - 1
        # clusters holding more than one event: renumber all but their first event
        first_event = np.minimum.reduceat(ev, np.flatnonzero(new_cluster)) if ev.size else ev
        victims = np.unique(ev[ev != first_event[cluster]])
        if victims.size == 0:
            return total
        events.called[victims] = with_subscribers(events.called[victims],
                                                  events.subscribers.take(victims.size))
        keys[victims] = _triple_keys(events, victims)
        suspects = keys[victims]
        flags[victims] |= BIT["renumbered"]
        total += int(victims.size)
    raise DataGenError(f"could not isolate the events of one triple after {max_rounds} rounds")
