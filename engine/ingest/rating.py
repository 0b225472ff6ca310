"""Rating canonical records from the rules' tariff table (docs/rules.md "Rating").

Vectorised over a whole frame:

1. payer / payee / call type by longest prefix: for each distinct prefix length,
   from the longest, a dictionary lookup of the number's first digits; the first
   hit wins (ties inside one length cannot happen: :mod:`engine.rules` refuses a
   prefix listed twice).
2. time band: a 1440-entry table from local minute of the day to band.
3. tariff row: the first row in file order matching the record's (payer, payee,
   service, call type, time band) — or ``"*"`` — whose effective period contains
   the start.  For each distinct combination of the five present in the data, the
   time axis is cut at every effective_from / effective_to of the rows that could
   apply, and each piece gets its first-match row; records then find their piece
   by binary search (numpy ``searchsorted``) on (combination, start).
4. amount: the integer formulas of docs/rules.md on numpy int64 arrays.  The
   bounds of :mod:`engine.rules` (rate ≤ 10^6, minimum and increment ≤ 10^9) and of
   validation (values ≤ 10^12) keep every product below 2^63.

Records are rated in slices of :data:`CHUNK_ROWS`: each record's rating depends on
that record alone, and the dozen temporary int64 arrays of a slice then cost tens of
megabytes instead of gigabytes at 10^7 records.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

from engine.ingest.schema import DATA, SERVICES, SMS, VOICE
from engine.ingest.timestamps import MAX_EPOCH_S, MIN_EPOCH_S
from engine.rules import WILDCARD, Rules, Tariff

#: Shifts used to pack (combination, start) into one sortable int64.
_START_BASE = MIN_EPOCH_S - 2 * 86_400
_START_BITS = 39
_END_OF_TIME = MAX_EPOCH_S + 2 * 86_400  # (_END_OF_TIME - _START_BASE) < 2**39: a unit test
#: Records rated at once (see the module docstring).
CHUNK_ROWS = 1 << 20


@dataclass(frozen=True)
class RatingColumns:
    """Names (as strings) and ids behind the per-record codes."""

    parties: tuple[str, ...]
    """Operator ids, then ``rules.unknown_operator`` (index = payer/payee code)."""
    call_types: tuple[str, ...]
    time_bands: tuple[str, ...]


def rating_names(rules: Rules) -> RatingColumns:
    parties = tuple(op.id for op in rules.operators) + (rules.unknown_operator,)
    call_types = tuple(dict.fromkeys([ct.name for ct in rules.call_types]
                                     + [rules.default_call_type]))
    bands = tuple(dict.fromkeys(b.name for b in rules.time_bands))
    return RatingColumns(parties, call_types, bands)


def _longest_prefix(number: pl.Expr, table: dict[str, int], default: int) -> pl.Expr:
    """Code of the longest prefix of ``number`` in ``table`` (prefix → code), else default."""
    by_length: dict[int, dict[str, int]] = {}
    for prefix, code in table.items():
        by_length.setdefault(len(prefix), {})[prefix] = code
    lookups = [
        number.str.slice(0, length).replace_strict(mapping, default=None, return_dtype=pl.Int64)
        for length, mapping in sorted(by_length.items(), reverse=True)
    ]
    # the default as a column (not a literal), so that a select of codes alone has the
    # frame's height even when the table is empty
    fallback = pl.when(number.is_null() | number.is_not_null()).then(pl.lit(default, pl.Int64))
    return pl.coalesce([*lookups, fallback])


def _prefix_tables(rules: Rules, names: RatingColumns) -> tuple[dict[str, int], dict[str, int]]:
    operator_prefixes: dict[str, int] = {}
    for index, op in enumerate(rules.operators):
        for prefix in op.prefixes:
            operator_prefixes.setdefault(prefix, index)  # first listed wins, as Rules.operator_of
    call_type_prefixes: dict[str, int] = {}
    for ct in rules.call_types:
        for prefix in ct.called_prefixes:
            call_type_prefixes.setdefault(prefix, names.call_types.index(ct.name))
    return operator_prefixes, call_type_prefixes


def _band_of_minute(rules: Rules, names: RatingColumns) -> np.ndarray:
    table = np.full(1440, -1, dtype=np.int64)
    for minute in range(1440):
        for band in rules.time_bands:  # validated: exactly one contains each minute
            if band.contains(minute):
                table[minute] = names.time_bands.index(band.name)
                break
    return table


def _segments(rules: Rules, names: RatingColumns,
              combos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each combination (rows of ``combos``: payer, payee, service, call type, band
    codes), the pieces of the time axis with their first-matching tariff index (-1: none).
    Returns (combination index, piece start, piece tariff), sorted by the first two."""

    @cache
    def pieces(candidates: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        tariffs = [rules.tariffs[i] for i in candidates]
        cuts = sorted({t.effective_from for t in tariffs}
                      | {t.effective_to for t in tariffs if t.effective_to is not None})
        out = []
        for cut in cuts:
            winner = -1
            for index, t in zip(candidates, tariffs, strict=True):
                if t.effective_from <= cut and (t.effective_to is None or cut < t.effective_to):
                    winner = index
                    break
            out.append((cut, winner))
        return tuple(out)

    def matches(t: Tariff, payer: str, payee: str, service: str, call_type: str,
                band: str) -> bool:
        return all(want in (WILDCARD, have) for want, have in (
            (t.payer, payer), (t.payee, payee), (t.service, service),
            (t.call_type, call_type), (t.time_band, band)))

    combo_index, piece_start, piece_tariff = [], [], []
    for k, (payer, payee, service, call_type, band) in enumerate(combos.tolist()):
        candidates = tuple(
            i for i, t in enumerate(rules.tariffs)
            if matches(t, names.parties[payer], names.parties[payee], SERVICES[service],
                       names.call_types[call_type], names.time_bands[band]))
        for cut, winner in pieces(candidates):
            combo_index.append(k)
            piece_start.append(min(max(cut, _START_BASE), _END_OF_TIME))
            piece_tariff.append(winner)
    return (np.asarray(combo_index, dtype=np.int64), np.asarray(piece_start, dtype=np.int64),
            np.asarray(piece_tariff, dtype=np.int64))


@dataclass(frozen=True)
class RatedArrays:
    """Per-record codes and results of :func:`rate_arrays` (numpy, aligned with the input)."""

    payer: np.ndarray
    payee: np.ndarray
    call_type: np.ndarray
    time_band: np.ndarray
    tariff: np.ndarray
    """Index into ``rules.tariffs``; -1 where no row applies."""
    rated_charge: np.ndarray
    """Minor units; meaningless where ``tariff`` is -1."""


def rate_arrays(records: pl.DataFrame, rules: Rules, *,
                chunk_rows: int = CHUNK_ROWS) -> RatedArrays:
    """The vectorised rating of :func:`rate`, as numpy arrays of codes."""
    if records.height <= chunk_rows:
        return _rate_slice(records, rules)
    parts = [_rate_slice(records.slice(offset, chunk_rows), rules)
             for offset in range(0, records.height, chunk_rows)]
    return RatedArrays(*(np.concatenate([getattr(part, name) for part in parts])
                         for name in RatedArrays.__dataclass_fields__))


def classify_numbers(calling: pl.Expr, called: pl.Expr, rules: Rules) -> list[pl.Expr]:
    """The rate class of the numbers (E.164 digits without ``+``): ``payer``, ``payee`` and
    ``call_type`` codes (UInt8, indices into :func:`rating_names`) by longest prefix.  The
    one place where numbers are classified; ingest keeps the codes, so nothing later needs
    the number strings."""
    names = rating_names(rules)
    operator_prefixes, call_type_prefixes = _prefix_tables(rules, names)
    unknown = len(names.parties) - 1
    default_call_type = names.call_types.index(rules.default_call_type)
    return [
        _longest_prefix(calling, operator_prefixes, unknown).cast(pl.UInt8).alias("payer"),
        _longest_prefix(called, operator_prefixes, unknown).cast(pl.UInt8).alias("payee"),
        _longest_prefix(called, call_type_prefixes, default_call_type).cast(pl.UInt8)
        .alias("call_type"),
    ]


def price(rules: Rules, payer: np.ndarray, payee: np.ndarray, service: np.ndarray,
          call_type: np.ndarray, start: np.ndarray, duration_s: np.ndarray,
          volume_kb: np.ndarray) -> RatedArrays:
    """Time band, tariff row and rated amount of records given their rate-class codes."""
    names = rating_names(rules)
    payer = np.asarray(payer, dtype=np.int64)
    payee = np.asarray(payee, dtype=np.int64)
    service = np.asarray(service, dtype=np.int64)
    call_type = np.asarray(call_type, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    n = len(start)
    minute = ((start + rules.timezone_offset_s) // 60) % 1440
    band = _band_of_minute(rules, names)[minute]
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return RatedArrays(payer, payee, call_type, band, empty, empty)

    # one integer per combination, then dense ids of the combinations present
    packed = payer
    for radix, code in ((len(names.parties), payee), (len(SERVICES), service),
                        (len(names.call_types), call_type), (len(names.time_bands), band)):
        packed = packed * radix + code
    _, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
    combos = np.column_stack([payer[first], payee[first], service[first], call_type[first],
                              band[first]])
    combo_index, piece_start, piece_tariff = _segments(rules, names, combos)

    tariff = np.full(n, -1, dtype=np.int64)
    if len(piece_start):
        inverse = inverse.astype(np.int64).reshape(-1)
        record_key = (inverse << _START_BITS) | (start - _START_BASE)
        piece_key = (combo_index << _START_BITS) | (piece_start - _START_BASE)
        position = np.searchsorted(piece_key, record_key, side="right") - 1
        safe = np.maximum(position, 0)
        found = (position >= 0) & (combo_index[safe] == inverse)
        tariff = np.where(found, piece_tariff[safe], -1)

    t_index = np.maximum(tariff, 0)
    rate_ = np.array([t.rate for t in rules.tariffs], dtype=np.int64)[t_index]
    minimum = np.array([t.minimum for t in rules.tariffs], dtype=np.int64)[t_index]
    increment = np.array([t.increment for t in rules.tariffs], dtype=np.int64)[t_index]
    amount = np.where(service == DATA, np.asarray(volume_kb, dtype=np.int64),
                      np.asarray(duration_s, dtype=np.int64))
    billed = np.where(amount == 0, 0,
                      np.maximum(minimum, -(-amount // increment) * increment))
    rated = np.select(
        [service == VOICE, service == SMS],
        [(billed * rate_ + 30) // 60, rate_],
        default=(billed * rate_ + 512) // 1024,
    )
    return RatedArrays(payer, payee, call_type, band, tariff, rated.astype(np.int64))


def _rate_slice(records: pl.DataFrame, rules: Rules) -> RatedArrays:
    codes = records.select(*classify_numbers(pl.col("calling"), pl.col("called"), rules))
    return price(rules, codes.get_column("payer").to_numpy(),
                 codes.get_column("payee").to_numpy(),
                 records.get_column("service").to_numpy(),
                 codes.get_column("call_type").to_numpy(),
                 records.get_column("start").to_numpy(),
                 records.get_column("duration_s").to_numpy(),
                 records.get_column("volume_kb").to_numpy())


def rate(records: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """Rate ``records`` on their own (docs/rules.md "Rating").

    ``records`` needs the columns ``service`` (0 voice, 1 sms, 2 data, as in the
    canonical records frame), ``calling``, ``called`` (E.164 digits without ``+``),
    ``start`` (UTC epoch seconds), ``duration_s`` and ``volume_kb``.  Returns a frame
    aligned with it: ``payer``, ``payee``, ``call_type``, ``time_band`` (String),
    ``tariff`` (Int64 index into ``rules.tariffs``, null when no row applies) and
    ``rated_charge`` (Int64 minor units, null when no row applies).
    """
    names = rating_names(rules)
    rated = rate_arrays(records, rules)

    def named(codes: np.ndarray, labels: tuple[str, ...]) -> pl.Series:
        return pl.Series(codes, dtype=pl.Int64).replace_strict(
            dict(enumerate(labels)), return_dtype=pl.String)

    has = rated.tariff >= 0
    return pl.DataFrame({
        "payer": named(rated.payer, names.parties),
        "payee": named(rated.payee, names.parties),
        "call_type": named(rated.call_type, names.call_types),
        "time_band": named(rated.time_band, names.time_bands),
        "tariff": pl.Series(np.where(has, rated.tariff, 0), dtype=pl.Int64),
        "rated_charge": pl.Series(rated.rated_charge, dtype=pl.Int64),
        "_has": pl.Series(has, dtype=pl.Boolean),
    }).select(
        "payer", "payee", "call_type", "time_band",
        pl.when("_has").then("tariff").alias("tariff"),
        pl.when("_has").then("rated_charge").alias("rated_charge"),
    )
