"""A small fixed scenario with every status and kind of pair, for the disclosure and
output tests."""

from __future__ import annotations

from matching_oracle import Record, Side

L1 = ("8613800138000", "8613900139000")


def _rec(start: int, duration: int = 60, charge: int = 6, rated: int | None = None,
         parts: int = 1, excluded: bool = False, service: int = 0,
         line: tuple[str, str] = L1) -> Record:
    return Record(service=service, calling=line[0], called=line[1], start=start,
                  duration_s=duration, charge=charge,
                  rated_charge=charge if rated is None else rated, parts=parts,
                  excluded=excluded)


def fixed_sides() -> tuple[Side, Side]:
    """With δ = 5, W = 12, δd = 2, δc = 2 (make_rules(5, 12, 2, 2)):

    - 1000: equal on both sides                         -> matched_exact (S1)
    - 2000 / 2001: equal values, start within δ         -> matched_tolerance (S2a)
    - 3000 / 3007: |Δt| = 7 > δ, one W window           -> disputed: start_time
    - 4000: charge 10 / 13, rated 10 / 10               -> disputed: charge_rate_mismatch
    - 5000 / 5003: duration 60 / 61, charge 6 / 7      -> matched_tolerance (S3, evaluated)
    - A 6000, two rows (a merged call), no counterpart  -> unmatched (both rows)
    - B 7000, no counterpart                            -> unmatched
    - an excluded record and an invalid and a duplicate row on A
    """
    a = Side(
        records=[_rec(1000), _rec(2000), _rec(3000), _rec(4000, charge=10, rated=10),
                 _rec(5000), _rec(6000, parts=2, charge=9),
                 _rec(6500, duration=0, charge=0, excluded=True)],
        other_rows=[("invalid", "malformed_number:calling"), ("duplicate", "duplicate_of:1")],
        row_order=[0, 8, 1, 2, 3, 4, 5, 9, 6, 7],
    )
    b = Side(records=[_rec(1000), _rec(2001), _rec(3007), _rec(4000, charge=13, rated=10),
                      _rec(5003, duration=61, charge=7), _rec(7000, charge=4)])
    return a, b
