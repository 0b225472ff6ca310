"""Pair ids as hex and the per-class sums, against plain Python."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.matching.errors import MatchingError
from engine.matching.bucket import sums_by
from engine.matching.elements import pair_ids_hex


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=16, max_size=16), max_size=40))
def test_pair_ids_hex_equals_bytes_hex(ids):
    array = np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(len(ids), 16)
    assert pair_ids_hex(array).to_list() == [i.hex() for i in ids]


def test_pair_ids_ending_in_zero_bytes_keep_them():
    ids = np.zeros((3, 16), dtype=np.uint8)
    ids[1, 0] = 0xAB
    got = pair_ids_hex(ids[::-1])  # not contiguous: copied first
    assert got.to_list() == ["0" * 32, "ab" + "0" * 30, "0" * 32]
    with pytest.raises(ValueError, match="shape"):
        pair_ids_hex(np.zeros((2, 15), dtype=np.uint8))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 2**40), st.integers(0, 2**40)), max_size=60))
def test_sums_by_is_exact(pairs):
    keys = np.array([k for k, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.int64)
    expected: dict[int, int] = {}
    for k, v in pairs:
        expected[k] = expected.get(k, 0) + v
    assert sums_by(keys, values) == expected


def test_sums_by_refuses_what_could_overflow():
    with pytest.raises(MatchingError, match="2\\^62"):
        sums_by(np.zeros(4, dtype=np.int64), np.full(4, 2**61, dtype=np.int64))
