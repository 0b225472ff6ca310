"""The vectorised rate-class classification equals the rules' per-record lookups."""

from __future__ import annotations

import dataclasses

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.report.classes import classify, longest_prefix
from engine.rules import CallType, Operator, Rules, TimeBand
from tests.unit.report.report_fixtures import example_rules

digits = st.text(alphabet="0123456789", min_size=1, max_size=6)


@st.composite
def rules_and_records(draw: st.DrawFn) -> tuple[Rules, pl.DataFrame]:
    # prefixes drawn from a small alphabet so that they nest and collide:
    # "8", "86", "861" in different operators, the same prefix in two operators
    short = st.text(alphabet="861", min_size=1, max_size=4)
    operators = tuple(
        Operator(id=f"OP{i}", name="", prefixes=tuple(draw(st.lists(short, min_size=1,
                                                                     max_size=4))))
        for i in range(draw(st.integers(0, 4))))
    call_types = tuple(
        CallType(name=f"ct{i}", called_prefixes=tuple(draw(st.lists(short, min_size=1,
                                                                      max_size=3))))
        for i in range(draw(st.integers(0, 3))))
    cuts = sorted(draw(st.sets(st.integers(0, 1439), min_size=1, max_size=5)))
    bands = tuple(TimeBand(name=f"b{i}", start_minute=cut,
                           end_minute=cuts[(i + 1) % len(cuts)])
                  for i, cut in enumerate(cuts))
    offset = draw(st.integers(-18 * 3600, 18 * 3600).map(lambda s: s - s % 60))
    rules = dataclasses.replace(
        example_rules(), operators=operators, call_types=call_types, time_bands=bands,
        timezone_offset_s=offset, default_call_type="dflt", unknown_operator="UNK")
    n = draw(st.integers(0, 40))
    numbers = st.builds(lambda a, b: a + b, st.text(alphabet="8612", max_size=4),
                        st.text(alphabet="0123456789", max_size=8)).filter(bool)
    frame = pl.DataFrame({
        "calling": draw(st.lists(numbers, min_size=n, max_size=n)),
        "called": draw(st.lists(numbers, min_size=n, max_size=n)),
        "start": draw(st.lists(st.integers(-10**10, 10**10), min_size=n, max_size=n)),
    }, schema={"calling": pl.String, "called": pl.String, "start": pl.Int64})
    return rules, frame


@settings(max_examples=150, deadline=None)
@given(rules_and_records())
def test_classify_equals_per_record_rules_lookups(case: tuple[Rules, pl.DataFrame]) -> None:
    rules, frame = case
    got = classify(frame, rules)
    for row in got.iter_rows(named=True):
        assert row["payer"] == rules.operator_of(row["calling"]), row
        assert row["payee"] == rules.operator_of(row["called"]), row
        assert row["call_type"] == rules.call_type_of(row["called"]), row
        assert row["time_band"] == rules.time_band_of(row["start"]), row


def test_longest_prefix_prefers_longest_then_first() -> None:
    frame = pl.DataFrame({"n": ["8613900", "8610000", "8699999", "1234", "86"]})
    table = [("86", "short"), ("8613", "long"), ("8613", "later-duplicate"), ("861", "mid")]
    got = frame.select(longest_prefix("n", table, "none"))["n"].to_list()
    assert got == ["long", "mid", "short", "none", "short"]


def test_example_rules_classes_on_known_numbers() -> None:
    rules = example_rules()
    # 2026-10-05 08:00 and 23:30 local (+08:00)
    peak, offpeak = 1_791_158_400, 1_791_214_200
    frame = pl.DataFrame({"calling": ["8613412345678", "8613012345678", "4420123456"],
                          "called": ["8613012345678", "4420123456", "8613912345678"],
                          "start": [peak, offpeak, peak]})
    got = classify(frame, rules).select("payer", "payee", "call_type", "time_band").rows()
    assert got == [("CMCC", "CUCC", "domestic", "peak"),
                   ("CUCC", "OTHER", "international", "offpeak"),
                   ("OTHER", "CMCC", "domestic", "peak")]
