"""The payment matcher against data_gen's true matches, and its refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from billing.bank import BankFile, BankTransaction, parse_camt, parse_csv
from billing.matching import counts, match_transactions
from billing.state import BillingState, Item
from data_gen.bank import BankConfig, Receivable, bank_csv, camt053_xml, generate_bank_statement
from tests.unit.billing.billing_fixtures import ISSUED, Consortium, terms

ACCOUNT = "6222020200000000001"


def _receivables(n: int = 30) -> list[Receivable]:
    return [Receivable(f"CUCC-CMCC-2026-{i:06d}", 50_000 + i * 7_919, "China Mobile", f"6222{i:015d}")
            for i in range(1, n + 1)]


def _state(receivables: list[Receivable]) -> BillingState:
    state = BillingState("CUCC", terms())
    for index, r in enumerate(receivables):
        state.items[r.reference] = Item(r.reference, "invoice", "CUCC", "CMCC", r.amount, ISSUED,
                                        ISSUED + dt.timedelta(days=30), "2026-10", f"job-{index}", index, None)
    return state


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("fmt", ["camt053", "csv"])
def test_matcher_finds_the_true_match_of_every_transaction(seed: int, fmt: str) -> None:
    receivables = _receivables()
    statement = generate_bank_statement(receivables, BankConfig(seed=seed, account=ACCOUNT, ambiguous_credits=2))
    bank = (parse_camt(camt053_xml(statement), "s.xml") if fmt == "camt053"
            else parse_csv(bank_csv(statement).encode(), "s.csv", account=ACCOUNT))
    outcomes = match_transactions(bank, _state(receivables), "CUCC")
    assert len(outcomes) == len(statement.truth)          # every transaction has an outcome
    by_id = {o.transaction.transaction_id: o for o in outcomes}
    for truth in statement.truth:
        got = by_id[truth.transaction_id]
        assert (got.outcome, got.item_id if truth.reference else None, abs(got.applied)) == \
               (truth.outcome, truth.reference, truth.applied), truth
    # unmatched credits carry a document (listed on the ledger), debits do not
    assert all(o.document is not None for o in outcomes if o.outcome == "unmatched")
    assert all(o.document is None for o in outcomes if o.outcome == "ignored_debit")


def _tx(tx_id: str, amount: int, *, e2e: str = "", remittance: str = "", credit: bool = True,
        reversal: bool = False, currency: str = "CNY") -> BankTransaction:
    return BankTransaction(tx_id, dt.date(2026, 12, 3), None, amount, currency, credit, reversal, e2e, remittance,
                           "China Mobile", "6222", True, "row 1")


def _bank(*transactions: BankTransaction) -> BankFile:
    return BankFile("t.csv", "csv", "00" * 32, ACCOUNT, tuple(transactions))


def test_a_payment_naming_two_invoices_is_refused() -> None:
    receivables = _receivables(2)
    a, b = (r.reference for r in receivables)
    [outcome] = match_transactions(_bank(_tx("T1", 100, remittance=f"pay {a} and {b}")), _state(receivables), "CUCC")
    assert outcome.outcome == "unmatched" and "2 items" in outcome.reason and outcome.document is not None


def test_end_to_end_id_wins_over_remittance() -> None:
    receivables = _receivables(2)
    a, b = (r.reference for r in receivables)
    [outcome] = match_transactions(_bank(_tx("T1", 100, e2e=a, remittance=f"see also {b}")), _state(receivables),
                                   "CUCC")
    assert (outcome.outcome, outcome.item_id) == ("partial", a)


def test_reference_must_be_a_whole_token() -> None:
    receivables = _receivables(1)
    ref = receivables[0].reference
    [outcome] = match_transactions(_bank(_tx("T1", 100, e2e=ref + "9")), _state(receivables), "CUCC")
    assert outcome.outcome == "unmatched"


def test_amount_alone_is_only_a_hint() -> None:
    receivables = _receivables(3)
    [outcome] = match_transactions(_bank(_tx("T1", receivables[1].amount)), _state(receivables), "CUCC")
    assert outcome.outcome == "unmatched" and receivables[1].reference in outcome.reason


def test_two_payments_in_one_file_then_an_overpayment() -> None:
    receivables = _receivables(1)
    ref, owed = receivables[0].reference, receivables[0].amount
    outcomes = match_transactions(_bank(_tx("T1", owed - 100, e2e=ref), _tx("T2", 60, e2e=ref),
                                        _tx("T3", 90, e2e=ref)), _state(receivables), "CUCC")
    assert [(o.outcome, o.applied, o.excess) for o in outcomes] == [
        ("partial", owed - 100, 0), ("partial", 60, 0), ("overpaid", 40, 50)]


def test_foreign_currency_void_items_duplicates_and_other_creditors() -> None:
    receivables = _receivables(2)
    state = _state(receivables)
    state.items[receivables[1].reference] = dataclasses.replace(state.items[receivables[1].reference],
                                                                creditor="CMCC", debtor="CUCC")
    outcomes = match_transactions(_bank(_tx("T1", 5, e2e=receivables[0].reference, currency="USD"),
                                        _tx("T2", 5, e2e=receivables[1].reference)), state, "CUCC")
    assert [o.outcome for o in outcomes] == ["unmatched", "unmatched"]
    assert "currency" in outcomes[0].reason
    assert counts(outcomes)["unmatched"] == 2


def test_matches_are_recorded_on_the_ledger_and_replayed_by_both(tmp_path) -> None:
    consortium = Consortium.create(tmp_path)
    paths = [consortium.settle(f"job-{i}") for i in range(3)]
    with consortium.member("CUCC", *paths) as cucc, consortium.member("CMCC", *paths) as cmcc:
        invoices = [cucc.issue_invoice(p, ISSUED) for p in paths]
        receivables = [Receivable(i.invoice_id, i.charge.gross, "China Mobile", "6222") for i in invoices]
        statement = generate_bank_statement(receivables, BankConfig(seed=9, account=ACCOUNT, ambiguous_credits=0),
                                            plan={invoices[0].invoice_id: "full", invoices[1].invoice_id: "partial",
                                                  invoices[2].invoice_id: "missing"})
        bank = tmp_path / "bank.xml"
        bank.write_bytes(camt053_xml(statement))
        outcomes = cucc.import_payments(bank)
        assert counts(outcomes)["full"] == 1 and counts(outcomes)["partial"] == 1
        for member in (cucc, cmcc):
            state = member.state()
            assert [state.items[i.invoice_id].payment_status for i in invoices] == ["paid", "partial", "open"]
            assert not state.refused
        assert len(cucc.state().unmatched) == 2 and cmcc.state().unmatched == {}   # the payee's own
        again = cucc.import_payments(bank)
        assert {o.outcome for o in again} <= {"duplicate", "ignored_debit"}
