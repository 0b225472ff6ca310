"""One end-to-end billing scenario through ``settlechain billing ...``: two operators, a
statement, an invoice, a bank statement, a sweep with a hook, an adjustment, netting
refused without an agent, the report; refusals exit 3 with the rule, bad input exits 2."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest
import tomli_w

from data_gen.bank import BankConfig, Receivable, camt053_xml, generate_bank_statement
from engine.cli import main
from tests.unit.billing.billing_fixtures import TERMS_TABLE, Consortium


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_billing_through_the_cli(tmp_path, capsys) -> None:
    consortium = Consortium.create(tmp_path)
    statement = consortium.settle("2026-10-cli")
    rules = tmp_path / "rules.toml"
    rules.write_text(tomli_w.dumps({"billing": TERMS_TABLE}), encoding="utf-8")
    common = ["--config", str(consortium.config_path), "--rules", str(rules)]

    def billing(member: str, command: str, *extra: str) -> tuple[int, str, str]:
        words = command.split()
        return _run(capsys, "billing", *words, *common, "--as", member, *extra)

    code, out, _ = billing("CUCC", "keys")
    assert code == 0 and "already in force" in out           # the fixture published them
    draft = tmp_path / "draft.json"
    code, out, _ = billing("CUCC", "invoice", "--statement", str(statement), "--date", "2026-11-05",
                           "--draft", str(draft))
    assert code == 0 and json.loads(draft.read_text())["number"] == 0
    code, out, _ = billing("CUCC", "invoice", "--statement", str(statement), "--finalize", str(draft))
    assert code == 0 and "CUCC-CMCC-2026-000001" in out
    code, _, err = billing("CUCC", "invoice", "--statement", str(statement), "--date", "2026-11-05")
    assert code == 3 and "refused (already_invoiced)" in err
    code, _, err = billing("CMCC", "invoice", "--statement", str(statement), "--date", "2026-11-05")
    assert code == 3 and "refused" in err
    code, out, _ = billing("CMCC", "receipt", "--invoice", "CUCC-CMCC-2026-000001", "--date", "2026-11-06")
    assert code == 0
    code, out, _ = billing("CMCC", "status", "--json")
    status = json.loads(out)
    gross = status["items"]["CUCC-CMCC-2026-000001"]["gross"]
    assert status["items"]["CUCC-CMCC-2026-000001"]["status"] == "open"

    bank = tmp_path / "bank.xml"
    bank.write_bytes(camt053_xml(generate_bank_statement(
        [Receivable("CUCC-CMCC-2026-000001", gross, "China Mobile", "6222")],
        BankConfig(seed=1, account="6222020200000000001"), plan={"CUCC-CMCC-2026-000001": "partial"})))
    listing = tmp_path / "payments.csv"
    code, out, _ = billing("CUCC", "import-payments", "--file", str(bank), "--out", str(listing))
    assert code == 0 and "partial 1" in out and "unmatched" in out
    assert listing.read_text().count("\n") == 1 + out.count("  line ")

    hook_log = tmp_path / "hook.txt"
    hook = f"{sys.executable} -c \"import sys; open({str(hook_log)!r}, 'a').write(sys.stdin.read())\""
    code, out, _ = billing("CUCC", "sweep", "--as-of", "2026-12-07", "--hook-command", hook)
    assert code == 0 and "1 overdue alert" in out
    assert json.loads(hook_log.read_text())["to_state"] == "reminded"
    code, out, _ = billing("CUCC", "sweep", "--as-of", "2026-12-07")
    assert code == 0 and "0 overdue alert" in out

    proposal = tmp_path / "adjust.json"
    code, out, _ = billing("CMCC", "adjust propose", "--statement", str(statement), "--job", "2026-10-cli",
                           "--line", "CMCC>CUCC:voice:domestic:peak:-1000", "--reason", "dispute 3",
                           "--period", "2026-12", "--date", "2026-12-08", "--out", str(proposal))
    assert code == 0 and proposal.exists()
    code, out, _ = billing("CUCC", "adjust countersign", "--statement", str(statement), "--proposal", str(proposal))
    assert code == 0 and "credit_note CUCC-CMCC-2026-CN-000001" in out
    code, _, err = billing("CMCC", "adjust countersign", "--statement", str(statement), "--proposal", str(proposal))
    assert code == 3                                          # its own proposal, and already on the ledger

    report = tmp_path / "report"
    code, out, _ = billing("CMCC", "report", "--statement", str(statement), "--as-of", "2026-12-10",
                           "--out", str(report))
    assert code == 0 and (report / "billing-report.html").exists() and (report / "journal.parquet").exists()
    assert "CUCC-CMCC-2026-CN-000001" in (report / "billing-report.html").read_text()


def test_bad_input_exits_2_with_the_place(tmp_path, capsys) -> None:
    consortium = Consortium.create(tmp_path)
    rules = tmp_path / "rules.toml"
    rules.write_text('[billing]\npayment_terms_days = 30.5\n', encoding="utf-8")
    code, _, err = _run(capsys, "billing", "status", "--config", str(consortium.config_path), "--rules", str(rules),
                        "--as", "CUCC")
    assert code == 2 and "rules.toml" in err and "payment_terms_days" in err
    rules.write_text(tomli_w.dumps({"billing": TERMS_TABLE}), encoding="utf-8")
    bad = tmp_path / "bank.csv"
    bad.write_text("transaction_id,booking_date,value_date,direction,amount,currency,reversal,end_to_end_id,"
                   "remittance,debtor_name,debtor_account\nT1,2026-12-01,,CRDT,12.345,CNY,false,,,,\n")
    code, _, err = _run(capsys, "billing", "import-payments", "--config", str(consortium.config_path), "--rules",
                        str(rules), "--as", "CUCC", "--file", str(bad))
    assert code == 2 and "bank.csv, row 1, column 'amount'" in err
    with pytest.raises(SystemExit):
        main(["billing", "sweep", "--config", str(consortium.config_path), "--rules", str(rules), "--as", "CUCC",
              "--as-of", "yesterday"])
    assert dt.date.today()  # the date parser refused a non-date
