"""The rules data_gen writes: parsed by engine.rules, and the rating data_gen does with them.

engine.rules is the project's parser; data_gen may not import it (layering), so
these tests check that the two agree: the file parses, means what data_gen rates
with, and data_gen's vectorised rating equals a plain per-record rating through
engine.rules' own lookups (operator, call type, time band) and docs/rules.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datagen_literal import rate_one
from hypothesis import given, settings
from hypothesis import strategies as st

from data_gen.config import GenConfig
from data_gen.tariff import SERVICES, NumberClasses, ScenarioRules, build_rules, classify, rate
from engine.rules import Rules, load_rules, parse_rules


def _parsed(rules: ScenarioRules, tmp_path: Path) -> Rules:
    path = tmp_path / "rules.toml"
    path.write_text(rules.to_toml(), encoding="utf-8")
    return load_rules(path)


def test_written_rules_mean_what_data_gen_rates_with(tmp_path: Path) -> None:
    config = GenConfig(time_tolerance_s=4, time_window_s=10, duration_tolerance_s=3,
                       charge_tolerance=1, rate_change_day=20)
    ours = build_rules(config)
    parsed = _parsed(ours, tmp_path)
    assert parsed.tolerances.time_tolerance_s == 4
    assert parsed.tolerances.time_window_s == 10
    assert parsed.tolerances.duration_tolerance_s == 3
    assert parsed.tolerances.charge_tolerance == 1
    assert parsed.disclosure == "flags"
    assert parsed.default_utc_offset_s is None        # so that missing_utc_offset is invalid
    assert parsed.timezone_offset_s == ours.timezone_offset_s == 8 * 3600
    assert parsed.partial_max_gap_s == ours.partial_max_gap_s
    assert [(e.name, e.service, e.field, e.equals) for e in parsed.exclusions] == \
        [(e.name, e.service, e.field, e.equals) for e in ours.exclusions]
    assert [(o.id, o.prefixes) for o in parsed.operators] == \
        [(op_id, prefixes) for op_id, _, prefixes in ours.operators]
    assert [(c.name, c.called_prefixes) for c in parsed.call_types] == list(ours.call_types)
    assert [(b.name, b.start_minute, b.end_minute) for b in parsed.time_bands] == \
        [(b.name, b.start_minute, b.end_minute) for b in ours.time_bands]
    assert [(t.payer, t.payee, t.service, t.call_type, t.time_band, t.effective_from,
             t.effective_to, t.rate, t.minimum, t.increment) for t in parsed.tariffs] == \
        [(t.payer, t.payee, t.service, t.call_type, t.time_band, t.effective_from,
          t.effective_to, t.rate, t.minimum, t.increment) for t in ours.tariffs]
    assert ours.tariffs[0].effective_from == config.rate_change_epoch()


def test_rules_hash_follows_the_meaning(tmp_path: Path) -> None:
    base = GenConfig()
    same = _parsed(build_rules(base), tmp_path).sm3_hash()
    again = parse_rules(build_rules(GenConfig(seed=99, records=7)).to_toml()).sm3_hash()
    assert same == again                               # seed and size do not change the rules
    changed = {parse_rules(build_rules(GenConfig(**knobs)).to_toml()).sm3_hash()
               for knobs in ({"rate_change_day": 16}, {"time_tolerance_s": 4},
                             {"charge_tolerance": 3}, {"period": "2026-11"})}
    assert same not in changed and len(changed) == 4


_SEGMENTS = ["86138", "86150", "86198", "86130", "86186", "86133", "86199", "86170", "86100"]


@st.composite
def _records(draw: st.DrawFn) -> list[tuple[str, str, str, int, int, int]]:
    out = []
    for _ in range(draw(st.integers(1, 40))):
        service = draw(st.sampled_from(SERVICES))
        numbers = []
        for _ in range(2):
            head = draw(st.sampled_from(_SEGMENTS + ["1", "44", "8613"]))
            tail_len = 13 - len(head) if head.startswith("86") and len(head) == 5 else \
                draw(st.integers(5, 10))
            numbers.append(head + "".join(draw(st.lists(st.sampled_from("0123456789"),
                                                        min_size=tail_len, max_size=tail_len))))
        # from a year before the tariffs start to a year after the period
        start = draw(st.integers(1_700_000_000, 1_830_000_000))
        duration = 0 if service == "sms" else draw(st.integers(0, 20_000))
        volume = draw(st.integers(0, 10_000_000)) if service == "data" else 0
        out.append((service, numbers[0], numbers[1], start, duration, volume))
    return out


@settings(max_examples=60, deadline=None)
@given(records=_records(), variant=st.sampled_from(["agreed", "stale", "increment"]))
def test_vectorised_rating_equals_per_record_rating(
        records: list[tuple[str, str, str, int, int, int]], variant: str) -> None:
    config = GenConfig(rate_change_day=11)
    ours = build_rules(config)
    if variant == "stale":
        change = config.rate_change_epoch()
        ours = ours.with_rate_change_at(change + 7200, change)
    elif variant == "increment":
        ours = ours.with_voice_increment(6)
    engine_rules = parse_rules(ours.to_toml())
    service = np.array([SERVICES.index(r[0]) for r in records], dtype=np.uint8)
    calling = np.array([int(r[1]) for r in records], dtype=np.int64)
    called = np.array([int(r[2]) for r in records], dtype=np.int64)
    classes: NumberClasses = classify(ours, calling, called)
    rated = rate(ours, service, classes, np.arange(len(records)),
                 np.array([r[3] for r in records], dtype=np.int64),
                 np.array([r[4] for r in records], dtype=np.int64),
                 np.array([r[5] for r in records], dtype=np.int64))
    for i, (svc, a, b, start, duration, volume) in enumerate(records):
        expected = rate_one(engine_rules, svc, a, b, start, duration, volume)
        if expected is None:
            assert rated.tariff[i] == -1, records[i]
        else:
            assert rated.tariff[i] >= 0 and rated.charge[i] == expected, records[i]
