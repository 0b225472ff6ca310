"""Validation of the public data types: clear errors naming column and pair."""

import numpy as np
import pytest

from protocols.mpc.errors import MpcConfigError, MpcInputError
from protocols.mpc.params import MAX_ABS_VALUE, MAX_PAIRS, MpcParties, PairValues, ToleranceParams


def test_value_beyond_the_public_bound_is_refused_with_its_index() -> None:
    ok = np.zeros(3, dtype=np.int64)
    with pytest.raises(MpcInputError, match=r"charge, pair 2: expected \|value\| <= 2\^62 - 1") as info:
        PairValues(ok, ok, np.array([0, 1, MAX_ABS_VALUE + 1]), ok)
    assert info.value.column == "charge" and info.value.index == 2
    with pytest.raises(MpcInputError, match="start, pair 0"):
        PairValues(np.array([np.iinfo(np.int64).min, 0, 0]), ok, ok, ok)


def test_columns_of_different_length_and_floats_are_refused() -> None:
    with pytest.raises(MpcInputError, match="rated_charge: expected 2 values"):
        PairValues(np.zeros(2, np.int64), np.zeros(2, np.int64), np.zeros(2, np.int64), np.zeros(3, np.int64))
    with pytest.raises(MpcInputError, match="duration_s: expected integers, found dtype float64"):
        PairValues(np.zeros(2, np.int64), np.zeros(2), np.zeros(2, np.int64), np.zeros(2, np.int64))


def test_tolerances_and_policy() -> None:
    with pytest.raises(MpcConfigError, match="charge_tolerance: expected 0..4096, found -1"):
        ToleranceParams(1, 1, -1)
    with pytest.raises(MpcConfigError, match="disclosure policy"):
        ToleranceParams(1, 1, 1, "everything")


def test_min_cell_pairs() -> None:
    assert ToleranceParams(1, 1, 1).min_cell_pairs == 5
    assert ToleranceParams(1, 1, 1, "aggregate", np.int64(3)).min_cell_pairs == 3
    for bad in (0, -1, True, 2.5, MAX_PAIRS + 1):
        with pytest.raises(MpcConfigError, match="min_cell_pairs: expected an integer"):
            ToleranceParams(1, 1, 1, "flags", bad)


def test_no_tls_outside_loopback() -> None:
    MpcParties(("127.0.0.1:17301", "127.0.0.1:17302", "localhost:17303"), 0)
    with pytest.raises(MpcConfigError, match="local demo only"):
        MpcParties(("10.0.0.1:17301", "127.0.0.1:17302", "127.0.0.1:17303"), 0)
    with pytest.raises(MpcConfigError, match="expected host:port"):
        MpcParties(("127.0.0.1", "127.0.0.1:17302", "127.0.0.1:17303"), 0)
