"""numba kernels of the PSI core against plain numpy / Python computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.psi import kernels, kkrt


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 12), cols=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_bit_transpose_matches_numpy(rows, cols, seed) -> None:
    r, c = 64 * rows, 64 * cols
    src = np.random.default_rng(seed).integers(0, 256, (r, c // 8), dtype=np.uint8)
    dst = np.zeros((c, r // 8), np.uint8)
    kernels.bit_transpose(src, dst)
    bits = np.unpackbits(src, axis=1, bitorder="little")
    assert np.array_equal(dst, np.packbits(bits.T, axis=1, bitorder="little"))


def test_bit_transpose_large_both_directions() -> None:
    src = np.random.default_rng(1).integers(0, 256, (512, 4096), dtype=np.uint8)
    rows = np.zeros((32768, 64), np.uint8)
    back = np.zeros_like(src)
    kernels.bit_transpose(src, rows)
    kernels.bit_transpose(rows, back)
    assert np.array_equal(back, src)
    assert rows[12345, 3] >> 2 & 1 == src[3 * 8 + 2, 12345 // 8] >> (12345 % 8) & 1


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1))
def test_cuckoo_places_every_element_in_one_of_its_bins(n, seed) -> None:
    rng = np.random.default_rng(seed)
    nbins = kkrt.bin_count(n)
    positions = rng.integers(0, nbins, (n, 3)).astype(np.uint32)
    bin_element, bin_function, failed = kernels.cuckoo_insert(positions, nbins, kkrt.MAX_KICKS, seed + 1)
    assert failed == -1
    occupied = np.nonzero(bin_element >= 0)[0]
    assert sorted(bin_element[occupied].tolist()) == list(range(n))
    for b in occupied:
        assert positions[bin_element[b], bin_function[b]] == b


def test_cuckoo_reports_failure() -> None:
    positions = np.zeros((2, 3), np.uint32)  # two elements, one possible bin
    _, _, failed = kernels.cuckoo_insert(positions, 128, 50, 7)
    assert failed >= 0


def test_bucket_candidates_is_a_counting_sort() -> None:
    rng = np.random.default_rng(2)
    n, nbins = 500, 640
    positions = rng.integers(0, nbins, (n, 3)).astype(np.uint32)
    cand_pos, offsets, send_index = kernels.bucket_candidates(positions, nbins)
    assert sorted(cand_pos.tolist()) == list(range(3 * n))
    k, e = cand_pos // n, cand_pos % n
    cand_bin = np.repeat(np.arange(nbins), np.diff(offsets.astype(np.int64)))
    assert np.array_equal(positions[e, k].astype(np.int64), cand_bin)
    assert np.array_equal(cand_pos[send_index], np.arange(3 * n))
    assert offsets[0] == 0 and offsets[-1] == 3 * n


def test_blake2b_words_equals_rows_of_the_stacked_matrix() -> None:
    rng = np.random.default_rng(6)
    for k in (1, 7, 16, 17, 40):
        columns = rng.integers(0, 2**63, (k, 33)).astype(np.uint64)
        h0 = kernels.blake2b_initial_state(16, person=b"p")
        by_words = np.zeros((33, 16), np.uint8)
        by_rows = np.zeros((33, 16), np.uint8)
        kernels.blake2b_words(kernels.word_columns(list(columns)), h0, kernels.BLAKE2B_IV, by_words)
        rows = np.ascontiguousarray(columns.T).view(np.uint8)
        kernels.blake2b_rows(rows, h0, kernels.BLAKE2B_IV, by_rows)
        assert np.array_equal(by_words, by_rows), k


def test_bins_from_words_scale_into_range() -> None:
    words = np.array([[0, 2**32 - 1, 2**31, 5]], np.uint32)
    assert kernels.bins_from_words(words, 1000).tolist() == [[0, 999, 500]]


def test_first_duplicate() -> None:
    digests = np.arange(40, dtype=np.uint64).reshape(20, 2)
    assert kernels.first_duplicate(digests) == (-1, -1)
    digests[13] = digests[4]
    assert kernels.first_duplicate(digests) == (4, 13)
    near = digests.copy()
    near[13, 1] ^= np.uint64(1)  # equal first word only
    assert kernels.first_duplicate(near) == (-1, -1)


def test_fisher_yates_is_a_permutation_and_varies() -> None:
    rng = np.random.default_rng(4)
    perm = kernels.fisher_yates(rng.integers(0, 2**63, 1000).astype(np.uint64))
    assert sorted(perm.tolist()) == list(range(1000))
    assert not np.array_equal(perm, np.arange(1000))
    assert kernels.fisher_yates(np.zeros(0, np.uint64)).size == 0


@pytest.mark.parametrize("value_bytes", [8, 11, 12])
def test_probe_values_finds_exactly_the_equal_prefixes(value_bytes) -> None:
    rng = np.random.default_rng(value_bytes)
    values = rng.integers(0, 2**63, (300, 2)).astype(np.uint64)
    occupied = np.arange(300, dtype=np.int32)
    occupied[::7] = -1  # empty bins never match
    table = kernels.build_value_table(values, occupied)
    as_bytes = values.view(np.uint8).reshape(300, 16)
    pick = np.array([3, 7, 10, 299, 14])  # 7 and 14 are empty bins
    received = as_bytes[pick, :value_bytes].copy()
    received[2, value_bytes - 1] ^= 1     # 10 differs in its last sent byte
    noise = rng.integers(0, 256, (50, value_bytes), dtype=np.uint8)
    stream = np.frombuffer(np.concatenate([received, noise]).tobytes(), np.uint8)  # read-only, as off the wire
    matched = np.zeros(300, np.int64)
    pos = np.empty(55, np.int64)
    idx = np.empty(55, np.int64)
    found = kernels.probe_values(table, values, stream, value_bytes, 100, matched, pos, idx)
    assert found == 2
    assert pos[:2].tolist() == [100, 103] and idx[:2].tolist() == [3, 299]
    again = kernels.probe_values(table, values, stream[:value_bytes], value_bytes, 200,
                                 matched, pos, idx)
    assert again == -1, "a value that already matched must be reported"


def test_warm_up_runs_every_kernel_without_error() -> None:
    kernels.warm_up()
    kernels.warm_up()


def test_parallel_kernels_can_be_launched_from_several_threads() -> None:
    """numba's workqueue layer aborts on concurrent parallel launches; the module lock prevents
    that (two PSI sessions, or a session and the CLI's warm-up, may run in one process)."""
    import threading

    errors = []

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            src = rng.integers(0, 256, (512, 512), dtype=np.uint8)
            dst = np.zeros((4096, 64), np.uint8)
            for _ in range(20):
                kernels.bit_transpose(src, dst)
                kernels.blake2b_rows(dst[:500], kernels.blake2b_initial_state(16), kernels.BLAKE2B_IV,
                                     np.zeros((500, 16), np.uint8))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
