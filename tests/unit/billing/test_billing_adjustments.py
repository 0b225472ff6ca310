"""Adjustments: co-signed by both operators, a credit or debit note in the current period,
undone only by another adjustment; every one-sided or malformed attempt refused."""

from __future__ import annotations

import datetime as dt

import pytest

from billing.documents import Line
from billing.errors import RefusedError
from billing.ledgerio import Outgoing, prepare, sign_entry
from tests.unit.billing.billing_fixtures import ISSUED, Consortium

LATER = dt.date(2026, 12, 10)


@pytest.fixture()
def pair(tmp_path):
    consortium = Consortium.create(tmp_path)
    path = consortium.settle("job-1")
    cucc = consortium.member("CUCC", path)
    cmcc = consortium.member("CMCC", path)
    invoice = cucc.issue_invoice(path, ISSUED)
    yield consortium, cucc, cmcc, invoice
    cucc.close()
    cmcc.close()


def _lines(amount: int) -> list[Line]:
    # CMCC owes CUCC `amount` more for peak voice (a dispute resolved in CUCC's favour)
    return [Line("CMCC", "CUCC", "voice", "domestic", "peak", "basic_telecom", amount)]


def test_cosigned_adjustment_makes_a_debit_note_for_the_original_issuer(pair) -> None:
    _, cucc, cmcc, invoice = pair
    proposal = cucc.propose_adjustment("job-1", _lines(2_000), reason="dispute 17 resolved", period="2026-11",
                                       issue_date=LATER)
    adjustment = cmcc.countersign_adjustment(proposal)
    note = adjustment.note
    assert (note.note_type, note.issuer, note.note_id) == ("debit_note", "CUCC", "CUCC-CMCC-2026-DN-000001")
    assert (note.charge.creditor, note.charge.debtor, note.charge.net, note.charge.tax) == ("CUCC", "CMCC", 2000, 180)
    for member in (cucc, cmcc):
        state = member.state()
        item = state.items[note.note_id]
        assert (item.item_type, item.gross, item.period, item.job_id) == ("debit_note", 2180, "2026-11", "job-1")
        assert state.adjustments_by_job["job-1"] == [adjustment.adjustment_id]
        assert not state.refused


def test_money_flowing_back_is_a_credit_note_and_a_reversal_undoes_it(pair) -> None:
    _, cucc, cmcc, invoice = pair
    proposal = cmcc.propose_adjustment("job-1", _lines(-3_000), reason="rate error", period="2026-11",
                                       issue_date=LATER)
    first = cucc.countersign_adjustment(proposal)
    assert (first.note.note_type, first.note.issuer, first.note.charge.creditor) == ("credit_note", "CUCC", "CMCC")
    undo = cucc.propose_adjustment("job-1", [], reason="entered twice", period="2026-11", issue_date=LATER,
                                   reverses=first.adjustment_id)
    second = cmcc.countersign_adjustment(undo)
    assert second.reverses == first.adjustment_id
    assert (second.note.note_type, second.note.charge.creditor, second.note.charge.gross) == \
           ("debit_note", "CUCC", first.note.charge.gross)
    state = cmcc.state()
    assert state.adjustments[first.adjustment_id].reversed_by == second.adjustment_id
    with pytest.raises(RefusedError) as refusal:
        cucc.propose_adjustment("job-1", [], reason="again", period="2026-11", issue_date=LATER,
                                reverses=first.adjustment_id)
    assert refusal.value.rule == "already_reversed"


def test_an_adjustment_signed_by_one_side_only_is_refused(pair) -> None:
    consortium, cucc, cmcc, _ = pair
    proposal = cucc.propose_adjustment("job-1", _lines(500), reason="x", period="2026-11", issue_date=LATER)
    # appended with only the proposer's signature (e.g. by `ledger append`): every replay refuses it
    with consortium.ledger() as ledger:
        index = ledger.append(proposal["entry"], {"CUCC": bytes.fromhex(proposal["signature"])}).index
    for member in (cucc, cmcc):
        state = member.state()
        assert [r.rule for r in state.refused if r.index == index] == ["one_sided_adjustment"]
        assert state.adjustments == {}


def test_countersigning_ones_own_proposal_is_refused(pair) -> None:
    _, cucc, _, _ = pair
    proposal = cucc.propose_adjustment("job-1", _lines(500), reason="x", period="2026-11", issue_date=LATER)
    with pytest.raises(RefusedError) as refusal:
        cucc.countersign_adjustment(proposal)
    assert refusal.value.rule == "one_sided_adjustment"


def test_a_forged_proposer_signature_is_refused(pair) -> None:
    _, cucc, cmcc, _ = pair
    proposal = cucc.propose_adjustment("job-1", _lines(500), reason="x", period="2026-11", issue_date=LATER)
    proposal["signature"] = sign_entry(proposal["entry"], cmcc.signing_key).hex()   # not CUCC's key
    with pytest.raises(RefusedError, match="does not verify"):
        cmcc.countersign_adjustment(proposal)


def test_a_stale_proposal_is_refused(pair) -> None:
    _, cucc, cmcc, _ = pair
    first = cucc.propose_adjustment("job-1", _lines(500), reason="a", period="2026-11", issue_date=LATER)
    second = cucc.propose_adjustment("job-1", _lines(700), reason="b", period="2026-11", issue_date=LATER)
    cmcc.countersign_adjustment(first)
    with pytest.raises(RefusedError) as refusal:       # both took note number 1
        cmcc.countersign_adjustment(second)
    assert refusal.value.rule in ("duplicate_number", "duplicate_adjustment")


def test_lines_between_other_operators_or_cancelling_out_are_refused(pair) -> None:
    _, cucc, _, _ = pair
    with pytest.raises(RefusedError) as refusal:
        cucc.propose_adjustment("job-1", [Line("CTCC", "CUCC", "voice", "d", "p", "basic_telecom", 5)],
                                reason="x", period="2026-11", issue_date=LATER)
    assert refusal.value.rule == "foreign_line"
    with pytest.raises(RefusedError) as refusal:
        cucc.propose_adjustment("job-1", _lines(5) + _lines(-5), reason="x", period="2026-11", issue_date=LATER)
    assert refusal.value.rule == "empty_adjustment"


def test_a_non_party_cannot_read_or_propose(pair) -> None:
    consortium, cucc, _, _ = pair
    cucc.countersign_adjustment  # noqa: B018 - attribute exists
    with consortium.member("CTCC") as ctcc:
        assert ctcc.state().adjustments == {}
        with pytest.raises(RefusedError):
            ctcc.propose_adjustment("job-1", _lines(5), reason="x", period="2026-11", issue_date=LATER)
