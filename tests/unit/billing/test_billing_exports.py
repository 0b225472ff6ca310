"""Exports: every journal entry balances, the tables tie out with the state, files round-trip."""

from __future__ import annotations

import polars as pl
import pytest

from billing.aging import aging
from billing.exports import check_balanced, journal, journal_frame, write_exports
from billing.errors import BillingError
from billing.exports import JournalLine
from billing.report import write_report
from tests.unit.billing.billing_scenario import AS_OF, build


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    built = build(tmp_path_factory.mktemp("scenario"))
    yield built
    built.close()


@pytest.mark.parametrize("who", ["cucc", "cmcc"])
def test_journal_balances_per_entry_and_ties_out(scenario, who: str) -> None:
    state = getattr(scenario, who).state()
    lines = journal(state)
    check_balanced(lines)
    frame = journal_frame(state)
    accounts = state.terms.accounts
    receivable = frame.filter(pl.col("account") == accounts.receivable)
    payable = frame.filter(pl.col("account") == accounts.payable)
    outstanding_recv = sum(i.outstanding for i in state.items.values() if i.creditor == state.member)
    outstanding_pay = sum(i.outstanding for i in state.items.values() if i.debtor == state.member)
    assert int(receivable["debit"].sum() - receivable["credit"].sum()) == outstanding_recv
    assert int(payable["credit"].sum() - payable["debit"].sum()) == outstanding_pay
    assert {"invoice", "payment", "credit_note"} <= set(frame["document_type"])


def test_an_unbalanced_journal_is_refused() -> None:
    import datetime as dt

    lines = [JournalLine("x", dt.date(2026, 1, 1), "1122", 10, 0, "", "invoice", "x", 0),
             JournalLine("x", dt.date(2026, 1, 1), "6001", 0, 9, "", "invoice", "x", 0)]
    with pytest.raises(BillingError, match="does not balance"):
        check_balanced(lines)


def test_exports_round_trip_and_match_the_aging(scenario, tmp_path) -> None:
    state = scenario.cucc.state()
    written = write_exports(state, AS_OF, tmp_path)
    assert set(written) == {f"{n}.{e}" for n in ("items", "payments", "aging", "journal") for e in ("csv", "parquet")}
    items = pl.read_parquet(written["items.parquet"])
    assert items.height == len(state.items)
    assert pl.read_csv(written["items.csv"]).height == items.height
    assert set(items["payment_status"]) >= {"paid", "partial", "open"}
    aging_frame = pl.read_parquet(written["aging.parquet"])
    assert int(aging_frame["total"].sum()) == sum(r.total for r in aging(state, AS_OF))
    payments = pl.read_parquet(written["payments.parquet"])
    assert set(payments["outcome"]) == {"matched", "unmatched"}


def test_report_lists_every_section(scenario, tmp_path) -> None:
    path = write_report(scenario.cucc.state(), AS_OF, tmp_path)
    text = path.read_text()
    for anchor in ("aging", "overdue", "over-time", "cash-flow", "adjustments", "unmatched", "netting", "refused"):
        assert f'id="{anchor}"' in text
    assert scenario.invoices[2].invoice_id in text and "credit_note" in text
    assert "<script" not in text and "http" not in text.split("</style>")[1]
