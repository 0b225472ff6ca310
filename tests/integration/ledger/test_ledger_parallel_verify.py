"""Batches whose author signatures are verified by worker processes (real gmssl and
tongsuopy, real subprocesses, real SQLite, the real gRPC service): same results and
same refusals as the serial path, workers reused, stopped on close, never orphaned."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_anchor import open_ledger
from ledger_anchor.client import identity_of
from ledger_anchor.errors import EntryError
from ledger_anchor.signature_pool import SERIAL, ParallelVerification
from ledger_anchor.verify import verify_ledger
from tests.integration.ledger.processes import stop_service
from tests.unit.ledger.ledger_consortium import Consortium, make_consortium

POOLED = ParallelVerification(workers=1, gmssl_min_signatures=4)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    return make_consortium(tmp_path_factory.mktemp("parallel") / "c")


def _items(consortium: Consortium, count: int, start: int = 0, signers: tuple[str, ...] = ("A",)):
    entries = [{"kind": "invoice", "job_id": f"job-{i}", "n": i} for i in range(start, start + count)]
    return [(entry, consortium.sign(entry, *signers)) for entry in entries]


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for init to reap it counts)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(_gone(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if not _gone(pid)]


def _children(pid: int) -> list[int]:
    result = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    result.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    return result


def _refusal(ledger, items) -> str:
    with pytest.raises(EntryError) as refused:
        ledger.append_many(items)
    return str(refused.value)


# -- the same answers as the serial path ------------------------------------------

def test_pooled_batches_equal_the_serial_path_and_reuse_the_workers(consortium: Consortium, tmp_path: Path) -> None:
    items = _items(consortium, 40, signers=("A", "B"))  # 80 signatures per run
    with open_ledger(consortium.config_path, db=tmp_path / "pooled.sqlite", create=True, sm2_backend="gmssl",
                     parallel=POOLED) as pooled, \
            open_ledger(consortium.config_path, db=tmp_path / "serial.sqlite", create=True, sm2_backend="gmssl",
                        parallel=SERIAL) as serial:
        assert pooled.log.verifier.running_workers == []
        first = pooled.append_many(items[:20])
        workers = pooled.log.verifier.running_workers
        assert len(workers) == 1 and not _gone(workers[0])
        second = pooled.append_many(items[20:])
        assert pooled.log.verifier.running_workers == workers  # reused, not restarted
        reference = serial.append_many(items[:20]) + serial.append_many(items[20:])
        assert serial.log.verifier.running_workers == []
        assert [(r.index, r.leaf_hash) for r in first + second] == [(r.index, r.leaf_hash) for r in reference]
        assert [pooled.entry_data(i) for i in range(40)] == [serial.entry_data(i) for i in range(40)]
        assert pooled.log.root(40) == serial.log.root(40)
    assert _wait_gone(workers, 5) == []  # stopped by close
    assert verify_ledger(tmp_path / "pooled.sqlite", identity_of(consortium.config)).size == 40


BAD_CASES = {
    "first": ({0: "other"}, "entries[0]: signature of 'A' on the invoice entry: SM2 signature does not verify"),
    "middle": ({13: "other"}, "entries[13]: signature of 'A' on the invoice entry: SM2 signature does not verify"),
    "last": ({23: "malformed"}, "entries[23]: signature of 'A' on the invoice entry: SM2 signature: "
                                "expected 1 <= r, s <= n-1, found a value outside that range"),
    "earliest of two": ({17: "other", 6: "malformed"}, "entries[6]: signature of 'A' on the invoice entry: "
                        "SM2 signature: expected 1 <= r, s <= n-1, found a value outside that range"),
    "unknown signer after a bad one": ({9: "other", 15: "unknown"}, "entries[9]: signature of 'A'"),
    # only the 2 signatures before it are verified: fewer than 4, so no worker
    "unknown signer first": ({2: "unknown", 15: "other"}, "entries[2]: unknown signer 'Z'"),
}


def _spoil(consortium: Consortium, items, spoilers: dict[int, str]):
    items = list(items)
    for position, how in spoilers.items():
        entry, signatures = items[position]
        if how == "other":  # a valid signature, on another entry
            signatures = items[(position + 1) % len(items)][1]
        elif how == "malformed":
            signatures = {"A": bytes(63) + b"\x01"}
        else:
            signatures = {"Z": signatures["A"]}
        items[position] = (entry, signatures)
    return items


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_a_bad_signature_anywhere_refuses_the_whole_batch(consortium: Consortium, tmp_path: Path, case: str) -> None:
    spoilers, expected = BAD_CASES[case]
    items = _spoil(consortium, _items(consortium, 24), spoilers)
    messages = {}
    for name, parallel in (("pooled", POOLED), ("serial", SERIAL)):
        with open_ledger(consortium.config_path, db=tmp_path / f"{name}.sqlite", create=True, sm2_backend="gmssl",
                         parallel=parallel) as ledger:
            messages[name] = _refusal(ledger, items)
            assert ledger.size() == 0  # nothing appended
            assert ledger.log.checkpoint_sizes() == [0]
            assert bool(ledger.log.verifier.running_workers) == (name == "pooled" and case != "unknown signer first")
    assert messages["pooled"] == messages["serial"]
    assert messages["pooled"].startswith(expected)


@pytest.fixture(scope="module")
def tongsuopy_pair(consortium: Consortium, tmp_path_factory: pytest.TempPathFactory):
    """A pooled (2 workers) and a serial ledger, both verifying with tongsuopy, kept
    across the examples below so that the workers serve many batches in a row."""
    pytest.importorskip("tongsuopy")
    folder = tmp_path_factory.mktemp("pair")
    parallel = ParallelVerification(workers=2, tongsuopy_min_signatures=2)
    with open_ledger(consortium.config_path, db=folder / "pooled.sqlite", create=True, sm2_backend="tongsuopy",
                     parallel=parallel) as pooled, \
            open_ledger(consortium.config_path, db=folder / "serial.sqlite", create=True, sm2_backend="tongsuopy",
                        parallel=SERIAL) as serial:
        yield pooled, serial


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_property_pooled_verdicts_equal_serial_ones(consortium: Consortium, tongsuopy_pair, data) -> None:
    """Any batch, any spoilt signatures: the pooled verdict (the same receipts, or the
    same refusal naming the same entry with nothing appended) is the serial one.
    tongsuopy keeps each example fast; its signatures go through the very same
    scheduling as gmssl's."""
    pooled, serial = tongsuopy_pair
    size = data.draw(st.integers(2, 70), label="batch size")
    spoilers = data.draw(st.dictionaries(st.integers(0, size - 1), st.sampled_from(["other", "malformed", "unknown"]),
                                         max_size=3), label="spoilt")
    items = _spoil(consortium, _items(consortium, size, signers=("A", "C")), spoilers)
    verdicts = []
    for ledger in (pooled, serial):
        before = ledger.size()
        try:
            verdicts.append([r.leaf_hash for r in ledger.append_many(items)])
        except EntryError as exc:
            verdicts.append(str(exc))
            assert ledger.size() == before
    assert verdicts[0] == verdicts[1]
    assert isinstance(verdicts[0], str) == bool(spoilers)
    assert pooled.size() == serial.size()
    assert len(pooled.log.verifier.running_workers) == 2 and serial.log.verifier.running_workers == []


# -- workers that die, parents that die --------------------------------------------

def test_a_killed_worker_is_replaced_and_nothing_goes_unverified(consortium: Consortium, tmp_path: Path) -> None:
    items = _items(consortium, 60)
    with open_ledger(consortium.config_path, db=tmp_path / "l.sqlite", create=True, sm2_backend="gmssl",
                     parallel=POOLED) as ledger:
        ledger.append_many(items[:30])
        [worker] = ledger.log.verifier.running_workers
        os.kill(worker, signal.SIGKILL)
        assert _wait_gone([worker], 5) == []
        spoilt = _spoil(consortium, items[30:], {25: "other"})
        assert _refusal(ledger, spoilt).startswith("entries[25]: signature of 'A'")  # verified by the caller
        assert ledger.size() == 30
        ledger.append_many(items[30:])
        [replacement] = ledger.log.verifier.running_workers
        assert replacement != worker
        assert ledger.size() == 60


_WRITER = """
import sys
from ledger_anchor import open_ledger
from ledger_anchor.signature_pool import ParallelVerification
from tests.unit.ledger.ledger_consortium import make_consortium
from pathlib import Path
consortium = make_consortium(Path(sys.argv[1]))
entries = [{"kind": "invoice", "n": i} for i in range(30)]
items = [(entry, consortium.sign(entry, "A")) for entry in entries]
with open_ledger(consortium.config_path, create=True, sm2_backend="gmssl",
                 parallel=ParallelVerification(workers=2, gmssl_min_signatures=4)) as ledger:
    ledger.append_many(items)
    print(" ".join(map(str, ledger.log.verifier.running_workers)), flush=True)
    while True:
        ledger.append_many(items)
"""


def test_workers_exit_when_the_appending_process_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the parent no chance to stop its workers: they must notice."""
    rng = random.Random(3)
    for round_number in range(3):
        process = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / f"c{round_number}")],
                                   stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            workers = [int(pid) for pid in process.stdout.readline().split()]
            assert len(workers) == 2 and set(workers) <= set(_children(process.pid))
            time.sleep(rng.uniform(0, 0.4))  # in the middle of a batch, or between two
        finally:
            process.kill()
            process.wait()
        assert _wait_gone(workers, 5) == [], f"round {round_number}: orphaned workers"


# -- the multi-threaded gRPC service -----------------------------------------------

def test_the_grpc_service_verifies_concurrent_batches_in_its_workers(tmp_path: Path) -> None:
    """`settlechain ledger serve` with gmssl: several clients append batches at once
    (its thread pool shares one verifier); a bad batch is refused naming the entry;
    SIGTERM stops the service and its workers."""
    from ledger_anchor.config import load_config

    consortium = make_consortium(tmp_path / "c")
    open_ledger(consortium.config_path, create=True).close()
    port_file = tmp_path / "port"
    settlechain = Path(sys.executable).parent / "settlechain"
    process = subprocess.Popen([str(settlechain), "ledger", "serve", "--config", str(consortium.config_path),
                                "--db", str(consortium.config.ledger.db), "--listen", "127.0.0.1:0",
                                "--port-file", str(port_file)], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "SETTLECHAIN_SM2_BACKEND": "gmssl"})
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)
        text = consortium.config_path.read_text().replace(
            'endpoint = ""', f'endpoint = "localhost:{port_file.read_text().strip()}"')
        (consortium.root / "remote.toml").write_text(text)
        config = load_config(consortium.root / "remote.toml")
        batches = [_items(consortium, 16, start=16 * n) for n in range(4)]
        batches[2] = _spoil(consortium, batches[2], {11: "other"})
        outcomes: dict[int, object] = {}

        def client(number: int) -> None:
            with open_ledger(config, member_id="ABC"[number % 3]) as remote:
                try:
                    outcomes[number] = [r.index for r in remote.append_many(batches[number])]
                except EntryError as exc:
                    outcomes[number] = str(exc)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert "entries[11]: signature of 'A' on the invoice entry: SM2 signature does not verify" in outcomes[2]
        appended = sorted(index for n in (0, 1, 3) for index in outcomes[n])
        assert appended == list(range(48))
        workers = _children(process.pid)
        assert workers, "the service started no verification worker"
    finally:
        stop_service(process)
    assert _wait_gone(workers, 5) == []
    report = verify_ledger(consortium.config.ledger.db, identity_of(consortium.config))
    assert report.size == 48
    with open_ledger(consortium.config_path, readonly=True) as ledger:
        for n in (0, 1, 3):
            stored = [json.loads(ledger.entry_data(i))["n"] for i in outcomes[n]]  # type: ignore[union-attr]
            assert stored == [entry["n"] for entry, _ in batches[n]]  # each batch whole and in order


def test_workers_that_cannot_start_leave_the_log_serial(consortium: Consortium, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An interpreter that exits at once (here /bin/false) never weakens a check: every
    batch is verified by the caller, and after three such workers the log stops trying."""
    pytest.importorskip("tongsuopy")
    monkeypatch.setattr(sys, "executable", "/bin/false")
    items = _items(consortium, 200)
    with open_ledger(consortium.config_path, db=tmp_path / "l.sqlite", create=True, sm2_backend="tongsuopy",
                     parallel=ParallelVerification(workers=1, tongsuopy_min_signatures=2)) as ledger:
        verifier = ledger.log.verifier
        batches = 0
        while verifier.unavailable is None and batches < 20:
            spoilt = _spoil(consortium, items[10 * batches:10 * batches + 10], {7: "other"})
            assert _refusal(ledger, spoilt).startswith("entries[7]: signature of 'A'")
            ledger.append_many(items[10 * batches:10 * batches + 10])
            batches += 1
        assert verifier.unavailable == "3 workers in a row exited before they were ready"
        assert ledger.size() == 10 * batches
        assert _refusal(ledger, _spoil(consortium, items[-10:], {4: "malformed"})).startswith(
            "entries[4]: signature of 'A'")
        ledger.append_many(items[-10:])
        assert verifier.running_workers == []


# -- full verification: signatures in windows, the first failure still first ------------

def _tampered_ledger(consortium: Consortium, tmp_path: Path, name: str, *, bad_signature: int | None,
                     bad_leaf_hash: int | None) -> Path:
    """40 entries signed by A and B; optionally entry ``bad_signature`` carries A's
    signature of another entry (well formed, wrong message) and entry ``bad_leaf_hash``
    a wrong stored leaf hash."""
    import sqlite3

    db = tmp_path / f"{name}.sqlite"
    with open_ledger(consortium.config_path, db=db, create=True, parallel=SERIAL) as ledger:
        ledger.append_many(_items(consortium, 40, signers=("A", "B")))
    with sqlite3.connect(db) as connection:
        if bad_signature is not None:
            data = json.loads(bytes(connection.execute("SELECT data FROM entries WHERE idx = ?",
                                                       (bad_signature,)).fetchone()[0]))
            other = json.loads(bytes(connection.execute("SELECT data FROM entries WHERE idx = 0").fetchone()[0]))
            for signature, borrowed in zip(data["signatures"], other["signatures"], strict=True):
                if signature["signer"] == "A":
                    signature["sig"] = borrowed["sig"]
            text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            connection.execute("UPDATE entries SET data = ? WHERE idx = ?", (text, bad_signature))
        if bad_leaf_hash is not None:
            connection.execute("UPDATE entries SET leaf_hash = ? WHERE idx = ?", (bytes(32), bad_leaf_hash))
    return db


@pytest.mark.parametrize(("bad_signature", "bad_leaf_hash", "expected"), [
    (13, None, "entry 13: signature of 'A'"),
    (13, 10, "entry 10: stored leaf hash"),    # a later bad signature in the same window
    (9, 12, "entry 9: signature of 'A'"),      # an earlier bad signature, still pending
    (12, 12, "entry 12: signature of 'A'"),    # the signature comes before the hash
    (30, 3, "entry 3: stored leaf hash"),      # another window
])
def test_full_verification_names_the_first_failure_with_workers(
        consortium: Consortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        bad_signature: int, bad_leaf_hash: int | None, expected: str) -> None:
    from ledger_anchor import verify
    from ledger_anchor.errors import VerificationError

    monkeypatch.setattr(verify, "SIGNATURE_WINDOW", 8)  # 16 signatures per window
    db = _tampered_ledger(consortium, tmp_path, "tampered", bad_signature=bad_signature,
                          bad_leaf_hash=bad_leaf_hash)
    identity = identity_of(consortium.config)
    messages = {}
    for mode, parallel in (("serial", SERIAL), ("pooled", ParallelVerification(
            workers=1, gmssl_min_signatures=4, tongsuopy_min_signatures=4))):
        with pytest.raises(VerificationError) as failed:
            verify_ledger(db, identity, parallel=parallel)
        messages[mode] = str(failed.value)
    assert messages["serial"].startswith(expected), messages
    assert messages["pooled"] == messages["serial"]


def test_full_verification_with_workers_passes_a_sound_ledger(consortium: Consortium, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger_anchor import verify

    monkeypatch.setattr(verify, "SIGNATURE_WINDOW", 8)
    db = _tampered_ledger(consortium, tmp_path, "sound", bad_signature=None, bad_leaf_hash=None)
    report = verify_ledger(db, identity_of(consortium.config), parallel=ParallelVerification(
        workers=1, gmssl_min_signatures=4, tongsuopy_min_signatures=4))
    assert report.size == 40
