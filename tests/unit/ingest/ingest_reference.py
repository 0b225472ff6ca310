"""A deliberately plain, per-row Python implementation of docs/records.md and
docs/rules.md, used as the oracle of the property tests.

It shares no code with ``engine.ingest``: it walks the rows one by one in the
order the documents describe, parses times with :mod:`datetime`, looks prefixes up
by trying every prefix, and tries tariff rows in file order.  Slow and obvious on
purpose.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from engine.rules import WILDCARD, Rules

COLUMNS = ("record_id", "service", "calling", "called", "start_time", "duration_s",
           "volume_kb", "trunk_group", "part_seq", "charge")
SERVICES = ("voice", "sms", "data")
MAX_INTEGER = 10**12
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------------------
# single values


def e164_digits(text: str) -> str | None:
    """'+'? then 6-15 ASCII digits, the first not 0 → the digits; else None."""
    body = text[1:] if text.startswith("+") else text
    if not 6 <= len(body) <= 15:
        return None
    if not all(ch in "0123456789" for ch in body) or body[0] == "0":
        return None
    return body


def parse_time(text: str, default_offset_s: int | None) -> tuple[str, int | None]:
    """('ok', epoch) | ('malformed', None) | ('no_offset', None), by hand and datetime."""
    digits = set("0123456789")

    def all_digits(s: str) -> bool:
        return len(s) > 0 and all(ch in digits for ch in s)

    if len(text) < 19:
        return "malformed", None
    head, rest = text[:19], text[19:]
    shape_ok = (all_digits(head[0:4]) and head[4] == "-" and all_digits(head[5:7])
                and head[7] == "-" and all_digits(head[8:10]) and head[10] == "T"
                and all_digits(head[11:13]) and head[13] == ":" and all_digits(head[14:16])
                and head[16] == ":" and all_digits(head[17:19]))
    if not shape_ok:
        return "malformed", None
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end] in digits:
            end += 1
        if not 2 <= end <= 10:  # 1..9 fraction digits
            return "malformed", None
        rest = rest[end:]
    offset: int | None
    if rest == "":
        offset = None
    elif rest == "Z":
        offset = 0
    elif (len(rest) == 6 and rest[0] in "+-" and all_digits(rest[1:3]) and rest[3] == ":"
          and all_digits(rest[4:6])):
        hours, minutes = int(rest[1:3]), int(rest[4:6])
        if hours > 23 or minutes > 59:
            return "malformed", None
        offset = (hours * 3600 + minutes * 60) * (-1 if rest[0] == "-" else 1)
    else:
        return "malformed", None
    try:
        local = dt.datetime(int(head[0:4]), int(head[5:7]), int(head[8:10]), int(head[11:13]),
                            int(head[14:16]), int(head[17:19]))
    except ValueError:
        return "malformed", None
    if offset is None:
        if default_offset_s is None:
            return "no_offset", None
        offset = default_offset_s
    aware = local.replace(tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
    return "ok", (aware - EPOCH) // dt.timedelta(seconds=1)


# ---------------------------------------------------------------------------
# a row


def first_failure(fields: dict[str, str | None], seen_ids: set[str],
                  rules: Rules) -> tuple[str | None, dict]:
    """The reason of the first failing check (or None) and the normalised values."""
    def missing(name: str) -> bool:
        return fields[name] is None or fields[name] == ""

    out: dict = {}
    record_id = fields["record_id"]
    if missing("record_id"):
        return "missing_value:record_id", out
    if len(record_id) > 64:
        return "oversize_field:record_id", out
    if record_id in seen_ids:
        return "duplicate_record_id:record_id", out
    out["record_id"] = record_id
    if missing("service"):
        return "missing_value:service", out
    if fields["service"] not in SERVICES:
        return "unknown_service:service", out
    out["service"] = SERVICES.index(fields["service"])
    for name in ("calling", "called"):
        if missing(name):
            return f"missing_value:{name}", out
        digits = e164_digits(fields[name])
        if digits is None:
            return f"malformed_number:{name}", out
        out[name] = digits
    if missing("start_time"):
        return "missing_value:start_time", out
    state, epoch = parse_time(fields["start_time"], rules.default_utc_offset_s)
    if state == "malformed":
        return "malformed_timestamp:start_time", out
    if state == "no_offset":
        return "missing_utc_offset:start_time", out
    out["start"] = epoch
    for name in ("duration_s", "volume_kb", "trunk_group", "part_seq", "charge"):
        if missing(name):
            return f"missing_value:{name}", out
        text = fields[name]
        if name == "trunk_group":
            if len(text) > 32:
                return "oversize_field:trunk_group", out
            out[name] = text
            continue
        body = text[1:] if text.startswith("-") else text
        if not body or not all(ch in "0123456789" for ch in body):
            return f"wrong_type:{name}", out
        value = int(text)
        if value < 0:
            return f"negative_value:{name}", out
        if value > MAX_INTEGER:
            return f"oversize_field:{name}", out
        if name == "duration_s" and out["service"] == 1 and value != 0:
            return "inconsistent_service:duration_s", out
        if name == "volume_kb" and out["service"] != 2 and value != 0:
            return "inconsistent_service:volume_kb", out
        out[name] = value
    return None, out


# ---------------------------------------------------------------------------
# rating


def operator_of(rules: Rules, digits: str) -> str:
    best, best_len = rules.unknown_operator, -1
    for op in rules.operators:
        for prefix in op.prefixes:
            if digits.startswith(prefix) and len(prefix) > best_len:
                best, best_len = op.id, len(prefix)
    return best


def call_type_of(rules: Rules, digits: str) -> str:
    best, best_len = rules.default_call_type, -1
    for ct in rules.call_types:
        for prefix in ct.called_prefixes:
            if digits.startswith(prefix) and len(prefix) > best_len:
                best, best_len = ct.name, len(prefix)
    return best


def band_of(rules: Rules, epoch: int) -> str:
    local = dt.datetime.fromtimestamp(epoch, dt.timezone(dt.timedelta(
        seconds=rules.timezone_offset_s)))
    minute = local.hour * 60 + local.minute
    for band in rules.time_bands:
        lo, hi = band.start_minute, band.end_minute
        inside = lo <= minute < hi if lo < hi else (minute >= lo or minute < hi)
        if inside:
            return band.name
    raise AssertionError("bands cover the day")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def rate_record(rules: Rules, service: int, calling: str, called: str, start: int,
                duration_s: int, volume_kb: int) -> int | None:
    keys = {"payer": operator_of(rules, calling), "payee": operator_of(rules, called),
            "service": SERVICES[service], "call_type": call_type_of(rules, called),
            "time_band": band_of(rules, start)}
    for tariff in rules.tariffs:
        if not all(getattr(tariff, k) in (WILDCARD, v) for k, v in keys.items()):
            continue
        if not (tariff.effective_from <= start
                and (tariff.effective_to is None or start < tariff.effective_to)):
            continue
        if service == 0:
            units = 0 if duration_s == 0 else max(
                tariff.minimum, ceil_div(duration_s, tariff.increment) * tariff.increment)
            return (units * tariff.rate + 30) // 60
        if service == 1:
            return tariff.rate
        units = 0 if volume_kb == 0 else max(
            tariff.minimum, ceil_div(volume_kb, tariff.increment) * tariff.increment)
        return (units * tariff.rate + 512) // 1024
    return None


# ---------------------------------------------------------------------------
# a whole file


@dataclass
class RefRow:
    status: str
    reason: str | None
    unit: int | None


def reference_ingest(table: list[dict[str, str | None]],
                     rules: Rules) -> tuple[list[RefRow], list[dict]]:
    """Rows (status, reason, unit) and records (dicts with the records-frame columns)."""
    n = len(table)
    result = [RefRow("ok", None, None) for _ in range(n)]
    values: list[dict] = [{} for _ in range(n)]
    seen: set[str] = set()
    # 1. validate
    for i, fields in enumerate(table):
        reason, out = first_failure(fields, seen, rules)
        if fields["record_id"] not in (None, ""):
            seen.add(fields["record_id"])
        if reason is not None:
            result[i] = RefRow("invalid", reason, None)
        else:
            values[i] = out
    valid = [i for i in range(n) if result[i].status == "ok"]
    # 2. duplicates: every field but record_id equal to an earlier valid row
    keys = ("service", "calling", "called", "start", "duration_s", "volume_kb", "trunk_group",
            "part_seq", "charge")
    considered = []
    for i in valid:
        earlier = next((j for j in valid if j < i and all(values[j][k] == values[i][k]
                                                           for k in keys)), None)
        if earlier is not None:
            result[i] = RefRow("duplicate", f"duplicate_of:{earlier + 1}", None)
        else:
            considered.append(i)
    # 3. partials
    groups: dict[tuple, list[int]] = {}
    candidates: list[list[int]] = []
    for i in considered:
        v = values[i]
        if v["part_seq"] == 0:
            candidates.append([i])
        else:
            groups.setdefault((v["service"], v["calling"], v["called"], v["trunk_group"]),
                              []).append(i)
    for members in groups.values():
        members.sort(key=lambda i: (values[i]["start"], values[i]["part_seq"], i))
        chain: list[int] = []
        for i in members:
            if chain:
                last = values[chain[-1]]
                end = last["start"] + last["duration_s"]
                if (values[i]["part_seq"] == last["part_seq"] + 1
                        and abs(values[i]["start"] - end) <= rules.partial_max_gap_s):
                    chain.append(i)
                    continue
                candidates.append(chain)
            chain = [i]
        if chain:
            candidates.append(chain)
    records = []
    for chain in candidates:
        first = values[chain[0]]
        record = {
            "record_id": first["record_id"], "row": chain[0] + 1, "service": first["service"],
            "calling": first["calling"], "called": first["called"], "start": first["start"],
            "duration_s": sum(values[i]["duration_s"] for i in chain),
            "volume_kb": sum(values[i]["volume_kb"] for i in chain),
            "trunk_group": first["trunk_group"],
            "charge": sum(values[i]["charge"] for i in chain),
            "parts": len(chain), "_rows": chain,
        }
        too_big = next((c for c in ("duration_s", "volume_kb", "charge")
                        if record[c] > MAX_INTEGER), None)
        if too_big is not None:
            for i in chain:
                result[i] = RefRow("invalid", f"oversize_field:{too_big}", None)
            continue
        # 4. exclusions
        excluded_by = next((e.name for e in rules.exclusions
                            if record[e.field] == e.equals
                            and (e.service is None or SERVICES[record["service"]] == e.service)),
                           None)
        record["excluded"] = excluded_by is not None
        record["_reason"] = excluded_by
        # 5. rating
        if excluded_by is None:
            rated = rate_record(rules, record["service"], record["calling"], record["called"],
                                record["start"], record["duration_s"], record["volume_kb"])
            if rated is None:
                for i in chain:
                    result[i] = RefRow("invalid", "no_tariff", None)
                continue
            record["rated_charge"] = rated
        else:
            record["rated_charge"] = None
        records.append(record)
    records.sort(key=lambda r: r["row"])
    for unit, record in enumerate(records):
        record["unit"] = unit
        for i in record.pop("_rows"):
            reason = record["_reason"]
            result[i] = RefRow("excluded" if reason else "ok", reason, unit)
        record.pop("_reason")
    return result, records
