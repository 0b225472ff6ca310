"""Invoices from a final statement: amounts, tax, numbers, due dates, voids, and every refusal."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from billing.documents import Line
from billing.errors import RefusedError, StatementError
from billing.invoices import charge_of
from billing.money import tax_of
from tests.unit.billing.billing_fixtures import ISSUED, Consortium, classes, terms


@pytest.fixture()
def consortium(tmp_path) -> Consortium:
    return Consortium.create(tmp_path)


def test_invoice_lines_tax_and_totals_follow_the_statement(consortium) -> None:
    path = consortium.settle("job-1", classes_=classes(a_to_b=100_000, b_to_a=40_000))
    with consortium.member("CUCC", path) as cucc:
        invoice = cucc.issue_invoice(path, ISSUED)
    assert (invoice.issuer, invoice.payer) == ("CUCC", "CMCC")
    assert invoice.number == 1 and invoice.invoice_id == "CUCC-CMCC-2026-000001"
    assert invoice.due_date == ISSUED + dt.timedelta(days=30)
    c = invoice.charge
    assert c.net == 100_000 - 40_000
    # tax per direction and class: A->B voice 75,000 @9 %, sms 25,000 @6 %; B->A voice 20,000 @9 %, data 20,000 @6 %
    assert c.tax == tax_of(75_000, 900) + tax_of(25_000, 600) - tax_of(20_000, 900) - tax_of(20_000, 600)
    assert c.gross == c.net + c.tax
    assert {(t.payer, t.payee, t.tax_class): t.tax for t in c.tax_lines} == {
        ("CMCC", "CUCC", "basic_telecom"): 6750, ("CMCC", "CUCC", "value_added_telecom"): 1500,
        ("CUCC", "CMCC", "basic_telecom"): 1800, ("CUCC", "CMCC", "value_added_telecom"): 1200}


def test_tax_rounds_half_away_from_zero_once_per_line() -> None:
    t = terms()
    lines = [Line("B", "A", "voice", "d", "p", "basic_telecom", 50), Line("B", "A", "voice", "d", "o", "basic_telecom", 50)]
    # 9 % of 100 = 9 exactly, from one tax line over both voice lines (not 4.5 + 4.5 rounded twice)
    assert charge_of(lines, "A", "B", t).tax == 9
    assert tax_of(5, 900) == 0 and tax_of(6, 900) == 1 and tax_of(-6, 900) == -1   # 0.45 -> 0, 0.54 -> 1
    assert tax_of(50, 900) == 5 and tax_of(-50, 900) == -5                          # 4.5 -> 5, -4.5 -> -5


def test_both_members_replay_the_same_invoice(consortium) -> None:
    path = consortium.settle("job-1")
    with consortium.member("CMCC", path) as cmcc, consortium.member("CUCC", path) as cucc:
        invoice = cucc.issue_invoice(path, ISSUED)
        for member in (cmcc, cucc):
            state = member.state()
            item = state.items[invoice.invoice_id]
            assert (item.gross, item.payment_status, item.overdue_state) == (invoice.charge.gross, "open", "current")
            assert not state.refused


def test_non_party_learns_only_that_a_document_exists(consortium) -> None:
    path = consortium.settle("job-1")
    with consortium.member("CUCC", path) as cucc, consortium.member("CTCC") as ctcc:
        invoice = cucc.issue_invoice(path, ISSUED)
        view = ctcc.view()
        assert view.documents == [] and view.sealed_for_others == 1
        assert ctcc.state().items == {}
        raw = json.dumps(ctcc.ledger.entries(0, ctcc.ledger.size()))
        assert str(invoice.charge.gross) not in raw and invoice.invoice_id not in raw


def test_gapless_numbers_per_issuer_and_series(consortium) -> None:
    paths = [consortium.settle(f"job-{i}") for i in range(3)]
    with consortium.member("CUCC", *paths) as cucc:
        numbers = [cucc.issue_invoice(p, ISSUED).number for p in paths]
    assert numbers == [1, 2, 3]


def test_refuses_a_statement_that_is_not_final(consortium) -> None:
    path = consortium.settle("job-review", settlement="manual_review", approve=False)
    with consortium.member("CUCC", path) as cucc, pytest.raises(RefusedError) as refusal:
        cucc.issue_invoice(path, ISSUED)
    assert refusal.value.rule == "statement_not_final"


def test_refuses_a_statement_signed_by_one_operator(consortium) -> None:
    path = consortium.settle("job-1", signers=("CMCC",))
    with consortium.member("CUCC") as cucc, pytest.raises(StatementError, match="not co-signed"):
        cucc.read_statement(path)


@pytest.mark.parametrize("tamper", ["amount", "salt", "signature"])
def test_refuses_an_altered_statement_file(consortium, tamper: str) -> None:
    path = consortium.settle("job-1")
    with consortium.member("CUCC") as cucc:
        assert cucc.read_statement(path).agreed_charge == 140_000
        statement = json.loads(path.read_text())
        if tamper == "amount":
            statement["classes"][0]["agreed_charge"] += 100
            statement["totals"]["agreed_charge"] += 100
        elif tamper == "salt":
            statement["ledger"]["commitment_salt"] = "00" * 32
        else:
            statement["signatures"][0]["sig"] = statement["signatures"][1]["sig"]
        path.write_text(json.dumps(statement))
        with pytest.raises(StatementError, match="commitment" if tamper != "signature" else "does not verify"):
            cucc.read_statement(path)


def test_refuses_the_operator_that_is_not_owed(consortium) -> None:
    path = consortium.settle("job-1")
    with consortium.member("CMCC", path) as cmcc, pytest.raises(RefusedError) as refusal:
        cmcc.issue_invoice(path, ISSUED)
    assert refusal.value.rule == "not_owed"


def test_refuses_a_second_invoice_for_one_statement(consortium) -> None:
    path = consortium.settle("job-1")
    with consortium.member("CUCC", path) as cucc:
        cucc.issue_invoice(path, ISSUED)
        with pytest.raises(RefusedError) as refusal:
            cucc.issue_invoice(path, ISSUED)
    assert refusal.value.rule == "already_invoiced"


def test_void_links_to_the_regenerated_invoice(consortium) -> None:
    path = consortium.settle("job-1")
    with consortium.member("CUCC", path) as cucc, consortium.member("CMCC", path) as cmcc:
        first = cucc.issue_invoice(path, ISSUED)
        void, second = cucc.void_invoice(first.invoice_id, "wrong address", ISSUED + dt.timedelta(days=1))
        assert void.replaced_by == second.invoice_id and second.replaces == first.invoice_id
        assert second.number == 2
        for member in (cucc, cmcc):
            state = member.state()
            assert state.items[first.invoice_id].payment_status == "void"
            assert state.items[second.invoice_id].payment_status == "open"
            assert state.invoice_of_job["job-1"] == second.invoice_id
            assert not state.refused
        with pytest.raises(RefusedError):
            cucc.void_invoice(first.invoice_id, "again", ISSUED)


def test_a_statement_is_final_only_once_its_approval_is_met(consortium) -> None:
    from governance import api as governance_api

    path = consortium.settle("job-unapproved", approve=False)
    with consortium.member("CUCC", path) as cucc:
        with pytest.raises(RefusedError, match="no approval request"):
            cucc.issue_invoice(path, ISSUED)
        with consortium.ledger() as ledger:   # one finance approver of the two
            request_id = governance_api.request_statement_approval(
                ledger, job_id="job-unapproved", requester="CUCC", key=consortium.signing_key("CUCC"),
                operators=("CMCC", "CUCC"))
            cert_id, person = consortium.finance["CMCC"]
            governance_api.sign_approval(ledger, request_id=request_id, cert_id=cert_id, person_key=person,
                                         relay_key=consortium.signing_key("CMCC"))
        with pytest.raises(RefusedError, match="pending") as refusal:
            cucc.issue_invoice(path, ISSUED)
        assert refusal.value.rule == "statement_not_final"
        with consortium.ledger() as ledger:
            cert_id, person = consortium.finance["CUCC"]
            governance_api.sign_approval(ledger, request_id=request_id, cert_id=cert_id, person_key=person,
                                         relay_key=consortium.signing_key("CUCC"))
        assert cucc.issue_invoice(path, ISSUED).number == 1


def test_a_statement_for_manual_review_is_final_once_approved(consortium) -> None:
    path = consortium.settle("job-reviewed", settlement="manual_review", approve=True)
    with consortium.member("CUCC", path) as cucc:
        assert cucc.issue_invoice(path, ISSUED).statement.job_id == "job-reviewed"


def test_an_invoice_appended_before_the_approval_is_refused_on_replay(consortium) -> None:
    from billing.invoices import draft_invoice, finalize
    from billing.ledgerio import Outgoing, append_documents

    path = consortium.settle("job-early", approve=False)
    with consortium.member("CUCC", path) as cucc, consortium.member("CMCC", path) as cmcc:
        early = finalize(draft_invoice(cucc.statements["job-early"], "CUCC", cucc.terms, issue_date=ISSUED), 1)
        [index] = append_documents(cucc.ledger, cucc.view(), "CUCC", cucc.signing_key,
                                   [Outgoing(early, ("CUCC", "CMCC"))])
        consortium.approve("job-early", ("CMCC", "CUCC"))          # approved only afterwards
        assert [r.rule for r in cmcc.state().refused if r.index == index] == ["statement_not_final"]
