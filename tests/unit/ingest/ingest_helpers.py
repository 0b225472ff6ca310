"""Small helpers shared by the ingest tests: rules text, writing CSV tables."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from engine.rules import Rules, parse_rules

COLUMNS = ("record_id", "service", "calling", "called", "start_time", "duration_s",
           "volume_kb", "trunk_group", "part_seq", "charge")
ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "ingest"
EXAMPLE_RULES = ROOT / "docs" / "example_rules.toml"

#: Simple rules: one operator per prefix family, two bands, a few tariffs, one exclusion.
SIMPLE_RULES = """
[meta]
name = "test"
version = "1"
timezone = "+08:00"
{default_offset}

[tolerances]
time_tolerance_s = 5
duration_tolerance_s = 2
charge_tolerance = 2

[partials]
max_gap_s = 2

{exclusions}

[[operators]]
id = "X"
prefixes = ["86138"]

[[operators]]
id = "Y"
prefixes = ["86131", "861310"]

[[call_types]]
name = "intl"
called_prefixes = ["1", "44"]

[[time_bands]]
name = "day"
from = "07:00"
to = "23:00"

[[time_bands]]
name = "night"
from = "23:00"
to = "07:00"

{tariffs}
"""

DEFAULT_TARIFFS = """
[[tariffs]]
payer = "*"
payee = "*"
service = "voice"
call_type = "domestic"
time_band = "day"
effective_from = 2026-01-01T00:00:00+08:00
rate = 6
minimum = 60
increment = 60

[[tariffs]]
payer = "*"
payee = "*"
service = "voice"
effective_from = 2026-01-01T00:00:00+08:00
rate = 3
minimum = 30
increment = 6

[[tariffs]]
payer = "*"
payee = "*"
service = "sms"
effective_from = 2026-01-01T00:00:00+08:00
rate = 1

[[tariffs]]
payer = "*"
payee = "*"
service = "data"
effective_from = 2026-01-01T00:00:00+08:00
rate = 3
minimum = 1
increment = 1
"""

ZERO_VOICE_EXCLUSION = """
[[exclusions]]
name = "zero_voice"
service = "voice"
field = "duration_s"
equals = 0
"""


def simple_rules(*, default_offset: str | None = None, exclusions: str = ZERO_VOICE_EXCLUSION,
                 tariffs: str = DEFAULT_TARIFFS) -> Rules:
    text = SIMPLE_RULES.format(
        default_offset="" if default_offset is None else f'default_utc_offset = "{default_offset}"',
        exclusions=exclusions, tariffs=tariffs)
    return parse_rules(text, source="<simple rules>")


def good_row(**overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "record_id": "r1", "service": "voice", "calling": "+8613800000001",
        "called": "8613100000002", "start_time": "2026-10-01T10:00:00+08:00",
        "duration_s": "61", "volume_kb": "0", "trunk_group": "TG1", "part_seq": "0",
        "charge": "12",
    }
    row.update(overrides)
    return row


def write_csv(path: Path, table: Sequence[dict[str, str | None]],
              columns: Sequence[str] = COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in table:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return path
