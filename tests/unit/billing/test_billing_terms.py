"""Billing terms from the rules file, exact money and rates, and the engine hashing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.config import load_terms, parse_terms
from billing.errors import TermsError
from billing.money import format_rate, parse_amount, parse_rate_bp, parse_xml_amount, round_half_away, show, yuan
from engine.errors import RulesError
from engine.rules import parse_rules

EXAMPLE = (Path(__file__).parents[3] / "docs" / "example_rules.toml").read_text(encoding="utf-8")


def test_defaults_and_effective_hash() -> None:
    terms = parse_terms(None)
    assert (terms.currency, terms.payment_terms_days, terms.netting_agent) == ("CNY", 30, None)
    assert {t.name: t.rate_bp for t in terms.tax_classes} == {"basic_telecom": 900, "value_added_telecom": 600}
    assert [r.state for r in terms.overdue] == ["reminded", "escalated"]
    # writing the defaults out gives the same effective terms, hence the same hash
    assert parse_terms({"payment_terms_days": 30}).terms_sm3 == terms.terms_sm3
    assert parse_terms({"payment_terms_days": 45}).terms_sm3 != terms.terms_sm3


@pytest.mark.parametrize("table,path", [
    ({"payment_terms_days": 30.5}, "billing.payment_terms_days"),
    ({"payment_terms_days": -1}, "billing.payment_terms_days"),
    ({"currency": "yuan"}, "billing.currency"),
    ({"invoice_series": "{issuer}-{year}"}, "billing.invoice_series"),
    ({"invoice_series": "{issuer}-{payer}-{month}"}, "billing.invoice_series"),
    ({"tax_classes": [{"name": "basic", "rate": 0.09, "services": ["voice", "sms", "data"]}]},
     "billing.tax_classes[0].rate"),
    ({"tax_classes": [{"name": "basic", "rate": "9%", "services": ["voice"]}]}, "billing.tax_classes"),
    ({"tax_classes": [{"name": "a", "rate": "9%", "services": ["voice", "sms"]},
                      {"name": "b", "rate": "6%", "services": ["sms", "data"]}]}, "billing.tax_classes"),
    ({"overdue": [{"state": "reminded", "days_past_due": 0, "action": "reminder"}]}, "billing.overdue[0]"),
    ({"surprise": 1}, "billing.surprise"),
    ({"accounts": {"receivable": 1122}}, "billing.accounts.receivable"),
])
def test_bad_terms_name_the_toml_path(table, path) -> None:
    with pytest.raises(TermsError) as error:
        parse_terms(table, source="rules.toml")
    assert error.value.column == path, error.value.diagnostics()
    assert "rules.toml" in error.value.diagnostics()


def test_terms_are_read_from_the_rules_file(tmp_path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE + '\n[billing]\npayment_terms_days = 45\nnetting_agent = "CTCC"\n', encoding="utf-8")
    terms = load_terms(path)
    assert (terms.payment_terms_days, terms.netting_agent) == (45, "CTCC")
    with pytest.raises(TermsError, match="not found"):
        load_terms(tmp_path / "missing.toml")


def test_the_engine_accepts_and_hashes_the_billing_section() -> None:
    plain = parse_rules(EXAMPLE)
    with_billing = parse_rules(EXAMPLE + "\n[billing]\npayment_terms_days = 30\n")
    changed = parse_rules(EXAMPLE + "\n[billing]\npayment_terms_days = 31\n")
    assert len({plain.sm3_hash(), with_billing.sm3_hash(), changed.sm3_hash()}) == 3
    assert parse_rules(EXAMPLE).sm3_hash() == plain.sm3_hash()          # no section: the hash it always had
    with pytest.raises(RulesError, match="billing"):
        parse_rules(EXAMPLE + "\nbilling = 3\n")


@pytest.mark.parametrize("text,bp", [("9%", 900), ("6.5%", 650), (" 13 % ", 1300), ("0.25%", 25), ("100%", 10000)])
def test_rates_are_exact(text: str, bp: int) -> None:
    assert parse_rate_bp(text) == bp
    assert parse_rate_bp(format_rate(bp)) == bp


@pytest.mark.parametrize("text", ["9", "0.09", "9.125%", "101%", "-1%", "9e0%"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate_bp(text)


def test_amounts_and_rounding() -> None:
    assert parse_amount("1234.5") == 123450 and parse_amount("0.01") == 1 and parse_amount("7") == 700
    for bad in ("1.234", "1e3", "1,000.00", "", "abc", "--1"):
        with pytest.raises(ValueError):
            parse_amount(bad)
    assert parse_xml_amount("12.30000") == 1230
    with pytest.raises(ValueError):
        parse_xml_amount("12.301")
    assert [round_half_away(n, 10) for n in (14, 15, 16, -14, -15, -16)] == [1, 2, 2, -1, -2, -2]
    assert (yuan(123456), yuan(-5), show(123456789)) == ("1234.56", "-0.05", "¥1,234,567.89")
