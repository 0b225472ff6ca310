"""Money: integer minor units (fen) everywhere, and the two conversions that touch text.

Amounts are Python ints of fen (1 yuan = 100 fen).  Nothing here accepts a float.
Rates are integer basis points (1 % = 100 bp), parsed exactly from strings such as
``"9%"`` or ``"6.5%"``.

Rounding (docs/billing.md): a tax amount is ``base × rate_bp / 10000`` rounded **half
away from zero** to the fen, once per tax line (per direction and tax class); totals
are sums of rounded lines, never rounded again.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MINOR_UNITS = 100
_RATE = re.compile(r"^\s*(\d{1,3})(?:\.(\d{1,2}))?\s*%\s*$")
_AMOUNT = re.compile(r"^-?\d{1,15}(?:\.\d{1,2})?$")


def parse_rate_bp(text: str) -> int:
    """``"9%"`` -> 900, ``"6.5%"`` -> 650; ValueError for anything else (no floats)."""
    if not isinstance(text, str):
        raise ValueError(f"expected a percentage string such as \"9%\", found {text!r}")
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"expected a percentage string such as \"9%\" or \"6.5%\", found {text!r}")
    whole, fraction = match.group(1), (match.group(2) or "").ljust(2, "0")
    value = int(whole) * 100 + int(fraction)
    if value > 100 * 100:
        raise ValueError(f"expected a rate of at most 100%, found {text!r}")
    return value


def format_rate(bp: int) -> str:
    return f"{bp // 100}%" if bp % 100 == 0 else f"{bp // 100}.{bp % 100:02d}".rstrip("0") + "%"


def round_half_away(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, in integers only."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return magnitude if numerator >= 0 else -magnitude


def tax_of(base_fen: int, rate_bp: int) -> int:
    """The tax on ``base_fen`` at ``rate_bp`` basis points, rounded half away from zero."""
    return round_half_away(base_fen * rate_bp, 10_000)


def parse_amount(text: str) -> int:
    """``"1234.5"`` / ``"1234.50"`` / ``"1234"`` yuan -> fen; ValueError for more than two
    decimals, exponents, signs other than a leading minus, or anything not a number."""
    if not isinstance(text, str) or not _AMOUNT.match(text.strip()):
        raise ValueError(f"expected an amount in yuan with at most two decimals, found {text!r}")
    try:
        value = Decimal(text.strip())
    except InvalidOperation:  # pragma: no cover - the pattern already refused it
        raise ValueError(f"expected an amount, found {text!r}") from None
    return int(value * MINOR_UNITS)


def parse_xml_amount(text: str) -> int:
    """An ISO 20022 decimal amount (``xs:decimal``, up to 5 fraction digits in the schema)
    in fen; ValueError unless it is a whole number of fen (a CNY amount has two decimals)."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"expected a decimal amount, found {text!r}") from None
    fen = value * MINOR_UNITS
    if fen != fen.to_integral_value() or not value.is_finite():
        raise ValueError(f"expected an amount in whole fen (at most two decimals), found {text!r}")
    return int(fen)


def yuan(fen: int) -> str:
    """``123456`` -> ``"1234.56"`` (no grouping; for files)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // MINOR_UNITS}.{abs(fen) % MINOR_UNITS:02d}"


def show(fen: int) -> str:
    """``123456`` -> ``"¥1,234.56"`` (for people)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // MINOR_UNITS:,}.{abs(fen) % MINOR_UNITS:02d}"
