"""One end-to-end scenario through the CLI (issue 13 item 6): rules adopted by vote, a
job anchored, people certified, the statement approved by both finance approvers, the
checkpoint cosigned, an audit bundle exported and verified offline with only the
genesis manifest; then a fourth operator joins by proposal, votes and manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rfc8785

from engine.cli import main
from ledger_anchor import open_ledger, sm2
from ledger_anchor.commitment import commit, new_salt
from tests.unit.ledger.ledger_consortium import make_consortium

RULES_SM3 = "5a" * 32


def _run(capsys, *argv: str, code: int = 0) -> str:
    assert main(list(argv)) == code, capsys.readouterr()
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_governance_approvals_and_audit_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    c = make_consortium(tmp_path / "c", member_ids=("CMCC", "CUCC", "CTCC"), joining=("CBN",))
    config = str(c.config_path)
    _run(capsys, "ledger", "init", "--config", config)
    genesis = tmp_path / "genesis.json"
    _run(capsys, "governance", "genesis", "--config", config, "--out", str(genesis))

    # rules adopted by vote
    out = _run(capsys, "governance", "propose", "--config", config, "--as", "CMCC", "--type", "rule-package",
               "--id", "voice-2026.1", "--name", "voice", "--version", "2026.1", "--sequence", "1",
               "--effective-from", "2026-10", "--rules-sm3", RULES_SM3)
    assert "proposal voice-2026.1 at ledger index 0" in out
    for member in ("CUCC", "CTCC"):
        assert "is pending" in _run(capsys, "governance", "vote", "--config", config, "--as", member,
                                    "--proposal", "voice-2026.1")
    assert "is passed" in _run(capsys, "governance", "vote", "--config", config, "--as", "CMCC",
                               "--proposal", "voice-2026.1", "--state", str(tmp_path / "CMCC-state.json"))
    out = _run(capsys, "governance", "vote", "--config", config, "--as", "CMCC", "--proposal", "voice-2026.1",
               code=2)
    assert "already passed" in out
    out = _run(capsys, "governance", "inspect", "--config", config, "--proposal", "voice-2026.1")
    assert "CUCC       approve (counts)" in out and "passed" in out
    out = _run(capsys, "governance", "status", "--config", config)
    assert "rule package voice 2026.1 (sequence 1, from 2026-10)" in out

    # a job anchors its entries (the engine does this; here through the ledger API)
    statement = {"job_id": "j1", "period": "2026-10", "agreed_charge": 202560, "a": "CMCC", "b": "CUCC"}
    salt = new_salt()
    entry = {"kind": "settlement_statement", "job_id": "j1", "rules_sm3": RULES_SM3,
             "commitment": commit("settlement_statement", salt, rfc8785.dumps(statement))}
    with open_ledger(c.config_path) as ledger:
        ledger.append(entry, c.sign(entry, "CMCC", "CUCC"), verify_as="CMCC", state_path=tmp_path / "CMCC-state.json")
    statement_file = tmp_path / "statement.json"
    statement_file.write_text(json.dumps(statement))

    # people: each operator certifies its finance approver
    certs, keys = {}, {}
    for person, operator in (("alice", "CMCC"), ("bob", "CUCC")):
        keys[person] = tmp_path / f"{person}.key"
        public = _run(capsys, "ledger", "keygen", "--out", str(keys[person])).strip()
        out = _run(capsys, "people", "certify", "--config", config, "--as", operator, "--person", person,
                   "--role", "finance", "--public-key", public, "--id", f"{operator}-{person}")
        certs[person] = f"{operator}-{person}"
        assert f"{operator}.finance for {person}" in out
    assert "CUCC.finance" in _run(capsys, "people", "list", "--config", config)

    # the statement's approval: one finance approver of each operator
    assert "statement-j1 is pending" in _run(capsys, "approve", "request", "--config", config, "--as", "CMCC",
                                             "--job", "j1")
    assert "statement-j1" in _run(capsys, "approve", "list", "--config", config, "--cert", certs["alice"])
    out = _run(capsys, "approve", "sign", "--config", config, "--request", "statement-j1", "--cert", certs["alice"],
               "--key", str(keys["alice"]))
    assert "the request is pending" in out
    out = _run(capsys, "approve", "sign", "--config", config, "--request", "statement-j1", "--cert", certs["alice"],
               "--key", str(keys["alice"]), code=2)
    assert "second approval by the same key" in out
    out = _run(capsys, "approve", "sign", "--config", config, "--request", "statement-j1", "--cert", certs["bob"],
               "--key", str(keys["bob"]))
    assert "the request is approved" in out
    assert "approved" in _run(capsys, "approve", "show", "--config", config, "--request", "statement-j1")

    # cosigned, exported, verified offline
    for member in ("CMCC", "CUCC", "CTCC"):
        _run(capsys, "ledger", "cosign", "--config", config, "--member", member)
    bundle = tmp_path / "j1.audit.json"
    out = _run(capsys, "audit", "export", "--config", config, "--job", "j1", "--out", str(bundle),
               "--statement", str(statement_file), "--salt", salt.hex())
    assert "and the statement" in out
    out = _run(capsys, "audit", "verify", str(bundle), "--genesis", str(genesis))
    assert "ok: job j1" in out and "approval statement-j1: approved" in out
    assert "rules in force by vote: voice 2026.1" in out and "opens the anchored commitment" in out
    # without the statement, the bundle holds nothing the ledger keeps off itself
    plain = tmp_path / "plain.json"
    _run(capsys, "audit", "export", "--config", config, "--job", "j1", "--out", str(plain))
    assert "202560" not in plain.read_text() and "not in the bundle" in _run(
        capsys, "audit", "verify", str(plain), "--genesis", str(genesis))
    # a changed statement, a changed entry: refused with exit 3
    document = json.loads(bundle.read_text())
    document["statement"]["document"]["agreed_charge"] += 1
    bundle.write_text(json.dumps(document))
    assert "does not open the anchored commitment" in _run(capsys, "audit", "verify", str(bundle), "--genesis",
                                                           str(genesis), code=3)
    document["statement"] = None
    document["entries"][0]["proof"] = document["entries"][0]["proof"][::-1]
    bundle.write_text(json.dumps(document))
    assert "ledger entry 0" in _run(capsys, "audit", "verify", str(bundle), "--genesis", str(genesis), code=3)

    # a fourth operator joins
    cbn_public = sm2.public_key_of(c.member_keys["CBN"]).hex()
    _run(capsys, "governance", "propose", "--config", config, "--as", "CUCC", "--type", "member-add", "--id",
         "add-cbn", "--member-id", "CBN", "--member-name", "China Broadcasting Network", "--member-key", cbn_public,
         "--member-tls-cert", str(c.root / "members/CBN/tls.crt"))
    for member in ("CMCC", "CUCC", "CTCC"):
        _run(capsys, "governance", "vote", "--config", config, "--as", member, "--proposal", "add-cbn")
    out = _run(capsys, "governance", "execute", "--config", config, "--proposal", "add-cbn", "--sign", "CMCC",
               "--sign", "CUCC", code=2)
    assert "missing CBN" in out
    out = _run(capsys, "governance", "execute", "--config", config, "--proposal", "add-cbn", "--sign", "CMCC",
               "--sign", "CUCC", "--sign", f"CBN={c.root / 'members/CBN/sm2.key'}")
    assert "membership epoch 1 (CMCC, CUCC, CTCC, CBN; witness policy 3 of 4)" in out
    assert "membership epoch 1: CMCC, CUCC, CTCC, CBN" in _run(capsys, "governance", "status", "--config", config)
    assert "membership epoch 1" in _run(capsys, "ledger", "verify", "--config", config)
