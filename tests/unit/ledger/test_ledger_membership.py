"""Membership manifests by epoch (ledger_anchor.membership): what makes manifest N+1
follow from manifest N, checked on append and by `ledger verify`."""

from dataclasses import replace
from pathlib import Path

import pytest

from ledger_anchor import open_ledger, sm2
from ledger_anchor.client import identity_of
from ledger_anchor.entries import canonical_entry_bytes
from ledger_anchor.errors import EntryError
from ledger_anchor.membership import Manifest, ManifestError
from ledger_anchor.signature_pool import SERIAL
from ledger_anchor.verify import verify_ledger
from tests.unit.ledger.ledger_consortium import make_consortium, manifest_entry


@pytest.fixture
def setup(tmp_path: Path):
    consortium = make_consortium(tmp_path / "c")
    ledger = open_ledger(consortium.config_path, create=True)
    yield consortium, ledger, consortium.config.genesis_manifest()
    ledger.close()


def _append(ledger, manifest: Manifest, keys: dict):
    body, signatures = manifest_entry(manifest, keys)
    return ledger.append(body, signatures)


def test_genesis_comes_from_the_consortium_file(setup) -> None:
    consortium, _, genesis = setup
    assert genesis.epoch == 0 and genesis.member_ids == ("A", "B", "C") and genesis.witness_k == 3
    assert genesis.threshold == 2  # a majority by default
    assert all(len(m.tls_cert_sha256) == 64 for m in genesis.members)  # the TLS certificates are pinned
    assert Manifest.from_body(genesis.body()) == genesis


@pytest.mark.parametrize("case, match", [
    ("epoch skipped", "expected epoch 1, found 2"),
    ("wrong previous", "previous_sm3: expected"),
    ("other log key", "origin and log key must stay"),
    ("revoked key dropped", "revoked keys must stay revoked"),
    ("one old signature", "at least 2 distinct keys of epoch 0, found 1"),
    ("stranger signs", "signature by 'Z'"),
])
def test_a_manifest_that_does_not_follow_is_refused(setup, case: str, match: str) -> None:
    consortium, ledger, genesis = setup
    keys = {m: consortium.member_keys[m] for m in "AB"}
    following = genesis.successor(proposal_id="p", witness_k=2)
    if case == "epoch skipped":
        following = replace(following, epoch=2)
    elif case == "wrong previous":
        following = replace(following, previous_sm3="00" * 32)
    elif case == "other log key":
        following = replace(following, log_public_key=sm2.generate_keypair()[1])
    elif case == "revoked key dropped":
        revoked = genesis.successor(proposal_id="r", revoke=[genesis.member("C").sm2_public_key],
                                    members=[m if m.id != "C" else replace(m, sm2_public_key=None)
                                             for m in genesis.members], witness_k=2, threshold=2)
        _append(ledger, revoked, keys)
        following = replace(revoked.successor(proposal_id="p"), revoked_keys=())
    elif case == "one old signature":
        keys = {"A": consortium.member_keys["A"]}
    else:
        keys["Z"] = sm2.generate_keypair()[0]
    size = ledger.size()
    with pytest.raises(EntryError, match=match):
        _append(ledger, following, keys)
    assert ledger.size() == size


def test_malformed_manifests_are_refused_naming_the_field() -> None:
    key = sm2.generate_keypair()[1].hex()
    body = {"kind": "membership_manifest", "epoch": 0, "origin": "o", "log_public_key": key,
            "members": [{"id": "A", "name": "A", "sm2_public_key": key, "roles": ["member"], "tls_cert_sha256": ""},
                        {"id": "B", "name": "B", "sm2_public_key": key, "roles": ["member"], "tls_cert_sha256": ""}],
            "witness_policy": {"k": 1}, "threshold": 1, "previous_sm3": "", "proposal_id": "", "revoked_keys": []}
    with pytest.raises(ManifestError, match="two members share one key"):
        Manifest.from_body(body)
    body["members"] = body["members"][:1]
    for field, value, match in (("witness_policy", {"k": 2}, "witness_policy.k: expected 1..1"),
                                ("threshold", 0, "threshold: expected 1..1"),
                                ("previous_sm3", "ab" * 32, "previous_sm3"),
                                ("members", [], "at least one member")):
        with pytest.raises(ManifestError, match=match):
            Manifest.from_body({**body, field: value})
    with pytest.raises(ManifestError, match="exactly the fields"):
        Manifest.from_body({**body, "extra": 1})


def test_a_rotation_needs_the_new_key_and_keeps_the_old_signatures_valid(setup) -> None:
    consortium, ledger, genesis = setup
    old_entry = {"kind": "recon_result", "job_id": "j1"}
    ledger.append(old_entry, consortium.sign(old_entry, "C"))
    new_c, new_c_public = sm2.generate_keypair()
    rotated = genesis.successor(proposal_id="rot", members=[
        m if m.id != "C" else replace(m, sm2_public_key=new_c_public) for m in genesis.members])
    with pytest.raises(EntryError, match="every new key must sign it; missing C/next"):
        _append(ledger, rotated, {m: consortium.member_keys[m] for m in "AB"})
    _append(ledger, rotated, {"A": consortium.member_keys["A"], "C": consortium.member_keys["C"], "C/next": new_c})
    entry = {"kind": "recon_result", "job_id": "j2"}
    with pytest.raises(EntryError, match="signature of 'C'"):
        ledger.append(entry, consortium.sign(entry, "C"))
    ledger.append(entry, {"C": sm2.sign(new_c, canonical_entry_bytes(entry))})
    report = verify_ledger(consortium.config.ledger.db, identity_of(consortium.config), parallel=SERIAL)
    assert report.epochs == [1] and report.membership.at(0).member("C").sm2_public_key != new_c_public
