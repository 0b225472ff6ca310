"""Aging buckets, the overdue sweep (conditions and actions from the rules), its hooks."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import sys
import threading

import pytest

from billing.aging import BUCKETS, aging, bucket_of
from billing.errors import TermsError
from billing.overdue import run_hooks
from tests.unit.billing.billing_fixtures import ISSUED, Consortium, terms

DUE = ISSUED + dt.timedelta(days=30)


@pytest.mark.parametrize("days,bucket", [(-5, "current"), (0, "current"), (1, "1-30"), (30, "1-30"),
                                         (31, "31-60"), (60, "31-60"), (61, "61-90"), (90, "61-90"),
                                         (91, "over_90"), (400, "over_90")])
def test_bucket_edges(days: int, bucket: str) -> None:
    assert bucket_of(days) == bucket


@pytest.fixture()
def invoiced(tmp_path):
    consortium = Consortium.create(tmp_path)
    path = consortium.settle("job-1")
    cucc = consortium.member("CUCC", path)
    cmcc = consortium.member("CMCC", path)
    invoice = cucc.issue_invoice(path, ISSUED)
    yield consortium, cucc, cmcc, invoice
    cucc.close()
    cmcc.close()


def test_aging_puts_each_side_in_its_bucket(invoiced) -> None:
    _, cucc, cmcc, invoice = invoiced
    for days, bucket in ((0, "current"), (45, "31-60"), (100, "over_90")):
        [row] = aging(cucc.state(), DUE + dt.timedelta(days=days))
        assert (row.counterparty, row.side, row.buckets[bucket], row.total) == \
               ("CMCC", "receivable", invoice.charge.gross, invoice.charge.gross)
        [mirror] = aging(cmcc.state(), DUE + dt.timedelta(days=days))
        assert (mirror.counterparty, mirror.side, mirror.buckets[bucket]) == ("CUCC", "payable", invoice.charge.gross)
    assert aging(cucc.state(), ISSUED - dt.timedelta(days=1)) == []   # not yet issued
    assert set(BUCKETS) == set(aging(cucc.state(), DUE)[0].buckets)


def test_sweep_moves_through_the_configured_states_once(invoiced) -> None:
    _, cucc, cmcc, invoice = invoiced
    assert cucc.sweep(DUE) == []                                    # due today: not overdue
    [alert] = cucc.sweep(DUE + dt.timedelta(days=1))
    assert (alert.from_state, alert.to_state, alert.action) == ("current", "reminded", "reminder")
    assert cucc.sweep(DUE + dt.timedelta(days=1)) == []             # idempotent: the ledger knows
    [alert] = cucc.sweep(DUE + dt.timedelta(days=40))
    assert (alert.to_state, alert.action) == ("escalated", "escalation")
    [alert] = cucc.sweep(DUE + dt.timedelta(days=95))
    assert (alert.to_state, alert.action) == ("held", "dispute_hold")
    for member in (cucc, cmcc):
        item = member.state().items[invoice.invoice_id]
        assert (item.overdue_state, item.payment_status, len(item.alerts)) == ("held", "held", 3)
    assert cmcc.sweep(DUE + dt.timedelta(days=95)) == []             # the payer sweeps nothing of it


def test_sweep_jumps_straight_to_the_furthest_state(invoiced) -> None:
    _, cucc, _, _ = invoiced
    [alert] = cucc.sweep(DUE + dt.timedelta(days=40))
    assert (alert.from_state, alert.to_state) == ("current", "escalated")


def test_min_outstanding_condition(tmp_path) -> None:
    consortium = Consortium.create(tmp_path, overdue=[
        {"state": "reminded", "days_past_due": 1, "action": "reminder"},
        {"state": "escalated", "days_past_due": 5, "min_outstanding": 10**12, "action": "escalation"}])
    path = consortium.settle("job-1")
    with consortium.member("CUCC", path) as cucc:
        cucc.issue_invoice(path, ISSUED)
        [alert] = cucc.sweep(DUE + dt.timedelta(days=20))
        assert alert.to_state == "reminded"                          # escalation needs more outstanding


def test_paid_items_raise_no_alert(invoiced, tmp_path) -> None:
    _, cucc, _, invoice = invoiced
    csv = tmp_path / "b.csv"
    csv.write_text("transaction_id,booking_date,value_date,direction,amount,currency,reversal,end_to_end_id,"
                   "remittance,debtor_name,debtor_account\n"
                   f"T1,2026-12-01,,CRDT,{invoice.charge.gross // 100}.{invoice.charge.gross % 100:02d},CNY,false,"
                   f"{invoice.invoice_id},,China Mobile,6222\n", encoding="utf-8")
    cucc.import_payments(csv, account="acct")
    assert cucc.state().items[invoice.invoice_id].overdue_state == "settled"
    assert cucc.sweep(DUE + dt.timedelta(days=200)) == []


def test_overdue_rules_are_validated() -> None:
    with pytest.raises(TermsError, match="later states"):
        terms(overdue=[{"state": "reminded", "days_past_due": 30, "action": "reminder"},
                       {"state": "escalated", "days_past_due": 10, "action": "escalation"}])
    with pytest.raises(TermsError, match="dispute_hold"):
        terms(overdue=[{"state": "held", "days_past_due": 30, "action": "reminder"}])
    with pytest.raises(TermsError, match="unknown overdue state"):
        terms(overdue=[{"state": "lawyers", "days_past_due": 30, "action": "reminder"}])


def test_command_hook_gets_each_alert(invoiced, tmp_path) -> None:
    _, cucc, _, invoice = invoiced
    alerts = cucc.sweep(DUE + dt.timedelta(days=2))
    out = tmp_path / "hook.jsonl"
    script = ("import json,os,sys; d=json.load(sys.stdin); "
              f"open({str(out)!r},'a').write(json.dumps([d['item_id'], os.environ['SETTLECHAIN_ALERT_STATE']])+'\\n')")
    results = run_hooks(alerts, command=[sys.executable, "-c", script], member="CUCC")
    assert [r.ok for r in results] == [True]
    assert json.loads(out.read_text()) == [invoice.invoice_id, "reminded"]
    failing = run_hooks(alerts, command=[sys.executable, "-c", "raise SystemExit(3)"])
    assert [(r.ok, r.detail[:6]) for r in failing] == [(False, "exit 3")]


def test_webhook_hook_posts_each_alert(invoiced) -> None:
    _, cucc, _, invoice = invoiced
    alerts = cucc.sweep(DUE + dt.timedelta(days=2))
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        results = run_hooks(alerts, url=f"http://127.0.0.1:{server.server_port}/alerts", member="CUCC")
    finally:
        thread.join(5)
        server.server_close()
    assert [r.ok for r in results] == [True]
    assert received[0]["item_id"] == invoice.invoice_id and received[0]["type"] == "overdue_alert"
