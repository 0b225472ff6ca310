"""The embedded ledger: entries, appends and refusals, proofs, checkpoints, witnesses,
forks, full verification and proof bundles (real SQLite, real SM2).  Membership by
epoch: test_ledger_membership.py; checks before relying: test_ledger_reliance.py."""

import json
from pathlib import Path

import pytest

from ledger_anchor import merkle, open_ledger
from ledger_anchor.bundle import ProofBundle, check_bundle
from ledger_anchor.client import identity_of
from ledger_anchor.config import load_config
from ledger_anchor.entries import SignedEntry, canonical_entry_bytes
from ledger_anchor.errors import (
    BundleError,
    ConfigError,
    EntryError,
    ForkError,
    NoteError,
    StorageError,
    VerificationError,
)
from ledger_anchor.note import Checkpoint, Note, verify_checkpoint
from ledger_anchor.sm2 import PublicKey
from ledger_anchor.verify import verify_ledger
from tests.unit.ledger.ledger_consortium import Consortium, make_consortium


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    return make_consortium(tmp_path / "c")


@pytest.fixture
def ledger(consortium: Consortium):
    with open_ledger(consortium.config_path, create=True) as client:
        yield client


def _entry(i: int, kind: str = "dataset_commitment") -> dict:
    return {"kind": kind, "job_id": f"job-{i}", "root": f"{i:064x}", "count": i}


def _fill(consortium: Consortium, ledger, n: int) -> None:
    for start in range(0, n, 7):
        items = [(e, consortium.sign(e, "A")) for e in (_entry(i) for i in range(start, min(n, start + 7)))]
        ledger.append_many(items)


def _root(note: str) -> Checkpoint:
    return Checkpoint.parse_body(Note.parse(note).text)


# -- entries -------------------------------------------------------------------

def test_canonical_entry_bytes_is_rfc8785_without_signatures() -> None:
    entry = {"kind": "invoice", "b": [1, "x"], "a": {"z": 1, "y": None}, "signatures": [{"signer": "A", "sig": "00"}]}
    assert canonical_entry_bytes(entry) == b'{"a":{"y":null,"z":1},"b":[1,"x"],"kind":"invoice"}'


def test_leaf_commits_to_signatures(consortium: Consortium) -> None:
    entry = _entry(1)
    one = SignedEntry.create(entry, consortium.sign(entry, "A"))
    two = SignedEntry.create(entry, consortium.sign(entry, "A"))  # fresh nonce, other signature
    assert one.signed_bytes == two.signed_bytes
    assert one.leaf_data != two.leaf_data
    assert json.loads(one.leaf_data)["signatures"][0]["signer"] == "A"
    assert SignedEntry.from_leaf_data(one.leaf_data) == one


def test_non_canonical_stored_entry_is_refused(consortium: Consortium) -> None:
    entry = SignedEntry.create(_entry(1), consortium.sign(_entry(1), "A"))
    spaced = json.dumps(entry.to_json()).encode()
    with pytest.raises(EntryError, match="canonical"):
        SignedEntry.from_leaf_data(spaced)


# -- appends -------------------------------------------------------------------

def test_append_returns_receipt_with_checkpoint(consortium: Consortium, ledger) -> None:
    entry = _entry(0)
    receipt = ledger.append(entry, consortium.sign(entry, "A", "B"))
    assert receipt.index == 0
    checkpoint = _root(receipt.checkpoint)
    assert checkpoint.size == 1
    assert checkpoint.root == merkle.SM3_HASHER.hash_leaf(ledger.entry_data(0)) == receipt.leaf_hash
    stored = ledger.entry(0)
    assert {s["signer"] for s in stored["signatures"]} == {"A", "B"}


def test_signatures_may_come_inside_the_entry(consortium: Consortium, ledger) -> None:
    entry = _entry(0)
    signed = SignedEntry.create(entry, consortium.sign(entry, "B")).to_json()
    assert ledger.append(signed).index == 0


@pytest.mark.parametrize("case", ["unknown kind", "no kind", "bad signature", "unknown signer",
                                  "no signatures", "signature of other entry", "float NaN", "too large",
                                  "both signature forms"])
def test_append_refuses_with_a_clear_error(consortium: Consortium, ledger, case: str) -> None:
    entry = _entry(0)
    signatures = consortium.sign(entry, "A")
    if case == "unknown kind":
        entry = {**entry, "kind": "raw_records"}
        signatures = consortium.sign(entry, "A")
        match = "expected a kind"
    elif case == "no kind":
        entry = {"job_id": "x"}
        match = "expected a kind"
    elif case == "bad signature":
        signatures = {"A": bytes(64 - 1) + b"\x01"}
        match = "signature of 'A'"
    elif case == "unknown signer":
        signatures = {"Z": signatures["A"]}
        match = "unknown signer 'Z': not a member in epoch 0"
    elif case == "no signatures":
        signatures = {}
        match = "at least one author signature"
    elif case == "signature of other entry":
        signatures = consortium.sign(_entry(1), "A")
        match = "does not verify"
    elif case == "float NaN":
        entry = {**entry, "value": float("nan")}
        match = "JSON values only"
    elif case == "too large":
        entry = {**entry, "blob": "x" * 300_000}
        signatures = consortium.sign(entry, "A")
        match = "at most"
    else:
        entry = SignedEntry.create(entry, signatures).to_json()
        match = "both inside"
    with pytest.raises(EntryError, match=match):
        ledger.append(entry, signatures)
    assert ledger.size() == 0


def test_append_without_log_key_is_refused(consortium: Consortium, ledger) -> None:
    with open_ledger(consortium.config, log_private_key=None, readonly=True) as reader:
        with pytest.raises(StorageError, match="no log private key"):
            reader.append(_entry(0), consortium.sign(_entry(0), "A"))


def test_wrong_log_key_is_refused(consortium: Consortium) -> None:
    other = make_consortium(consortium.root.parent / "other")
    with pytest.raises(Exception, match="does not match"):
        open_ledger(consortium.config_path, log_private_key=other.log_key, create=True)


def test_proofs_from_storage_verify(consortium: Consortium, ledger) -> None:
    _fill(consortium, ledger, 45)
    assert ledger.size() == 45
    assert ledger.log.checkpoint_sizes() == [0, 7, 14, 21, 28, 35, 42, 45]  # one per batch
    for size in (7, 14, 45):
        checkpoint = _root(ledger.checkpoint(size))
        assert checkpoint.size == size
        for index in range(0, size, 3):
            proof = ledger.inclusion_proof(index, size)
            leaf = merkle.SM3_HASHER.hash_leaf(ledger.entry_data(index))
            merkle.verify_inclusion(merkle.SM3_HASHER, index, size, leaf, proof, checkpoint.root)
    for old in (1, 7, 8, 21, 44):
        proof = ledger.consistency_proof(old, 45)
        merkle.verify_consistency(merkle.SM3_HASHER, old, 45, proof, ledger.log.root(old),
                                  _root(ledger.checkpoint()).root)
    assert ledger.log.root(21) == _root(ledger.checkpoint(21)).root
    with pytest.raises(StorageError):
        ledger.inclusion_proof(3, 46)


def test_reopen_continues_the_same_tree(consortium: Consortium, ledger) -> None:
    _fill(consortium, ledger, 10)
    ledger.close()
    with open_ledger(consortium.config_path) as again:
        again.append(_entry(10), consortium.sign(_entry(10), "C"))
        assert again.size() == 11
    verify_ledger(consortium.config.ledger.db, identity_of(consortium.config))


# -- checkpoints and cosignatures ----------------------------------------------

def test_checkpoint_note_format(consortium: Consortium, ledger) -> None:
    _fill(consortium, ledger, 3)
    note = ledger.checkpoint()
    lines = note.split("\n")
    assert lines[0] == "settlechain.test/ledger" and lines[1] == "3" and lines[3] == ""
    assert lines[4].startswith("\u2014 settlechain.test/ledger ")
    identity = identity_of(consortium.config)
    verified = verify_checkpoint(note, origin=identity.origin, log_key=identity.log_key, members={})
    assert verified.checkpoint.size == 3
    tampered = note.replace("\n3\n", "\n2\n")
    with pytest.raises(NoteError):
        verify_checkpoint(tampered, origin=identity.origin, log_key=identity.log_key, members={})
    other = PublicKey(make_consortium(consortium.root.parent / "x").config.ledger.log_public_key)
    with pytest.raises(NoteError, match="expected a signature by the log key"):
        verify_checkpoint(note, origin=identity.origin, log_key=other, members={})


def test_cosign_quorum_makes_a_checkpoint_final(consortium: Consortium, ledger, tmp_path: Path) -> None:
    _fill(consortium, ledger, 5)
    assert ledger.final_size() is None
    for member in ("A", "B"):
        assert ledger.cosign(member, consortium.member_keys[member], state_path=tmp_path / f"{member}.json").size == 5
    assert ledger.final_size() is None  # threshold 3 of 3
    ledger.cosign("C", consortium.member_keys["C"])
    assert ledger.final_size() == 5
    identity = identity_of(consortium.config)
    verified = verify_checkpoint(ledger.checkpoint(), origin=identity.origin, log_key=identity.log_key,
                                 members=identity.members, threshold=3)
    assert set(verified.cosigners) == {"A", "B", "C"}
    # the witness moves on only with a verified consistency proof
    _fill_more = [(e, consortium.sign(e, "B")) for e in (_entry(i) for i in range(5, 9))]
    ledger.append_many(_fill_more)
    assert ledger.cosign("A", consortium.member_keys["A"], state_path=tmp_path / "A.json").size == 9
    report = verify_ledger(consortium.config.ledger.db, identity)
    assert report.cosignatures == 4 and report.final_size == 5


def test_cosign_with_the_wrong_key_is_refused(consortium: Consortium, ledger) -> None:
    _fill(consortium, ledger, 2)
    with pytest.raises(Exception, match="not member 'A'.s key in force"):
        ledger.cosign("A", consortium.member_keys["B"])


def test_fork_is_recorded_reported_and_never_cosigned(consortium: Consortium, tmp_path: Path) -> None:
    """Two ledgers under the same log key diverge; the witness that cosigned one refuses the other."""
    state = tmp_path / "A-state.json"
    honest = open_ledger(consortium.config, db=tmp_path / "honest.sqlite", log_private_key=consortium.log_key,
                         create=True)
    forked = open_ledger(consortium.config, db=tmp_path / "forked.sqlite", log_private_key=consortium.log_key,
                         create=True)
    _fill(consortium, honest, 4)
    for i in range(4):
        e = {**_entry(i), "count": 1000 + i}
        forked.append(e, consortium.sign(e, "A"))
    honest.cosign("A", consortium.member_keys["A"], state_path=state)
    with pytest.raises(ForkError, match="fork: two checkpoints of size 4 with different roots"):
        forked.cosign("A", consortium.member_keys["A"], state_path=state)
    assert forked.log.cosigners(4) == []
    evidence = forked.forks()
    assert len(evidence) == 1 and "\n4\n" in evidence[0].first and "\n4\n" in evidence[0].second
    assert evidence[0].first != evidence[0].second
    with pytest.raises(VerificationError, match="fork evidence"):
        verify_ledger(tmp_path / "forked.sqlite", identity_of(consortium.config))
    # a longer but inconsistent tree is refused too
    e = {**_entry(9), "count": 9}
    forked.append(e, consortium.sign(e, "A"))
    with pytest.raises(ForkError, match="inconsistent"):
        forked.cosign("A", consortium.member_keys["A"], state_path=state)
    honest.close()
    forked.close()


# -- bundles -------------------------------------------------------------------

def test_bundle_round_trip_and_offline_check(consortium: Consortium, ledger) -> None:
    _fill(consortium, ledger, 20)
    for member in ("A", "B", "C"):
        ledger.cosign(member, consortium.member_keys[member])
    identity = identity_of(consortium.config)
    text = ledger.proof_bundle(11).format()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert ProofBundle.parse(text).format() == text
    report = check_bundle(text, origin=identity.origin, log_key=identity.log_key, members=identity.members,
                          min_cosignatures=3)
    assert report.index == 11 and report.final and report.entry["job_id"] == "job-11"
    lines = text.split("\n")
    wrong_index = text.replace("index 11", "index 12")
    broken_proof = "\n".join(lines[:3] + [lines[4]] + lines[4:])
    for bad in (wrong_index, broken_proof, text.replace("\n20\n", "\n21\n")):
        with pytest.raises(BundleError):
            check_bundle(bad, origin=identity.origin, log_key=identity.log_key, members=identity.members,
                         min_cosignatures=0)
    with pytest.raises(BundleError, match="not a pinned member"):
        check_bundle(text, origin=identity.origin, log_key=identity.log_key,
                     members={k: v for k, v in identity.members.items() if k != "A"}, min_cosignatures=0)


# -- config --------------------------------------------------------------------

@pytest.mark.parametrize(("mutation", "match"), [
    (lambda t: t.replace('origin = "settlechain.test/ledger"', 'origin = "bad origin"'), "ledger.origin"),
    (lambda t: t.replace("finality_threshold = 3", "finality_threshold = 4"), "finality_threshold"),
    (lambda t: t.replace('proposal_policy = "all"', 'proposal_policy = "most"'), "proposal_policy"),
    (lambda t: t.replace('id = "B"', 'id = "A"'), "appears twice"),
    (lambda t: t.replace("[ledger]", "[ledgerx]"), "ledger"),
])
def test_config_errors_name_file_and_key(consortium: Consortium, tmp_path: Path, mutation, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(mutation(consortium.config_path.read_text()))
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_stale_checkpoint_is_refused_without_fork_evidence(consortium: Consortium, ledger, tmp_path: Path) -> None:
    from ledger_anchor.witness import WitnessState, cosign

    _fill(consortium, ledger, 3)
    old = ledger.checkpoint()
    _fill_more = [(e, consortium.sign(e, "A")) for e in (_entry(i) for i in range(3, 6))]
    ledger.append_many(_fill_more)
    state = tmp_path / "A.json"
    ledger.cosign("A", consortium.member_keys["A"], state_path=state)
    identity = identity_of(consortium.config)
    with pytest.raises(NoteError, match="stale checkpoint"):
        cosign(origin=identity.origin, log_key=identity.log_key, member_id="A",
               member_key=__import__("ledger_anchor").sm2.PrivateKey(consortium.member_keys["A"]),
               checkpoint_note=old, previous=WitnessState.load(state), consistency_proof=ledger.consistency_proof)
    assert ledger.forks() == []


def test_consistent_checkpoints_are_not_accepted_as_fork_evidence(consortium: Consortium, ledger) -> None:
    _fill(consortium, ledger, 9)
    with pytest.raises(NoteError, match="not fork evidence"):
        ledger.report_fork("made up", ledger.checkpoint(7), ledger.checkpoint(9))
    assert ledger.forks() == []
