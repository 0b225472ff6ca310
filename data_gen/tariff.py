"""The scenario's rules: built from the knobs, written as TOML, and applied (rating).

data_gen depends on nothing else of ours, so it keeps its own small model of the
rules it writes (the format is ``docs/rules.md``) and its own implementation of
rating (docs/rules.md § Rating), vectorised with numpy.  Each operator rates its
own view with its own quirks by rating against a variant of the agreed table
(:meth:`ScenarioRules.with_rate_change_at`, :meth:`ScenarioRules.with_voice_increment`).

Numbers are held as integers of their E.164 digits (no leading zeros by
construction: every generated number starts with ``86``).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np

from data_gen.blocks import spans
from data_gen.config import LOCAL_OFFSET_S, GenConfig
from data_gen.numbers import OPERATOR_NAMES, OPERATOR_SEGMENTS

SERVICES: tuple[str, ...] = ("voice", "sms", "data")
VOICE, SMS, DATA = 0, 1, 2
WILDCARD = "*"
#: A call type that no voice tariff row names: a voice call to a number with this prefix
#: (satellite phones, segment 1740) has no tariff, inside the period as outside it.
#: No generated number is in it; data_gen writes it into the ``no_tariff`` invalid rows.
NO_TARIFF_CALL_TYPE, NO_TARIFF_PREFIX = "satellite", "861740"
#: Voice rates, fen per 60 s: peak before and after the change, off-peak.
VOICE_PEAK_OLD, VOICE_PEAK_NEW, VOICE_OFFPEAK = 6, 5, 3


@dataclass(frozen=True)
class TimeBand:
    name: str
    start_minute: int
    end_minute: int
    """Exclusive; ≤ start_minute wraps midnight."""

    def minutes(self) -> np.ndarray:
        day = np.arange(1440)
        if self.start_minute < self.end_minute:
            return (day >= self.start_minute) & (day < self.end_minute)
        return (day >= self.start_minute) | (day < self.end_minute)


@dataclass(frozen=True)
class TariffRow:
    payer: str
    payee: str
    service: str
    call_type: str
    time_band: str
    effective_from: int
    effective_to: int | None
    rate: int
    minimum: int
    increment: int
    comment: str = ""


@dataclass(frozen=True)
class Exclusion:
    name: str
    service: str | None
    field: str
    equals: int


@dataclass(frozen=True)
class ScenarioRules:
    """The subset of docs/rules.md that the generator writes and rates with."""

    name: str
    version: str
    timezone_offset_s: int
    time_tolerance_s: int
    time_window_s: int
    duration_tolerance_s: int
    charge_tolerance: int
    disclosure: str
    partial_max_gap_s: int
    exclusions: tuple[Exclusion, ...]
    unknown_operator: str
    operators: tuple[tuple[str, str, tuple[str, ...]], ...]
    """(id, name, prefixes) in file order."""
    default_call_type: str
    call_types: tuple[tuple[str, tuple[str, ...]], ...]
    time_bands: tuple[TimeBand, ...]
    tariffs: tuple[TariffRow, ...]

    @functools.cached_property
    def tariff_table(self) -> _TariffTable:
        """The first-match lookup table used by :func:`rate`."""
        return _build_tariff_table(self)

    # -- variants used by one operator's own rating ------------------------------------

    def with_rate_change_at(self, old_until: int, change: int) -> ScenarioRules:
        """The table of an operator that switched from the old to the new voice peak
        rate at ``old_until`` instead of ``change``."""
        rows = []
        for row in self.tariffs:
            if row.effective_from == change:
                row = dataclasses.replace(row, effective_from=old_until)
            if row.effective_to == change:
                row = dataclasses.replace(row, effective_to=old_until)
            rows.append(row)
        return dataclasses.replace(self, tariffs=tuple(rows))

    def with_voice_increment(self, seconds: int) -> ScenarioRules:
        """The table of an operator that bills every voice row with minimum = increment = s."""
        rows = tuple(dataclasses.replace(r, minimum=seconds, increment=seconds)
                     if r.service == "voice" else r for r in self.tariffs)
        return dataclasses.replace(self, tariffs=rows)

    # -- TOML ------------------------------------------------------------------------

    def to_toml(self) -> str:
        """The rules as a TOML document in the format of docs/rules.md."""
        out: list[str] = [
            "# Settlement rules of a synthetic settlechain scenario (written by data_gen).",
            "# docs/rules.md explains every key.  The truth (truth.parquet) was computed",
            "# under exactly these rules.",
            "[meta]",
            f"name = {_q(self.name)}",
            f"version = {_q(self.version)}",
            f"timezone = {_q(_offset_text(self.timezone_offset_s))}",
            "# no default_utc_offset: a start time without an offset is invalid",
            "",
            "[tolerances]",
            f"time_tolerance_s = {self.time_tolerance_s}",
            f"time_window_s = {self.time_window_s}",
            f"duration_tolerance_s = {self.duration_tolerance_s}",
            f"charge_tolerance = {self.charge_tolerance}",
            "",
            "[disclosure]",
            f"policy = {_q(self.disclosure)}",
            "",
            "[partials]",
            f"max_gap_s = {self.partial_max_gap_s}",
            "",
        ]
        for ex in self.exclusions:
            out += ["[[exclusions]]", f"name = {_q(ex.name)}"]
            if ex.service is not None:
                out.append(f"service = {_q(ex.service)}")
            out += [f"field = {_q(ex.field)}", f"equals = {ex.equals}", ""]
        out += [
            "[circuit_breaker]",
            "max_records = 200000000",
            "max_size_ratio = 2.0",
            "min_records_for_ratio = 1000",
            "max_disputed_share = 0.05",
            "max_unmatched_share = 0.05",
            # the generator plants invalid rows on purpose (about 1 % in small exports)
            "max_invalid_share = 0.05",
            "",
            "[rating]",
            f"unknown_operator = {_q(self.unknown_operator)}",
            f"default_call_type = {_q(self.default_call_type)}",
            "",
        ]
        for op_id, op_name, prefixes in self.operators:
            out += ["[[operators]]", f"id = {_q(op_id)}", f"name = {_q(op_name)}",
                    f"prefixes = [{', '.join(_q(p) for p in prefixes)}]", ""]
        for ct_name, prefixes in self.call_types:
            out += ["[[call_types]]", f"name = {_q(ct_name)}",
                    f"called_prefixes = [{', '.join(_q(p) for p in prefixes)}]", ""]
        for band in self.time_bands:
            out += ["[[time_bands]]", f"name = {_q(band.name)}",
                    f"from = {_q(_clock(band.start_minute))}",
                    f"to = {_q(_clock(band.end_minute))}",
                    ""]
        out += ["# First matching row wins (file order).  Rates: fen per 60 s (voice), per",
                "# message (sms), per 1024 KB (data); minimum/increment: s (voice) or KB (data).",
                ""]
        for row in self.tariffs:
            if row.comment:
                out.append(f"# {row.comment}")
            out += ["[[tariffs]]", f"payer = {_q(row.payer)}", f"payee = {_q(row.payee)}",
                    f"service = {_q(row.service)}"]
            if row.call_type != WILDCARD:
                out.append(f"call_type = {_q(row.call_type)}")
            if row.time_band != WILDCARD:
                out.append(f"time_band = {_q(row.time_band)}")
            offset = self.timezone_offset_s
            out.append(f"effective_from = {_toml_datetime(row.effective_from, offset)}")
            if row.effective_to is not None:
                out.append(f"effective_to = {_toml_datetime(row.effective_to, offset)}")
            out += [f"rate = {row.rate}", f"minimum = {row.minimum}",
                    f"increment = {row.increment}",
                    ""]
        return "\n".join(out)


def build_rules(config: GenConfig) -> ScenarioRules:
    """The agreed rules of a scenario (the "default rules" that truth.parquet refers to)."""
    # every tariff starts on 1 January of the year before the period, so that records moved
    # by a skew or a wrong UTC offset are still rated
    year_start = _local_midnight(int(config.period[:4]) - 1, 1, 1)
    change = config.rate_change_epoch()
    return ScenarioRules(
        name=f"settlechain synthetic scenario {config.period}",
        version=f"{config.period}-synthetic",
        timezone_offset_s=LOCAL_OFFSET_S,
        time_tolerance_s=config.time_tolerance_s,
        time_window_s=config.time_window_s,
        duration_tolerance_s=config.duration_tolerance_s,
        charge_tolerance=config.charge_tolerance,
        disclosure="flags",
        partial_max_gap_s=2,
        exclusions=(Exclusion("zero_duration_voice", "voice", "duration_s", 0),),
        unknown_operator="OTHER",
        operators=tuple((op, OPERATOR_NAMES[op], tuple(f"86{seg}" for seg in segs))
                        for op, segs in OPERATOR_SEGMENTS.items()),
        default_call_type="international",
        call_types=(("domestic", ("86",)), (NO_TARIFF_CALL_TYPE, (NO_TARIFF_PREFIX,))),
        time_bands=(TimeBand("peak", 7 * 60, 23 * 60), TimeBand("offpeak", 23 * 60, 7 * 60)),
        tariffs=(
            TariffRow("*", "*", "voice", "domestic", "peak", change, None, VOICE_PEAK_NEW, 60, 60,
                      "new voice peak rate from the change date"),
            TariffRow("*", "*", "voice", "domestic", "peak", year_start, change, VOICE_PEAK_OLD,
                      60, 60, "old voice peak rate"),
            TariffRow("*", "*", "voice", "domestic", "offpeak", year_start, None, VOICE_OFFPEAK,
                      60, 60),
            TariffRow("*", "*", "voice", "international", WILDCARD, year_start, None, 60, 6, 6),
            TariffRow("*", "*", "sms", WILDCARD, WILDCARD, year_start, None, 1, 0, 1),
            TariffRow("*", "*", "data", WILDCARD, WILDCARD, year_start, None, 3, 1, 1),
        ),
    )


# ---------------------------------------------------------------------------
# rating


@dataclass(frozen=True)
class Rated:
    charge: np.ndarray
    """int64 minor units; 0 where no tariff applies."""
    tariff: np.ndarray
    """int64 index of the tariff row used, -1 where none applies (``no_tariff``)."""


@dataclass(frozen=True)
class NumberClasses:
    """Payer, payee and call type of each event (docs/rules.md § Rating), computed once
    from the numbers; rows refer to their event.  Codes index :meth:`codes`."""

    payer: np.ndarray
    payee: np.ndarray
    call_type: np.ndarray


def party_names(rules: ScenarioRules) -> list[str]:
    return [op[0] for op in rules.operators] + [rules.unknown_operator]


def call_type_names(rules: ScenarioRules) -> list[str]:
    names = [ct[0] for ct in rules.call_types]
    return names if rules.default_call_type in names else names + [rules.default_call_type]


def classify(rules: ScenarioRules, calling: np.ndarray, called: np.ndarray) -> NumberClasses:
    """Operators by longest prefix (else ``unknown_operator``) and call type of the called
    number by longest prefix (else ``default_call_type``), block by block."""
    operator_prefixes = [op[2] for op in rules.operators]
    call_type_prefixes = [ct[1] for ct in rules.call_types]
    unknown = len(rules.operators)
    default_type = call_type_names(rules).index(rules.default_call_type)
    n = calling.shape[0]
    classes = NumberClasses(payer=np.empty(n, dtype=np.int16), payee=np.empty(n, dtype=np.int16),
                            call_type=np.empty(n, dtype=np.int16))
    for _, lo, hi in spans(n):
        classes.payer[lo:hi] = _longest_prefix(calling[lo:hi], operator_prefixes, unknown)
        classes.payee[lo:hi] = _longest_prefix(called[lo:hi], operator_prefixes, unknown)
        classes.call_type[lo:hi] = _longest_prefix(called[lo:hi], call_type_prefixes,
                                                   default_type)
    return classes


def rate(rules: ScenarioRules, service: np.ndarray, classes: NumberClasses, event: np.ndarray,
         start: np.ndarray, duration: np.ndarray, volume: np.ndarray) -> Rated:
    """Rate records under ``rules`` (docs/rules.md § Rating), vectorised.

    Record i is of event ``event[i]`` (its payer, payee and call type come from
    ``classes``); ``service`` uint8 (0 voice, 1 sms, 2 data), ``start`` UTC epoch
    seconds, ``duration``/``volume`` integers, all per record.

    "The first row in file order that matches" is decided once per combination of the
    columns the tariff rows test (service, and payer, payee, call type, time band where
    some row names one) and of the effective period (the intervals between all
    effective_from/effective_to instants, within which every row either applies or
    not), into a small table; each record then costs one lookup.
    """
    table = _tariff_table(rules)
    key = service.astype(np.int64)
    for name, size in table.columns:
        if name == "time_band":
            code = table.band_of_second[(start + rules.timezone_offset_s) % 86_400]
        else:
            code = getattr(classes, name)[event]
        key = key * size + code
    period = np.searchsorted(table.boundaries, start, side="right")
    tariff = table.first_match[key * table.periods + period]

    # one formula for the three services (docs/rules.md § Rating): an SMS is one unit of
    # minimum 1 and increment 1, divided by 1; voice by 60 with +30, data by 1024 with +512
    amount = np.where(service == DATA, volume, np.where(service == SMS, 1, duration))
    increment = table.increment[tariff]
    units = np.maximum(table.minimum[tariff], -(-amount // increment) * increment)
    units[amount == 0] = 0
    charge = (units * table.rate[tariff] + table.half[service]) // table.divisor[service]
    charge[tariff < 0] = 0
    return Rated(charge=charge, tariff=tariff)


@dataclass(frozen=True)
class _TariffTable:
    columns: tuple[tuple[str, int], ...]   # (column, number of codes) tested by some row
    boundaries: np.ndarray                 # sorted effective_from/effective_to instants
    periods: int
    first_match: np.ndarray                # [key * periods + period] -> tariff index or -1
    rate: np.ndarray                       # [tariff] (index -1: a dummy row for no tariff)
    minimum: np.ndarray
    increment: np.ndarray
    half: np.ndarray                       # [service] rounding addend
    divisor: np.ndarray                    # [service]
    band_of_second: np.ndarray


def _tariff_table(rules: ScenarioRules) -> _TariffTable:
    """The lookup table of :func:`rate` (built once per rules object)."""
    return rules.tariff_table


def _build_tariff_table(rules: ScenarioRules) -> _TariffTable:
    parties = {name: i for i, name in enumerate(party_names(rules))}
    call_types = {name: i for i, name in enumerate(call_type_names(rules))}
    bands = {b.name: i for i, b in enumerate(rules.time_bands)}
    domains = {"payer": parties, "payee": parties, "call_type": call_types, "time_band": bands}
    used = [name for name in ("payer", "payee", "call_type", "time_band")
            if any(getattr(row, name) != WILDCARD for row in rules.tariffs)]
    columns = tuple((name, len(domains[name])) for name in used)
    instants = sorted({row.effective_from for row in rules.tariffs}
                      | {row.effective_to for row in rules.tariffs if row.effective_to is not None})
    boundaries = np.array(instants, dtype=np.int64)
    periods = len(instants) + 1
    # a representative instant of each period: period p covers [boundaries[p-1], boundaries[p])
    representative = [instants[0] - 1] + instants
    combos = [()]  # every combination of codes of the used columns, in key order
    for _, size in columns:
        combos = [c + (code,) for c in combos for code in range(size)]
    first_match = np.full(len(SERVICES) * len(combos) * periods, -1, dtype=np.int64)
    for service_code, service in enumerate(SERVICES):
        for combo_index, combo in enumerate(combos):
            values = dict(zip(used, combo, strict=True))
            for period, instant in enumerate(representative):
                for index, row in enumerate(rules.tariffs):
                    if row.service != service or instant < row.effective_from:
                        continue
                    if row.effective_to is not None and instant >= row.effective_to:
                        continue
                    if all(getattr(row, name) == WILDCARD
                           or domains[name][getattr(row, name)] == values[name] for name in used):
                        key = service_code * len(combos) + combo_index
                        first_match[key * periods + period] = index
                        break
    band_of_minute = np.full(1440, -1, dtype=np.int64)
    for i, band in enumerate(rules.time_bands):
        band_of_minute[band.minutes()] = i
    table = _TariffTable(
        columns=columns, boundaries=boundaries, periods=periods, first_match=first_match,
        rate=np.array([r.rate for r in rules.tariffs] + [0], dtype=np.int64),
        minimum=np.array([1 if r.service == "sms" else r.minimum for r in rules.tariffs] + [0],
                         dtype=np.int64),
        increment=np.array([1 if r.service == "sms" else r.increment for r in rules.tariffs] + [1],
                           dtype=np.int64),
        half=np.array([30, 0, 512], dtype=np.int64),
        divisor=np.array([60, 1, 1024], dtype=np.int64),
        band_of_second=np.repeat(band_of_minute, 60),
    )
    return table


def excluded(rules: ScenarioRules, service: np.ndarray, duration: np.ndarray,
             volume: np.ndarray, charge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, index of the first matching exclusion or -1) of canonical records."""
    which = np.full(service.shape[0], -1, dtype=np.int64)
    fields = {"duration_s": duration, "volume_kb": volume, "charge": charge}
    for index in range(len(rules.exclusions) - 1, -1, -1):
        ex = rules.exclusions[index]
        mask = fields[ex.field] == ex.equals
        if ex.service is not None:
            mask &= service == SERVICES.index(ex.service)
        which[mask] = index
    return which >= 0, which


def _digit_count(numbers: np.ndarray) -> np.ndarray:
    powers = 10 ** np.arange(19, dtype=np.int64)
    return np.searchsorted(powers, numbers, side="right").astype(np.int64)


#: Prefixes up to this many digits are looked up in a dense table (10^L entries).
_DENSE_PREFIX_DIGITS = 6


def _longest_prefix(numbers: np.ndarray, prefix_sets: list[tuple[str, ...]],
                    default: int) -> np.ndarray:
    """Index of the set holding the longest prefix of each number's digits, else default.

    Ties (one prefix in two sets) go to the earlier set, as in file order."""
    result = np.full(numbers.shape[0], default, dtype=np.int16)
    found = np.zeros(numbers.shape[0], dtype=bool)
    ndigits: np.ndarray | int
    if numbers.size and 10 ** 12 <= numbers.min() and numbers.max() < 10 ** 13:
        ndigits = 13                             # every generated number: 86 + 11 digits
    else:
        ndigits = _digit_count(numbers)
    by_length: dict[int, dict[int, int]] = {}
    for code, prefixes in enumerate(prefix_sets):
        for p in prefixes:
            by_length.setdefault(len(p), {}).setdefault(int(p), code)
    for length in sorted(by_length, reverse=True):
        table = by_length[length]
        head = numbers // (10 ** np.maximum(ndigits - length, 0))
        if length <= _DENSE_PREFIX_DIGITS:
            dense = np.full(10 ** length, -1, dtype=np.int16)
            dense[list(table)] = list(table.values())
            code = dense[np.minimum(head, 10 ** length - 1)]
        else:
            keys = np.array(sorted(table), dtype=np.int64)
            codes = np.array([table[k] for k in keys.tolist()], dtype=np.int16)
            pos = np.minimum(np.searchsorted(keys, head), keys.shape[0] - 1)
            code = np.where(keys[pos] == head, codes[pos], -1).astype(np.int16)
        hit = (ndigits >= length) & (code >= 0) & ~found
        result[hit] = code[hit]
        found |= hit
    return result


# ---------------------------------------------------------------------------
# text helpers


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}"


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _toml_datetime(epoch: int, offset_s: int) -> str:
    tz = dt.timezone(dt.timedelta(seconds=offset_s))
    return dt.datetime.fromtimestamp(epoch, tz=tz).isoformat()


def _local_midnight(year: int, month: int, day: int) -> int:
    return calendar.timegm((year, month, day, 0, 0, 0)) - LOCAL_OFFSET_S
