"""Ledger benchmarks: signed appends per second per SM2 backend, inclusion proofs at
10^6 entries, full verification at 10^5 entries.

Run (under the shared-machine lock; the exact commands of bench/RESULTS-ledger.md)::

    flock /tmp/settlechain-bench.lock .venv/bin/python -m pytest bench/bench_ledger.py \\
        -o python_files='bench_*.py' --benchmark-enable --timeout=3600 -s \\
        --benchmark-columns=min,median,max,rounds

The 10^6- and 10^5-entry ledgers are built once through the real append path (every
entry signed by a member and verified on append, one signed checkpoint per batch of
1,000) and cached in ``$SETTLECHAIN_BENCH_CACHE`` (default
``/tmp/settlechain-bench-cache/ledger``); building 10^6 takes several minutes.
To keep that build affordable, the 10^6 ledger cycles through 1,000 distinct signed
entries (a log accepts duplicates; every append still verifies its signature).
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path

import pytest

from ledger_anchor import merkle, open_ledger, sm2
from ledger_anchor.client import identity_of
from ledger_anchor.entries import canonical_entry_bytes
from ledger_anchor.note import Checkpoint, Note
from ledger_anchor.signature_pool import SERIAL, ParallelVerification
from ledger_anchor.verify import verify_ledger

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.unit.ledger.ledger_consortium import make_consortium  # noqa: E402

CACHE = Path(os.environ.get("SETTLECHAIN_BENCH_CACHE", "/tmp/settlechain-bench-cache/ledger"))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _entry(i: int) -> dict:
    # the shape of a dataset commitment: hashes, counts and totals only
    return {"kind": "dataset_commitment", "job_id": f"2026-10-A-B-{i:07d}", "party": "A",
            "records_root": f"{i:064x}", "records": 1_000_000 + i, "charge_total": 123_456_789 + i}


def _signed(key: sm2.PrivateKey, count: int, offset: int = 0) -> list[tuple[dict, dict[str, bytes]]]:
    return [(e, {"A": key.sign(canonical_entry_bytes(e))}) for e in (_entry(offset + i) for i in range(count))]


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory):
    return make_consortium(tmp_path_factory.mktemp("bench") / "c")


# -- 0. the SM2 primitives themselves (the baseline every number below depends on) --

@pytest.mark.parametrize("backend", ["tongsuopy", "gmssl", "gmalg"])
@pytest.mark.parametrize("operation", ["sign", "verify"])
def test_raw_sm2_operations_per_second(benchmark, backend: str, operation: str):
    """Raw SM2 sign / verify of a 200-byte message, measured in the same run as the
    appends; gmalg (independent pure-Python implementation) is the peer."""
    message = b"m" * 200
    if backend == "gmalg":
        from gmalg import sm2 as gmalg_sm2

        private, public = sm2.generate_keypair()
        engine = gmalg_sm2.SM2(sk=private, uid=sm2.DEFAULT_USER_ID, pk=b"\x04" + public)
        r, s = engine.sign(message)
        call = (lambda: engine.sign(message)) if operation == "sign" else (lambda: engine.verify(message, r, s))
    else:
        key = sm2.PrivateKey.generate(sm2.get_backend(backend))
        signature = key.sign(message)
        call = (lambda: key.sign(message)) if operation == "sign" else (
            lambda: key.public.verify(message, signature))
    rounds = 300 if backend == "tongsuopy" else 30
    benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=3)
    rate = 1 / benchmark.stats.stats.median
    benchmark.extra_info.update({"backend": backend, "operation": operation, "per_second": round(rate, 1)})
    print(f"\n{backend} {operation}: {rate:.0f}/s")


# -- 1. signed appends per second --------------------------------------------------

# (backend, entries per batch, entries per round, how the authors' signatures are verified)
APPEND_CASES = [("tongsuopy", 1, 2000, "serial"),
                ("tongsuopy", 100, 5000, "serial"), ("tongsuopy", 100, 5000, "pooled"),
                ("tongsuopy", 1000, 10000, "serial"), ("tongsuopy", 1000, 10000, "default"),
                ("gmssl", 1, 100, "serial"),
                ("gmssl", 100, 300, "serial"), ("gmssl", 100, 300, "default")]
WARM_UP = 100


def _verification(mode: str) -> ParallelVerification:
    """serial: no worker; default: ParallelVerification() (gmssl batches >= 16 and
    tongsuopy batches >= 256 signatures go to cores - 1 workers); pooled: any batch
    of >= 16 signatures of either backend goes to the workers."""
    return {"serial": SERIAL, "default": ParallelVerification(),
            "pooled": ParallelVerification(tongsuopy_min_signatures=16)}[mode]


@pytest.mark.parametrize(("backend", "batch", "count", "mode"), APPEND_CASES,
                         ids=[f"{b}-batch{n}-{m}" for b, n, _, m in APPEND_CASES])
def test_signed_appends_per_second(benchmark, consortium, tmp_path: Path, backend: str, batch: int, count: int,
                                   mode: str):
    """Appends of entries signed by one member: each append verifies the signature,
    hashes the leaf, stores entry + nodes and signs a checkpoint per batch (one
    transaction per batch).  The authors' signing is measured separately.  How the
    signatures are verified: see _verification (workers: signature_pool).  Each round
    opens a fresh ledger and first appends one warm-up batch of max(100, batch) entries
    (not timed; it starts the workers where they are used; its time is reported)."""
    key = sm2.PrivateKey(consortium.member_keys["A"], sm2.get_backend(backend))
    started = time.perf_counter()
    items = _signed(key, count)
    signing_s = time.perf_counter() - started
    warm_up = _signed(key, max(WARM_UP, batch), offset=count)
    runs, cold_s = [], []

    def setup():
        db = tmp_path / f"append-{len(runs)}.sqlite"
        ledger = open_ledger(consortium.config_path, db=db, create=True, sm2_backend=backend,
                             parallel=_verification(mode))
        runs.append(ledger)
        started = time.perf_counter()
        ledger.append_many(warm_up)
        cold_s.append(time.perf_counter() - started)
        return (ledger,), {}

    def run(ledger):
        for start in range(0, count, batch):
            ledger.append_many(items[start:start + batch])

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    workers = []
    for ledger in runs:
        assert ledger.size() == len(warm_up) + count
        workers.append(len(ledger.log.verifier.running_workers))
        ledger.close()
    pooled = mode != "serial" and batch >= _verification(mode).min_signatures(backend)  # type: ignore[operator]
    assert set(workers) == {ParallelVerification().worker_count() if pooled else 0}
    median = benchmark.stats.stats.median
    cold = sorted(cold_s)[len(cold_s) // 2]
    benchmark.extra_info.update({"backend": backend, "batch": batch, "entries": count, "verification": mode,
                                 "workers": workers[0], "appends_per_s": round(count / median, 1),
                                 "warm_up_batch_s": round(cold, 3),
                                 "author_signatures_per_s": round(count / signing_s, 1),
                                 "peak_memory_mib": round(_peak_mib(), 1)})
    print(f"\n{backend} batch {batch} {mode} ({workers[0]} workers): {count / median:.0f} signed appends/s; "
          f"warm-up batch of {len(warm_up)} {cold:.3f} s (authors sign {count / signing_s:.0f}/s)")


# -- 1b. what a member checks before it appends or cosigns ---------------------------

def test_check_before_rely(benchmark, consortium, tmp_path: Path):
    """A member's check before it relies on the log (ledger_anchor.witness): from genesis
    over 10,000 entries (a member without state, e.g. one that just joined), and after a
    job's three entries (what each party pays per job).  tongsuopy, serial."""
    key = sm2.PrivateKey(consortium.member_keys["A"], sm2.get_backend("tongsuopy"))
    items = _signed(key, 10_000)
    with open_ledger(consortium.config_path, db=tmp_path / "rely.sqlite", create=True, sm2_backend="tongsuopy",
                     parallel=SERIAL) as ledger:
        for start in range(0, len(items), 1000):
            ledger.append_many(items[start:start + 1000])
        runs = []

        def from_genesis():
            state = tmp_path / f"B-{len(runs)}.json"
            runs.append(state)
            return (state,), {}

        benchmark.pedantic(lambda state: ledger.check_before_rely("B", state_path=state, parallel=SERIAL),
                           setup=from_genesis, rounds=3, iterations=1)
        genesis_s = benchmark.stats.stats.median
        job = _signed(key, 300, offset=10_000)
        per_job = []
        for start in range(0, len(job), 3):
            ledger.append_many(job[start:start + 3])
            started = time.perf_counter()
            ledger.check_before_rely("B", state_path=runs[0], parallel=SERIAL)
            per_job.append(time.perf_counter() - started)
        job_s = sorted(per_job)[len(per_job) // 2]
    benchmark.extra_info.update({"entries": 10_000, "from_genesis_s": round(genesis_s, 3),
                                 "after_a_job_ms": round(job_s * 1000, 2)})
    print(f"\ncheck before relying: from genesis over 10,000 entries {genesis_s:.2f} s "
          f"({10_000 / genesis_s:.0f} entries/s); after a job's 3 entries {job_s * 1000:.1f} ms (median of 100)")


# -- 2./3. large ledgers, built once ------------------------------------------------

def _built(size: int, distinct: int) -> tuple[Path, Path]:
    """(consortium file, db) of a cached ledger with ``size`` entries."""
    folder = CACHE / f"size-{size}"
    config_path, db = folder / "c" / "consortium.toml", folder / "c" / "ledger" / "ledger.sqlite"
    if (folder / "complete").exists():
        return config_path, db
    shutil.rmtree(folder, ignore_errors=True)
    consortium = make_consortium(folder / "c")
    key = sm2.PrivateKey(consortium.member_keys["A"])
    items = _signed(key, min(size, distinct))
    started = time.perf_counter()
    with open_ledger(consortium.config_path, create=True) as ledger:
        for start in range(0, size, 1000):
            ledger.append_many([items[i % len(items)] for i in range(start, min(size, start + 1000))])
            if start % 100_000 == 0:
                print(f"  built {start} entries in {time.perf_counter() - started:.0f} s", flush=True)
    (folder / "build-seconds").write_text(f"{time.perf_counter() - started:.1f}\n")
    (folder / "complete").touch()
    return config_path, db


@pytest.fixture(scope="module")
def million():
    return _built(1_000_000, distinct=1000)


def test_inclusion_proof_generation_and_verification_at_1e6(benchmark, million):
    config_path, db = million
    with open_ledger(config_path, db=db, readonly=True) as ledger:
        size = ledger.size()
        assert size == 1_000_000
        root = Checkpoint.parse_body(Note.parse(ledger.checkpoint(size)).text).root
        rng = random.Random(7)

        def prove_and_verify():
            index = rng.randrange(size)
            proof = ledger.inclusion_proof(index, size)
            leaf_hash = merkle.SM3_HASHER.hash_leaf(ledger.entry_data(index))
            merkle.verify_inclusion(merkle.SM3_HASHER, index, size, leaf_hash, proof, root)
            return len(proof)

        assert benchmark.pedantic(prove_and_verify, rounds=2000, iterations=1, warmup_rounds=50) == 20
    benchmark.extra_info.update({"entries": size, "db_mib": round(db.stat().st_size / 2**20, 1),
                                 "peak_memory_mib": round(_peak_mib(), 1)})
    print(f"\ninclusion proof + verification at 10^6: median {benchmark.stats.stats.median * 1e3:.3f} ms")


def test_consistency_proof_at_1e6(benchmark, million):
    config_path, db = million
    with open_ledger(config_path, db=db, readonly=True) as ledger:
        size = ledger.size()
        rng = random.Random(8)
        new_root = Checkpoint.parse_body(Note.parse(ledger.checkpoint(size)).text).root
        sizes = [s for s in range(1000, size, 1000)]

        def prove_and_verify():
            old = rng.choice(sizes)
            old_root = Checkpoint.parse_body(Note.parse(ledger.checkpoint(old)).text).root
            proof = ledger.consistency_proof(old, size)
            merkle.verify_consistency(merkle.SM3_HASHER, old, size, proof, old_root, new_root)

        benchmark.pedantic(prove_and_verify, rounds=1000, iterations=1, warmup_rounds=20)
    print(f"\nconsistency proof + verification at 10^6: median {benchmark.stats.stats.median * 1e3:.3f} ms")


@pytest.mark.parametrize("mode", ["serial", "default"])
def test_full_verification_at_1e5(benchmark, mode: str):
    """``serial``: every signature in this thread; ``default``: windows of 1,024 entries'
    signatures on every core (ledger_anchor.verify)."""
    config_path, db = _built(100_000, distinct=100_000)
    from ledger_anchor.config import load_config

    identity = identity_of(load_config(config_path))
    report = benchmark.pedantic(verify_ledger, args=(db, identity),
                                kwargs={"parallel": _verification(mode)}, rounds=2, iterations=1)
    assert report.size == 100_000
    benchmark.extra_info.update({"entries": report.size, "checkpoints": report.checkpoints,
                                 "backend": sm2.backend_name(), "verification": mode,
                                 "peak_memory_mib": round(_peak_mib(), 1)})
    print(f"\nfull verification of 10^5 entries ({report.checkpoints} checkpoints, {mode}): "
          f"median {benchmark.stats.stats.median:.1f} s")
