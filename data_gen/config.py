"""The knobs of a synthetic scenario: one frozen dataclass, validated once.

Every knob has a documented default (the field's ``help`` metadata, which the
``settlechain gen`` flags and ``--help`` are generated from).  With the defaults,
roughly 2-3 % of the records end up in pairs whose values differ (evaluated by
the key-only pass, i.e. by MPC in the private pipeline) and nearly all the rest
are ``matched_exact``.

Which side carries which quirk is fixed, so that a scenario reads like a story:

- A is the reference switch; B's clock is skewed against it (``skew_*``);
- A loaded the new voice rate table late (``stale_rate_hours``);
- B bills a share of its voice records in its own increment (``increment_quirk_*``);
- B's switch writes long calls as partial records (``split_share``);
- either side may lose records, duplicate them, write a wrong UTC offset, or
  carry invalid rows (one of each kind, ``invalid_per_kind``);
- a few calls happened outside the period (``out_of_period_share``): both sides
  carry them and the job excludes them (``out_of_period``);
- for the circuit breaker's tests, a side can write its whole export invalid
  (``yuan_charges``).
"""

from __future__ import annotations

import calendar
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from data_gen.errors import DataGenError

#: Operators whose number ranges the generator knows (docs: OPERATOR_SEGMENTS in numbers.py).
KNOWN_OPERATORS: tuple[str, ...] = ("CMCC", "CUCC", "CTCC")

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def _knob(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - mirrors argparse
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class GenConfig:
    """A scenario: size, seed, the agreed rules' tolerances and every perturbation knob.

    Shares are probabilities in [0, 1]; a share "of events" is drawn once per true
    call event, a share "of rows" once per row of one side's file.
    """

    # -- size and identity ----------------------------------------------------
    records: int = _knob(100_000, "number of true call events; each side's file has about "
                                  "this many rows (fewer missing, more parts/duplicates)")
    seed: int = _knob(0, "seed of numpy's Generator; the same seed and knobs give identical files")
    period: str = _knob("2026-10", "settlement month YYYY-MM (the job's period); start times "
                                   "fall in it (Beijing local time, +08:00) except those of "
                                   "out_of_period_share")
    operator_a: str = _knob("CMCC", "operator of side A (CMCC | CUCC | CTCC)")
    operator_b: str = _knob("CUCC", "operator of side B (CMCC | CUCC | CTCC), not A's")

    # -- true traffic -----------------------------------------------------------
    voice_share: float = _knob(0.70, "share of events that are voice calls")
    sms_share: float = _knob(0.25, "share of events that are SMS; data is the rest")
    long_call_share: float = _knob(0.01, "share of answered voice calls drawn from the long-call "
                                         "tail (log-normal, median 25 min)")
    zero_duration_share: float = _knob(0.02, "share of voice events that are unanswered "
                                             "attempts with duration 0 on both sides (excluded "
                                             "by the rules)")
    repeat_pair_share: float = _knob(0.05, "share of events that reuse the numbers of an event "
                                           "of the previous day or so (repeat calls between the "
                                           "same two subscribers)")
    out_of_period_share: float = _knob(0.002, "share of events that happened outside the period: "
                                              "1-2 h before or after it, in the month before or "
                                              "after it, or on 9999-12-31 (always at least an hour "
                                              "away); their records are excluded (out_of_period)")

    # -- agreed rules (written to rules.toml) ----------------------------------------
    time_tolerance_s: int = _knob(5, "rules: time_tolerance_s (δ)")
    time_window_s: int = _knob(12, "rules: time_window_s (W >= max(2δ, 2))")
    duration_tolerance_s: int = _knob(2, "rules: duration_tolerance_s")
    charge_tolerance: int = _knob(2, "rules: charge_tolerance, fen")
    rate_change_day: int = _knob(15, "day of the month on which the new voice peak rate "
                                     "(5 instead of 6 fen/min) takes effect, local midnight")

    # -- perturbations of the two views ----------------------------------------------
    missing_share_a: float = _knob(0.01, "share of events absent from A's file")
    missing_share_b: float = _knob(0.01, "share of events absent from B's file")
    duplicate_share: float = _knob(0.002, "share of each side's rows written twice: an exact "
                                          "copy with a new record_id, later in the file")
    skew_share: float = _knob(0.05, "share of events whose start time on B differs from A's "
                                    "within tolerance: by ±1-2 s, or ±3..skew_tail_max_s s "
                                    "(the tail)")
    skew_tail_share: float = _knob(0.15, "share of the skewed events in the tail")
    skew_tail_max_s: int = _knob(5, "largest start-time skew of the tail, seconds")
    skew_beyond_share: float = _knob(0.002, "share of events whose start times differ beyond the "
                                            "tolerance: by δ+1 .. skew_beyond_max_s seconds")
    skew_beyond_max_s: int = _knob(36, "largest start-time difference of skew_beyond_share")
    duration_diff_share: float = _knob(0.012, "share of voice/data events whose duration differs "
                                              "by ±1-2 s on one side")
    duration_beyond_share: float = _knob(0.001, "share of voice/data events whose duration differs "
                                                "beyond the tolerance (δd+1 .. 60 s) on one side")
    increment_quirk_share: float = _knob(0.005, "share of B's voice records that B bills in its "
                                                "own "
                                                "increment (increment_quirk_s) instead of 60/60")
    increment_quirk_s: int = _knob(6, "B's quirky voice billing: minimum = increment = this many s")
    stale_rate_hours: int = _knob(12, "A keeps the old voice peak rate for this many hours after "
                                      "the new rate takes effect")
    split_share: float = _knob(1.0, "share of B's voice calls longer than partial_interval_s that "
                                    "B writes as partial records (part_seq 1..k)")
    partial_interval_s: int = _knob(1800, "B's switch cuts a partial record every this many "
                                          "seconds")
    utc_offset_error_share: float = _knob(0.001, "share of each side's events written in local "
                                                 "time "
                                                 "with the wrong UTC offset (wrong_utc_offset)")
    wrong_utc_offset: str = _knob("+00:00", "the offset such rows carry, although their clock "
                                            "reads +08:00 local time")
    invalid_per_kind: int = _knob(1, "invalid rows of each kind per side (every kind of "
                                     "docs/records.md that the file format can express)")
    yuan_charges: str = _knob("none", "none | A | B | both: that side writes every charge in "
                                      "yuan with a decimal point (\"0.06\" for 6 fen; a float "
                                      "column in Parquet), so every row of its file is invalid "
                                      "(wrong_type:charge): an all-invalid export")

    def __post_init__(self) -> None:
        self.validate()

    # -- validation --------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`DataGenError` naming the first bad knob."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int):
                    _bad(f.name, "an integer", value)
            elif f.type in ("float", float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    _bad(f.name, "a number", value)
                if "_share" in f.name and not 0.0 <= value <= 1.0:
                    _bad(f.name, "a share in [0, 1]", value)
            elif not isinstance(value, str):
                _bad(f.name, "a string", value)
        if not 1 <= self.records <= MAX_RECORDS:
            _bad("records", f"an integer in [1, {MAX_RECORDS}]", self.records)
        if self.seed < 0:
            _bad("seed", "an integer >= 0", self.seed)
        self.period_bounds()  # validates the period
        for name in ("operator_a", "operator_b"):
            if getattr(self, name) not in KNOWN_OPERATORS:
                _bad(name, " | ".join(KNOWN_OPERATORS), getattr(self, name))
        if self.yuan_charges not in YUAN_SIDES:
            _bad("yuan_charges", " | ".join(YUAN_SIDES), self.yuan_charges)
        if self.operator_a == self.operator_b:
            _bad("operator_b", "an operator other than operator_a", self.operator_b)
        if self.voice_share + self.sms_share > 1.0:
            _bad("sms_share", f"at most 1 - voice_share = {1.0 - self.voice_share:g}",
                 self.sms_share)
        if self.missing_share_a + self.missing_share_b > 1.0:
            _bad("missing_share_b", "missing_share_a + missing_share_b <= 1", self.missing_share_b)
        if self.skew_share + self.skew_beyond_share > 1.0:
            _bad("skew_beyond_share", "skew_share + skew_beyond_share <= 1",
                 self.skew_beyond_share)
        if self.duration_diff_share + self.duration_beyond_share > 1.0:
            _bad("duration_beyond_share", "duration_diff_share + duration_beyond_share <= 1",
                 self.duration_beyond_share)
        if self.time_tolerance_s < 0:
            _bad("time_tolerance_s", "an integer >= 0", self.time_tolerance_s)
        if self.time_window_s < max(2 * self.time_tolerance_s, 2):
            _bad("time_window_s", f"at least max(2 * time_tolerance_s, 2) = "
                 f"{max(2 * self.time_tolerance_s, 2)}", self.time_window_s)
        for name in ("duration_tolerance_s", "charge_tolerance", "stale_rate_hours",
                     "invalid_per_kind"):
            if getattr(self, name) < 0:
                _bad(name, "an integer >= 0", getattr(self, name))
        if not 3 <= self.skew_tail_max_s <= 3600:
            _bad("skew_tail_max_s", "an integer in [3, 3600]", self.skew_tail_max_s)
        if not self.time_tolerance_s + 1 <= self.skew_beyond_max_s <= 86_400:
            _bad("skew_beyond_max_s", f"an integer in [time_tolerance_s + 1 = "
                 f"{self.time_tolerance_s + 1}, 86400]", self.skew_beyond_max_s)
        if not 1 <= self.increment_quirk_s <= 3600:
            _bad("increment_quirk_s", "an integer in [1, 3600]", self.increment_quirk_s)
        if not 60 <= self.partial_interval_s <= 86_400:
            _bad("partial_interval_s", "an integer in [60, 86400]", self.partial_interval_s)
        days = calendar.monthrange(*self._year_month())[1]
        if not 1 <= self.rate_change_day <= days:
            _bad("rate_change_day", f"a day of {self.period} (1..{days})", self.rate_change_day)
        if self.wrong_utc_offset_s() == LOCAL_OFFSET_S:
            _bad("wrong_utc_offset", "an offset other than the local +08:00",
                 self.wrong_utc_offset)

    # -- derived values ----------------------------------------------------------------

    def _year_month(self) -> tuple[int, int]:
        match = _PERIOD_RE.match(self.period)
        if (not match or not 1 <= int(match.group(2)) <= 12
                or not 1971 <= int(match.group(1)) <= 2200):
            _bad("period", "YYYY-MM with a month 01..12 and a year 1971..2200", self.period)
        return int(match.group(1)), int(match.group(2))  # type: ignore[union-attr]

    def period_bounds(self) -> tuple[int, int]:
        """UTC epoch seconds of the period's first and one-past-last local second."""
        year, month = self._year_month()
        days = calendar.monthrange(year, month)[1]
        first = calendar.timegm((year, month, 1, 0, 0, 0)) - LOCAL_OFFSET_S
        return first, first + days * 86_400

    def rate_change_epoch(self) -> int:
        """UTC epoch second at which the new voice peak rate takes effect."""
        return self.period_bounds()[0] + (self.rate_change_day - 1) * 86_400

    def wrong_utc_offset_s(self) -> int:
        match = _OFFSET_RE.match(self.wrong_utc_offset)
        if not match or int(match.group(2)) > 18 or int(match.group(3)) > 59:
            _bad("wrong_utc_offset", "+HH:MM or -HH:MM between -18:00 and +18:00",
                 self.wrong_utc_offset)
        seconds = int(match.group(2)) * 3600 + int(match.group(3)) * 60  # type: ignore[union-attr]
        return -seconds if match.group(1) == "-" else seconds  # type: ignore[union-attr]

    def yuan_side(self, side: str) -> bool:
        """Whether ``side`` ("A" or "B") writes its charges in yuan (all rows invalid)."""
        return self.yuan_charges in (side, "both")

    def isolation_gap_s(self) -> int:
        """Two different events of the same (service, calling, called) are at least this far
        apart on both sides, so that every true pair is isolated (docs/matching.md)."""
        return max(300, 4 * self.time_window_s, 2 * self.skew_beyond_max_s + 2 * self.time_window_s)

    def knobs(self) -> dict[str, Any]:
        """Every knob and its value (for manifest.json)."""
        return dataclasses.asdict(self)


#: Most events per scenario: called numbers are unique per called operator
#: (numbers.CalledNumbers: at most 10^8 per operator, fresh and renumbered together), and
#: each operator is called in about half of the events.
MAX_RECORDS = 150_000_000

#: Values of the ``yuan_charges`` knob.
YUAN_SIDES: tuple[str, ...] = ("none", "A", "B", "both")

#: Local time of both operators (Beijing) and of the rules' time bands.
LOCAL_OFFSET_S = 8 * 3600


def knob_help() -> dict[str, str]:
    """Each knob's documentation, by field name."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(GenConfig)}


def _bad(name: str, expected: str, found: Any) -> None:
    raise DataGenError(f"bad knob {name}: expected {expected}, found {found!r}")
