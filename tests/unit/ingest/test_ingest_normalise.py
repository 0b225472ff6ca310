"""Properties of normalisation: start times and E.164 numbers, vectorised vs Python."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ingest.timestamps import MAX_EPOCH_S, MIN_EPOCH_S, parse_iso_timestamps
from engine.ingest.validation import E164_PATTERN
from tests.unit.ingest.ingest_reference import e164_digits, parse_time

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def parse_all(texts: list[str | None], default_offset_s: int | None) -> list[tuple[str, int | None]]:
    parsed = parse_iso_timestamps(pl.col("t"), default_offset_s)
    frame = pl.DataFrame({"t": pl.Series(texts, dtype=pl.String)}).with_columns(parsed.parts)
    out = frame.select(parsed.epoch_s.alias("epoch"), parsed.malformed.alias("malformed"),
                       parsed.missing_offset.alias("no_offset"))
    states = []
    for epoch, malformed, no_offset in out.iter_rows():
        states.append(("malformed", None) if malformed else ("no_offset", None) if no_offset
                      else ("ok", epoch))
    return states


offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: dt.timedelta(minutes=m))


@st.composite
def iso_texts(draw: st.DrawFn) -> tuple[str, int]:
    """An ISO-8601 text in the accepted form and its epoch, computed with datetime."""
    offset = draw(offsets)
    local = draw(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)))
    local = local.replace(microsecond=0)
    digits = draw(st.integers(0, 9))
    fraction = "" if digits == 0 else "." + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
    if offset == dt.timedelta(0) and draw(st.booleans()):
        suffix = "Z"
    else:
        sign = "-" if offset < dt.timedelta(0) else "+"
        minutes = abs(offset) // dt.timedelta(minutes=1)
        suffix = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + fraction + suffix
    if len(local.strftime("%Y")) < 4:  # strftime does not pad years < 1000 everywhere
        text = f"{local.year:04d}" + local.strftime("-%m-%dT%H:%M:%S") + fraction + suffix
    aware = local.replace(tzinfo=dt.timezone(offset))
    return text, (aware - EPOCH) // dt.timedelta(seconds=1)


@settings(max_examples=60, deadline=None)
@given(st.lists(iso_texts(), min_size=1, max_size=50))
def test_iso_times_with_offsets_equal_datetime(cases: list[tuple[str, int]]) -> None:
    got = parse_all([text for text, _ in cases], None)
    assert got == [("ok", epoch) for _, epoch in cases]
    # and Python's own ISO parser agrees (fractions truncated, so floor of the instant)
    for text, epoch in cases:
        if len(text.split(".")[-1]) <= 16:
            parsed = dt.datetime.fromisoformat(text)
            assert (parsed - EPOCH) // dt.timedelta(seconds=1) == epoch


@settings(max_examples=40, deadline=None)
@given(st.lists(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
                min_size=1, max_size=30),
       st.one_of(st.none(), st.integers(-18 * 60, 18 * 60).map(lambda m: m * 60)))
def test_times_without_offset_use_the_default(locals_: list[dt.datetime],
                                              default_offset_s: int | None) -> None:
    texts = [f"{t.year:04d}" + t.strftime("-%m-%dT%H:%M:%S") for t in locals_]
    got = parse_all(texts, default_offset_s)
    if default_offset_s is None:
        assert got == [("no_offset", None)] * len(texts)
    else:
        tz = dt.timezone(dt.timedelta(seconds=default_offset_s))
        want = [("ok", (t.replace(microsecond=0, tzinfo=tz) - EPOCH) // dt.timedelta(seconds=1))
                for t in locals_]
        assert got == want


TIME_ALPHABET = "0123456789-T:+Z. t"


@st.composite
def near_iso(draw: st.DrawFn) -> str:
    """Valid-looking texts with a few characters changed, dropped or added."""
    base = draw(st.sampled_from([
        "2026-10-01T10:00:00+08:00", "2024-02-29T23:59:59Z", "2023-02-29T00:00:00-03:30",
        "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999999-23:59",
        "2026-04-31T12:00:00Z", "2026-10-01T10:00:00", "2026-10-01T10:00:00.5",
    ]))
    chars = list(base)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.integers(0, 2))
        position = draw(st.integers(0, len(chars)))
        if action == 0 and position < len(chars):
            chars[position] = draw(st.sampled_from(TIME_ALPHABET))
        elif action == 1 and position < len(chars):
            del chars[position]
        else:
            chars.insert(position, draw(st.sampled_from(TIME_ALPHABET)))
    return "".join(chars)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(near_iso(), st.text(TIME_ALPHABET, max_size=30)), min_size=1,
                max_size=40),
       st.sampled_from([None, 8 * 3600, -(5 * 3600 + 1800)]))
def test_any_text_parses_like_the_plain_reference(texts: list[str],
                                                  default_offset_s: int | None) -> None:
    got = parse_all(texts, default_offset_s)
    want = [parse_time(t, default_offset_s) if t else ("malformed", None) for t in texts]
    assert got == want
    for (state, epoch), text in zip(got, texts, strict=True):
        if state == "ok":
            assert MIN_EPOCH_S - 86400 <= epoch <= MAX_EPOCH_S + 86400, text


def test_missing_is_not_malformed() -> None:
    assert parse_all([None], None) == [("ok", None)]  # validation reports missing_value first


NUMBER_ALPHABET = "0123456789+ -١٢x"


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.text(NUMBER_ALPHABET, max_size=18),
                          st.from_regex(r"\A\+?[0-9]{4,17}\Z")), min_size=1, max_size=50))
def test_e164_normalisation_equals_the_obvious_check(texts: list[str]) -> None:
    frame = pl.DataFrame({"n": texts}).select(
        pl.col("n").str.contains(E164_PATTERN).alias("ok"),
        pl.col("n").str.strip_prefix("+").alias("digits"))
    got = [digits if ok else None for ok, digits in frame.iter_rows()]
    assert got == [e164_digits(t) for t in texts]


def test_e164_examples() -> None:
    texts = ["+8613800000001", "8613800000001", "123456", "12345", "123456789012345",
             "1234567890123456", "0123456", "+0123456", "++123456", "86 138", "١٢٣٤٥٦٧"]
    frame = pl.DataFrame({"n": texts}).select(pl.col("n").str.contains(E164_PATTERN))
    assert frame.to_series().to_list() == [True, True, True, False, True, False, False, False,
                                           False, False, False]
