"""Attacks on the replay: documents appended around the checks of billing.party (as
`ledger append` would) are refused by every member's replay, with their rule."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from billing.documents import Fapiao, Hold, InvoiceReceipt, InvoiceVoid, Payment
from billing.errors import RefusedError
from billing.invoices import finalize, reference
from billing.ledgerio import Outgoing, append_documents
from tests.unit.billing.billing_fixtures import ISSUED, Consortium


@pytest.fixture()
def setup(tmp_path):
    consortium = Consortium.create(tmp_path)
    paths = [consortium.settle(f"job-{i}") for i in range(2)]
    cucc = consortium.member("CUCC", *paths)
    cmcc = consortium.member("CMCC", *paths)
    invoice = cucc.issue_invoice(paths[0], ISSUED)
    yield consortium, cucc, cmcc, invoice, paths
    cucc.close()
    cmcc.close()


def _force(member, document, recipients=None, signer=None) -> int:  # type: ignore[no-untyped-def]
    """Append ``document`` sealed and signed, bypassing every check but the ledger's."""
    who = signer or member
    recipients = recipients or (document.issuer, document.payer)
    [index] = append_documents(who.ledger, who.view(), who.member, who.signing_key, [Outgoing(document, recipients)])
    return index


def _rules(member, index: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.rule for r in member.state().refused if r.index == index]


def test_a_duplicate_number_is_refused_by_both(setup) -> None:
    _, cucc, cmcc, invoice, paths = setup
    other = cucc.draft_invoice(paths[1], ISSUED)
    forged = finalize(other, invoice.number)             # reuses number 1 for job-1
    index = _force(cucc, forged)
    for member in (cucc, cmcc):
        assert _rules(member, index) == ["duplicate_number"]


def test_a_number_gap_is_refused(setup) -> None:
    _, cucc, cmcc, invoice, paths = setup
    index = _force(cucc, finalize(cucc.draft_invoice(paths[1], ISSUED), 5))
    assert _rules(cmcc, index) == ["number_gap"]


def test_an_inflated_invoice_is_refused_by_the_payer_holding_the_statement(setup) -> None:
    _, cucc, cmcc, invoice, paths = setup
    draft = cucc.draft_invoice(paths[1], ISSUED)
    lines = tuple(dataclasses.replace(x, amount=x.amount * 2) for x in draft.charge.lines)
    from billing.invoices import charge_of
    inflated = dataclasses.replace(draft, charge=charge_of(lines, "CUCC", "CMCC", cucc.terms))
    index = _force(cucc, finalize(inflated, 2))
    assert _rules(cmcc, index) == ["amounts"]


def test_an_invoice_by_a_member_that_is_not_its_issuer(setup) -> None:
    _, cucc, cmcc, _, paths = setup
    draft = finalize(cucc.draft_invoice(paths[1], ISSUED), 2)
    index = _force(cucc, draft, signer=cmcc)              # CMCC signs an invoice that says CUCC issued it
    assert _rules(cucc, index) == ["signers"]


def test_a_statement_that_is_not_final_cannot_be_invoiced_even_around_the_checks(setup, tmp_path) -> None:
    consortium, cucc, cmcc, _, _ = setup
    review = consortium.settle("job-review", settlement="manual_review", approve=False)
    cucc.read_statement(review)
    cmcc.read_statement(review)
    from billing.invoices import draft_invoice
    forged = finalize(draft_invoice(cucc.statements["job-review"], "CUCC", cucc.terms, issue_date=ISSUED), 2)
    index = _force(cucc, forged)
    assert _rules(cmcc, index) == ["statement_not_final"]


def test_void_of_a_paid_invoice_and_wrong_signers_of_receipts_and_fapiao(setup, tmp_path) -> None:
    _, cucc, cmcc, invoice, _ = setup
    csv = tmp_path / "b.csv"
    csv.write_text("transaction_id,booking_date,value_date,direction,amount,currency,reversal,end_to_end_id,"
                   "remittance,debtor_name,debtor_account\n"
                   f"T1,2026-12-01,,CRDT,1.00,CNY,false,{invoice.invoice_id},,China Mobile,6222\n")
    cucc.import_payments(csv, account="acct")
    with pytest.raises(RefusedError) as refusal:
        cucc.void_invoice(invoice.invoice_id, "x", ISSUED)
    assert refusal.value.rule == "void_paid"
    void = InvoiceVoid(invoice.invoice_id, "x", None, ISSUED)
    assert _rules(cmcc, _force(cucc, void, ("CUCC", "CMCC"))) == ["void_paid"]
    receipt = InvoiceReceipt(invoice.invoice_id, ISSUED)
    assert _rules(cmcc, _force(cucc, receipt, ("CUCC", "CMCC"))) == ["signers"]     # the issuer, not the payer
    fapiao = Fapiao(invoice.invoice_id, "044001900111", "ab" * 32, ISSUED)
    assert _rules(cucc, _force(cmcc, fapiao, ("CUCC", "CMCC"))) == ["signers"]     # the payer, not the issuer
    cmcc.acknowledge(invoice.invoice_id, ISSUED)
    with pytest.raises(RefusedError) as refusal:
        cmcc.acknowledge(invoice.invoice_id, ISSUED)
    assert refusal.value.rule == "duplicate_receipt"


def test_a_bank_transaction_recorded_twice_and_a_payment_by_the_wrong_party(setup) -> None:
    _, cucc, cmcc, invoice, _ = setup
    payment = Payment("acct:T9", invoice.invoice_id, "CMCC", "CUCC", 100, 100, 0, "CNY", ISSUED, invoice.invoice_id,
                      "T9", "00" * 32)
    first = _force(cucc, payment, ("CUCC", "CMCC"))
    second = _force(cucc, payment, ("CUCC", "CMCC"))
    assert _rules(cmcc, first) == [] and _rules(cmcc, second) == ["duplicate_payment"]
    by_payer = dataclasses.replace(payment, payment_id="acct:T10")
    assert _rules(cucc, _force(cmcc, by_payer, ("CUCC", "CMCC"))) == ["signers"]   # only the payee records
    wrong = dataclasses.replace(payment, payment_id="acct:T11", applied=50, excess=50)
    assert _rules(cmcc, _force(cucc, wrong, ("CUCC", "CMCC"))) == ["amounts"]
    assert cmcc.state().items[invoice.invoice_id].paid == 100


def test_hold_and_release(setup) -> None:
    _, cucc, cmcc, invoice, _ = setup
    cmcc.hold(invoice.invoice_id, "disputed minutes", ISSUED)
    assert cucc.state().items[invoice.invoice_id].payment_status == "held"
    with pytest.raises(RefusedError):
        cmcc.hold(invoice.invoice_id, "again", ISSUED)              # held already: the machine forbids it
    cmcc.hold(invoice.invoice_id, "agreed", ISSUED, release=True)
    assert cucc.state().items[invoice.invoice_id].payment_status == "open"
    stranger = Hold(invoice.invoice_id, False, "x", ISSUED)
    with pytest.raises(RefusedError):                               # CTCC has no sealing relation to it
        with setup[0].member("CTCC") as ctcc:
            ctcc.hold(invoice.invoice_id, "x", ISSUED)
    assert stranger.item_id == invoice.invoice_id


def test_an_invoice_sealed_to_a_third_member_is_refused(setup) -> None:
    _, cucc, cmcc, _, paths = setup
    document = finalize(cucc.draft_invoice(paths[1], ISSUED), 2)
    index = _force(cucc, document, ("CUCC", "CMCC", "CTCC"))
    assert _rules(cmcc, index) == ["recipients"]
    assert reference(document.series, 2) == document.invoice_id
    assert dt.date(2026, 1, 1)  # noqa: B015
