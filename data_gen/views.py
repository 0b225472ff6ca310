"""Each operator's view of the true events: perturbed rows, in file order, block by block.

The perturbations (every one a knob of :class:`~data_gen.config.GenConfig`):

- **missing**: an event is absent from A's or from B's file;
- **skew**: B's start time is A's minus Δ: mostly |Δ| ∈ {1, 2}, a tail up to
  ``skew_tail_max_s``, a small share beyond the tolerance;
- **duration**: one side's duration differs by ±1-2 s (or beyond the tolerance);
- **split**: B writes voice calls longer than ``partial_interval_s`` as parts
  1..k, contiguous (each part starts where the previous one ends) and each rated
  on its own;
- **UTC-offset error**: a side writes the local wall-clock time of a record with
  the wrong offset, so that the time read back is off by whole hours (never on an
  event outside the period);
- **own rating**: A rates with a table that switches to the new voice peak rate
  ``stale_rate_hours`` late; B bills a share of its voice records with its own
  increment;
- **duplicates**: exact copies with a new record_id, up to :data:`DUPLICATE_REACH`
  rows later in the file;
- **invalid rows**: rows of plain events turned invalid, one kind at a time
  (docs/records.md), for every kind the file format can express; the corruption is
  applied to the row's values here where it is numeric, and to its text when the
  file is written.  A side with ``yuan_charges`` has every row invalid instead;
- zero-duration attempts and out-of-period calls come from the true events; every
  record whose start, as read, falls outside the period is excluded
  (``out_of_period``), whether the call happened outside it or a skew or a wrong
  offset moved its record out.

All of it is vectorised over a block.  What crosses blocks is carried by
:class:`SideStream`: the invalid rows still to place (each planned at an event and
placed on the first suitable row from there on), the duplicate copies whose place
is in a later block, and the row counters, so that a side's file is the same
whatever the block size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import numpy as np

from data_gen import blocks
from data_gen.blocks import chunks, stream
from data_gen.config import LOCAL_OFFSET_S, GenConfig
from data_gen.errors import DataGenError
from data_gen.events import Events
from data_gen.tariff import (
    SMS,
    VOICE,
    NumberClasses,
    ScenarioRules,
    classify,
    excluded,
    rate,
)

log = logging.getLogger(__name__)

#: Names of the per-event perturbation bits (truth.parquet ``perturbations``).
PERTURBATIONS: tuple[str, ...] = (
    "missing_a", "missing_b", "skew", "skew_tail", "skew_beyond",
    "duration_diff_a", "duration_diff_b", "duration_beyond_a", "duration_beyond_b",
    "utc_offset_error_a", "utc_offset_error_b", "split_b", "increment_quirk_b",
    "stale_rate_a", "zero_duration", "repeat_pair", "renumbered", "invalid_a", "invalid_b",
    "duplicate_copy", "out_of_period",
)
BIT = {name: np.uint32(1 << i) for i, name in enumerate(PERTURBATIONS)}

#: A duplicate copy is written after its original, at most this many rows of the
#: original's side later (counting the side's rows before copies).
DUPLICATE_REACH = 4096
#: Where a copy emitted after the last row of a side is reported (truth order).
LAST_CHUNK = np.iinfo(np.int64).max


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
#: The invalid kind of every row of a ``yuan_charges`` side (not placed: the whole file).
YUAN_CHARGE = InvalidKind("wrong_type", "charge", False)
YUAN_INDEX = len(INVALID_KINDS)
#: The invalid kinds as indexed in ``invalid`` arrays (the placed ones, then YUAN_CHARGE).
ALL_INVALID: tuple[InvalidKind, ...] = (*INVALID_KINDS, YUAN_CHARGE)
#: The duration an ``inconsistent_service`` SMS row carries.
INCONSISTENT_SMS_DURATION = 7


def kinds_for(file_format: str) -> tuple[InvalidKind, ...]:
    return tuple(k for k in INVALID_KINDS if file_format == "csv" or not k.csv_only)


#: The columns of a side's rows, in file order within a block (and their dtypes).
ROW_DTYPES: dict[str, type] = {
    "event": np.int64, "part_seq": np.int16, "clock": np.int64, "start": np.int64,
    "utc_error": bool, "duration": np.int32, "volume": np.int32, "charge": np.int32,
    "service": np.uint8, "calling": np.int64, "called": np.int64, "trunk": np.uint8,
    "invalid": np.int8,
}


@dataclass
class SideEvents:
    """One side's canonical record of each event of a block (docs/records.md "records").

    ``first_row`` is a row index among the block's rows before duplicate copies until
    :meth:`SideStream.emit`, then the record's first row in the whole file."""

    present: np.ndarray        # bool: the side has rows of the event
    first_row: np.ndarray      # int64, -1 if absent
    parts: np.ndarray          # int16: rows merged into it (0 if absent)
    start: np.ndarray          # int64 canonical start (UTC, as read)
    duration: np.ndarray       # int32
    charge: np.ndarray         # int32 own charge, summed over parts
    rated: np.ndarray          # int32 rated_charge under the agreed rules
    invalid: np.ndarray        # bool: its row is invalid
    excluded: np.ndarray       # bool: excluded (out of period or by a rule), not invalid
    exclusion: np.ndarray      # int8: -1, index of a rules exclusion, or OUT_OF_PERIOD
    considered: np.ndarray     # bool: present, valid, not excluded: enters matching


@dataclass(frozen=True)
class Setting:
    """What rating the rows of every block needs, made once per scenario."""

    config: GenConfig
    rules: ScenarioRules
    rules_a: ScenarioRules        # A's own table: the new peak rate stale_rate_hours late
    rules_b_quirk: ScenarioRules  # B's own table for its quirky voice rows
    shift: int                    # read-back start minus true start of a wrong-offset row
    change: int
    stale_until: int
    period: tuple[int, int]

    @classmethod
    def make(cls, config: GenConfig, rules: ScenarioRules) -> Setting:
        change = config.rate_change_epoch()
        stale_until = change + config.stale_rate_hours * 3600
        return cls(config=config, rules=rules,
                   rules_a=rules.with_rate_change_at(stale_until, change),
                   rules_b_quirk=rules.with_voice_increment(config.increment_quirk_s),
                   shift=LOCAL_OFFSET_S - config.wrong_utc_offset_s(), change=change,
                   stale_until=stale_until, period=config.period_bounds())

    @property
    def out_of_period(self) -> int:
        """The ``exclusion`` index of an out-of-period record (after the rules' own)."""
        return len(self.rules.exclusions)


@dataclass
class Draws:
    """The perturbations of one block of events (per event)."""

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


def draw(config: GenConfig, events: Events) -> Draws:
    """Every perturbation of a block's events, chunk by chunk."""
    parts = [_draw_chunk(config, events, chunk, slice(clo - events.lo, chi - events.lo))
             for chunk, clo, chi in chunks(events.lo, events.lo + len(events))]
    return Draws(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                    for f in fields(Draws)})


def _flag(flags: np.ndarray, where: np.ndarray, name: str) -> None:
    """Set bit ``name`` on the events selected by a boolean mask or an index array."""
    if where.dtype == bool:
        np.bitwise_or(flags, BIT[name], out=flags, where=where)
    else:
        flags[where] |= BIT[name]


def _draw_chunk(config: GenConfig, events: Events, chunk: int, part: slice) -> Draws:
    """Every perturbation of one chunk's events (each from its own stream)."""
    seed = config.seed
    service = events.service[part]
    duration = events.duration[part].astype(np.int64)
    m = service.shape[0]
    inside = events.outside[part] == 0
    flags = np.zeros(m, dtype=np.uint32)
    _flag(flags, events.repeat[part], "repeat_pair")
    _flag(flags, (service == VOICE) & (duration == 0), "zero_duration")
    _flag(flags, ~inside, "out_of_period")

    # which side has the event
    u = stream(seed, "missing", chunk).random(m)
    missing_a = u < config.missing_share_a
    missing_b = ~missing_a & (u < config.missing_share_a + config.missing_share_b)
    _flag(flags, missing_a, "missing_a")
    _flag(flags, missing_b, "missing_b")

    # start-time skew: B's clock reads A's minus skew (magnitudes drawn for skewed events only)
    rng = stream(seed, "skew", chunk)
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
    split[at] = stream(seed, "split", chunk).random(at.shape[0]) < config.split_share
    _flag(flags, split, "split_b")

    # duration differences on one side (drawn for the affected events only)
    rng = stream(seed, "duration_diff", chunk)
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

    # wrong UTC offsets (never outside the period: no year 10000) and B's billing increment
    rng = stream(seed, "utc_offset", chunk)
    utc_a = (rng.random(m) < config.utc_offset_error_share) & inside
    utc_b = (rng.random(m) < config.utc_offset_error_share) & inside
    _flag(flags, utc_a, "utc_offset_error_a")
    _flag(flags, utc_b, "utc_offset_error_b")
    quirk_b = service == VOICE
    at = np.flatnonzero(quirk_b)
    quirk_b[at] = stream(seed, "increment_quirk", chunk).random(at.shape[0]) < \
        config.increment_quirk_share
    _flag(flags, quirk_b, "increment_quirk_b")
    dur_a, dur_b = duration.copy(), duration
    dur_a[~on_b] += diff[~on_b]
    dur_b[on_b] += diff[on_b]
    return Draws(missing_a=missing_a, missing_b=missing_b, skew=skew, split=split,
                 dur_a=dur_a, dur_b=dur_b, utc_a=utc_a, utc_b=utc_b, quirk_b=quirk_b,
                 flags=flags)


# ---------------------------------------------------------------------------
# each side's rows of a block (before invalid rows and duplicates)


def _side_events(m: int) -> SideEvents:
    return SideEvents(
        present=np.zeros(m, dtype=bool), first_row=np.full(m, -1, dtype=np.int64),
        parts=np.zeros(m, dtype=np.int16), start=np.zeros(m, dtype=np.int64),
        duration=np.zeros(m, dtype=np.int32), charge=np.zeros(m, dtype=np.int32),
        rated=np.zeros(m, dtype=np.int32), invalid=np.zeros(m, dtype=bool),
        excluded=np.zeros(m, dtype=bool), exclusion=np.full(m, -1, dtype=np.int8),
        considered=np.zeros(m, dtype=bool))


def _with_event_columns(rows: dict[str, np.ndarray], events: Events,
                        local: np.ndarray) -> dict[str, np.ndarray]:
    rows["service"] = events.service[local]
    rows["calling"] = events.calling[local]
    rows["called"] = events.called[local]
    rows["trunk"] = events.trunk[local]
    rows["invalid"] = np.full(local.shape[0], -1, dtype=np.int8)
    return rows


def rows_a(setting: Setting, events: Events, classes: NumberClasses,
           draws: Draws) -> tuple[dict[str, np.ndarray], SideEvents]:
    """A's rows of one block: one per present event.  Rated once under the agreed rules
    at A's clock; A's own charge differs from that only in its stale window, the
    canonical rated_charge only where the offset is wrong."""
    local = np.flatnonzero(~draws.missing_a)
    clock = events.start[local]
    service = events.service[local]
    duration = draws.dur_a[local]
    volume = events.volume[local].astype(np.int64)
    utc = draws.utc_a[local]
    start = clock.copy()
    wrong = np.flatnonzero(utc)
    start[wrong] += setting.shift
    rules = setting.rules
    charge = _rate_checked(rules, service, classes, local, clock, duration, volume)
    rated = charge.copy()
    rated[wrong] = _rate_checked(rules, service[wrong], classes, local[wrong], start[wrong],
                                 duration[wrong], volume[wrong])
    stale = np.flatnonzero((service == VOICE) & (clock >= setting.change)
                           & (clock < setting.stale_until))
    charge[stale] = _rate_checked(setting.rules_a, service[stale], classes, local[stale],
                                  clock[stale], duration[stale], volume[stale])
    draws.flags[local[stale]] |= BIT["stale_rate_a"]
    rows = _with_event_columns(
        {"event": events.lo + local, "part_seq": np.zeros(local.shape[0], dtype=np.int16),
         "clock": clock, "start": start, "utc_error": utc, "duration": duration,
         "volume": volume, "charge": charge}, events, local)
    canonical = _side_events(len(events))
    canonical.present[local] = True
    canonical.first_row[local] = np.arange(local.shape[0])
    canonical.parts[local] = 1
    canonical.start[local] = start
    canonical.duration[local] = duration
    canonical.charge[local] = charge
    canonical.rated[local] = rated
    return rows, canonical


def rows_b(setting: Setting, events: Events, classes: NumberClasses,
           draws: Draws) -> tuple[dict[str, np.ndarray], SideEvents]:
    """B's rows of one block: split calls expand into parts 1..k, each rated on its own."""
    interval = setting.config.partial_interval_s
    local = np.flatnonzero(~draws.missing_b)
    split_at = np.flatnonzero(draws.split[local])   # positions in `local` of split calls
    total = draws.dur_b[local]
    k = np.ones(local.shape[0], dtype=np.int64)
    k[split_at] = -(-total[split_at] // interval)
    first = np.cumsum(k) - k                        # index of each event's first row
    row_local = np.repeat(local, k) if split_at.size else local
    canonical_start = events.start[local] - draws.skew[local]
    clock = np.repeat(canonical_start, k) if split_at.size else canonical_start.copy()
    duration = np.repeat(total, k) if split_at.size else total.copy()
    part_seq = np.zeros(row_local.shape[0], dtype=np.int16)
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
    service = events.service[row_local]
    volume = events.volume[row_local].astype(np.int64)
    rules = setting.rules
    charge = _rate_checked(rules, service, classes, row_local, clock, duration, volume)
    # the canonical record's rated_charge: its single row's agreed charge, except for merged
    # calls, quirky rows and wrong offsets, which are rated again on their canonical values
    rated = charge[first]
    redo = np.flatnonzero(draws.split[local] | draws.quirk_b[local] | draws.utc_b[local])
    rated[redo] = _rate_checked(rules, events.service[local[redo]], classes, local[redo],
                                canonical_start[redo], total[redo],
                                events.volume[local[redo]].astype(np.int64))
    quirky = np.flatnonzero(draws.quirk_b[row_local])
    charge[quirky] = _rate_checked(setting.rules_b_quirk, service[quirky], classes,
                                   row_local[quirky], clock[quirky], duration[quirky],
                                   volume[quirky])
    canonical_charge = np.add.reduceat(charge, first) if split_at.size else charge.copy()
    rows = _with_event_columns(
        {"event": events.lo + row_local, "part_seq": part_seq, "clock": clock, "start": start,
         "utc_error": utc, "duration": duration, "volume": volume, "charge": charge},
        events, row_local)
    canonical = _side_events(len(events))
    canonical.present[local] = True
    canonical.first_row[local] = first
    canonical.parts[local] = k
    canonical.start[local] = canonical_start
    canonical.duration[local] = total
    canonical.charge[local] = canonical_charge
    canonical.rated[local] = rated
    return rows, canonical


def _rate_checked(rules: ScenarioRules, service: np.ndarray, classes: NumberClasses,
                  event: np.ndarray, start: np.ndarray, duration: np.ndarray,
                  volume: np.ndarray) -> np.ndarray:
    """Charges under ``rules``; every generated (valid) record must have a tariff."""
    rated = rate(rules, service, classes, event, start, duration, volume)
    if np.any(rated.tariff < 0):
        raise DataGenError("internal error: the generated rules do not rate every valid record")
    return rated.charge


def classes_of(rules: ScenarioRules, events: Events) -> NumberClasses:
    """Payer, payee and call type of a block's events (renumbering keeps them)."""
    return classify(rules, events.calling, events.called)


# ---------------------------------------------------------------------------
# one side's file across blocks: invalid rows, exclusions, duplicate copies


@dataclass
class SideBlock:
    """The rows of one side's file emitted by one block, in file order (rows
    ``first + 1 ..`` of the file): their values, and what the truth needs of them."""

    side: str
    first: int
    columns: dict[str, np.ndarray]  # ROW_DTYPES, plus copy_of, id_row and chunk
    pre_position: np.ndarray        # index into the columns of each pre-copy row of the block
    copy_position: np.ndarray       # index into the columns of each copy emitted here
    copy_flags: np.ndarray          # uint32: the event bits of each copy emitted here

    def __len__(self) -> int:
        return int(self.columns["event"].shape[0])


class SideStream:
    """One side's file, block after block: places its invalid rows, marks its excluded
    records, and emits its rows with the duplicate copies in their places."""

    def __init__(self, setting: Setting, side: str, kinds: tuple[InvalidKind, ...],
                 n: int) -> None:
        config = setting.config
        self.setting, self.side = setting, side
        self.yuan = config.yuan_side(side)
        self.placed = {kind.code: 0 for kind in kinds}
        self.pending_invalid = [] if self.yuan else _plan_invalid(config, kinds, n, side)
        self.total_invalid = len(self.pending_invalid)
        self.pre_offset = 0       # rows before copies, over the blocks so far
        self.final_offset = 0     # rows of the file written so far
        self.last_valid = -1      # the file's last valid row so far (0-based), -1
        self.pending_copies: dict[str, np.ndarray] = {
            name: np.zeros(0, dtype=dtype) for name, dtype in _COPY_DTYPES.items()}

    # -- invalid rows and exclusions -------------------------------------------------

    def prepare(self, events: Events, rows: dict[str, np.ndarray], canonical: SideEvents,
                flags: np.ndarray) -> None:
        """Invalid rows (in place, with their numeric corruption) and exclusions."""
        invalid = rows["invalid"]
        if self.yuan:
            invalid[:] = YUAN_INDEX
        else:
            self._place_invalid(events, rows, canonical)
        bad_events = rows["event"][invalid >= 0] - events.lo
        canonical.invalid[bad_events] = True
        _flag(flags, bad_events, "invalid_a" if self.side == "A" else "invalid_b")
        first, end = self.setting.period
        outside = canonical.present & ((canonical.start < first) | (canonical.start >= end))
        by_rule, which = excluded(self.setting.rules, events.service, canonical.duration,
                                  events.volume, canonical.charge)
        # out_of_period first, then the rules' exclusions in file order
        exclusion = np.where(outside, self.setting.out_of_period, which)
        is_excluded = canonical.present & ~canonical.invalid & (outside | by_rule)
        canonical.excluded[:] = is_excluded
        canonical.exclusion[:] = np.where(is_excluded, exclusion, -1)
        canonical.considered[:] = canonical.present & ~canonical.invalid & ~is_excluded

    def _place_invalid(self, events: Events, rows: dict[str, np.ndarray],
                       canonical: SideEvents) -> None:
        """Each planned invalid row goes to the first suitable row of an event at or after
        its planned event, in order of (planned event, kind); one not placed in this
        block waits for the next."""
        if not self.pending_invalid or self.pending_invalid[0][0] >= events.lo + len(events):
            return
        event, invalid = rows["event"], rows["invalid"]
        service, local = rows["service"], event - events.lo
        first, end = self.setting.period
        start = canonical.start[local]
        plain = (rows["part_seq"] == 0) & ~((service == VOICE) & (rows["duration"] == 0))
        # a row of this block has an earlier valid row in the file once more rows than
        # there are invalid rows in all precede it
        early = self.pre_offset + np.arange(event.shape[0]) < self.total_invalid
        waiting = []
        for target, order, kind in self.pending_invalid:
            if target >= events.lo + len(events):
                waiting.append((target, order, kind))
                continue
            pool = plain & (invalid < 0) & (event >= target)
            if kind.sms_only:
                pool &= service == SMS
            if kind.code == "no_tariff":
                # a voice call inside the period (outside it, out_of_period would come first)
                pool &= (service == VOICE) & (start >= first) & (start < end)
            if kind.code == "duplicate_record_id":
                pool &= ~early
            candidates = np.flatnonzero(pool)
            if candidates.size == 0:
                waiting.append((target, order, kind))
                continue
            chosen = int(candidates[0])
            invalid[chosen] = KIND_INDEX[kind.code]
            self.placed[kind.code] += 1
            if kind.code == "negative_value":
                rows["charge"][chosen] = -rows["charge"][chosen] - 1
            elif kind.code == "inconsistent_service":
                rows["duration"][chosen] = INCONSISTENT_SMS_DURATION
        self.pending_invalid = waiting

    def unplaced(self) -> list[str]:
        """Invalid kinds that found no row by the end of the file."""
        return [kind.code for _, _, kind in self.pending_invalid]

    # -- duplicates and row numbers ----------------------------------------------------

    def emit(self, events: Events, rows: dict[str, np.ndarray], canonical: SideEvents,
             flags: np.ndarray) -> SideBlock:
        """The block's rows with the duplicate copies that belong among them, in file
        order; ``canonical.first_row`` becomes a row of the file."""
        config = self.setting.config
        m = rows["event"].shape[0]
        base, first_row = self.pre_offset, self.final_offset
        invalid = rows["invalid"]
        # new copies: valid rows, drawn per chunk of events (rows are in event order)
        picked, reach = [], []
        spans_of = list(chunks(events.lo, events.lo + len(events)))
        bounds = np.searchsorted(rows["event"], [clo for _, clo, _ in spans_of]
                                 + [events.lo + len(events)])
        for (chunk, _, _), lo, hi in zip(spans_of, bounds[:-1], bounds[1:], strict=True):
            rng = stream(config.seed, f"duplicate_{self.side}", chunk)
            k = int(hi - lo)
            chosen = lo + np.flatnonzero((invalid[lo:hi] < 0)
                                         & (rng.random(k) < config.duplicate_share))
            picked.append(chosen)
            reach.append((rng.random(chosen.shape[0]) * DUPLICATE_REACH).astype(np.int64))
        source = np.concatenate(picked)
        new = {name: rows[name][source] for name in ROW_DTYPES}
        new["target"] = base + source + np.concatenate(reach)
        new["source"] = base + source
        new["source_row"] = np.zeros(source.shape[0], dtype=np.int64)   # set below
        new["flags"] = flags[rows["event"][source] - events.lo] | BIT["duplicate_copy"]
        copies = {name: np.concatenate([self.pending_copies[name], new[name]])
                  for name in _COPY_DTYPES}
        order = np.lexsort((copies["source"], copies["target"]))
        copies = {name: values[order] for name, values in copies.items()}
        here = copies["target"] < base + m
        e = int(np.count_nonzero(here))       # copies are sorted: the first e are emitted here

        # positions: each row moves down by the copies emitted before it
        target_local = copies["target"][:e] - base
        after = np.bincount(target_local, minlength=m)
        pre_position = np.arange(m, dtype=np.int64)
        pre_position[1:] += np.cumsum(after)[:-1]
        rank = np.arange(e, dtype=np.int64) - np.searchsorted(target_local, target_local)
        copy_position = pre_position[target_local] + 1 + rank
        is_new = copies["source"] >= base
        copies["source_row"][is_new] = first_row + pre_position[copies["source"][is_new] - base]

        total = m + e
        columns: dict[str, np.ndarray] = {}
        for name, dtype in ROW_DTYPES.items():
            out = np.empty(total, dtype=dtype)
            out[pre_position] = rows[name]
            out[copy_position] = copies[name][:e]
            columns[name] = out
        copy_of = np.full(total, -1, dtype=np.int64)
        copy_of[copy_position] = copies["source_row"][:e]
        columns["copy_of"] = copy_of
        chunk_of = columns["event"] // blocks.CHUNK
        chunk_of[copy_position] = rows["event"][target_local] // blocks.CHUNK
        columns["chunk"] = chunk_of
        columns["id_row"] = self._id_rows(columns["invalid"], first_row)
        if m:
            canonical.first_row[:] = np.where(
                canonical.present, first_row + pre_position[np.maximum(canonical.first_row, 0)],
                -1)
        self.pending_copies = {name: values[e:] for name, values in copies.items()}
        self.pre_offset += m
        self.final_offset += total
        return SideBlock(side=self.side, first=first_row, columns=columns,
                         pre_position=pre_position, copy_position=copy_position,
                         copy_flags=copies["flags"][:e])

    def finish(self) -> SideBlock:
        """The copies whose place lies beyond the last row: after it, in order."""
        copies = self.pending_copies
        e = copies["target"].shape[0]
        first_row = self.final_offset
        columns = {name: copies[name].astype(dtype) for name, dtype in ROW_DTYPES.items()}
        columns["copy_of"] = copies["source_row"].copy()
        columns["chunk"] = np.full(e, LAST_CHUNK, dtype=np.int64)
        columns["id_row"] = self._id_rows(columns["invalid"], first_row)
        self.final_offset += e
        self.pending_copies = {name: values[:0] for name, values in copies.items()}
        return SideBlock(side=self.side, first=first_row, columns=columns,
                         pre_position=np.zeros(0, dtype=np.int64),
                         copy_position=np.arange(e, dtype=np.int64), copy_flags=copies["flags"])

    def _id_rows(self, invalid: np.ndarray, first_row: int) -> np.ndarray:
        """The 1-based row number each row's record_id is made of: its own, except for
        duplicate_record_id rows, which reuse the nearest earlier valid row's."""
        n = invalid.shape[0]
        row = first_row + np.arange(n, dtype=np.int64)
        valid_row = np.where(invalid < 0, row, -1)
        last_valid = np.maximum.accumulate(np.concatenate([[self.last_valid], valid_row]))
        reuse = np.flatnonzero(invalid == KIND_INDEX["duplicate_record_id"])
        id_row = row + 1
        if reuse.size:
            earlier = last_valid[reuse]            # index shifted by the carried value
            if (earlier < 0).any():
                raise DataGenError("internal error: a duplicate_record_id row before any "
                                   "valid row")
            id_row[reuse] = earlier + 1
        if n:
            self.last_valid = int(last_valid[-1])
        return id_row


_COPY_DTYPES: dict[str, type] = {**ROW_DTYPES, "target": np.int64, "source": np.int64,
                                 "source_row": np.int64, "flags": np.uint32}


def _plan_invalid(config: GenConfig, kinds: tuple[InvalidKind, ...], n: int,
                  side: str) -> list[tuple[int, int, InvalidKind]]:
    """(planned event, order, kind) of every invalid row to place, in placing order."""
    rng = stream(config.seed, f"invalid_plan_{side}")
    plan = []
    for kind in kinds:
        for event in rng.integers(0, n, size=config.invalid_per_kind).tolist():
            plan.append((int(event), KIND_INDEX[kind.code], kind))
    plan.sort(key=lambda p: (p[0], p[1]))
    return [(event, i, kind) for i, (event, _, kind) in enumerate(plan)]
