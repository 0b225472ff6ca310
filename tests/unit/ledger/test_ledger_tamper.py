"""Tamper evidence: changing any single byte of a stored entry, leaf hash, tree node,
checkpoint or signature *in the SQLite file* makes `ledger verify` fail naming the index.

The ledger is built, its WAL checkpointed into the main file, then one byte of the
value is flipped where it lies in the raw file (values are stored as BLOBs, so the
page structure stays intact and SQLite reads the changed value back)."""

import sqlite3
from pathlib import Path

import pytest

from engine.cli import main
from ledger_anchor import open_ledger
from ledger_anchor.client import identity_of
from ledger_anchor.errors import VerificationError
from ledger_anchor.verify import verify_ledger
from tests.unit.ledger.ledger_consortium import make_consortium


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tamper")
    consortium = make_consortium(root / "c")
    with open_ledger(consortium.config_path, create=True) as ledger:
        for start in range(0, 12, 4):
            items = []
            for i in range(start, start + 4):
                entry = {"kind": "recon_result", "job_id": f"j{i}", "disputed": i, "root": f"{i:064x}"}
                items.append((entry, consortium.sign(entry, "A", "B")))
            ledger.append_many(items)
        for member in ("A", "B"):
            ledger.cosign(member, consortium.member_keys[member])
    db = consortium.config.ledger.db
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return consortium, db.read_bytes()


def _values(db: Path) -> dict[str, list[tuple[int, bytes]]]:
    with sqlite3.connect(db) as connection:
        return {
            "entry": [(i, bytes(d)) for i, d in connection.execute("SELECT idx, data FROM entries")],
            "leaf hash": [(i, bytes(h)) for i, h in connection.execute("SELECT idx, leaf_hash FROM entries")],
            "node": [(i, bytes(h)) for i, h in connection.execute("SELECT id, hash FROM nodes")],
            "checkpoint": [(s, bytes(n)) for s, n in connection.execute("SELECT size, note FROM checkpoints")],
            "checkpoint root": [(s, bytes(r)) for s, r in
                                connection.execute("SELECT size, root FROM checkpoints WHERE size > 0")],
            "cosignature": [(s, bytes(line)) for s, line in connection.execute("SELECT size, line FROM cosignatures")],
        }


def _occurrences(original: bytes, value: bytes) -> list[int]:
    found, where = [], original.find(value)
    while where >= 0:
        found.append(where)
        where = original.find(value, where + 1)
    assert found, "the value must be in the file"
    return found


def _flip_in_file(path: Path, original: bytes, value: bytes, offset: int, occurrence: int = 0) -> None:
    """Flip one bit of ``value`` where it is stored.  A value stored twice (a perfect
    node of 2^k leaves is also the root column of the checkpoint at size 2^k, which
    names the same index) is flipped at each place in turn by the caller."""
    data = bytearray(original)
    data[_occurrences(original, value)[occurrence] + offset] ^= 0x01
    path.write_bytes(bytes(data))


def _expected_index(kind: str, key: int) -> int:
    if kind in ("entry", "leaf hash"):
        return key
    if kind == "node":
        level, index = key >> 56, key & ((1 << 56) - 1)
        return ((index + 1) << level) - 1  # the last leaf under the node
    return max(key - 1, 0)  # checkpoint / cosignature: the checkpoint's last entry


@pytest.mark.parametrize("kind", ["entry", "leaf hash", "node", "checkpoint", "checkpoint root", "cosignature"])
def test_any_single_byte_change_is_detected_and_named(built, tmp_path: Path, kind: str) -> None:
    consortium, original = built
    identity = identity_of(consortium.config)
    db = tmp_path / "ledger.sqlite"
    db.write_bytes(original)
    verify_ledger(db, identity)  # the untouched copy verifies
    values = _values(db)[kind]
    assert values
    probes = []
    for key, value in values:
        # every byte of the first value of this kind, and three positions of each other value
        offsets = range(len(value)) if not probes else (0, len(value) // 2, len(value) - 1)
        probes.extend((key, value, offset) for offset in offsets)
        if kind in ("entry", "checkpoint") and len(probes) > 400:
            break
    for key, value, offset in probes:
        for occurrence in range(len(_occurrences(original, value))):
            _flip_in_file(db, original, value, offset, occurrence)
            with pytest.raises(VerificationError) as info:
                verify_ledger(db, identity)
            assert info.value.index == _expected_index(kind, key), (kind, key, offset, str(info.value))
    db.write_bytes(original)


def test_cli_verify_names_the_index(built, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    consortium, original = built
    db = tmp_path / "ledger.sqlite"
    db.write_bytes(original)
    assert main(["ledger", "verify", "--config", str(consortium.config_path), "--db", str(db)]) == 0
    entry = _values(db)["entry"][5][1]
    _flip_in_file(db, original, entry, entry.index(b"j5") + 1)
    assert main(["ledger", "verify", "--config", str(consortium.config_path), "--db", str(db)]) == 3
    assert "entry 5:" in capsys.readouterr().err
