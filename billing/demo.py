"""The demo's billing act: what happens after the co-signed statement(s), in one function.

``engine/job/demo.py`` calls :func:`run_billing_demo` once its job(s) are settled::

    from billing.demo import DemoJob, run_billing_demo
    run_billing_demo(out, consortium_toml, rules_toml,
                     [DemoJob(job_id, {"CMCC": out / "A" / "statement.json", "CUCC": out / "B" / "statement.json"})])

It plays every member on this machine, as the job demo does:

1. each member publishes its sealing key;
2. for each job whose statement is not yet final for payment, each operator's finance
   approver (certified once, key in ``<out>/billing/people/``) approves it (governance);
   then the operator owed money issues its invoice (numbered, sealed to both);
3. one adjustment: the disputed pairs of the first job resolved -- the lower of the two
   sides' disputed amounts is owed after all -- proposed by the issuer, countersigned by
   the payer: a debit note in the next period;
4. a generated camt.053 statement of each creditor's bank account (``data_gen.bank``)
   pays the items: with three or more items (in ledger order) the first in full, the
   second in part and the third not at all, the rest in full; with fewer (one job: the
   invoice and the note) the invoice in part and the note in full.  The first statement
   also holds a credit without any reference, which is listed as unmatched.  Each
   creditor imports its statement;
5. every creditor sweeps on the day after the first due date: the overdue alerts;
6. with a netting agent in the terms and at least two jobs, a netting run of the period;
7. each operator's billing report and exports in ``<out>/billing/<member>/``.

Returns what it did (for the tests), and says it line by line through ``say``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billing import membership
from billing.aging import aging
from billing.config import load_terms
from billing.documents import Line
from billing.errors import BillingError, RefusedError
from billing.exports import write_exports
from billing.matching import counts
from billing.money import show
from billing.party import BillingMember
from billing.report import write_report
from data_gen.bank import BankConfig, Receivable, generate_bank_statement, write_bank_files
from governance import api as governance_api
from ledger_anchor import sm2
from ledger_anchor.config import load_config
from ledger_anchor.sm3 import sm3


@dataclass(frozen=True)
class DemoJob:
    job_id: str
    statements: Mapping[str, Path]       # member id -> the statement.json that member holds


@dataclass
class DemoOutcome:
    invoices: list[str] = field(default_factory=list)
    note: str | None = None
    bank_file: Path | None = None
    payments: dict[str, int] = field(default_factory=dict)
    plan: dict[str, str] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    netting: str | None = None
    reports: dict[str, Path] = field(default_factory=dict)


def _issue_date(period: str) -> dt.date:
    year, month = (int(p) for p in period.split("-"))
    return dt.date(year + month // 12, month % 12 + 1, 5)


def run_billing_demo(out: Path, consortium: Path, rules: Path, jobs: Sequence[DemoJob], *, seed: int = 1,
                     say: Callable[[str], None] = print) -> DemoOutcome:
    terms = load_terms(rules)
    config = load_config(consortium)
    folder = Path(out) / "billing"
    outcome = DemoOutcome()
    members: dict[str, BillingMember] = {}
    try:
        for member in config.members:
            members[member.id] = BillingMember(config, member.id, terms)
            members[member.id].publish_keys()
        say(f"  4. billing: sealing keys of {', '.join(members)} published; terms {terms.terms_sm3[:16]}… "
            f"(payment {terms.payment_terms_days} days, VAT "
            + ", ".join(f"{t.name} {t.rate_bp / 100:g}%" for t in terms.tax_classes) + ")")
        settled = []
        for job in jobs:
            for member_id, path in job.statements.items():
                settled.append((member_id, members[member_id].read_statement(path)))
        for job in jobs:
            statement = next(s for m, s in settled if s.job_id == job.job_id)
            _approve_if_needed(members, statement, folder, say)
        first_issued: dt.date | None = None
        creditor_of_first = None
        for job in jobs:
            statement = next(s for m, s in settled if s.job_id == job.job_id)
            creditor = statement.members[0] if statement.owed(statement.members[0]) > 0 else statement.members[1]
            issued = _issue_date(statement.period)
            invoice = members[creditor].issue_invoice(statement, issued)
            outcome.invoices.append(invoice.invoice_id)
            first_issued = first_issued or issued
            creditor_of_first = creditor_of_first or creditor
            say(f"     invoice {invoice.invoice_id}: {invoice.payer} owes {creditor} {show(invoice.charge.gross)} "
                f"(net {show(invoice.charge.net)} + tax {show(invoice.charge.tax)}, {len(invoice.charge.lines)} lines), "
                f"due {invoice.due_date}")
        if first_issued is None or creditor_of_first is None:
            raise BillingError("the billing demo needs at least one settled job")
        # -- one adjustment on the first job ---------------------------------------------------
        first = next(s for m, s in settled if s.job_id == jobs[0].job_id and m == creditor_of_first)
        payer = first.members[1] if first.members[0] == creditor_of_first else first.members[0]
        statement_json = members[creditor_of_first].statements[first.job_id]
        disputed = _disputed_agreed(jobs[0].statements[creditor_of_first])
        klass = max((c for c in statement_json.classes if c.payee == creditor_of_first), key=lambda c: c.amount)
        amount = disputed or max(1, klass.amount // 100)
        note_date = first_issued + dt.timedelta(days=10)
        proposal = members[creditor_of_first].propose_adjustment(
            first.job_id, [Line(klass.payer, klass.payee, klass.service, klass.call_type, klass.time_band,
                                terms.tax_class_of(klass.service).name, amount)],
            reason=f"disputed pairs of {first.job_id} resolved: the lower side's disputed amount is owed",
            period=f"{note_date.year}-{note_date.month:02d}", issue_date=note_date)
        adjustment = members[payer].countersign_adjustment(proposal)
        outcome.note = adjustment.note.note_id
        say(f"     adjustment {adjustment.adjustment_id} co-signed by {creditor_of_first} and {payer}: "
            f"{adjustment.note.note_type} {adjustment.note.note_id}, {show(adjustment.note.charge.gross)}")
        # -- the creditors' bank statements ----------------------------------------------------
        items = sorted((i for m in members.values() for i in m.state().open_items()
                        if i.creditor == m.member), key=lambda i: i.index)
        if len(items) >= 3:
            outcome.plan = {items[0].item_id: "full", items[1].item_id: "partial", items[2].item_id: "missing"}
            outcome.plan.update({i.item_id: "full" for i in items[3:]})
        else:
            outcome.plan = {items[0].item_id: "partial"}
            outcome.plan.update({i.item_id: "full" for i in items[1:]})
        matched: dict[str, int] = {}
        for n, creditor_id in enumerate(sorted({i.creditor for i in items}, key=lambda c: c != creditor_of_first)):
            own = [i for i in items if i.creditor == creditor_id]
            receivables = [Receivable(i.item_id, i.outstanding, config.member(i.debtor).name,
                                      f"6222{int(sm3(i.debtor.encode()).hex()[:12], 16) % 10**15:015d}") for i in own]
            bank = generate_bank_statement(receivables, BankConfig(
                seed=seed + n, account=f"6222{int(sm3(creditor_id.encode()).hex()[:12], 16) % 10**15:015d}",
                account_holder=config.member(creditor_id).name, first_booking=first_issued + dt.timedelta(days=12),
                days=10, unreferenced_credits=1 if n == 0 else 0, ambiguous_credits=0, debits=1,
                reference_in_remittance_share=0.0), plan={i.item_id: outcome.plan[i.item_id] for i in own})
            paths = write_bank_files(bank, folder / "bank", stem=f"{creditor_id}-statement")
            outcome.bank_file = outcome.bank_file or paths["camt053"]
            matches = members[creditor_id].import_payments(paths["camt053"])
            for k, v in counts(matches).items():
                matched[k] = matched.get(k, 0) + v
            say(f"     {creditor_id}'s bank statement {paths['camt053'].relative_to(out)} (camt.053.001.08, "
                f"{len(bank.transactions)} transactions): "
                + ", ".join(f"{i.item_id} {outcome.plan[i.item_id]}" for i in own) + "; imported: "
                + ", ".join(f"{k} {v}" for k, v in counts(matches).items() if v))
        outcome.payments = {k: v for k, v in matched.items() if v}
        # -- the overdue sweep -------------------------------------------------------------------
        due = min(i.due_date for i in items)
        as_of = due + dt.timedelta(days=1)
        alerts = [a for m in members.values() for a in m.sweep(as_of)]
        outcome.alerts = [f"{a.item_id}: {a.to_state}" for a in alerts]
        say(f"     sweep as of {as_of}: {len(alerts)} overdue alert(s)"
            + (": " + "; ".join(f"{a.item_id} {a.to_state} ({a.action}, {show(a.outstanding)} outstanding)"
                                for a in alerts) if alerts else ""))
        # -- netting ---------------------------------------------------------------------------
        if terms.netting_agent in members and len(jobs) >= 2:
            agent = members[terms.netting_agent]
            call = agent.open_netting(first.period, as_of + dt.timedelta(days=14))
            for member in members.values():
                member.submit_netting(call.netting_id)
            results = agent.compute_netting(call.netting_id)
            for member in members.values():
                member.accept_netting(call.netting_id)
            agent.finalize_netting(call.netting_id)
            outcome.netting = call.netting_id
            say(f"     netting {call.netting_id}: {results[0].plan_payments} payment(s) for {len(results)} members")
        # -- reports -----------------------------------------------------------------------------
        report_date = as_of
        for member_id in sorted({m for m, _ in settled}):
            member_state = members[member_id].state()
            report = write_report(member_state, report_date, folder / member_id)
            write_exports(member_state, report_date, folder / member_id)
            outcome.reports[member_id] = report
            rows = aging(member_state, report_date)
            recv = sum(r.total for r in rows if r.side == "receivable")
            pay = sum(r.total for r in rows if r.side == "payable")
            say(f"     {member_id}: receivables {show(recv)}, payables {show(pay)} on {report_date}; "
                f"{report.relative_to(out)} and exports beside it")
        others = [m for m in members if m not in {x for x, _ in settled}]
        for member_id in others:
            view = members[member_id].view()
            say(f"     {member_id} (not a party) sees {view.sealed_for_others} sealed billing entries and opens none")
    finally:
        for member in members.values():
            member.close()
    return outcome


def _approve_if_needed(members: Mapping[str, BillingMember], statement: Any, folder: Path,
                       say: Callable[[str], None]) -> None:
    """The demo plays the people too: when the statement is not yet final for payment, each
    operator certifies a finance approver (once) and both approve the statement."""
    ledger = members[statement.members[0]].ledger
    try:
        membership.require_final(statement, ledger)
        return
    except RefusedError:
        pass
    pending = [r for r in governance_api.replay(ledger).requests.values()
               if r.status == "pending" and r.draft.subject and r.draft.subject.get("job_id") == statement.job_id
               and r.draft.subject.get("entry_index") == statement.ledger_index]
    if pending:   # the job filed it (engine/job/roles.py): the demo's people sign that one
        request_id = pending[-1].draft.request_id
    else:
        request_id = governance_api.request_statement_approval(
            ledger, job_id=statement.job_id, requester=statement.members[0],
            key=members[statement.members[0]].signing_key, operators=statement.members)
    for operator in statement.members:
        key_path = folder / "people" / f"{operator}-finance.key"
        state = governance_api.replay(ledger)
        certs = [c.certificate.cert_id for c in state.certificates.values()
                 if c.certificate.operator == operator and c.certificate.role == "finance" and c.revoked_at is None]
        if key_path.exists() and certs:
            person, cert_id = sm2.load_private_key(key_path), certs[-1]
        else:
            person, public = sm2.generate_keypair()
            sm2.save_private_key(key_path, person)
            cert_id, _ = governance_api.certify(ledger, operator=operator, key=members[operator].signing_key,
                                                person=f"{operator.lower()}-finance", role="finance",
                                                public_key=public)
        governance_api.sign_approval(ledger, request_id=request_id, cert_id=cert_id, person_key=person,
                                     relay_key=members[operator].signing_key)
    membership.require_final(statement, ledger)
    say(f"     statement of {statement.job_id} approved for payment by the finance approvers of "
        f"{' and '.join(statement.members)} ({request_id})")


def _disputed_agreed(statement_path: Path) -> int:
    """The lower of the two sides' disputed amounts in a statement (0 when none)."""
    totals: Any = json.loads(Path(statement_path).read_text(encoding="utf-8")).get("totals", {})
    values = [totals.get("a_disputed_charge"), totals.get("b_disputed_charge")]
    return min(v for v in values if isinstance(v, int)) if all(isinstance(v, int) for v in values) else 0
