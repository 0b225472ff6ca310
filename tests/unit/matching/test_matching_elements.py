"""Element bytes of docs/matching.md: known answers, layout, number codes, ranks."""

from __future__ import annotations

import struct

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matching_oracle import Record, Side, make_rules

from engine.matching import MatchingError, encode_elements
from engine.names import PASSES
from engine.partition import local_partition
from engine.side import OperatorSide, SidePlan

# One voice record: calling 8613800138000 (0x7d58e7f5510), called 8613900139000
# (0x7d5947539f8), start 1790000000 (0x6ab13b80), 61 s, 7 fen.  Numbers are the digits as
# an integer (canonical numbers have no leading 0, so the integer determines them).
CALLING = "10557f8ed5070000"   # 0x7d58e7f5510, little-endian
CALLED = "f8397594d5070000"    # 0x7d5947539f8
START = "803bb16a00000000"     # 1790000000
KNOWN_ELEMENTS = {
    # tag, service, calling, called, start, duration 61, charge 7, rank 0
    "S1": "01" "00" + CALLING + CALLED + START + "3d00000000000000" "0700000000000000"
          "00000000",
    # δ = 5, V = 6: ⌊1790000000 / 6⌋ = 298333333 = 0x11c83495
    "S2a": "02" "00" + CALLING + CALLED + "9534c81100000000" "3d00000000000000"
           "0700000000000000" "00000000",
    # ⌊(1790000000 + 3) / 6⌋ = 298333333 again
    "S2b": "03" "00" + CALLING + CALLED + "9534c81100000000" "3d00000000000000"
           "0700000000000000" "00000000",
    # W = 12: ⌊1790000000 / 12⌋ = 149166666 = 0x8e41a4a
    "S3a": "04" "00" + CALLING + CALLED + "4a1ae40800000000" "00000000",
    # ⌊(1790000000 + 6) / 12⌋ = 149166667 = 0x8e41a4b
    "S3b": "05" "00" + CALLING + CALLED + "4b1ae40800000000" "00000000",
}


def _voice(start: int, duration: int = 61, charge: int = 7, calling: str = "8613800138000",
           called: str = "8613900139000") -> Record:
    return Record(service=0, calling=calling, called=called, start=start, duration_s=duration,
                  charge=charge, rated_charge=charge)


def _matcher(side: Side, rules):
    import tempfile
    from pathlib import Path

    frames = side.build()
    with tempfile.TemporaryDirectory() as folder:
        built = OperatorSide.from_frames(SidePlan("A", rules, None, local_partition(1),
                                                  Path(folder)), frames.rows, frames.records)
        return built.matcher(0)


def _all_pass_elements(side: Side, rules) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each pass's (elements, units) with no pairs recorded in between."""
    matcher = _matcher(side, rules)
    out = {}
    for spec in PASSES:
        pe = matcher.build_pass(spec)
        out[spec.name] = (pe.elements, pe.units)
        matcher.record_pass(pe, np.zeros(0, np.int64), np.zeros((0, 16), np.uint8))
    return out


def test_known_elements() -> None:
    rules = make_rules(delta=5, window=12, duration_tol=2, charge_tol=2)
    elements = _all_pass_elements(Side([_voice(1_790_000_000)]), rules)
    for name, expected in KNOWN_ELEMENTS.items():
        got, _ = elements[name]
        assert got.dtype == np.uint8
        assert got.shape == (1, len(expected) // 2), name
        assert got[0].tobytes().hex() == expected, name
    assert [elements[p.name][0].shape[1] for p in PASSES] == [46, 46, 46, 30, 30]


def test_floor_division_toward_minus_infinity() -> None:
    # start −1, W = 12: S3a ⌊−1/12⌋ = −1 (not 0, as truncation would give);
    # S3b ⌊(−1 + 6)/12⌋ = 0.  V = 6: S2a ⌊−1/6⌋ = −1, S2b ⌊(−1 + 3)/6⌋ = 0.
    rules = make_rules(delta=5, window=12, duration_tol=2, charge_tol=2)
    elements = _all_pass_elements(Side([_voice(-1)]), rules)
    field = {name: struct.unpack_from("<q", elements[name][0][0].tobytes(), 18)[0]
             for name in ("S2a", "S2b", "S3a", "S3b")}
    assert field == {"S2a": -1, "S2b": 0, "S3a": -1, "S3b": 0}
    assert struct.unpack_from("<q", elements["S1"][0][0].tobytes(), 18)[0] == -1


FIELD = st.integers(-(2**40), 2**40)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2),
                          st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                          st.lists(FIELD, min_size=3, max_size=3),
                          st.integers(0, 2**32 - 1)), min_size=1, max_size=20),
       st.sampled_from((1, 3)))
def test_encode_elements_matches_struct(rows, n_fields) -> None:
    """The numpy layout against an independent struct.pack of the documented layout."""
    fields = [np.array([r[4][i] for r in rows], dtype=np.int64) for i in range(n_fields)]
    for tag in {r[0] for r in rows}:
        got = encode_elements(tag, np.array([r[1] for r in rows], np.uint8),
                              np.array([r[2] for r in rows], np.uint64),
                              np.array([r[3] for r in rows], np.uint64), fields,
                              np.array([r[5] for r in rows], np.uint32))
        fmt = "<BBQQ" + "q" * n_fields + "I"
        expected = [struct.pack(fmt, tag, r[1], r[2], r[3], *r[4][:n_fields], r[5])
                    for r in rows]
        assert [bytes(e) for e in got] == expected


def test_ranks_follow_start_duration_charge_unit() -> None:
    # four records of one line in one S3 window (W = 12, all in [0, 12)); ranks are the
    # positions by (start, duration, charge, unit), whatever the input order.
    side = Side([_voice(5, duration=70), _voice(3), _voice(5, duration=60), _voice(5, 60)])
    rules = make_rules(delta=1, window=12, duration_tol=0, charge_tol=0)
    elements, records = _all_pass_elements(side, rules)["S3a"]
    rank_of_record = {int(r): struct.unpack_from("<I", e.tobytes(), 26)[0]
                      for e, r in zip(elements, records)}
    # unit i = the i-th record here (row order = list order): starts 5, 3, 5, 5
    assert rank_of_record == {1: 0, 2: 1, 3: 2, 0: 3}
    # S1: records 2 and 3 are equal in every element field: ranks 0 and 1 by unit
    elements, records = _all_pass_elements(side, rules)["S1"]
    s1 = {int(r): struct.unpack_from("<I", e.tobytes(), 42)[0]
          for e, r in zip(elements, records)}
    assert s1 == {0: 0, 1: 0, 2: 0, 3: 1}
    assert len({e.tobytes() for e in elements}) == len(elements)


@pytest.mark.parametrize("number", ["", "86 138", "+86138", "1234567890123456", "８６",
                                    "086138"])
def test_malformed_numbers_are_refused(number: str) -> None:
    frames = Side([_voice(0, calling=number)]).build()
    with pytest.raises(MatchingError, match="number must be 1-15 digits") as info:
        _matcher(Side([_voice(0, calling=number)]),
                 make_rules(delta=1, window=4, duration_tol=0, charge_tol=0))
    assert info.value.column == "calling" and info.value.row == 1
    assert frames.records.height == 1
