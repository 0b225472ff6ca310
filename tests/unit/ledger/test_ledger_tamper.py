"""Tamper evidence.

1. Every stored value: a demo-sized ledger (governance-like entries, a job's three
   entries, a membership manifest rotating a key, checkpoints and cosignatures of three
   members) is changed one value at a time -- every column of every row of every table
   -- through SQL, and `ledger verify` must fail on each change (issue 10 item 4).
2. Any single byte of a stored entry, leaf hash, tree node, checkpoint or signature
   flipped *in the SQLite file* makes `ledger verify` fail naming the index (the WAL is
   checkpointed into the main file, values are BLOBs, so SQLite reads the change back).
"""

import sqlite3
from pathlib import Path

import pytest

from engine.cli import main
from ledger_anchor import open_ledger
from ledger_anchor.client import identity_of
from ledger_anchor.errors import VerificationError
from ledger_anchor.verify import verify_ledger
from ledger_anchor.signature_pool import SERIAL
from ledger_anchor import sm2
from tests.unit.ledger.ledger_consortium import make_consortium, manifest_entry

_TABLES = ("meta", "entries", "nodes", "checkpoints", "cosignatures", "governance", "forks")


@pytest.fixture(scope="module")
def demo_sized(tmp_path_factory: pytest.TempPathFactory):
    """A ledger shaped like the demo's: consortium entries, a job's entries in one batch,
    a key rotation, and cosignatures by every member after each step."""
    root = tmp_path_factory.mktemp("demo-sized")
    consortium = make_consortium(root / "c")
    states = {m: root / f"{m}-state.json" for m in ("A", "B", "C")}
    with open_ledger(consortium.config_path, create=True) as ledger:
        proposal = {"kind": "proposal", "proposal_id": "rules-1", "type": "rule_package"}
        ledger.append(proposal, consortium.sign(proposal, "A"))
        for member in ("A", "B", "C"):
            vote = {"kind": "vote", "proposal_id": "rules-1", "voter": member}
            ledger.append(vote, consortium.sign(vote, member))
        for member in ("A", "B", "C"):
            ledger.cosign(member, consortium.member_keys[member], state_path=states[member])
        job = [{"kind": "dataset_commitment", "job_id": "j1", "party": p, "root": "ab" * 32} for p in "AB"]
        items = [(job[0], consortium.sign(job[0], "A")), (job[1], consortium.sign(job[1], "B"))]
        statement = {"kind": "settlement_statement", "job_id": "j1", "commitment": "cd" * 32}
        items.append((statement, consortium.sign(statement, "A", "B")))
        ledger.append_many(items, verify_as="A", state_path=states["A"])
        genesis = consortium.config.genesis_manifest()
        new_c, new_c_public = sm2.generate_keypair()
        members = [m if m.id != "C" else type(m)(m.id, m.name, new_c_public, m.roles, m.tls_cert_sha256)
                   for m in genesis.members]
        rotated = genesis.successor(proposal_id="rotate-C", members=members)
        body, signatures = manifest_entry(rotated, {"A": consortium.member_keys["A"], "B": consortium.member_keys["B"],
                                                    "C/next": new_c})
        ledger.append(body, signatures)
        after = {"kind": "recon_result", "job_id": "j2", "disputed": 3}
        ledger.append(after, {"C": sm2.sign(new_c, __import__("ledger_anchor").canonical_entry_bytes(after))})
        for member, key in (("A", consortium.member_keys["A"]), ("B", consortium.member_keys["B"]), ("C", new_c)):
            ledger.cosign(member, key, state_path=states[member])
    db = consortium.config.ledger.db
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return consortium, db.read_bytes()


def _execute(db: Path, statement: str, parameters: tuple = ()) -> None:
    connection = sqlite3.connect(db)
    try:
        connection.execute(statement, parameters)
        connection.commit()
    finally:
        connection.close()


def _restore(db: Path, original: bytes) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(original)


def _changed(value: object) -> object:
    """One different value of the same type."""
    if isinstance(value, bool) or value is None:
        raise AssertionError(f"unexpected stored value {value!r}")
    if isinstance(value, int):
        return value + 1
    if isinstance(value, bytes):
        middle = len(value) // 2
        return value[:middle] + bytes([value[middle] ^ 0x01]) + value[middle + 1:]
    if isinstance(value, str):
        middle = len(value) // 2
        return value[:middle] + chr(ord(value[middle]) ^ 0x01) + value[middle + 1:]
    raise AssertionError(f"unexpected stored type {type(value).__name__}")


def test_every_stored_value_change_is_caught(demo_sized, tmp_path: Path) -> None:
    consortium, original = demo_sized
    identity = identity_of(consortium.config)
    db = tmp_path / "ledger.sqlite"
    _restore(db, original)
    report = verify_ledger(db, identity, parallel=SERIAL)  # the untouched copy verifies
    assert report.size == 9 and report.final_size == 9 and report.epochs == [7]
    connection = sqlite3.connect(db)
    rows = {table: [row for row in connection.execute(f"SELECT rowid, * FROM {table}")] for table in _TABLES}
    columns = {table: [c[1] for c in connection.execute(f"PRAGMA table_info({table})")] for table in _TABLES}
    connection.close()
    assert all(rows[table] for table in _TABLES if table != "forks")
    changes = missed = 0
    missed_list = []
    for table in _TABLES:
        for row in rows[table]:
            rowid, values = row[0], row[1:]
            for column, value in zip(columns[table], values, strict=True):
                _restore(db, original)
                statement = f"UPDATE {table} SET {column} = ? WHERE rowid = ?"
                try:
                    _execute(db, statement, (_changed(value), rowid))
                except sqlite3.IntegrityError:  # a key column: +1 is taken, so move it beyond the rest
                    _restore(db, original)
                    _execute(db, statement, (value + {int: 1000, str: "x", bytes: b"x"}[type(value)], rowid))
                changes += 1
                try:
                    verify_ledger(db, identity, parallel=SERIAL)
                except VerificationError:
                    continue
                missed += 1
                missed_list.append((table, column, value if not isinstance(value, bytes) else value[:40]))
    assert changes == sum(len(columns[t]) * len(rows[t]) for t in _TABLES) > 100
    assert missed_list == [], f"{missed} of {changes} single-value changes went unnoticed"
    # fork evidence on file is caught too
    _restore(db, original)
    _execute(db, "INSERT INTO forks (detected_at, reason, first, second) VALUES (1, 'x', x'00', x'00')")
    with pytest.raises(VerificationError, match="fork evidence"):
        verify_ledger(db, identity, parallel=SERIAL)
    # a stray table, an extra meta row, a cosignature row moved to another size
    for statement in ("CREATE TABLE extra (x)", "INSERT INTO meta VALUES ('note', 'x')",
                      "UPDATE cosignatures SET size = 6 WHERE size = 9"):
        _restore(db, original)
        _execute(db, statement)
        with pytest.raises(VerificationError):
            verify_ledger(db, identity, parallel=SERIAL)


def test_the_log_refuses_to_open_what_verify_refuses(demo_sized, tmp_path: Path) -> None:
    consortium, original = demo_sized
    db = tmp_path / "ledger.sqlite"
    for statement, match in (("UPDATE meta SET value = '1' WHERE key = 'schema'", "meta schema"),
                             ("INSERT INTO meta VALUES ('extra', 'x')", "unexpected key")):
        _restore(db, original)
        _execute(db, statement)
        with pytest.raises(Exception, match=match):
            open_ledger(consortium.config_path, db=db)
        with pytest.raises(VerificationError, match="meta row"):
            verify_ledger(db, identity_of(consortium.config), parallel=SERIAL)


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
    _restore(db, original)
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
    _restore(db, original)


def test_cli_verify_names_the_index(built, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    consortium, original = built
    db = tmp_path / "ledger.sqlite"
    _restore(db, original)
    assert main(["ledger", "verify", "--config", str(consortium.config_path), "--db", str(db)]) == 0
    entry = _values(db)["entry"][5][1]
    _flip_in_file(db, original, entry, entry.index(b"j5") + 1)
    assert main(["ledger", "verify", "--config", str(consortium.config_path), "--db", str(db)]) == 3
    assert "entry 5:" in capsys.readouterr().err
