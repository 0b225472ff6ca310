"""``settlechain billing ...``: one member's billing after the co-signed settlement statement.

Every subcommand takes ``--config`` (the consortium file), ``--as`` (this member) and
``--rules`` (the rules file; its ``[billing]`` section holds the terms), reads the ledger,
replays this member's state and appends what it does, sealed.  Exit codes: 0 done, 2 bad
input, 3 refused by a billing rule (the rule is printed).

    settlechain billing keys            publish this member's sealing key
    settlechain billing invoice         issue (or draft, or finalise a draft of) an invoice
    settlechain billing void            void an unpaid invoice, reissuing it by default
    settlechain billing receipt | fapiao | hold   acknowledge, attach a tax e-invoice, dispute
    settlechain billing import-payments match a camt.053/054 or CSV bank statement
    settlechain billing sweep           record overdue alerts as of a date, call the hooks
    settlechain billing adjust          propose / countersign an adjustment
    settlechain billing net             open / submit / compute / accept / final a netting run
    settlechain billing report          HTML report, CSV/Parquet exports, journal
    settlechain billing status          what this member can see
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from billing.errors import BillingInputError


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, found {text!r}") from None


def _common(parser: argparse.ArgumentParser, *, statements: bool = False) -> None:
    parser.add_argument("--config", type=Path, required=True, help="consortium file")
    parser.add_argument("--as", dest="member", required=True, help="this member's id")
    parser.add_argument("--rules", type=Path, required=True, help="rules file with the [billing] terms")
    if statements:
        parser.add_argument("--statement", type=Path, action="append", default=[], metavar="FILE_OR_DIR",
                            help="a statement.json this member holds, or a folder searched for them (repeatable)")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    billing = subparsers.add_parser(
        "billing", help="invoices, payments, aging, adjustments and netting after the statement",
        description=(__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None))
    sub = billing.add_subparsers(dest="billing_command", metavar="COMMAND", required=True)

    keys = sub.add_parser("keys", help="create this member's sealing key and publish it on the ledger")
    _common(keys)
    keys.set_defaults(handler=_keys)

    invoice = sub.add_parser("invoice", help="issue the invoice of a final statement",
                             description="Issue (number and append) the invoice of a final settlement "
                                         "statement this member is owed money by.  --draft writes the draft "
                                         "only; --finalize numbers and appends a draft.")
    _common(invoice, statements=True)
    invoice.add_argument("--date", type=_date, default=None, help="issue date (default: today)")
    invoice.add_argument("--draft", type=Path, default=None, help="write the draft here, append nothing")
    invoice.add_argument("--finalize", type=Path, default=None, help="finalise this draft")
    invoice.set_defaults(handler=_invoice)

    void = sub.add_parser("void", help="void an unpaid invoice (reissued, linked, by default)")
    _common(void, statements=True)
    void.add_argument("--invoice", required=True, help="invoice id")
    void.add_argument("--reason", required=True, help="why (kept in the void document)")
    void.add_argument("--date", type=_date, default=None, help="date of the void (default: today)")
    void.add_argument("--no-reissue", action="store_true", help="void without a replacing invoice")
    void.set_defaults(handler=_void)

    receipt = sub.add_parser("receipt", help="acknowledge receipt of an invoice (the payer)")
    _common(receipt)
    receipt.add_argument("--invoice", required=True)
    receipt.add_argument("--date", type=_date, default=None)
    receipt.set_defaults(handler=_receipt)

    fapiao = sub.add_parser("fapiao", help="attach a tax e-invoice number and its file's SM3 (the issuer)")
    _common(fapiao)
    fapiao.add_argument("--invoice", required=True)
    fapiao.add_argument("--number", required=True, help="the fapiao number")
    fapiao.add_argument("--file", type=Path, required=True, help="the fapiao file (its SM3 is recorded)")
    fapiao.add_argument("--date", type=_date, default=None)
    fapiao.set_defaults(handler=_fapiao)

    hold = sub.add_parser("hold", help="put an item on hold (disputed), or release it")
    _common(hold)
    hold.add_argument("--item", required=True)
    hold.add_argument("--reason", required=True)
    hold.add_argument("--release", action="store_true")
    hold.add_argument("--date", type=_date, default=None)
    hold.set_defaults(handler=_hold)

    payments = sub.add_parser("import-payments", help="match a bank statement (camt.053/054 XML or CSV)",
                              description="Match every transaction of a bank statement to this member's items "
                                          "and record the matches and the unmatched credits on the ledger.")
    _common(payments)
    payments.add_argument("--file", type=Path, required=True, help="camt.053 / camt.054 XML, or the bank CSV")
    payments.add_argument("--account", default="", help="the account id (CSV files carry none)")
    payments.add_argument("--out", type=Path, default=None, help="also write the outcome of every transaction as CSV")
    payments.add_argument("--dry-run", action="store_true", help="match and list, append nothing")
    payments.set_defaults(handler=_import_payments)

    sweep = sub.add_parser("sweep", help="record overdue alerts as of a date and call the hooks")
    _common(sweep)
    sweep.add_argument("--as-of", type=_date, required=True, help="the date the sweep is evaluated on")
    sweep.add_argument("--hook-command", default=None, help="command run per alert (alert JSON on stdin)")
    sweep.add_argument("--hook-url", default=None, help="webhook URL POSTed the alert JSON per alert")
    sweep.add_argument("--hook-timeout", type=float, default=10.0, help="seconds per hook call (default 10)")
    sweep.set_defaults(handler=_sweep)

    adjust = sub.add_parser("adjust", help="propose or countersign an adjustment of an earlier job")
    adjust_sub = adjust.add_subparsers(dest="adjust_command", metavar="STEP", required=True)
    propose = adjust_sub.add_parser("propose", help="write a proposal for the other operator to countersign")
    _common(propose, statements=True)
    propose.add_argument("--job", required=True, help="the original job id")
    propose.add_argument("--line", action="append", default=[], metavar="PAYER>PAYEE:SERVICE:CALL_TYPE:BAND:FEN",
                         help="a signed amount per direction and rate class (repeatable)")
    propose.add_argument("--reverses", default=None, help="undo this adjustment (its lines negated)")
    propose.add_argument("--reason", required=True)
    propose.add_argument("--period", required=True, help="the current period, where the note lands")
    propose.add_argument("--date", type=_date, default=None, help="note date (default: today)")
    propose.add_argument("--out", type=Path, required=True, help="proposal file to write")
    propose.set_defaults(handler=_adjust_propose)
    counter = adjust_sub.add_parser("countersign", help="check a proposal and append it with both signatures")
    _common(counter, statements=True)
    counter.add_argument("--proposal", type=Path, required=True)
    counter.set_defaults(handler=_adjust_countersign)

    net = sub.add_parser("net", help="multilateral netting of a period")
    net_sub = net.add_subparsers(dest="net_command", metavar="STEP", required=True)
    for step, text in (("open", "the agent opens a run"), ("submit", "submit this member's position"),
                       ("compute", "the agent computes the plan"), ("accept", "sign this member's part"),
                       ("final", "the agent records that every member accepted")):
        parser = net_sub.add_parser(step, help=text)
        _common(parser, statements=True)
        parser.add_argument("--netting-id", default=None)
        if step == "open":
            parser.add_argument("--period", required=True)
            parser.add_argument("--settlement-date", type=_date, required=True)
        parser.set_defaults(handler=_net, net_step=step)

    report = sub.add_parser("report", help="HTML report, CSV/Parquet exports and the double-entry journal")
    _common(report, statements=True)
    report.add_argument("--as-of", type=_date, default=None, help="aging date (default: today)")
    report.add_argument("--out", type=Path, required=True, help="folder for billing-report.html and the exports")
    report.set_defaults(handler=_report)

    status = sub.add_parser("status", help="what this member can see: items, payments, refusals")
    _common(status, statements=True)
    status.add_argument("--json", action="store_true", help="machine-readable")
    status.set_defaults(handler=_status)


def _member(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from billing.config import load_terms
    from billing.party import BillingMember, statements_in

    return BillingMember(args.config, args.member, load_terms(args.rules),
                         statements=statements_in(getattr(args, "statement", []) or []))


def _today(value: dt.date | None) -> dt.date:
    return value or dt.date.today()


def _keys(args: argparse.Namespace) -> int:
    with _member(args) as member:
        index = member.publish_keys()
    print(f"{args.member}: sealing key " + (f"published at ledger index {index}" if index is not None
                                            else "already in force on the ledger"))
    return 0


def _invoice(args: argparse.Namespace) -> int:
    from billing.money import show
    from billing.party import load_draft, save_draft

    with _member(args) as member:
        if args.finalize is not None:
            invoice = member.finalize_invoice(load_draft(args.finalize))
        else:
            if len(member.statements) != 1:
                raise BillingInputError("give exactly one statement to invoice", column="--statement",
                                        line_word="option", expected="one statement.json",
                                        found=f"{len(member.statements)}")
            settled = next(iter(member.statements.values()))
            draft = member.draft_invoice(settled, _today(args.date))
            if args.draft is not None:
                save_draft(draft, args.draft)
                print(f"draft for job {settled.job_id} written to {args.draft}: {show(draft.charge.gross)} "
                      f"owed by {draft.payer}")
                return 0
            invoice = member.finalize_invoice(draft)
    c = invoice.charge
    print(f"invoice {invoice.invoice_id}: {invoice.payer} owes {invoice.issuer} {show(c.gross)} "
          f"(net {show(c.net)}, tax {show(c.tax)}), due {invoice.due_date}; job {invoice.statement.job_id}")
    return 0


def _void(args: argparse.Namespace) -> int:
    with _member(args) as member:
        void, replacement = member.void_invoice(args.invoice, args.reason, _today(args.date),
                                                reissue=not args.no_reissue)
    print(f"{void.invoice_id} voided" + (f"; replaced by {replacement.invoice_id}" if replacement else ""))
    return 0


def _receipt(args: argparse.Namespace) -> int:
    with _member(args) as member:
        member.acknowledge(args.invoice, _today(args.date))
    print(f"{args.member} acknowledged receipt of {args.invoice}")
    return 0


def _fapiao(args: argparse.Namespace) -> int:
    with _member(args) as member:
        doc = member.attach_fapiao(args.invoice, args.number, args.file, _today(args.date))
    print(f"fapiao {doc.fapiao_number} (SM3 {doc.file_sm3[:16]}…) attached to {doc.invoice_id}")
    return 0


def _hold(args: argparse.Namespace) -> int:
    with _member(args) as member:
        member.hold(args.item, args.reason, _today(args.date), release=args.release)
    print(f"{args.item} {'released' if args.release else 'on hold'}")
    return 0


def _import_payments(args: argparse.Namespace) -> int:
    import csv

    from billing.matching import counts
    from billing.money import show

    with _member(args) as member:
        outcomes = member.import_payments(args.file, account=args.account, dry_run=args.dry_run)
    for o in outcomes:
        t = o.transaction
        print(f"  {t.location:<10} {t.transaction_id:<22} {'CR' if t.credit else 'DR'} {show(t.amount):>16}  "
              f"{o.outcome:<13} {o.item_id or '':<24} {o.reason}")
    summary = ", ".join(f"{k} {v}" for k, v in counts(outcomes).items() if v)
    print(f"{len(outcomes)} transactions: {summary}" + (" (dry run: nothing appended)" if args.dry_run else ""))
    if args.out is not None:
        with open(args.out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["location", "transaction_id", "payment_id", "direction", "amount", "outcome", "item_id",
                             "applied", "excess", "reason"])
            for o in outcomes:
                writer.writerow([o.transaction.location, o.transaction.transaction_id, o.payment_id,
                                 "CRDT" if o.transaction.credit else "DBIT", o.transaction.amount, o.outcome,
                                 o.item_id or "", o.applied, o.excess, o.reason])
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from billing.money import show
    from billing.overdue import run_hooks

    with _member(args) as member:
        alerts = member.sweep(args.as_of)
    for a in alerts:
        print(f"  {a.item_id}: {a.from_state} -> {a.to_state} ({a.action}), {a.days_past_due} days past due, "
              f"{show(a.outstanding)} outstanding")
    print(f"{len(alerts)} overdue alert(s) recorded as of {args.as_of}")
    if alerts and (args.hook_command or args.hook_url):
        results = run_hooks(alerts, command=shlex.split(args.hook_command) if args.hook_command else None,
                            url=args.hook_url, timeout_s=args.hook_timeout, member=args.member)
        failed = [r for r in results if not r.ok]
        for r in failed:
            print(f"  hook {r.target} for {r.item_id} failed: {r.detail}", file=sys.stderr)
        if failed:
            return 1
    return 0


def _adjust_propose(args: argparse.Namespace) -> int:
    from billing.adjustments import parse_lines

    with _member(args) as member:
        settled = member.statements.get(args.job)
        if settled is None:
            raise BillingInputError(f"the statement of job {args.job} is needed", column="--statement",
                                    line_word="option", expected=f"the statement.json of job {args.job}",
                                    found=", ".join(member.statements) or "none")
        lines = parse_lines(args.line, settled.members, member.terms) if not args.reverses else ()
        proposal = member.propose_adjustment(args.job, lines, reason=args.reason, period=args.period,
                                             issue_date=_today(args.date), reverses=args.reverses)
    args.out.write_text(json.dumps(proposal, indent=2) + "\n", encoding="utf-8")
    print(f"adjustment proposal written to {args.out}; the other operator runs: settlechain billing adjust "
          f"countersign --proposal {args.out}")
    return 0


def _adjust_countersign(args: argparse.Namespace) -> int:
    from billing.adjustments import read_proposal
    from billing.money import show

    with _member(args) as member:
        adjustment = member.countersign_adjustment(read_proposal(args.proposal))
    note = adjustment.note
    print(f"adjustment {adjustment.adjustment_id} of job {adjustment.original.job_id} co-signed; "
          f"{note.note_type} {note.note_id}: {note.charge.debtor} owes {note.charge.creditor} {show(note.charge.gross)}")
    return 0


def _net(args: argparse.Namespace) -> int:
    from billing.money import show

    with _member(args) as member:
        step = args.net_step
        if step == "open":
            call = member.open_netting(args.period, args.settlement_date)
            print(f"netting run {call.netting_id} opened for {', '.join(call.members)} (cutoff {call.cutoff})")
        elif step == "submit":
            sub = member.submit_netting(args.netting_id)
            print(f"{args.member} submitted to {sub.netting_id}: net position {show(sub.net_position)} over "
                  f"{sub.items} items ({sub.held_out} held out)")
        elif step == "compute":
            results = member.compute_netting(args.netting_id)
            print(f"{results[0].netting_id}: {results[0].plan_payments} payment(s) settle {len(results)} members")
        elif step == "accept":
            acceptance = member.accept_netting(args.netting_id)
            print(f"{args.member} accepted its part of {acceptance.netting_id}")
        else:
            final = member.finalize_netting(args.netting_id)
            print(f"{final.netting_id} is final: accepted by {', '.join(p.member for p in final.acceptances)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from billing.exports import write_exports
    from billing.report import write_report

    as_of = _today(args.as_of)
    with _member(args) as member:
        state = member.state()
    path = write_report(state, as_of, args.out)
    written = write_exports(state, as_of, args.out)
    print(f"billing report {path}; exports: {', '.join(sorted(written))}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from billing.money import show

    with _member(args) as member:
        state = member.state()
    if args.json:
        data: dict[str, Any] = {
            "member": state.member, "ledger_size": state.size,
            "items": {i.item_id: {"type": i.item_type, "creditor": i.creditor, "debtor": i.debtor, "gross": i.gross,
                                  "outstanding": i.outstanding, "status": i.payment_status,
                                  "overdue": i.overdue_state} for i in state.items.values()},
            "unmatched": sorted(state.unmatched),
            "refused": [{"index": r.index, "type": r.document_type, "rule": r.rule} for r in state.refused]}
        print(json.dumps(data, indent=2))
        return 0
    print(f"{state.member}: ledger size {state.size}, {len(state.items)} items, {len(state.payments)} payments, "
          f"{len(state.unmatched)} unmatched credits, {len(state.refused)} refused documents")
    for i in sorted(state.items.values(), key=lambda i: i.index):
        print(f"  {i.item_id:<28} {i.item_type:<12} {i.debtor}->{i.creditor}  {show(i.gross):>14}  "
              f"outstanding {show(i.outstanding):>14}  {i.payment_status:<8} {i.overdue_state}")
    for r in state.refused:
        print(f"  refused entry {r.index} ({r.document_type}): {r.rule}: {r.message}")
    return 0
