"""What an auditor does after a job, through the real console script: verify the whole
ledger, take an offline proof bundle of the statement, and check a party's
statement.json against it (a changed statement is rejected)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.engine.jobs import describe, generate, run_job

SETTLECHAIN = str(Path(sys.executable).with_name("settlechain"))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SETTLECHAIN, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_auditor_checks_statement_against_the_ledger(tmp_path):
    generated = generate(tmp_path / "data", records=1000, seed=41)
    job, codes = run_job(tmp_path / "job", generated.data, generated.rules)
    assert codes == {"A": 0, "B": 0, "H": 0}, describe(job)
    config = str(job.config)
    anchor = json.loads((job.parties["B"].out / "anchor.json").read_text())
    statement = job.parties["B"].out / "statement.json"

    verified = cli("ledger", "verify", "--config", config)
    assert verified.returncode == 0, verified.stderr
    bundle = tmp_path / "statement.proof"
    proved = cli("ledger", "prove", "--config", config, "--index", str(anchor["index"]),
                 "--out", str(bundle))
    assert proved.returncode == 0, proved.stderr
    checked = cli("ledger", "check", "--proof", str(bundle), "--config", config,
                  "--entry", str(statement))
    assert checked.returncode == 0, checked.stderr
    assert "cosigned by CMCC, CTCC, CUCC" in checked.stdout

    forged = json.loads(statement.read_text())
    forged["totals"]["agreed_charge"] += 1
    forged_path = tmp_path / "forged.json"
    forged_path.write_text(json.dumps(forged))
    refused = cli("ledger", "check", "--proof", str(bundle), "--config", config,
                  "--entry", str(forged_path))
    assert refused.returncode == 3  # a statement that does not match the ledger
    assert "differs from entry" in refused.stderr
    # the ledger itself holds no amount: a non-party member reading it learns none
    shown = cli("ledger", "show", "--config", config, "--index", str(anchor["index"]))
    assert shown.returncode == 0, shown.stderr
    entry = json.loads(shown.stdout)
    assert set(entry) == {"kind", "job_id", "period", "rules_sm3", "operators", "commitment",
                          "signatures"}
    assert str(json.loads(statement.read_text())["totals"]["agreed_charge"]) not in shown.stdout
