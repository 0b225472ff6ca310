"""Element encoding of ``settlechain psi`` from Parquet columns."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from protocols.psi import InputBoundsError
from protocols.psi.cli import load_elements, pair_id_series


def _write(tmp_path, name, frame):
    path = tmp_path / name
    frame.write_parquet(path)
    return path


def test_equal_values_give_equal_elements_whatever_the_rest_of_the_column(tmp_path) -> None:
    a = _write(tmp_path, "a.parquet", pl.DataFrame({
        "calling": ["+8613800000001", "013", "12"], "svc": ["voice", "sms", "voice"],
        "n": [1, 2, 3]}))
    # b's columns also hold a non-number and other services: the shared rows must still match
    b = _write(tmp_path, "b.parquet", pl.DataFrame({
        "calling": ["8613800000001", "13", "unknown", "013"], "svc": ["voice", "sms", "data", "sms"],
        "n": [1, 2, 3, 2]}))
    ea, _, _ = load_elements(a, ["calling", "svc", "n"], None)
    eb, _, _ = load_elements(b, ["calling", "svc", "n"], None)
    da = {bytes(d) for d in ea.digests}
    db = [bytes(d) for d in eb.digests]
    # "+86..." equals "86..."; "013" differs from "13" (leading zero kept by the length)
    assert [d in da for d in db] == [True, False, False, True]


def test_nulls_and_floats_are_refused_naming_row_and_column(tmp_path) -> None:
    path = _write(tmp_path, "x.parquet", pl.DataFrame({"a": [1, None, 3], "f": [1.0, 2.0, 3.0]}))
    with pytest.raises(InputBoundsError, match=r"row 1, column 'a'"):
        load_elements(path, ["a"], None)
    with pytest.raises(InputBoundsError, match=r"column 'f'.*found Float64"):
        load_elements(path, ["f"], None)


def test_duplicate_rows_are_refused(tmp_path) -> None:
    path = _write(tmp_path, "d.parquet", pl.DataFrame({"a": [1, 2, 1]}))
    with pytest.raises(Exception, match="element 2 equals element 0"):
        load_elements(path, ["a"], None)


def test_pair_id_series_keeps_all_bytes() -> None:
    ids = np.array([[0] * 16, list(range(16))], np.uint8)
    assert pair_id_series(ids).to_list() == [[0] * 16, list(range(16))]
    assert pair_id_series(np.zeros((0, 16), np.uint8)).len() == 0
