"""When the ledger starts signature-verification workers, and when it must not
(no processes are started by these tests except where a test says so)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger_anchor import open_ledger, sm2
from ledger_anchor.errors import ConfigError, EntryError
from ledger_anchor.signature_pool import (
    SERIAL,
    BatchVerifier,
    ParallelVerification,
    SignatureCheck,
    _Batch,
    verify_serially,
)
from tests.unit.ledger.ledger_consortium import Consortium, make_consortium


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    return make_consortium(tmp_path_factory.mktemp("pool") / "c")


def _items(consortium: Consortium, count: int, start: int = 0) -> list[tuple[dict, dict[str, bytes]]]:
    entries = [{"kind": "invoice", "job_id": f"job-{i}", "n": i} for i in range(start, start + count)]
    return [(entry, consortium.sign(entry, "A")) for entry in entries]


@pytest.mark.parametrize(("settings", "match"), [
    ({"workers": -1}, "workers: expected None or an integer >= 0"),
    ({"gmssl_min_signatures": 1}, "gmssl_min_signatures: expected None or an integer >= 2, found 1"),
    ({"tongsuopy_min_signatures": "many"}, "tongsuopy_min_signatures: expected None or an integer >= 2"),
])
def test_settings_are_validated(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ParallelVerification(**settings)


def test_default_worker_count_is_usable_cores_minus_one() -> None:
    assert ParallelVerification().worker_count() == len(os.sched_getaffinity(0)) - 1
    assert ParallelVerification(workers=3).worker_count() == 3
    assert SERIAL.worker_count() == 0


def test_opening_reading_and_small_batches_start_no_worker(consortium: Consortium, tmp_path: Path) -> None:
    parallel = ParallelVerification(workers=1, gmssl_min_signatures=4)
    with open_ledger(consortium.config_path, db=tmp_path / "l.sqlite", create=True, sm2_backend="gmssl",
                     parallel=parallel) as ledger:
        verifier = ledger.log.verifier
        assert verifier.running_workers == []
        for item in _items(consortium, 3):
            ledger.append(*item)  # single appends
        ledger.append_many(_items(consortium, 3, 3))  # 3 signatures < min_signatures
        ledger.entries(0, 6)
        assert ledger.size() == 6
        assert verifier.running_workers == []


def test_each_backend_has_its_own_threshold(consortium: Consortium, tmp_path: Path) -> None:
    """tongsuopy's verification is ~30x cheaper than gmssl's: by default a batch of 40
    tongsuopy signatures stays in the caller; None keeps a backend out of the workers."""
    pytest.importorskip("tongsuopy")
    default = ParallelVerification(workers=1)
    assert (default.min_signatures("gmssl"), default.min_signatures("tongsuopy")) == (16, 256)
    for parallel in (default, ParallelVerification(workers=1, tongsuopy_min_signatures=None)):
        with open_ledger(consortium.config_path, db=tmp_path / f"{id(parallel)}.sqlite", create=True,
                         sm2_backend="tongsuopy", parallel=parallel) as ledger:
            ledger.append_many(_items(consortium, 40))
            assert ledger.size() == 40
            assert ledger.log.verifier.running_workers == []


def test_a_key_on_another_curve_is_verified_in_the_caller(consortium: Consortium) -> None:
    """Workers rebuild keys from a backend name; a backend they cannot rebuild is never sent."""
    backend = sm2.GmsslBackend(sm2.Curve("copy", *[getattr(sm2.SM2P256V1, f) for f in ("p", "a", "b", "gx", "gy", "n")]))
    key = sm2.PrivateKey(consortium.member_keys["A"], backend)
    checks = [SignatureCheck(key.public, b"m%d" % i, key.sign(b"m%d" % i)) for i in range(3)]
    verifier = BatchVerifier(ParallelVerification(workers=1, gmssl_min_signatures=2))
    try:
        assert verifier.verify(checks) == {}
        assert verifier.running_workers == []
    finally:
        verifier.close()


def test_serial_verification_refuses_naming_the_entry(consortium: Consortium, tmp_path: Path) -> None:
    items = _items(consortium, 20)
    items[13] = (items[13][0], items[2][1])  # entry 2's signature on entry 13
    with open_ledger(consortium.config_path, db=tmp_path / "l.sqlite", create=True, sm2_backend="gmssl",
                     parallel=SERIAL) as ledger:
        with pytest.raises(EntryError, match=r"^entries\[13\]: signature of 'A' on the invoice entry: "
                                             r"SM2 signature does not verify$"):
            ledger.append_many(items)
        assert ledger.size() == 0
        assert ledger.log.verifier.running_workers == []


# -- the scheduling of one batch, driven by hand (no processes) --------------------

def _checks(consortium: Consortium, count: int, bad: set[int]) -> list[SignatureCheck]:
    key = sm2.PrivateKey(consortium.member_keys["A"])
    checks = []
    for index in range(count):
        message = b"entry %d" % index
        signature = key.sign(b"another entry" if index in bad else message)
        checks.append(SignatureCheck(key.public, message, signature))
    return checks


def _run_own_steps(batch: _Batch) -> None:
    while batch.verify_own_step():
        pass


def test_a_failure_found_by_a_worker_does_not_cut_short_an_earlier_chunk_of_the_caller(
        consortium: Consortium) -> None:
    """The caller took chunk k, then a worker took chunk k+1 and found a failure: chunk
    k precedes it and must be finished, and its own failure is the one reported."""
    batch = _Batch(_checks(consortium, 40, bad=set()), participants=2)
    worker_first = batch.next_chunk()
    assert batch.verify_own_step()  # the caller takes the next chunk and verifies its first check
    worker_second = batch.next_chunk()
    own_last = worker_second[0] - 1
    batch.checks[own_last] = _checks(consortium, own_last + 1, bad={own_last})[own_last]  # spoil the caller's chunk
    batch.record(*worker_first, [None] * (worker_first[1] - worker_first[0]))
    batch.record(*worker_second, ["failure found by the worker"])
    assert batch.stopped and not batch.has_next()
    _run_own_steps(batch)
    assert min(batch.failures) == own_last
    assert batch.failures[own_last] == "SM2 signature does not verify"


def test_chunks_given_back_are_verified_even_after_a_failure(consortium: Consortium) -> None:
    """A worker died holding chunk k; another found a failure in chunk k+1: the caller
    verifies chunk k, whose own failure comes first."""
    checks = _checks(consortium, 30, bad={3})
    batch = _Batch(checks, participants=3)
    lost, found = batch.next_chunk(), batch.next_chunk()
    assert lost[0] <= 3 < lost[1]
    batch.record(*found, [None, "failure found by the other worker"])
    batch.give_back(*lost)
    _run_own_steps(batch)
    assert min(batch.failures) == 3
    assert serial_first_failure(checks) == 3


def test_chunks_are_handed_out_in_order_and_cover_the_batch(consortium: Consortium) -> None:
    batch = _Batch(_checks(consortium, 3, bad=set()) * 50, participants=2)
    chunks = []
    while batch.has_next():
        chunks.append(batch.next_chunk())
    assert chunks[0][0] == 0 and chunks[-1][1] == 150
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert [end - start for start, end in chunks] == sorted((end - start for start, end in chunks), reverse=True)
    assert chunks[-1][1] - chunks[-1][0] == 1  # guided: small chunks at the end


def serial_first_failure(checks: list[SignatureCheck]) -> int:
    return min(verify_serially(checks))
