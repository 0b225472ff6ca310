"""Membership from the ledger (issue 13 item 2), end to end on a real ledger and a real
ledger service: a fourth operator D joins the three-member consortium A, B, C; the
witness policy moves to the adopted 3 of 4; D verifies the whole ledger from genesis;
a removed member's later signatures are refused; a rotated key's old signatures still
verify for the entries before the rotation.  The consortium file stays as it was at
genesis: it is only the bootstrap."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from governance import api
from ledger_anchor import open_ledger, sm2
from ledger_anchor.client import identity_of
from ledger_anchor.config import load_config
from ledger_anchor.entries import canonical_entry_bytes
from ledger_anchor.errors import EntryError, LedgerError
from ledger_anchor.signature_pool import SERIAL
from ledger_anchor.verify import verify_ledger
from tests.integration.ledger.processes import stop_service
from tests.unit.ledger.ledger_consortium import make_consortium


def _fingerprint(path: Path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256()).hex()


def _sign(key: bytes, entry: dict) -> bytes:
    return sm2.sign(key, canonical_entry_bytes(entry))


def _job_entry(job: str, party: str) -> dict:
    return {"kind": "dataset_commitment", "job_id": job, "party": party, "root": "ab" * 32}


def _adopt(ledger, keys: dict, proposer: str, type: str, content: dict, voters: str, execute: dict) -> int:
    proposal_id, _ = api.propose(ledger, proposer=proposer, key=keys[proposer], type=type, content=content)
    for voter in voters:
        api.vote(ledger, proposal_id=proposal_id, voter=voter, key=keys[voter])
    return api.execute_with_keys(ledger, proposal_id=proposal_id, keys=execute).index


@pytest.fixture
def service(tmp_path: Path):
    consortium = make_consortium(tmp_path / "c", joining=("D",))
    open_ledger(consortium.config_path, create=True).close()
    port_file = tmp_path / "port"
    settlechain = Path(sys.executable).parent / "settlechain"
    process = subprocess.Popen([str(settlechain), "ledger", "serve", "--config", str(consortium.config_path),
                                "--db", str(consortium.config.ledger.db), "--listen", "127.0.0.1:0",
                                "--port-file", str(port_file)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "service did not start"
        time.sleep(0.05)
    remote = consortium.config_path.read_text().replace('endpoint = ""',
                                                        f'endpoint = "localhost:{port_file.read_text().strip()}"')
    (consortium.root / "remote.toml").write_text(remote)
    yield consortium, load_config(consortium.root / "remote.toml")
    stop_service(process)


def test_a_fourth_operator_joins_and_membership_follows_the_ledger(service, tmp_path: Path) -> None:
    consortium, remote_config = service
    keys = dict(consortium.member_keys)
    states = {m: tmp_path / f"{m}-state.json" for m in "ABCD"}
    db = consortium.config.ledger.db
    identity = identity_of(consortium.config)
    d_public = sm2.public_key_of(keys["D"])

    # -- before: A, B, C run jobs and cosign (3 of 3) -----------------------------------
    with open_ledger(remote_config, member_id="A") as ledger:
        for job in ("j1", "j2"):
            ledger.append_many([(_job_entry(job, p), {p: _sign(keys[p], _job_entry(job, p))}) for p in "AB"],
                               verify_as="A", state_path=states["A"])
        with pytest.raises(EntryError, match="unknown signer 'D'"):  # not a member yet
            ledger.append(_job_entry("j0", "D"), {"D": _sign(keys["D"], _job_entry("j0", "D"))})
        for member in "ABC":
            ledger.cosign(member, keys[member], state_path=states[member])
        before_join = ledger.size()
        assert ledger.final_size() == before_join

    # -- D joins: proposal, votes by A, B, C, manifest signed by 2 of 3 and by D --------
    with open_ledger(remote_config, member_id="B") as ledger:
        member = {"id": "D", "name": "Operator D", "sm2_public_key": d_public.hex(), "roles": ["member"],
                  "tls_cert_sha256": _fingerprint(consortium.root / "members/D/tls.crt")}
        proposal_id, _ = api.propose(ledger, proposer="B", key=keys["B"], type="member_add",
                                     content={"member": member})
        for voter in "ABC":
            api.vote(ledger, proposal_id=proposal_id, voter=voter, key=keys[voter])
        manifest = api.manifest_for(ledger, proposal_id)
        assert manifest.epoch == 1 and manifest.member_ids == ("A", "B", "C", "D")
        with pytest.raises(EntryError, match="every new key must sign it; missing D"):
            api.execute(ledger, proposal_id=proposal_id,
                        signatures={m: api.sign_manifest(manifest, keys[m]) for m in "ABC"})
        with pytest.raises(EntryError, match="at least 2 distinct keys of epoch 0"):
            api.execute(ledger, proposal_id=proposal_id,
                        signatures={m: api.sign_manifest(manifest, keys[m]) for m in "AD"} |
                        {"A": api.sign_manifest(manifest, keys["A"])})
        joined = api.execute(ledger, proposal_id=proposal_id,
                             signatures={m: api.sign_manifest(manifest, keys[m]) for m in "ABD"}).index

    # -- D, authenticated by its pinned certificate, works through the service ----------
    with open_ledger(remote_config, member_id="D") as ledger:
        reliance = ledger.check_before_rely("D", state_path=states["D"])  # the whole log, from genesis
        assert reliance.checked_entries == ledger.size() and reliance.membership.current.epoch == 1
        ledger.append(_job_entry("j3", "D"), {"D": _sign(keys["D"], _job_entry("j3", "D"))},
                      verify_as="D", state_path=states["D"])
        # the witness policy moves to 3 of 4 by a proposal of the four
        k_index = _adopt(ledger, keys, "D", "witness_policy", {"k": 3}, "ABCD",
                         {m: keys[m] for m in "ABD"})
        for member in "AB":
            ledger.cosign(member, keys[member], state_path=states[member])
        assert ledger.final_size() == before_join  # 2 of 4 is not final any more
        ledger.cosign("D", keys["D"], state_path=states["D"])
        assert ledger.final_size() == ledger.size()
    assert api.replay(open_ledger(consortium.config_path, readonly=True)).membership.current.witness_k == 3

    # -- C is removed; B rotates its key ---------------------------------------------------
    with open_ledger(consortium.config_path) as ledger:
        remove_index = _adopt(ledger, keys, "A", "member_remove", {"member_id": "C"}, "ABCD",
                              {m: keys[m] for m in "ABD"})
        with pytest.raises(EntryError, match="unknown signer 'C'"):
            ledger.append(_job_entry("j4", "C"), {"C": _sign(keys["C"], _job_entry("j4", "C"))})
        with pytest.raises(LedgerError, match="'C' is not a member in epoch 3"):
            ledger.cosign("C", keys["C"], state_path=states["C"])
        new_b, new_b_public = sm2.generate_keypair()
        signed_by_old_b = ledger.append(_job_entry("j5", "B"), {"B": _sign(keys["B"], _job_entry("j5", "B"))}).index
        rotation_index = _adopt(ledger, keys, "B", "key_rotation", {"member_id": "B", "sm2_public_key":
                                                                    new_b_public.hex()}, "ABD",
                                {"A": keys["A"], "B": keys["B"], "D": keys["D"], "B/next": new_b})
        with pytest.raises(EntryError, match="signature of 'B'"):
            ledger.append(_job_entry("j6", "B"), {"B": _sign(keys["B"], _job_entry("j6", "B"))})
        ledger.append(_job_entry("j6", "B"), {"B": _sign(new_b, _job_entry("j6", "B"))})
        for member, key in (("A", keys["A"]), ("B", new_b), ("D", keys["D"])):
            ledger.cosign(member, key, state_path=states[member])
        assert ledger.final_size() == ledger.size()
        assert ledger.membership().current.witness_k == 3  # now 3 of the 3 remaining members

    # -- every verifier, from the genesis file only, accepts the whole history ----------
    report = verify_ledger(db, identity, parallel=SERIAL)
    assert report.epochs == [joined, k_index, remove_index, rotation_index]
    assert signed_by_old_b < rotation_index  # verified with B's old key, in force at that entry
    state = api.replay(open_ledger(consortium.config_path, readonly=True))
    assert state.refused == []
    assert [p.status for p in state.proposals.values()] == ["executed"] * 4
