"""Rules: the TOML document both operators share, read into frozen dataclasses.

The format and its meaning are specified in ``docs/rules.md``.  This module parses
and validates it once (every problem names the file, the TOML path and what was
expected), fills defaults, and computes the SM3 hash that every party of a job
must agree on.

The hash is taken over a canonical form, not over the file's bytes: the parsed,
defaults-filled rules as RFC 8785 canonical JSON (datetimes as UTC epoch
seconds).  Two files that differ only in layout, comments or key order therefore
have the same hash; any change of meaning changes it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from engine.errors import RulesError
from ledger_anchor.sm3 import sm3

SCHEMA_VERSION = 1
SERVICES: tuple[str, ...] = ("voice", "sms", "data")
DISCLOSURE_POLICIES: tuple[str, ...] = ("aggregate", "flags", "differences")
EXCLUSION_FIELDS: tuple[str, ...] = ("duration_s", "volume_kb", "charge")
WILDCARD = "*"

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_CLOCK_RE = re.compile(r"^(\d{2}):(\d{2})$")
_DIGITS_RE = re.compile(r"^\d{1,15}$")
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

#: Bounds of the tariff numbers.  With record values ≤ 10^12 (engine.ingest) they keep
#: every rating product (billable units × rate) below 2^63, so rating is exact in int64.
MAX_RATE = 10**6
MAX_BILLING_UNIT = 10**9


# ---------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True)
class Tolerances:
    time_tolerance_s: int
    """δ: start times that differ by at most this many seconds are within tolerance."""
    time_window_s: int
    """W: the grid of the key-only matching passes; at least max(2δ, 2) (docs/matching.md)."""
    duration_tolerance_s: int
    charge_tolerance: int
    """In minor units (fen)."""

    @property
    def value_window_s(self) -> int:
        """The grid of the tolerant-values passes: δ+1, so that sharing a window
        implies |Δt| ≤ δ (docs/matching.md, stage S2)."""
        return self.time_tolerance_s + 1


@dataclass(frozen=True)
class Exclusion:
    name: str
    field: str
    equals: int
    service: str | None = None
    """None: any service."""


@dataclass(frozen=True)
class CircuitBreaker:
    max_records: int
    max_size_ratio: float
    min_records_for_ratio: int
    max_disputed_share: float
    max_unmatched_share: float
    max_invalid_share: float
    """Invalid rows over input rows above which a side's export is refused at the agree
    step (the job stops, nothing is anchored): an export that is mostly invalid (say,
    charges in yuan instead of fen) must be corrected, not settled."""


@dataclass(frozen=True)
class Operator:
    id: str
    name: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class CallType:
    name: str
    called_prefixes: tuple[str, ...]


@dataclass(frozen=True)
class TimeBand:
    name: str
    start_minute: int
    """Local minute of the day (0..1439) at which the band starts, inclusive."""
    end_minute: int
    """Local minute of the day at which it ends, exclusive; ≤ start means it wraps midnight."""

    def contains(self, minute_of_day: int) -> bool:
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute_of_day < self.end_minute
        return minute_of_day >= self.start_minute or minute_of_day < self.end_minute


@dataclass(frozen=True)
class Tariff:
    payer: str
    payee: str
    service: str
    call_type: str
    time_band: str
    effective_from: int
    """UTC epoch seconds, inclusive."""
    effective_to: int | None
    """UTC epoch seconds, exclusive; None = open-ended."""
    rate: int
    """Minor units per 60 s (voice), per message (sms), per 1024 KB (data)."""
    minimum: int
    increment: int


@dataclass(frozen=True)
class Rules:
    name: str
    version: str
    timezone_offset_s: int
    """Offset of the local time used for time bands, in seconds east of UTC."""
    default_utc_offset_s: int | None
    """Offset assumed for start times written without one; None = such times are invalid."""
    tolerances: Tolerances
    disclosure: str
    min_cell_pairs: int
    """k of the small-cell rule: a per-reason or per-class sum over fewer than k pairs is
    merged into "other" or reported as a count only (docs/matching.md, Disclosure)."""
    partial_max_gap_s: int
    exclusions: tuple[Exclusion, ...]
    circuit_breaker: CircuitBreaker
    unknown_operator: str
    operators: tuple[Operator, ...]
    default_call_type: str
    call_types: tuple[CallType, ...]
    time_bands: tuple[TimeBand, ...]
    tariffs: tuple[Tariff, ...]
    billing: str = ""
    """The ``[billing]`` table as RFC 8785 JSON, parsed by the billing package (docs/billing.md);
    part of the hash when present, so the consortium adopts the billing terms with the rules."""
    source: str = field(default="<memory>", compare=False)
    """Where the rules were read from (for messages only; not part of the hash)."""

    # -- canonical form and hash -------------------------------------------

    def canonical(self) -> dict[str, Any]:
        """The meaning of the rules as plain JSON values (no file name)."""
        data = dataclasses.asdict(self)
        data.pop("source", None)
        if not data["billing"]:  # rules without billing terms keep the hash they always had
            data.pop("billing")
        data["schema"] = SCHEMA_VERSION
        return data

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of :meth:`canonical`."""
        return rfc8785.dumps(_json_safe(self.canonical()))

    def sm3_hash(self) -> str:
        """Lower-case hex SM3 of :meth:`canonical_bytes`: the hash a job carries."""
        return sm3(self.canonical_bytes()).hex()

    def with_disclosure(self, policy: str) -> Rules:
        """A copy with another disclosure policy (the policy is part of the hash)."""
        if policy not in DISCLOSURE_POLICIES:
            raise RulesError(
                "unknown disclosure policy", file=self.source, column="disclosure.policy",
                expected=" | ".join(DISCLOSURE_POLICIES), found=repr(policy),
            )
        return dataclasses.replace(self, disclosure=policy)

    # -- lookups used by rating --------------------------------------------

    def operator_of(self, digits: str) -> str:
        """The operator id owning ``digits`` by longest prefix, else ``unknown_operator``."""
        best, best_len = self.unknown_operator, -1
        for op in self.operators:
            for prefix in op.prefixes:
                if len(prefix) > best_len and digits.startswith(prefix):
                    best, best_len = op.id, len(prefix)
        return best

    def call_type_of(self, called_digits: str) -> str:
        """The call type of a called number by longest prefix, else ``default_call_type``."""
        best, best_len = self.default_call_type, -1
        for ct in self.call_types:
            for prefix in ct.called_prefixes:
                if len(prefix) > best_len and called_digits.startswith(prefix):
                    best, best_len = ct.name, len(prefix)
        return best

    def time_band_of(self, utc_epoch_s: int) -> str:
        minute = ((utc_epoch_s + self.timezone_offset_s) // 60) % 1440
        for band in self.time_bands:
            if band.contains(minute):
                return band.name
        raise AssertionError("time bands were validated to cover the day")  # pragma: no cover


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        # RFC 8785 serialises floats, but integers stay exact; keep shares as strings
        # with repr so that 0.05 and 0.050 hash alike and nothing depends on float formatting.
        return repr(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ---------------------------------------------------------------------------
# parsing


class _Reader:
    """Typed access to a TOML table that reports the file and TOML path on error."""

    def __init__(self, source: str, table: dict[str, Any], path: str) -> None:
        self.source = source
        self.table = table
        self.path = path
        self._seen: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str, expected: str, found: Any) -> RulesError:
        return RulesError(message, file=self.source, column=self._where(key),
                          expected=expected, found=repr(found))

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str, default: Any = ..., ) -> Any:
        self._seen.add(key)
        if key not in self.table:
            if default is ...:
                raise RulesError("missing required key", file=self.source,
                                 column=self._where(key), expected="a value", found="nothing")
            return default
        return self.table[key]

    def string(self, key: str, default: Any = ..., pattern: re.Pattern[str] | None = None,
               choices: tuple[str, ...] | None = None) -> Any:
        value = self.raw(key, default)
        if value is default and default is not ...:
            return value
        if not isinstance(value, str):
            raise self.error(key, "wrong type", "a string", value)
        if pattern is not None and not pattern.match(value):
            raise self.error(key, "malformed value", f"a string matching {pattern.pattern}", value)
        if choices is not None and value not in choices:
            raise self.error(key, "unknown value", " | ".join(choices), value)
        return value

    def integer(self, key: str, default: Any = ..., minimum: int | None = 0,
                maximum: int | None = None) -> Any:
        value = self.raw(key, default)
        if value is default and default is not ...:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "wrong type", "an integer", value)
        if minimum is not None and value < minimum:
            raise self.error(key, "out of range", f"an integer >= {minimum}", value)
        if maximum is not None and value > maximum:
            raise self.error(key, "out of range", f"an integer <= {maximum}", value)
        return value

    def number(self, key: str, default: Any = ..., minimum: float = 0.0,
               maximum: float | None = None) -> float:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, "wrong type", "a number", value)
        if not math.isfinite(value):
            raise self.error(key, "not a finite number", "a finite number", value)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"a number in [{minimum}, {maximum}]" if maximum is not None \
                else f"a number >= {minimum}"
            raise self.error(key, "out of range", bound, value)
        return float(value)

    def boolean(self, key: str, default: Any = ...) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "wrong type", "true or false", value)
        return value

    def string_list(self, key: str, default: Any = ...,
                    pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        value = self.raw(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "wrong type", "a list of strings", value)
        if pattern is not None:
            for item in value:
                if not pattern.match(item):
                    raise self.error(key, "malformed list item",
                                     f"strings matching {pattern.pattern}", item)
        return tuple(value)

    def table_(self, key: str, required: bool = False) -> _Reader:
        value = self.raw(key, ... if required else {})
        if not isinstance(value, dict):
            raise self.error(key, "wrong type", "a table", value)
        return _Reader(self.source, value, self._where(key))

    def tables(self, key: str) -> list[_Reader]:
        value = self.raw(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, "wrong type", "an array of tables ([[...]])", value)
        return [_Reader(self.source, v, f"{self._where(key)}[{i}]") for i, v in enumerate(value)]

    def offset_datetime(self, key: str, default: Any = ...) -> int | None:
        value = self.raw(key, default)
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise self.error(key, "wrong type",
                             "a TOML offset date-time such as 2026-10-01T00:00:00+08:00", value)
        # floor, also before 1970 with fractional seconds (int() would round toward 0)
        return (value - _EPOCH) // dt.timedelta(seconds=1)

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self._seen)
        if unknown:
            raise RulesError("unknown key", file=self.source, column=self._where(unknown[0]),
                             expected="one of the keys documented in docs/rules.md",
                             found=repr(unknown[0]))


def _parse_offset(reader: _Reader, key: str, default: Any = ...) -> int | None:
    text = reader.string(key, default)
    if text is None:
        return None
    match = _OFFSET_RE.match(text)
    if not match:
        raise reader.error(key, "malformed UTC offset", "+HH:MM or -HH:MM", text)
    sign, hours, minutes = match.groups()
    total = int(hours) * 3600 + int(minutes) * 60
    if int(hours) > 18 or int(minutes) > 59:
        raise reader.error(key, "UTC offset out of range", "between -18:00 and +18:00", text)
    return -total if sign == "-" else total


def _parse_clock(reader: _Reader, key: str) -> int:
    text = reader.string(key)
    match = _CLOCK_RE.match(text)
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise reader.error(key, "malformed time of day", "HH:MM (00:00 .. 24:00)", text)
    minute = int(match.group(1)) * 60 + int(match.group(2))
    if minute > 1440:
        raise reader.error(key, "malformed time of day", "HH:MM (00:00 .. 24:00)", text)
    return minute % 1440


def _refuse_ambiguous_prefixes(source: str, table: str, key: str,
                               owners: list[tuple[str, tuple[str, ...]]]) -> None:
    """A prefix listed under two different names would make the longest-prefix lookup
    depend on the order of the file: refuse it."""
    owner_of: dict[str, str] = {}
    for index, (name, prefixes) in enumerate(owners):
        for prefix in prefixes:
            other = owner_of.setdefault(prefix, name)
            if other != name:
                raise RulesError(
                    "prefix listed under two names", file=source,
                    column=f"{table}[{index}].{key}",
                    expected=f"each prefix under one name only (it is already under {other!r})",
                    found=repr(prefix))


def parse_rules(text: str, source: str = "<memory>") -> Rules:
    """Parse and validate rules TOML text.  Raises :class:`RulesError`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"not valid TOML: {exc}", file=source) from None
    root = _Reader(source, doc, "")

    meta = root.table_("meta", required=True)
    schema = meta.integer("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise meta.error("schema", "unsupported rules schema", str(SCHEMA_VERSION), schema)
    name = meta.string("name")
    version = meta.string("version")
    timezone_offset_s = _parse_offset(meta, "timezone", "+00:00")
    default_utc_offset_s = _parse_offset(meta, "default_utc_offset", None)
    meta.finish()

    tol = root.table_("tolerances", required=True)
    delta = tol.integer("time_tolerance_s")
    window = tol.integer("time_window_s", 2 * delta + 2)
    if window < max(2 * delta, 2):
        raise tol.error("time_window_s", "window too small for the tolerance",
                        f"at least max(2*time_tolerance_s, 2) = {max(2 * delta, 2)}", window)
    tolerances = Tolerances(
        time_tolerance_s=delta,
        time_window_s=window,
        duration_tolerance_s=tol.integer("duration_tolerance_s"),
        charge_tolerance=tol.integer("charge_tolerance"),
    )
    tol.finish()

    disclosure_table = root.table_("disclosure")
    disclosure = disclosure_table.string("policy", "flags", choices=DISCLOSURE_POLICIES)
    min_cell_pairs = disclosure_table.integer("min_cell_pairs", 5, minimum=1)
    disclosure_table.finish()

    partials = root.table_("partials")
    partial_max_gap_s = partials.integer("max_gap_s", 2)
    partials.finish()

    exclusions = []
    for ex in root.tables("exclusions"):
        exclusions.append(Exclusion(
            name=ex.string("name", pattern=_ID_RE),
            field=ex.string("field", choices=EXCLUSION_FIELDS),
            equals=ex.integer("equals"),
            service=ex.string("service", None, choices=SERVICES),
        ))
        ex.finish()
    if len({e.name for e in exclusions}) != len(exclusions):
        raise RulesError("exclusion names must be unique", file=source, column="exclusions")

    cb = root.table_("circuit_breaker")
    circuit_breaker = CircuitBreaker(
        max_records=cb.integer("max_records", 100_000_000, minimum=1),
        max_size_ratio=cb.number("max_size_ratio", 2.0, minimum=1.0),
        min_records_for_ratio=cb.integer("min_records_for_ratio", 1000),
        max_disputed_share=cb.number("max_disputed_share", 0.05, maximum=1.0),
        max_unmatched_share=cb.number("max_unmatched_share", 0.05, maximum=1.0),
        max_invalid_share=cb.number("max_invalid_share", 0.01, maximum=1.0),
    )
    cb.finish()

    rating = root.table_("rating")
    unknown_operator = rating.string("unknown_operator", "OTHER", pattern=_ID_RE)
    default_call_type = rating.string("default_call_type", "domestic", pattern=_ID_RE)
    rating.finish()

    operators = []
    for op in root.tables("operators"):
        operators.append(Operator(
            id=op.string("id", pattern=_ID_RE),
            name=op.string("name", ""),
            prefixes=op.string_list("prefixes", pattern=_DIGITS_RE),
        ))
        op.finish()
    operator_ids = [o.id for o in operators]
    if len(set(operator_ids)) != len(operator_ids) or unknown_operator in operator_ids:
        raise RulesError("operator ids must be unique and differ from rating.unknown_operator",
                         file=source, column="operators")

    call_types = []
    for ct in root.tables("call_types"):
        call_types.append(CallType(
            name=ct.string("name", pattern=_ID_RE),
            called_prefixes=ct.string_list("called_prefixes", pattern=_DIGITS_RE),
        ))
        ct.finish()
    _refuse_ambiguous_prefixes(source, "operators", "prefixes",
                               [(o.id, o.prefixes) for o in operators])
    _refuse_ambiguous_prefixes(source, "call_types", "called_prefixes",
                               [(c.name, c.called_prefixes) for c in call_types])
    call_type_names = {c.name for c in call_types} | {default_call_type}

    bands = []
    for band in root.tables("time_bands"):
        bands.append(TimeBand(
            name=band.string("name", pattern=_ID_RE),
            start_minute=_parse_clock(band, "from"),
            end_minute=_parse_clock(band, "to"),
        ))
        band.finish()
    if not bands:
        bands = [TimeBand(name="all_day", start_minute=0, end_minute=0)]
    coverage = [sum(b.contains(m) for b in bands) for m in range(1440)]
    if any(c != 1 for c in coverage):
        minute = next(m for m, c in enumerate(coverage) if c != 1)
        raise RulesError(
            "time bands must cover every minute of the day exactly once", file=source,
            column="time_bands", expected="exactly one band",
            found=f"{coverage[minute]} bands at {minute // 60:02d}:{minute % 60:02d}",
        )
    band_names = {b.name for b in bands}

    tariffs = []
    party_ids = set(operator_ids) | {unknown_operator}
    for tr in root.tables("tariffs"):
        tariff = Tariff(
            payer=tr.string("payer"),
            payee=tr.string("payee"),
            service=tr.string("service", choices=(*SERVICES, WILDCARD)),
            call_type=tr.string("call_type", WILDCARD),
            time_band=tr.string("time_band", WILDCARD),
            effective_from=tr.offset_datetime("effective_from"),  # type: ignore[arg-type]
            effective_to=tr.offset_datetime("effective_to", None),
            rate=tr.integer("rate", maximum=MAX_RATE),
            minimum=tr.integer("minimum", 0, maximum=MAX_BILLING_UNIT),
            increment=tr.integer("increment", 1, minimum=1, maximum=MAX_BILLING_UNIT),
        )
        for key, value, allowed in (
            ("payer", tariff.payer, party_ids),
            ("payee", tariff.payee, party_ids),
            ("call_type", tariff.call_type, call_type_names),
            ("time_band", tariff.time_band, band_names),
        ):
            if value != WILDCARD and value not in allowed:
                raise tr.error(key, "refers to nothing defined",
                               " | ".join(sorted(allowed | {WILDCARD})), value)
        if tariff.effective_to is not None and tariff.effective_to <= tariff.effective_from:
            raise tr.error("effective_to", "empty effective period",
                           "effective_to later than effective_from", tariff.effective_to)
        tr.finish()
        tariffs.append(tariff)
    if not tariffs:
        raise RulesError("no tariffs: every record would be unrateable", file=source,
                         column="tariffs", expected="at least one [[tariffs]] row", found="none")

    billing_table = root.raw("billing", None)
    if billing_table is not None and not isinstance(billing_table, dict):
        raise root.error("billing", "wrong type", "a table (docs/billing.md)", billing_table)
    try:
        billing = rfc8785.dumps(billing_table).decode("utf-8") if billing_table else ""
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        raise root.error("billing", "values the billing terms cannot hold",
                         "strings, integers, booleans, tables and arrays (docs/billing.md)",
                         billing_table) from None

    root.finish()
    return Rules(
        name=name, version=version, timezone_offset_s=timezone_offset_s,  # type: ignore[arg-type]
        default_utc_offset_s=default_utc_offset_s, tolerances=tolerances, disclosure=disclosure,
        min_cell_pairs=min_cell_pairs, partial_max_gap_s=partial_max_gap_s, exclusions=tuple(exclusions),
        circuit_breaker=circuit_breaker, unknown_operator=unknown_operator,
        operators=tuple(operators), default_call_type=default_call_type,
        call_types=tuple(call_types), time_bands=tuple(bands), tariffs=tuple(tariffs),
        billing=billing, source=source,
    )


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file.  Raises :class:`RulesError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a UTF-8 byte-order mark is harmless
    except FileNotFoundError:
        raise RulesError("rules file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise RulesError(f"rules file is not UTF-8 ({exc.reason} at byte {exc.start})",
                         file=str(path)) from None
    except OSError as exc:
        raise RulesError(f"cannot read rules file: {exc.strerror}", file=str(path)) from None
    return parse_rules(text, source=str(path))
