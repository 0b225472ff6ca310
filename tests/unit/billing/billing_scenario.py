"""A whole billing month for the report, export and CLI tests: three invoices, a camt.053 with
one full, one partial and one missing payment (plus noise), a sweep that raises an alert,
and one co-signed adjustment."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from billing.documents import Invoice, Line
from billing.party import BillingMember
from data_gen.bank import BankConfig, Receivable, camt053_xml, generate_bank_statement
from tests.unit.billing.billing_fixtures import ISSUED, Consortium, classes

AS_OF = dt.date(2026, 12, 20)


@dataclass
class Scenario:
    consortium: Consortium
    cucc: BillingMember
    cmcc: BillingMember
    invoices: list[Invoice]
    bank_file: Path

    def close(self) -> None:
        self.cucc.close()
        self.cmcc.close()


def build(folder: Path) -> Scenario:
    consortium = Consortium.create(folder)
    paths = [consortium.settle(f"2026-10-job-{k}", classes_=classes(100_000 + 5_000 * k, 30_000)) for k in range(3)]
    cucc = consortium.member("CUCC", *paths)
    cmcc = consortium.member("CMCC", *paths)
    invoices = [cucc.issue_invoice(p, ISSUED - dt.timedelta(days=10 * k)) for k, p in enumerate(paths)]
    receivables = [Receivable(i.invoice_id, i.charge.gross, "China Mobile", "6222000000001") for i in invoices]
    statement = generate_bank_statement(receivables, BankConfig(seed=4, account="6222020200000000001",
                                                                account_holder="China Unicom"),
                                        plan={invoices[0].invoice_id: "full", invoices[1].invoice_id: "partial",
                                              invoices[2].invoice_id: "missing"})
    bank_file = folder / "bank.camt053.xml"
    bank_file.write_bytes(camt053_xml(statement))
    cucc.import_payments(bank_file)
    cmcc.acknowledge(invoices[0].invoice_id, ISSUED)
    cucc.sweep(AS_OF)
    proposal = cmcc.propose_adjustment(
        "2026-10-job-0", [Line("CMCC", "CUCC", "voice", "domestic", "peak", "basic_telecom", -1_500)],
        reason="dispute 7 resolved for CMCC", period="2026-12", issue_date=AS_OF)
    cucc.countersign_adjustment(proposal)
    return Scenario(consortium, cucc, cmcc, invoices, bank_file)
