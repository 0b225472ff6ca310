"""Durability and concurrency of the SQLite ledger with real processes.

* 50 SIGKILLs of a writer at random moments: afterwards a full verification passes,
  every acknowledged append is there with its leaf hash, and nothing half-written is
  visible (the latest checkpoint covers exactly the stored entries).
* Several processes appending at once: every entry lands exactly once, indices are
  dense, and the ledger verifies.
"""

from __future__ import annotations

import multiprocessing
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from ledger_anchor import open_ledger
from ledger_anchor.client import identity_of
from ledger_anchor.verify import verify_ledger
from tests.integration.ledger import ledger_writer
from tests.unit.ledger.ledger_consortium import make_consortium

KILLS = 50


@pytest.fixture(scope="module")
def context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["ledger_anchor.client", "ledger_anchor.sm2", "tests.integration.ledger.ledger_writer"])
    return ctx


def _acks(path: Path) -> dict[int, str]:
    acks = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and len(parts[1]) == 64:  # a line cut by the kill is ignored
                acks[int(parts[0])] = parts[1]
    return acks


def test_sigkill_at_random_moments_leaves_a_verifiable_ledger(tmp_path: Path, context) -> None:
    consortium = make_consortium(tmp_path / "c")
    open_ledger(consortium.config_path, create=True).close()
    acks_file = tmp_path / "acks.txt"
    rng = random.Random(20260101)
    killed_with_progress = 0
    for round_number in range(KILLS):
        before = len(_acks(acks_file))
        process = context.Process(target=ledger_writer.write_forever,
                                  args=(str(consortium.config_path), str(acks_file), f"w{round_number}"))
        process.start()
        # Wait until this writer is appending (its first commit is acknowledged), then
        # kill it a random moment later: mid-transaction, mid-signing, mid-ack, ...
        deadline = time.monotonic() + 20
        while len(_acks(acks_file)) == before and time.monotonic() < deadline and process.is_alive():
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.04))
        process.kill()
        process.join(10)
        assert process.exitcode == -signal.SIGKILL
        killed_with_progress += len(_acks(acks_file)) > before
    acks = _acks(acks_file)
    assert killed_with_progress == KILLS, "every writer must have committed something before its kill"
    report = verify_ledger(consortium.config.ledger.db, identity_of(consortium.config))
    with sqlite3.connect(consortium.config.ledger.db) as db:
        stored = dict((i, bytes(h).hex()) for i, h in db.execute("SELECT idx, leaf_hash FROM entries"))
        latest = db.execute("SELECT max(size) FROM checkpoints").fetchone()[0]
    assert report.size == len(stored) == latest
    for index, leaf_hash in acks.items():
        assert stored[index] == leaf_hash, f"acknowledged entry {index} lost or changed"


def test_concurrent_appends_from_several_processes_serialise(tmp_path: Path, context) -> None:
    consortium = make_consortium(tmp_path / "c")
    open_ledger(consortium.config_path, create=True).close()
    writers, per_writer = 4, 30
    processes = [context.Process(target=ledger_writer.write_forever,
                                 args=(str(consortium.config_path), str(tmp_path / f"acks-{w}.txt"), f"w{w}",
                                       per_writer)) for w in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    report = verify_ledger(consortium.config.ledger.db, identity_of(consortium.config))
    with open_ledger(consortium.config_path, readonly=True) as ledger:
        entries = ledger.entries(0, ledger.size())
    seen = sorted((e["writer"], e["n"]) for e in entries)
    expected_per_writer = {w: len(_acks(tmp_path / f"acks-{w}.txt")) for w in range(writers)}
    assert report.size == len(entries) == sum(expected_per_writer.values())
    assert len(set(seen)) == len(seen), "an entry landed twice"
    for w in range(writers):
        numbers = sorted(n for writer, n in seen if writer == f"w{w}")
        assert numbers == list(range(expected_per_writer[w])) and len(numbers) >= per_writer
