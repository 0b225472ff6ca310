"""engine.rules: parsing, validation errors, defaults, lookups and the SM3 hash."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest
import rfc8785
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import RulesError
from engine.rules import load_rules, parse_rules
from ledger_anchor.sm3 import sm3

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "docs" / "example_rules.toml"

MINIMAL = """
[meta]
name = "m"
version = "1"

[tolerances]
time_tolerance_s = 3
duration_tolerance_s = 1
charge_tolerance = 2

[[tariffs]]
payer = "*"
payee = "*"
service = "sms"
effective_from = 2026-01-01T00:00:00+08:00
rate = 1
"""


def test_example_rules() -> None:
    rules = load_rules(EXAMPLE)
    assert rules.source == str(EXAMPLE)
    assert (rules.timezone_offset_s, rules.default_utc_offset_s) == (8 * 3600, 8 * 3600)
    assert (rules.tolerances.time_tolerance_s, rules.tolerances.time_window_s,
            rules.tolerances.value_window_s) == (5, 12, 6)
    assert [e.name for e in rules.exclusions] == ["zero_duration_voice"]
    assert [o.id for o in rules.operators] == ["CMCC", "CUCC"]
    assert [b.name for b in rules.time_bands] == ["peak", "offpeak"]
    assert len(rules.tariffs) == 6
    # 2026-10-15T00:00:00+08:00
    assert rules.tariffs[0].effective_from == 1_791_993_600
    assert rules.tariffs[1].effective_to == 1_791_993_600


def test_defaults() -> None:
    rules = parse_rules(MINIMAL)
    assert rules.tolerances.time_window_s == 8  # 2δ + 2
    assert rules.disclosure == "flags"
    assert rules.partial_max_gap_s == 2
    assert rules.default_utc_offset_s is None and rules.timezone_offset_s == 0
    assert (rules.unknown_operator, rules.default_call_type) == ("OTHER", "domestic")
    assert [(b.name, b.start_minute, b.end_minute) for b in rules.time_bands] == [("all_day", 0, 0)]
    cb = rules.circuit_breaker
    assert (cb.max_records, cb.max_size_ratio, cb.min_records_for_ratio, cb.max_disputed_share,
            cb.max_unmatched_share, cb.max_invalid_share) == (100_000_000, 2.0, 1000, 0.05, 0.05,
                                                              0.01)
    assert rules.min_cell_pairs == 5
    assert rules.tariffs[0].service == "sms" and rules.tariffs[0].increment == 1


def test_canonical_form_and_hash_known_answer() -> None:
    """The hash is SM3 over RFC 8785 JSON of the defaults-filled meaning (no file name)."""
    rules = parse_rules(MINIMAL, source="somewhere.toml")
    expected = {
        "name": "m", "version": "1", "timezone_offset_s": 0, "default_utc_offset_s": None,
        "tolerances": {"time_tolerance_s": 3, "time_window_s": 8, "duration_tolerance_s": 1,
                       "charge_tolerance": 2},
        "disclosure": "flags", "min_cell_pairs": 5, "partial_max_gap_s": 2, "exclusions": [],
        "circuit_breaker": {"max_records": 100_000_000, "max_size_ratio": "2.0",
                            "min_records_for_ratio": 1000, "max_disputed_share": "0.05",
                            "max_unmatched_share": "0.05", "max_invalid_share": "0.01"},
        "unknown_operator": "OTHER", "operators": [], "default_call_type": "domestic",
        "call_types": [], "time_bands": [{"name": "all_day", "start_minute": 0, "end_minute": 0}],
        "tariffs": [{"payer": "*", "payee": "*", "service": "sms", "call_type": "*",
                     "time_band": "*", "effective_from": 1_767_196_800, "effective_to": None,
                     "rate": 1, "minimum": 0, "increment": 1}],
        "schema": 1,
    }
    assert rules.canonical_bytes() == rfc8785.dumps(expected)
    assert rules.sm3_hash() == sm3(rfc8785.dumps(expected)).hex()
    if "sm3" in hashlib.algorithms_available:  # an independent SM3 where OpenSSL has one
        assert rules.sm3_hash() == hashlib.new("sm3", rfc8785.dumps(expected)).hexdigest()


def test_layout_comments_and_spelling_do_not_change_the_hash() -> None:
    original = parse_rules(EXAMPLE.read_text())
    doc = tomllib.loads(EXAMPLE.read_text())
    rewritten = "# a comment\n" + tomli_w.dumps(doc).replace(" = ", "   =   ")
    assert parse_rules(rewritten).sm3_hash() == original.sm3_hash()
    # an explicit default equals an omitted one
    doc["disclosure"] = {"policy": "flags"}
    doc["partials"] = {"max_gap_s": 2}
    assert parse_rules(tomli_w.dumps(doc)).sm3_hash() == original.sm3_hash()


def shuffled(value: object, data: st.DataObject) -> object:
    if isinstance(value, dict):
        keys = data.draw(st.permutations(list(value)))
        return {k: shuffled(value[k], data) for k in keys}
    if isinstance(value, list):
        return [shuffled(v, data) for v in value]  # arrays keep their order: it has meaning
    return value


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_key_order_does_not_change_the_hash(data: st.DataObject) -> None:
    doc = tomllib.loads(EXAMPLE.read_text())
    want = parse_rules(EXAMPLE.read_text()).sm3_hash()
    assert parse_rules(tomli_w.dumps(shuffled(doc, data))).sm3_hash() == want


CHANGES = [
    ("tolerances", "charge_tolerance", 3),
    ("meta", "version", "2026.10-r2"),
    ("meta", "timezone", "+07:00"),
    ("disclosure", "policy", "differences"),
    ("partials", "max_gap_s", 3),
    ("circuit_breaker", "max_disputed_share", 0.06),
]


@pytest.mark.parametrize("table,key,value", CHANGES)
def test_any_change_of_meaning_changes_the_hash(table: str, key: str, value: object) -> None:
    doc = tomllib.loads(EXAMPLE.read_text())
    want = parse_rules(EXAMPLE.read_text()).sm3_hash()
    doc[table][key] = value
    assert parse_rules(tomli_w.dumps(doc)).sm3_hash() != want


def test_tariff_order_is_meaning() -> None:
    doc = tomllib.loads(EXAMPLE.read_text())
    want = parse_rules(EXAMPLE.read_text()).sm3_hash()
    doc["tariffs"][0], doc["tariffs"][1] = doc["tariffs"][1], doc["tariffs"][0]
    assert parse_rules(tomli_w.dumps(doc)).sm3_hash() != want


def test_with_disclosure() -> None:
    rules = parse_rules(MINIMAL)
    other = rules.with_disclosure("aggregate")
    assert other.disclosure == "aggregate" and other.sm3_hash() != rules.sm3_hash()
    with pytest.raises(RulesError) as caught:
        rules.with_disclosure("all")
    assert str(caught.value) == ("<memory>, column 'disclosure.policy': unknown disclosure policy"
                                 "\n  expected: aggregate | flags | differences\n  found:    'all'")


# ---------------------------------------------------------------------------
# errors: each with the exact diagnosis (file, TOML path, expected, found)

TARIFF = ('[[tariffs]]\npayer = "*"\npayee = "*"\nservice = "sms"\n'
          'effective_from = 2026-01-01T00:00:00Z\nrate = 1\n')
HEAD = ('[meta]\nname = "m"\nversion = "1"\n[tolerances]\ntime_tolerance_s = 3\n'
        'duration_tolerance_s = 1\ncharge_tolerance = 2\n')

ERRORS = [
    ("unknown key", HEAD.replace('version = "1"', 'version = "1"\nverison = "2"') + TARIFF,
     "r.toml, column 'meta.verison': unknown key\n  expected: one of the keys documented in "
     "docs/rules.md\n  found:    'verison'"),
    ("missing key", HEAD.replace('name = "m"\n', "") + TARIFF,
     "r.toml, column 'meta.name': missing required key\n  expected: a value\n  found:    nothing"),
    ("wrong type", HEAD.replace("charge_tolerance = 2", 'charge_tolerance = "2"') + TARIFF,
     "r.toml, column 'tolerances.charge_tolerance': wrong type\n  expected: an integer\n"
     "  found:    '2'"),
    ("negative", HEAD.replace("charge_tolerance = 2", "charge_tolerance = -1") + TARIFF,
     "r.toml, column 'tolerances.charge_tolerance': out of range\n  expected: an integer >= 0\n"
     "  found:    -1"),
    ("malformed offset", HEAD.replace('version = "1"', 'version = "1"\ntimezone = "+8"') + TARIFF,
     "r.toml, column 'meta.timezone': malformed UTC offset\n  expected: +HH:MM or -HH:MM\n"
     "  found:    '+8'"),
    ("offset out of range",
     HEAD.replace('version = "1"', 'version = "1"\ndefault_utc_offset = "+19:00"') + TARIFF,
     "r.toml, column 'meta.default_utc_offset': UTC offset out of range\n"
     "  expected: between -18:00 and +18:00\n  found:    '+19:00'"),
    ("window", HEAD.replace("time_tolerance_s = 3", "time_tolerance_s = 3\ntime_window_s = 5")
     + TARIFF,
     "r.toml, column 'tolerances.time_window_s': window too small for the tolerance\n"
     "  expected: at least max(2*time_tolerance_s, 2) = 6\n  found:    5"),
    ("policy", HEAD + '[disclosure]\npolicy = "none"\n' + TARIFF,
     "r.toml, column 'disclosure.policy': unknown value\n"
     "  expected: aggregate | flags | differences\n  found:    'none'"),
    ("share nan", HEAD + "[circuit_breaker]\nmax_disputed_share = nan\n" + TARIFF,
     "r.toml, column 'circuit_breaker.max_disputed_share': not a finite number\n"
     "  expected: a finite number\n  found:    nan"),
    ("share range", HEAD + "[circuit_breaker]\nmax_unmatched_share = 1.5\n" + TARIFF,
     "r.toml, column 'circuit_breaker.max_unmatched_share': out of range\n"
     "  expected: a number in [0.0, 1.0]\n  found:    1.5"),
    ("clock", HEAD + '[[time_bands]]\nname = "a"\nfrom = "7:00"\nto = "07:00"\n' + TARIFF,
     "r.toml, column 'time_bands[0].from': malformed time of day\n"
     "  expected: HH:MM (00:00 .. 24:00)\n  found:    '7:00'"),
    ("band gap", HEAD + '[[time_bands]]\nname = "a"\nfrom = "07:00"\nto = "23:00"\n'
     '[[time_bands]]\nname = "b"\nfrom = "23:30"\nto = "07:00"\n' + TARIFF,
     "r.toml, column 'time_bands': time bands must cover every minute of the day exactly once\n"
     "  expected: exactly one band\n  found:    0 bands at 23:00"),
    ("band overlap", HEAD + '[[time_bands]]\nname = "a"\nfrom = "07:00"\nto = "23:00"\n'
     '[[time_bands]]\nname = "b"\nfrom = "22:00"\nto = "07:00"\n' + TARIFF,
     "r.toml, column 'time_bands': time bands must cover every minute of the day exactly once\n"
     "  expected: exactly one band\n  found:    2 bands at 22:00"),
    ("refers to nothing", HEAD + TARIFF.replace('payer = "*"', 'payer = "CMCC"'),
     "r.toml, column 'tariffs[0].payer': refers to nothing defined\n  expected: * | OTHER\n"
     "  found:    'CMCC'"),
    ("empty period", HEAD + TARIFF + "effective_to = 2026-01-01T00:00:00Z\n",
     "r.toml, column 'tariffs[0].effective_to': empty effective period\n"
     "  expected: effective_to later than effective_from\n  found:    1767225600"),
    ("local datetime", HEAD + TARIFF.replace("2026-01-01T00:00:00Z", "2026-01-01T00:00:00"),
     "r.toml, column 'tariffs[0].effective_from': wrong type\n  expected: a TOML offset "
     "date-time such as 2026-10-01T00:00:00+08:00\n  found:    datetime.datetime(2026, 1, 1, 0, 0)"),
    ("no tariffs", HEAD,
     "r.toml, column 'tariffs': no tariffs: every record would be unrateable\n"
     "  expected: at least one [[tariffs]] row\n  found:    none"),
    ("rate bound", HEAD + TARIFF.replace("rate = 1", "rate = 1000001"),
     "r.toml, column 'tariffs[0].rate': out of range\n  expected: an integer <= 1000000\n"
     "  found:    1000001"),
    ("increment bound", HEAD + TARIFF + "increment = 0\n",
     "r.toml, column 'tariffs[0].increment': out of range\n  expected: an integer >= 1\n"
     "  found:    0"),
    ("service", HEAD + TARIFF.replace('service = "sms"', 'service = "fax"'),
     "r.toml, column 'tariffs[0].service': unknown value\n  expected: voice | sms | data | *\n"
     "  found:    'fax'"),
    ("exclusion names", HEAD + '[[exclusions]]\nname = "z"\nfield = "charge"\nequals = 0\n'
     '[[exclusions]]\nname = "z"\nfield = "duration_s"\nequals = 0\n' + TARIFF,
     "r.toml, column 'exclusions': exclusion names must be unique"),
    ("operator ids", HEAD + '[[operators]]\nid = "A"\nprefixes = ["86"]\n'
     '[[operators]]\nid = "A"\nprefixes = ["44"]\n' + TARIFF,
     "r.toml, column 'operators': operator ids must be unique and differ from "
     "rating.unknown_operator"),
    ("ambiguous prefix", HEAD + '[[operators]]\nid = "A"\nprefixes = ["86138"]\n'
     '[[operators]]\nid = "B"\nprefixes = ["86131", "86138"]\n' + TARIFF,
     "r.toml, column 'operators[1].prefixes': prefix listed under two names\n"
     "  expected: each prefix under one name only (it is already under 'A')\n"
     "  found:    '86138'"),
    ("ambiguous call type prefix", HEAD + '[[call_types]]\nname = "a"\ncalled_prefixes = ["1"]\n'
     '[[call_types]]\nname = "b"\ncalled_prefixes = ["1"]\n' + TARIFF,
     "r.toml, column 'call_types[1].called_prefixes': prefix listed under two names\n"
     "  expected: each prefix under one name only (it is already under 'a')\n  found:    '1'"),
    ("prefix digits", HEAD + '[[operators]]\nid = "A"\nprefixes = ["+86"]\n' + TARIFF,
     "r.toml, column 'operators[0].prefixes': malformed list item\n"
     "  expected: strings matching ^\\d{1,15}$\n  found:    '+86'"),
    ("schema", HEAD.replace('version = "1"', 'version = "1"\nschema = 2') + TARIFF,
     "r.toml, column 'meta.schema': unsupported rules schema\n  expected: 1\n  found:    2"),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in ERRORS],
                         ids=[name for name, _, _ in ERRORS])
def test_errors_name_file_path_expected_and_found(text: str, expected: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, source="r.toml")
    assert str(caught.value) == expected


def test_not_toml() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules("[meta\nname = 1", source="r.toml")
    assert str(caught.value).startswith("r.toml: not valid TOML: ")


def test_load_rules_file_problems(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "none.toml")
    assert str(caught.value) == f"{tmp_path / 'none.toml'}: rules file not found"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[meta]\nname = "caf\xe9"\n')
    with pytest.raises(RulesError) as caught:
        load_rules(latin)
    assert str(caught.value) == f"{latin}: rules file is not UTF-8 (invalid continuation byte " \
                                "at byte 18)"
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cannot read rules file: ")
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_rules(bom).sm3_hash() == parse_rules(MINIMAL).sm3_hash()


def test_service_wildcard_and_fractional_dates_before_1970() -> None:
    rules = parse_rules(MINIMAL.replace('service = "sms"', 'service = "*"').replace(
        "2026-01-01T00:00:00+08:00", "1969-12-31T23:59:59.5Z"))
    assert rules.tariffs[0].service == "*"
    assert rules.tariffs[0].effective_from == -1  # floor, not truncation toward zero


def test_lookups() -> None:
    rules = load_rules(EXAMPLE)
    assert rules.operator_of("8613800000001") == "CMCC"
    assert rules.operator_of("8613100000001") == "CUCC"
    assert rules.operator_of("4420000000") == "OTHER"
    assert rules.call_type_of("8613100000001") == "domestic"
    assert rules.call_type_of("4420000000") == "international"
    # +08:00 local time: 06:59 offpeak, 07:00 peak, 22:59 peak, 23:00 offpeak (wraps midnight)
    day = 1_790_784_000  # 2026-10-01T00:00:00+08:00
    assert [rules.time_band_of(day + m * 60) for m in (0, 419, 420, 1379, 1380)] == \
        ["offpeak", "offpeak", "peak", "peak", "offpeak"]
