"""Billing terms: the ``[billing]`` section of the shared rules file, read into frozen dataclasses.

The rules file both operators agreed on (docs/rules.md) carries the billing terms in a
section of its own, parsed here and only here (docs/billing.md "Terms")::

    [billing]
    currency = "CNY"
    payment_terms_days = 30                   # due date = issue date + this
    invoice_series = "{issuer}-{payer}-{year}"
    netting_agent = "CTCC"                    # the member that computes multilateral netting

    [[billing.tax_classes]]                   # VAT by service: basic vs value-added telecom
    name = "basic_telecom"
    rate = "9%"
    services = ["voice"]

    [[billing.overdue]]                       # conditions and actions of the overdue machine
    state = "reminded"                        # reminded | escalated | held
    days_past_due = 1
    min_outstanding = 0                       # fen
    action = "reminder"                       # reminder | escalation | dispute_hold

The engine hashes the section with the rest of the rules (so the consortium adopts the
billing terms by the same vote); :attr:`BillingTerms.terms_sm3` is the SM3 of the
*effective* terms (defaults filled in) as RFC 8785 JSON, recorded in every invoice and
note so that anyone can tell which terms priced it.  Every problem names the file and the TOML path.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from billing.errors import TermsError
from billing.money import parse_rate_bp
from ledger_anchor.sm3 import sm3

SERVICES: tuple[str, ...] = ("voice", "sms", "data")
OVERDUE_STATES: tuple[str, ...] = ("reminded", "escalated", "held")
ACTIONS: tuple[str, ...] = ("reminder", "escalation", "dispute_hold")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MEMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SERIES_FIELDS = ("issuer", "payer", "year")
_SERIES_TEXT = re.compile(r"^[A-Za-z0-9{}_-]{1,40}$")
#: An invoice reference (series-number) travels as an ISO 20022 EndToEndId: Max35Text.
MAX_REFERENCE = 35
NUMBER_DIGITS = 6

#: Without ``[[billing.overdue]]``: a reminder the day after the due date, an escalation a month later.
DEFAULT_OVERDUE = [{"state": "reminded", "days_past_due": 1, "action": "reminder"},
                   {"state": "escalated", "days_past_due": 31, "action": "escalation"}]
DEFAULT_TAX_CLASSES = (("basic_telecom", "9%", ("voice",)), ("value_added_telecom", "6%", ("sms", "data")))


@dataclass(frozen=True)
class TaxClass:
    name: str
    rate_bp: int
    services: tuple[str, ...]


@dataclass(frozen=True)
class OverdueRule:
    """Move an unpaid item into ``state`` once it is ``days_past_due`` days past its due date
    with at least ``min_outstanding`` fen still open, and take ``action``."""

    state: str
    days_past_due: int
    min_outstanding: int
    action: str


@dataclass(frozen=True)
class JournalAccounts:
    """Account codes of the double-entry journal export (PRC chart of accounts by default)."""

    receivable: str = "1122"
    payable: str = "2202"
    revenue: str = "6001"
    cost: str = "6401"
    vat_output: str = "22210102"
    vat_input: str = "22210101"
    bank: str = "1002"
    advances: str = "2203"
    netting: str = "1221"


@dataclass(frozen=True)
class BillingTerms:
    currency: str
    payment_terms_days: int
    invoice_series: str
    tax_classes: tuple[TaxClass, ...]
    overdue: tuple[OverdueRule, ...]
    netting_agent: str | None
    accounts: JournalAccounts
    terms_sm3: str
    source: str = field(default="<memory>", compare=False)

    def tax_class_of(self, service: str) -> TaxClass:
        for tax in self.tax_classes:
            if service in tax.services:
                return tax
        raise TermsError("no tax class for a service", file=self.source, column="billing.tax_classes",
                         expected=f"a tax class listing {service!r}", found="none")

    def series_for(self, issuer: str, payer: str, year: int, suffix: str = "") -> str:
        series = self.invoice_series.format(issuer=issuer, payer=payer, year=year) + suffix
        if len(series) + 1 + NUMBER_DIGITS > MAX_REFERENCE:
            raise TermsError("invoice series too long for an end-to-end reference", file=self.source,
                             column="billing.invoice_series",
                             expected=f"series-number within {MAX_REFERENCE} characters", found=series)
        return series


def _error(source: str, path: str, message: str, expected: str, found: Any) -> TermsError:
    return TermsError(message, file=source, column=path, expected=expected, found=repr(found))


def _take(table: dict[str, Any], key: str, kind: type, source: str, path: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise _error(source, f"{path}.{key}", "missing required key", f"a {kind.__name__}", "nothing")
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _error(source, f"{path}.{key}", "wrong type", f"a {kind.__name__}", value)
    return value


def _refuse_unknown(table: dict[str, Any], known: set[str], source: str, path: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise _error(source, f"{path}.{unknown[0]}", "unknown key", f"one of {', '.join(sorted(known))}",
                     unknown[0])


def _json_only(value: Any, source: str, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _json_only(v, source, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_json_only(v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float):
        raise _error(source, path, "floats are not allowed in billing terms (money and rates are exact)",
                     "an integer or a string such as \"9%\"", value)
    if isinstance(value, (str, int, bool)):
        return value
    raise _error(source, path, "wrong type", "strings, integers, booleans, tables and arrays", value)


def terms_bytes(table: dict[str, Any], source: str = "<memory>") -> bytes:
    """RFC 8785 JSON of the ``[billing]`` table: what :attr:`BillingTerms.terms_sm3` hashes."""
    return rfc8785.dumps(_json_only(table, source, "billing"))


def parse_terms(table: dict[str, Any] | None, *, source: str = "<memory>") -> BillingTerms:
    """Validate the ``[billing]`` table (``None``: the documented defaults)."""
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise _error(source, "billing", "wrong type", "a table", table)
    terms_bytes(table, source)  # refuses floats and other values the terms cannot hold, naming the path
    known = {"currency", "payment_terms_days", "invoice_series", "tax_classes", "overdue", "netting_agent",
             "accounts"}
    _refuse_unknown(table, known, source, "billing")
    currency = _take(table, "currency", str, source, "billing", "CNY")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise _error(source, "billing.currency", "malformed currency", "an ISO 4217 code such as CNY", currency)
    terms_days = _take(table, "payment_terms_days", int, source, "billing", 30)
    if not 0 <= terms_days <= 3650:
        raise _error(source, "billing.payment_terms_days", "out of range", "0..3650 days", terms_days)
    series = _take(table, "invoice_series", str, source, "billing", "{issuer}-{payer}-{year}")
    if not _SERIES_TEXT.match(series):
        raise _error(source, "billing.invoice_series", "malformed series template",
                     "letters, digits, '-', '_' and the fields {issuer} {payer} {year}", series)
    for name in re.findall(r"{([^}]*)}", series):
        if name not in _SERIES_FIELDS:
            raise _error(source, "billing.invoice_series", "unknown field in series template",
                         "{issuer}, {payer} or {year}", name)
    if "{payer}" not in series or "{issuer}" not in series:
        raise _error(source, "billing.invoice_series", "the series must name both operators",
                     "a template with {issuer} and {payer}, so both operators see every number of it",
                     series)
    agent = _take(table, "netting_agent", str, source, "billing", None)
    if agent is not None and not _MEMBER.match(agent):
        raise _error(source, "billing.netting_agent", "malformed member id", "a member id", agent)

    raw_taxes = _take(table, "tax_classes", list, source, "billing", None)
    taxes: list[TaxClass] = []
    if raw_taxes is None:
        taxes = [TaxClass(n, parse_rate_bp(r), s) for n, r, s in DEFAULT_TAX_CLASSES]
    for i, item in enumerate(raw_taxes or []):
        path = f"billing.tax_classes[{i}]"
        if not isinstance(item, dict):
            raise _error(source, path, "wrong type", "a table", item)
        _refuse_unknown(item, {"name", "rate", "services"}, source, path)
        name = _take(item, "name", str, source, path)
        if not _NAME.match(name):
            raise _error(source, f"{path}.name", "malformed name", _NAME.pattern, name)
        rate_text = item.get("rate")
        try:
            rate = parse_rate_bp(rate_text)  # type: ignore[arg-type]
        except ValueError as exc:
            raise _error(source, f"{path}.rate", str(exc), "a string such as \"9%\"", rate_text) from None
        services = _take(item, "services", list, source, path)
        for service in services:
            if service not in SERVICES:
                raise _error(source, f"{path}.services", "unknown service", " | ".join(SERVICES), service)
        taxes.append(TaxClass(name, rate, tuple(services)))
    seen: dict[str, str] = {}
    for tax in taxes:
        for service in tax.services:
            if service in seen:
                raise _error(source, "billing.tax_classes", "a service is in two tax classes",
                             "each service in exactly one class", f"{service} in {seen[service]} and {tax.name}")
            seen[service] = tax.name
    if len({t.name for t in taxes}) != len(taxes):
        raise _error(source, "billing.tax_classes", "tax class names must be unique", "unique names",
                     [t.name for t in taxes])
    missing = [s for s in SERVICES if s not in seen]
    if missing:
        raise _error(source, "billing.tax_classes", "a service has no tax class", "every service in one class",
                     missing)

    rules: list[OverdueRule] = []
    for i, item in enumerate(_take(table, "overdue", list, source, "billing", DEFAULT_OVERDUE)):
        path = f"billing.overdue[{i}]"
        if not isinstance(item, dict):
            raise _error(source, path, "wrong type", "a table", item)
        _refuse_unknown(item, {"state", "days_past_due", "min_outstanding", "action"}, source, path)
        state = _take(item, "state", str, source, path)
        if state not in OVERDUE_STATES:
            raise _error(source, f"{path}.state", "unknown overdue state", " | ".join(OVERDUE_STATES), state)
        action = _take(item, "action", str, source, path)
        if action not in ACTIONS:
            raise _error(source, f"{path}.action", "unknown action", " | ".join(ACTIONS), action)
        if (state == "held") != (action == "dispute_hold"):
            raise _error(source, f"{path}.action", "the held state and the dispute_hold action go together",
                         "state \"held\" with action \"dispute_hold\"", f"{state} with {action}")
        days = _take(item, "days_past_due", int, source, path)
        minimum = _take(item, "min_outstanding", int, source, path, 0)
        if days < 1 or minimum < 0:
            raise _error(source, path, "out of range", "days_past_due >= 1 and min_outstanding >= 0",
                         (days, minimum))
        rules.append(OverdueRule(state, days, minimum, action))
    if len({r.state for r in rules}) != len(rules):
        raise _error(source, "billing.overdue", "one rule per state", "each state at most once",
                     [r.state for r in rules])
    order = [r.days_past_due for r in sorted(rules, key=lambda r: OVERDUE_STATES.index(r.state))]
    if order != sorted(order):
        raise _error(source, "billing.overdue", "later states must not come sooner",
                     "days_past_due non-decreasing in the order reminded, escalated, held", order)

    accounts_table = _take(table, "accounts", dict, source, "billing", {})
    defaults = JournalAccounts()
    _refuse_unknown(accounts_table, set(defaults.__dataclass_fields__), source, "billing.accounts")
    accounts = JournalAccounts(**{name: _take(accounts_table, name, str, source, "billing.accounts",
                                              getattr(defaults, name))
                                  for name in defaults.__dataclass_fields__})
    effective = BillingTerms(currency=currency, payment_terms_days=terms_days, invoice_series=series,
                             tax_classes=tuple(taxes),
                             overdue=tuple(sorted(rules, key=lambda r: OVERDUE_STATES.index(r.state))),
                             netting_agent=agent, accounts=accounts, terms_sm3="", source=source)
    meaning = dataclasses.asdict(effective)
    meaning.pop("source")
    meaning.pop("terms_sm3")
    return dataclasses.replace(effective, terms_sm3=sm3(rfc8785.dumps(meaning)).hex())


def load_terms(path: str | Path) -> BillingTerms:
    """The ``[billing]`` section of the rules file at ``path`` (defaults where it has none)."""
    source = str(path)
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise TermsError("rules file not found", file=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TermsError(f"cannot read the rules file: {exc}", file=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise TermsError(f"not valid TOML: {exc}", file=source) from None
    return parse_terms(document.get("billing"), source=source)
