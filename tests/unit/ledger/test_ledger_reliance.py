"""Issue 10 item 4 (a): before a member appends for a job or cosigns, it checks the log
it relies on -- the latest checkpoint's log signature, its consistency with the last
checkpoint this member saw (its own state file), and every entry's author signatures
since.  A failure raises and nothing is appended or cosigned."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from ledger_anchor import open_ledger
from ledger_anchor.errors import ForkError, LedgerError, NoteError, VerificationError
from ledger_anchor.witness import WitnessState
from tests.unit.ledger.ledger_consortium import Consortium, make_consortium


def _entry(i: int) -> dict:
    return {"kind": "dataset_commitment", "job_id": f"job-{i}", "root": f"{i:064x}"}


def _items(consortium: Consortium, start: int, count: int, signer: str = "A") -> list:
    return [(e, consortium.sign(e, signer)) for e in (_entry(i) for i in range(start, start + count))]


def _sql(db: Path, statement: str, parameters: tuple = ()) -> None:
    connection = sqlite3.connect(db)
    try:
        connection.execute(statement, parameters)
        connection.commit()
    finally:
        connection.close()


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    return make_consortium(tmp_path / "c")


def test_a_fresh_member_checks_from_genesis_and_keeps_its_state(consortium: Consortium, tmp_path: Path) -> None:
    state = tmp_path / "B.json"
    with open_ledger(consortium.config_path, create=True) as ledger:
        ledger.append_many(_items(consortium, 0, 5))
        reliance = ledger.check_before_rely("B", state_path=state)
        assert reliance.checked_entries == 5 and reliance.checkpoint.size == 5
        saved = WitnessState.load(state)
        assert saved.size == 5 and saved.frontier is not None and saved.manifest["body"]["epoch"] == 0
        ledger.append_many(_items(consortium, 5, 3))
        assert ledger.check_before_rely("B", state_path=state).checked_entries == 3  # only what is new
        assert json.loads(state.read_text())["size"] == 8


def test_append_as_a_member_moves_its_state_past_its_own_batch(consortium: Consortium, tmp_path: Path) -> None:
    state = tmp_path / "A.json"
    with open_ledger(consortium.config_path, create=True) as ledger:
        ledger.append_many(_items(consortium, 0, 2))
        receipts = ledger.append_many(_items(consortium, 2, 3), verify_as="A", state_path=state)
        assert [r.index for r in receipts] == [2, 3, 4]
        assert WitnessState.load(state).size == 5
        assert ledger.check_before_rely("A", state_path=state).checked_entries == 0


@pytest.mark.parametrize("damage", ["entry data", "checkpoint note", "entry signature"])
def test_a_damaged_log_is_refused_and_nothing_is_appended_or_cosigned(
        consortium: Consortium, tmp_path: Path, damage: str) -> None:
    states = {m: tmp_path / f"{m}.json" for m in "ABC"}
    db = consortium.config.ledger.db
    with open_ledger(consortium.config_path, create=True) as ledger:
        ledger.append_many(_items(consortium, 0, 3))
        for member in "ABC":
            ledger.cosign(member, consortium.member_keys[member], state_path=states[member])
        ledger.append_many(_items(consortium, 3, 3, "B"))
    if damage == "entry data":  # one byte of an entry the members have not seen yet
        data = json.loads(sqlite3.connect(db).execute("SELECT data FROM entries WHERE idx = 4").fetchone()[0])
        data["root"] = "f" + data["root"][1:]
        _sql(db, "UPDATE entries SET data = ? WHERE idx = 4",
             (json.dumps(data, separators=(",", ":"), sort_keys=True).encode(),))
        expected = (VerificationError, "entry 4")
    elif damage == "checkpoint note":
        note = sqlite3.connect(db).execute("SELECT note FROM checkpoints WHERE size = 6").fetchone()[0]
        _sql(db, "UPDATE checkpoints SET note = ? WHERE size = 6", (note.replace(b"\n6\n", b"\n7\n"),))
        expected = (NoteError, "latest checkpoint fails")
    else:
        data = sqlite3.connect(db).execute("SELECT data FROM entries WHERE idx = 5").fetchone()[0]
        signature = json.loads(data)["signatures"][0]["sig"]
        other = ("1" if signature[-1] != "1" else "2")
        _sql(db, "UPDATE entries SET data = ? WHERE idx = 5", (data.replace(signature.encode(),
                                                                            (signature[:-1] + other).encode()),))
        expected = (VerificationError, "entry 5")
    with open_ledger(consortium.config_path) as ledger:
        size = ledger.size()
        with pytest.raises(expected[0], match=expected[1]):
            ledger.append_many(_items(consortium, 10, 1), verify_as="A", state_path=states["A"])
        assert ledger.size() == size
        for member in "BC":
            with pytest.raises(LedgerError):
                ledger.cosign(member, consortium.member_keys[member], state_path=states[member])
            assert ledger.log.cosigners(6) == []
        assert WitnessState.load(states["A"]).size == 3  # the state did not move


def test_a_log_rolled_back_or_forked_is_refused(consortium: Consortium, tmp_path: Path) -> None:
    state = tmp_path / "A.json"
    db = consortium.config.ledger.db
    with open_ledger(consortium.config_path, create=True) as ledger:
        ledger.append_many(_items(consortium, 0, 3))
    old = tmp_path / "old.sqlite"
    shutil.copy(db, old)
    with open_ledger(consortium.config_path) as ledger:
        ledger.append_many(_items(consortium, 3, 2))
        ledger.check_before_rely("A", state_path=state)
    with open_ledger(consortium.config_path, db=old) as rolled_back:
        with pytest.raises(NoteError, match="stale checkpoint: the log shows size 3, smaller than size 5"):
            rolled_back.append_many(_items(consortium, 9, 1), verify_as="A", state_path=state)
        rolled_back.append_many([(e, consortium.sign(e, "C")) for e in ({**_entry(i), "x": 1} for i in (3, 4))])
        with pytest.raises(ForkError, match="fork: two checkpoints of size 5"):
            rolled_back.check_before_rely("A", state_path=state)
        assert len(rolled_back.forks()) == 1  # kept as evidence


def test_a_removed_member_cannot_rely_on_the_log(consortium: Consortium, tmp_path: Path) -> None:
    from tests.unit.ledger.ledger_consortium import manifest_entry

    with open_ledger(consortium.config_path, create=True) as ledger:
        genesis = consortium.config.genesis_manifest()
        without_c = genesis.successor(proposal_id="remove-C", members=[m for m in genesis.members if m.id != "C"],
                                      witness_k=2, threshold=2)
        body, signatures = manifest_entry(without_c, {m: consortium.member_keys[m] for m in "AB"})
        ledger.append(body, signatures)
        with pytest.raises(LedgerError, match="'C' is not a member in epoch 1"):
            ledger.check_before_rely("C", state_path=tmp_path / "C.json")
        with pytest.raises(LedgerError):
            ledger.cosign("C", consortium.member_keys["C"], state_path=tmp_path / "C.json")
