"""Multilateral netting: the fewest payments (against brute force), the sealed run across
three members, held items held out, and pairs that disagree refused."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.errors import RefusedError
from billing.netting import check_submissions, fewest_payments
from billing.state import NettingRecord
from billing.documents import NettingCall, NettingSubmission
from tests.unit.billing.billing_fixtures import ISSUED, Consortium, classes

SETTLE = dt.date(2026, 12, 20)


def _max_zero_groups(values: list[int]) -> int:
    """Brute force: the largest number of blocks of a partition whose sums are all zero."""
    best = 0

    def partitions(items):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for smaller in partitions(rest):
            for i in range(len(smaller)):
                yield smaller[:i] + [[first] + smaller[i]] + smaller[i + 1:]
            yield [[first]] + smaller

    for p in partitions(values):
        if all(sum(block) == 0 for block in p):
            best = max(best, len(p))
    return best


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=6))
def test_fewest_payments_settle_everything_with_the_fewest_transfers(raw: list[int]) -> None:
    values = raw + [-sum(raw)]
    positions = {f"M{i}": v for i, v in enumerate(values)}
    transfers = fewest_payments(positions)
    balance = dict(positions)
    for payer, payee, amount in transfers:
        assert amount > 0
        balance[payer] += amount
        balance[payee] -= amount
    assert all(v == 0 for v in balance.values())
    nonzero = [v for v in values if v]
    assert len(transfers) == len(nonzero) - (_max_zero_groups(nonzero) if nonzero else 0)


def test_fewest_payments_finds_the_zero_sum_pairs() -> None:
    # a greedy chain would need 3 transfers; two independent pairs need 2
    transfers = fewest_payments({"A": 5, "B": -5, "C": 7, "D": -7})
    assert sorted(transfers) == [("B", "A", 5), ("D", "C", 7)]
    with pytest.raises(RefusedError):
        fewest_payments({"A": 1, "B": 0})


def test_pairs_that_disagree_are_refused() -> None:
    call = NettingCall("NET-2026-10-9", "2026-10", 9, "CTCC", ("A", "B", "C"), SETTLE)
    record = NettingRecord(call, 9)
    record.submissions = {
        "A": (10, NettingSubmission(call.netting_id, "2026-10", "A", "CTCC", 5, (("B", "x"), ("C", "y")), 1, 0), b""),
        "B": (11, NettingSubmission(call.netting_id, "2026-10", "B", "CTCC", -5, (("A", "x"), ("C", "z")), 1, 0), b""),
        "C": (12, NettingSubmission(call.netting_id, "2026-10", "C", "CTCC", 0, (("A", "y"), ("B", "w")), 1, 0), b""),
    }
    with pytest.raises(RefusedError) as refusal:
        check_submissions(record)
    assert refusal.value.rule == "netting_pairs_disagree" and "B/C" in str(refusal.value)
    del record.submissions["C"]
    with pytest.raises(RefusedError, match="no submission from C"):
        check_submissions(record)


def test_a_netting_run_across_three_members(tmp_path) -> None:
    consortium = Consortium.create(tmp_path)
    # CMCC owes CUCC 60,000 net; CUCC owes CTCC 30,000 net; CTCC owes CMCC 10,000 net (before tax)
    ab = consortium.settle("job-ab", operators={"A": "CMCC", "B": "CUCC"}, classes_=classes(100_000, 40_000))
    bc = consortium.settle("job-bc", operators={"A": "CUCC", "B": "CTCC"}, classes_=classes(50_000, 20_000))
    ca = consortium.settle("job-ca", operators={"A": "CTCC", "B": "CMCC"}, classes_=classes(30_000, 20_000))
    held = consortium.settle("job-held", operators={"A": "CMCC", "B": "CUCC"}, classes_=classes(9_000, 0))
    members = {m: consortium.member(m, ab, bc, ca, held) for m in ("CMCC", "CUCC", "CTCC")}
    try:
        cmcc, cucc, ctcc = members["CMCC"], members["CUCC"], members["CTCC"]
        i_ab = cucc.issue_invoice(ab, ISSUED)
        i_bc = ctcc.issue_invoice(bc, ISSUED)
        i_ca = cmcc.issue_invoice(ca, ISSUED)
        i_held = cucc.issue_invoice(held, ISSUED)
        cmcc.hold(i_held.invoice_id, "disputed volume", ISSUED)
        with pytest.raises(RefusedError):
            cmcc.open_netting("2026-10", SETTLE)                          # only the agent opens
        call = ctcc.open_netting("2026-10", SETTLE)
        submissions = {m: b.submit_netting() for m, b in members.items()}
        gross = {i.invoice_id: i.charge.gross for i in (i_ab, i_bc, i_ca)}
        assert submissions["CMCC"].net_position == -gross[i_ab.invoice_id] + gross[i_ca.invoice_id]
        assert submissions["CUCC"].held_out == 1
        results = ctcc.compute_netting()
        assert sum(r.net_position for r in results) == 0
        assert {r.plan_payments for r in results} == {2}                  # three members, no zero-sum pair
        for b in members.values():
            b.accept_netting()
        final = ctcc.finalize_netting()
        assert len(final.acceptances) == 3
        for member, billing in members.items():
            state = billing.state()
            assert not state.refused, state.refused
            record = state.netting[call.netting_id]
            assert record.final is not None
            for invoice in (i_ab, i_bc, i_ca):
                if member in (invoice.issuer, invoice.payer):
                    item = state.items[invoice.invoice_id]
                    assert (item.payment_status, item.netted_in) == ("paid", call.netting_id)
            mine = [i for i in state.items.values() if i.item_type == "net_payment"]
            position = sum(i.gross if i.creditor == member else -i.gross for i in mine)
            assert position == record.results[member][1].net_position
        # the held invoice was held out and is still open
        assert members["CUCC"].state().items[i_held.invoice_id].payment_status == "held"
        # CMCC never sees the CUCC-CTCC invoice, even though netting involved it
        assert i_bc.invoice_id not in members["CMCC"].state().items
        raw = json.dumps(cmcc.ledger.entries(0, cmcc.ledger.size()))
        assert str(i_bc.charge.gross) not in raw
    finally:
        for b in members.values():
            b.close()
