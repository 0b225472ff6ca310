"""Rating: vectorised ``engine.ingest.rate`` vs a per-record reading of docs/rules.md.

Random rules (operators and call types with overlapping prefixes of different
lengths, time bands that wrap midnight, a local time zone, tariff rows with
wildcards and overlapping effective periods in random order) and random records;
every record's payer, payee, call type, time band and rated charge must equal the
reference's, and a record no row applies to must have no tariff.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.ingest import rate
from engine.ingest.rating import _END_OF_TIME, _START_BASE, _START_BITS, RatedArrays, rate_arrays
from engine.rules import Rules, parse_rules
from tests.unit.ingest import ingest_reference as ref
from tests.unit.ingest.ingest_helpers import EXAMPLE_RULES

PREFIX_POOL = ["1", "12", "44", "86", "861", "8613", "86138", "861380", "86131", "8615"]
T_BASE = 1_790_784_000  # 2026-10-01T00:00:00+08:00
EPOCHS = [T_BASE + k * 86_400 * 3 for k in range(-2, 4)]


def toml_time(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def random_rules(draw: st.DrawFn) -> Rules:
    prefixes = draw(st.lists(st.sampled_from(PREFIX_POOL), unique=True, max_size=7))
    n_ops = draw(st.integers(0, 3))
    ops = [f"OP{i}" for i in range(n_ops)]
    default_call_type = draw(st.sampled_from(["domestic", "intl"]))
    lines = ["[meta]", 'name = "random"', 'version = "1"',
             f'timezone = "{draw(st.sampled_from(["+08:00", "-05:30", "+00:00", "+13:45"]))}"',
             "[tolerances]", "time_tolerance_s = 2", "duration_tolerance_s = 1",
             "charge_tolerance = 1", "[rating]", 'unknown_operator = "OTHER"',
             f'default_call_type = "{default_call_type}"']
    owned = draw(st.lists(st.sampled_from(ops), min_size=len(prefixes), max_size=len(prefixes))) \
        if ops else []
    for op in ops:
        mine = [p for p, owner in zip(prefixes, owned, strict=True) if owner == op]
        lines += ["[[operators]]", f'id = "{op}"', f"prefixes = {mine!r}".replace("'", '"')]
    ct_prefixes = draw(st.lists(st.sampled_from(PREFIX_POOL), unique=True, max_size=4))
    ct_names = ["intl", "special"]
    ct_owner = draw(st.lists(st.sampled_from(ct_names), min_size=len(ct_prefixes),
                             max_size=len(ct_prefixes)))
    for name in ct_names:
        mine = [p for p, owner in zip(ct_prefixes, ct_owner, strict=True) if owner == name]
        if mine:
            lines += ["[[call_types]]", f'name = "{name}"',
                      f"called_prefixes = {mine!r}".replace("'", '"')]
    cuts = draw(st.lists(st.integers(0, 1439), unique=True, max_size=4).map(sorted))
    band_names = []
    if len(cuts) >= 2:
        for i, cut in enumerate(cuts):
            name = draw(st.sampled_from(["peak", "offpeak", "night"]))
            band_names.append(name)
            nxt = cuts[(i + 1) % len(cuts)]
            lines += ["[[time_bands]]", f'name = "{name}"',
                      f'from = "{cut // 60:02d}:{cut % 60:02d}"',
                      f'to = "{nxt // 60:02d}:{nxt % 60:02d}"']
    else:
        band_names = ["all_day"]
    defined_call_types = set(ct_owner) | {default_call_type}
    for _ in range(draw(st.integers(1, 8))):
        frm = draw(st.sampled_from(EPOCHS))
        to = draw(st.one_of(st.none(), st.sampled_from([e for e in EPOCHS if e > frm] or [None])))
        tariff = ["[[tariffs]]",
                  f'payer = "{draw(st.sampled_from(["*", "*", "OTHER", *ops]))}"',
                  f'payee = "{draw(st.sampled_from(["*", "*", "OTHER", *ops]))}"',
                  f'service = "{draw(st.sampled_from(["*", "voice", "sms", "data"]))}"',
                  f'call_type = "{draw(st.sampled_from(["*", "*", *sorted(defined_call_types)]))}"',
                  f'time_band = "{draw(st.sampled_from(["*", "*", *band_names]))}"',
                  f"effective_from = {toml_time(frm)}",
                  f"rate = {draw(st.integers(0, 120))}",
                  f"minimum = {draw(st.integers(0, 120))}",
                  f"increment = {draw(st.integers(1, 60))}"]
        if to is not None:
            tariff.append(f"effective_to = {toml_time(to)}")
        lines += tariff
    return parse_rules("\n".join(lines), source="<random rules>")


@st.composite
def random_records(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(1, 40))
    rows = []
    for _ in range(n):
        service = draw(st.integers(0, 2))

        def number() -> str:
            head = draw(st.sampled_from(PREFIX_POOL + ["9", "7"]))
            return (head + "0123456789")[:draw(st.integers(max(6, len(head)), 15))]

        rows.append({
            "service": service, "calling": number(), "called": number(),
            "start": draw(st.sampled_from(EPOCHS)) + draw(st.integers(-2, 2)) * 3
            + draw(st.integers(0, 86_400)),
            "duration_s": 0 if service == 1 else draw(st.sampled_from([0, 1, 6, 59, 60, 61, 3601])),
            "volume_kb": 0 if service != 2 else draw(st.sampled_from([0, 1, 1023, 1024, 5000])),
        })
    return pl.DataFrame(rows, schema={"service": pl.UInt8, "calling": pl.String,
                                      "called": pl.String, "start": pl.Int64,
                                      "duration_s": pl.Int64, "volume_kb": pl.Int64})


def reference_rows(rules: Rules, records: pl.DataFrame) -> list[tuple]:
    out = []
    for r in records.iter_rows(named=True):
        out.append((ref.operator_of(rules, r["calling"]), ref.operator_of(rules, r["called"]),
                    ref.call_type_of(rules, r["called"]), ref.band_of(rules, r["start"]),
                    ref.rate_record(rules, r["service"], r["calling"], r["called"], r["start"],
                                    r["duration_s"], r["volume_kb"])))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=random_rules(), records=random_records())
def test_rating_equals_reference(rules: Rules, records: pl.DataFrame) -> None:
    got = rate(records, rules)
    assert got.columns == ["payer", "payee", "call_type", "time_band", "tariff", "rated_charge"]
    assert got.rows() and len(got.rows()) == records.height
    have = [(a, b, c, d, e) for a, b, c, d, _, e in got.rows()]
    assert have == reference_rows(rules, records)
    # the tariff index points at a row that applies, and is the first that does
    for (_, _, _, _, tariff, rated), r in zip(
            got.rows(), records.iter_rows(named=True), strict=True):
        event("tariff found" if tariff is not None else "no tariff")
        if tariff is None:
            assert rated is None
            continue
        t = rules.tariffs[tariff]
        assert t.effective_from <= r["start"] and (t.effective_to is None
                                                   or r["start"] < t.effective_to)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=random_rules(), records=random_records(), chunk_rows=st.integers(1, 7))
def test_rating_in_slices_equals_rating_at_once(rules: Rules, records: pl.DataFrame,
                                                chunk_rows: int) -> None:
    whole = rate_arrays(records, rules)
    sliced = rate_arrays(records, rules, chunk_rows=chunk_rows)
    for name in RatedArrays.__dataclass_fields__:
        assert getattr(sliced, name).dtype == getattr(whole, name).dtype, name
        assert np.array_equal(getattr(sliced, name), getattr(whole, name)), name


def test_example_rules_known_answers() -> None:
    """Hand-computed charges under docs/example_rules.toml."""
    from engine.rules import load_rules

    rules = load_rules(EXAMPLE_RULES)
    t = 1_790_820_000  # 2026-10-01T10:00:00+08:00: peak, before the 10-15 rate change
    after = 1_792_116_000  # 2026-10-16T10:00:00+08:00
    night = 1_790_866_800  # 2026-10-01T23:00:00+08:00: offpeak
    records = pl.DataFrame({
        "service": [0, 0, 0, 0, 0, 1, 2, 2, 0],
        "calling": ["8613800000001"] * 9,
        "called": ["8613100000002"] * 8 + ["4420000000"],
        "start": [t, t, t, after, night, t, t, t, t],
        "duration_s": [61, 60, 0, 61, 1, 0, 0, 0, 7],
        "volume_kb": [0, 0, 0, 0, 0, 0, 1500, 0, 0],
    }, schema_overrides={"service": pl.UInt8})
    got = rate(records, rules)
    # 61 s peak old rate: 120 s * 6 / 60 = 12; 60 s: 6; 0 s: 0; after 10-15 rate 5: 10;
    # offpeak 1 s -> minimum 60 s * 3 / 60 = 3; sms 1; data (1500*3+512)//1024 = 4; 0 KB: 0;
    # international (44...): 7 s -> 12 s (min 6, incr 6) * 60 / 60 = 12
    assert got.get_column("rated_charge").to_list() == [12, 6, 0, 10, 3, 1, 4, 0, 12]
    assert got.get_column("payer").to_list() == ["CMCC"] * 9
    assert got.get_column("payee").to_list() == ["CUCC"] * 8 + ["OTHER"]
    assert got.get_column("call_type").to_list() == ["domestic"] * 8 + ["international"]
    assert got.get_column("time_band").to_list()[3:5] == ["peak", "offpeak"]


def test_rating_an_empty_frame() -> None:
    from engine.rules import load_rules

    empty = pl.DataFrame(schema={"service": pl.UInt8, "calling": pl.String, "called": pl.String,
                                 "start": pl.Int64, "duration_s": pl.Int64, "volume_kb": pl.Int64})
    assert rate(empty, load_rules(EXAMPLE_RULES)).height == 0


def test_key_packing_covers_every_representable_start() -> None:
    assert _END_OF_TIME - _START_BASE < 1 << _START_BITS
    assert np.int64(2**23) << _START_BITS < 2**63  # room for 8 million combinations


@pytest.mark.parametrize("minimum,increment,duration,expected", [
    (60, 60, 0, 0), (60, 60, 1, 5), (60, 60, 60, 5), (60, 60, 61, 10),
    # rate 5 per 60 s, per-second billing: 6 s = 0.5 fen rounds up, 5 s = 0.42 rounds down
    (0, 1, 6, 1), (0, 1, 5, 0), (0, 1, 18, 2), (0, 1, 17, 1),
])
def test_voice_billing_and_half_up_rounding(minimum: int, increment: int, duration: int,
                                            expected: int) -> None:
    rules = parse_rules(f"""
[meta]
name = "r"
version = "1"
[tolerances]
time_tolerance_s = 1
duration_tolerance_s = 1
charge_tolerance = 1
[[tariffs]]
payer = "*"
payee = "*"
service = "*"
effective_from = 2026-01-01T00:00:00Z
rate = 5
minimum = {minimum}
increment = {increment}
""")
    frame = pl.DataFrame({"service": [0], "calling": ["8613800000001"], "called": ["861"],
                          "start": [T_BASE], "duration_s": [duration], "volume_kb": [0]},
                         schema_overrides={"service": pl.UInt8})
    assert rate(frame, rules).get_column("rated_charge").to_list() == [expected]
