"""Synthetic bank statements with their true matches: ISO 20022 camt.053 and the documented CSV.

Given what an operator is owed (:class:`Receivable`: a reference, an amount, who owes
it), :func:`generate_bank_statement` draws how each is paid -- in full, in part, too
much, not at all, or in full and then reversed -- and adds the noise a real account
shows: credits without any reference, a credit whose remittance names two references,
and outgoing debits.  It returns the transactions *and* the true answer: for every
transaction, the reference it pays (or none) and the outcome a correct matcher must
report (``full``, ``partial``, ``overpaid``, ``reversal``, ``unmatched``,
``ignored_debit``), with the amount it applies.

:func:`camt053_xml` writes them as a BankToCustomerStatementV08 document
(``urn:iso:std:iso:20022:tech:xsd:camt.053.001.08``: group header, one statement with
opening and closing booked balances, one booked entry per transaction with its
transaction details, end-to-end id, related parties and remittance information);
:func:`bank_csv` as the CSV of docs/billing.md.  Both describe the same
transactions.  Depends on nothing else of ours (the billing tests validate the XML
against the ISO 20022 schema and run the matcher against the truth).

Deterministic for a seed (numpy's Generator on a stream of its own).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from data_gen.blocks import stream
from data_gen.errors import DataGenError

CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
OUTCOMES: tuple[str, ...] = ("full", "partial", "overpaid", "missing", "reversed")
CSV_COLUMNS: tuple[str, ...] = ("transaction_id", "booking_date", "value_date", "direction", "amount", "currency",
                                "reversal", "end_to_end_id", "remittance", "debtor_name", "debtor_account")


@dataclass(frozen=True)
class Receivable:
    """Money owed to the account holder: ``amount`` fen under ``reference``."""

    reference: str
    amount: int
    debtor_name: str
    debtor_account: str


@dataclass(frozen=True)
class BankConfig:
    seed: int = 0
    account: str = "6222020200000000001"
    account_holder: str = "Operator"
    currency: str = "CNY"
    first_booking: dt.date = dt.date(2026, 12, 1)
    days: int = 10
    shares: Mapping[str, float] = field(default_factory=lambda: {
        "full": 0.55, "partial": 0.15, "overpaid": 0.05, "missing": 0.15, "reversed": 0.10})
    reference_in_remittance_share: float = 0.2
    """Share of paid receivables whose reference is only in the remittance text (no end-to-end id)."""
    unreferenced_credits: int = 2
    ambiguous_credits: int = 1
    debits: int = 2


@dataclass(frozen=True)
class GeneratedTransaction:
    transaction_id: str
    booking_date: dt.date
    amount: int
    credit: bool
    reversal: bool
    end_to_end_id: str
    remittance: str
    debtor_name: str
    debtor_account: str


@dataclass(frozen=True)
class TrueMatch:
    """What a correct matcher reports for one transaction."""

    transaction_id: str
    reference: str | None
    outcome: str          # full | partial | overpaid | reversal | unmatched | ignored_debit
    applied: int          # fen applied to the reference (0 when none)


@dataclass(frozen=True)
class BankStatement:
    config: BankConfig
    transactions: tuple[GeneratedTransaction, ...]
    truth: tuple[TrueMatch, ...]
    plan: Mapping[str, str]          # reference -> outcome drawn for it
    opening_balance: int

    @property
    def closing_balance(self) -> int:
        return self.opening_balance + sum(t.amount if t.credit else -t.amount for t in self.transactions)


def _draw_plan(receivables: Sequence[Receivable], config: BankConfig, rng) -> dict[str, str]:  # type: ignore[no-untyped-def]
    unknown = set(config.shares) - set(OUTCOMES)
    if unknown:
        raise DataGenError(f"bank shares: unknown outcome {sorted(unknown)[0]!r}, expected {', '.join(OUTCOMES)}")
    total = sum(config.shares.values())
    if total <= 0 or any(v < 0 for v in config.shares.values()):
        raise DataGenError("bank shares: expected non-negative shares with a positive sum")
    names = list(config.shares)
    weights = [config.shares[n] / total for n in names]
    return {r.reference: names[int(rng.choice(len(names), p=weights))] for r in receivables}


def generate_bank_statement(receivables: Sequence[Receivable], config: BankConfig = BankConfig(), *,
                            plan: Mapping[str, str] | None = None) -> BankStatement:
    """The account holder's statement for the period, and the true match of every transaction.

    ``plan`` fixes the outcome of some references (the rest are drawn from ``config.shares``)."""
    references = [r.reference for r in receivables]
    if len(set(references)) != len(references):
        raise DataGenError("receivables: every reference must be unique")
    if any(r.amount <= 0 for r in receivables):
        raise DataGenError("receivables: every amount must be positive (fen)")
    rng = stream(config.seed, "bank")
    drawn = _draw_plan(receivables, config, rng)
    if plan:
        bad = {k: v for k, v in plan.items() if v not in OUTCOMES or k not in drawn}
        if bad:
            raise DataGenError(f"bank plan: unknown reference or outcome {bad}")
        drawn.update(plan)
    rows: list[tuple[GeneratedTransaction, TrueMatch]] = []
    counter = iter(range(1, 10**9))

    def new_id() -> str:
        return f"BK{config.seed % 10000:04d}{next(counter):07d}"

    def day() -> dt.date:
        return config.first_booking + dt.timedelta(days=int(rng.integers(0, max(config.days, 1))))

    for receivable in receivables:
        outcome = drawn[receivable.reference]
        if outcome == "missing":
            continue
        if outcome == "partial":
            amount = max(1, int(receivable.amount * rng.uniform(0.2, 0.8)))
            amount = min(amount, receivable.amount - 1) if receivable.amount > 1 else amount
        elif outcome == "overpaid":
            amount = receivable.amount + int(rng.integers(1, 100_000))
        else:
            amount = receivable.amount
        in_remittance = rng.random() < config.reference_in_remittance_share
        e2e = "" if in_remittance else receivable.reference
        remittance = (f"interconnect settlement {receivable.reference}" if in_remittance
                      else "interconnect settlement")
        booked = day()
        credit = GeneratedTransaction(new_id(), booked, amount, True, False, e2e, remittance,
                                      receivable.debtor_name, receivable.debtor_account)
        applied = min(amount, receivable.amount)
        kind = "partial" if amount < receivable.amount else "overpaid" if amount > receivable.amount else "full"
        rows.append((credit, TrueMatch(credit.transaction_id, receivable.reference, kind, applied)))
        if outcome == "reversed":
            later = booked + dt.timedelta(days=int(rng.integers(1, 4)))
            reversal = GeneratedTransaction(new_id(), later, amount, False, True, e2e, remittance,
                                            receivable.debtor_name, receivable.debtor_account)
            rows.append((reversal, TrueMatch(reversal.transaction_id, receivable.reference, "reversal", applied)))
    for _ in range(config.unreferenced_credits):
        t = GeneratedTransaction(new_id(), day(), int(rng.integers(100, 10_000_000)), True, False, "",
                                 "payment", "Unknown payer", "6222029999999999999")
        rows.append((t, TrueMatch(t.transaction_id, None, "unmatched", 0)))
    for _ in range(config.ambiguous_credits if len(receivables) >= 2 else 0):
        a, b = rng.choice(len(receivables), size=2, replace=False)
        first, second = receivables[int(a)], receivables[int(b)]
        t = GeneratedTransaction(new_id(), day(), first.amount + second.amount, True, False, "",
                                 f"settlement {first.reference} {second.reference}", first.debtor_name,
                                 first.debtor_account)
        rows.append((t, TrueMatch(t.transaction_id, None, "unmatched", 0)))
    for _ in range(config.debits):
        t = GeneratedTransaction(new_id(), day(), int(rng.integers(100, 1_000_000)), False, False, "",
                                 "outgoing transfer", config.account_holder, config.account)
        rows.append((t, TrueMatch(t.transaction_id, None, "ignored_debit", 0)))
    rows.sort(key=lambda pair: (pair[0].booking_date, pair[0].transaction_id))
    opening = int(rng.integers(10_000_000, 1_000_000_000))
    return BankStatement(config, tuple(t for t, _ in rows), tuple(m for _, m in rows), drawn, opening)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def camt053_xml(statement: BankStatement) -> bytes:
    """The statement as an ISO 20022 camt.053.001.08 document (UTF-8)."""
    c = statement.config
    ns = "{%s}" % CAMT053

    def sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
        element = etree.SubElement(parent, ns + tag, attrib)
        if text is not None:
            element.text = text
        return element

    def account(parent: etree._Element, identifier: str) -> None:
        sub(sub(sub(parent, "Id"), "Othr"), "Id", identifier)

    def balance(parent: etree._Element, code: str, amount: int, date: dt.date) -> None:
        bal = sub(parent, "Bal")
        sub(sub(sub(bal, "Tp"), "CdOrPrtry"), "Cd", code)
        sub(bal, "Amt", _yuan(abs(amount)), Ccy=c.currency)
        sub(bal, "CdtDbtInd", "CRDT" if amount >= 0 else "DBIT")
        sub(sub(bal, "Dt"), "Dt", date.isoformat())

    last = c.first_booking + dt.timedelta(days=max(c.days, 1) - 1)
    if statement.transactions:
        last = max(last, max(t.booking_date for t in statement.transactions))
    created = f"{last.isoformat()}T23:59:59+08:00"
    root = etree.Element(ns + "Document", nsmap={None: CAMT053})
    body = sub(root, "BkToCstmrStmt")
    header = sub(body, "GrpHdr")
    sub(header, "MsgId", f"STMT-{c.seed}-{last:%Y%m%d}")
    sub(header, "CreDtTm", created)
    stmt = sub(body, "Stmt")
    sub(stmt, "Id", f"{c.account}-{last:%Y%m%d}")
    sub(stmt, "ElctrncSeqNb", "1")
    sub(stmt, "CreDtTm", created)
    period = sub(stmt, "FrToDt")
    sub(period, "FrDtTm", f"{c.first_booking.isoformat()}T00:00:00+08:00")
    sub(period, "ToDtTm", created)
    acct = sub(stmt, "Acct")
    account(acct, c.account)
    sub(acct, "Ccy", c.currency)
    sub(sub(acct, "Ownr"), "Nm", c.account_holder)
    balance(stmt, "OPBD", statement.opening_balance, c.first_booking)
    balance(stmt, "CLBD", statement.closing_balance, last)
    for number, t in enumerate(statement.transactions, start=1):
        entry = sub(stmt, "Ntry")
        sub(entry, "NtryRef", str(number))
        sub(entry, "Amt", _yuan(t.amount), Ccy=c.currency)
        sub(entry, "CdtDbtInd", "CRDT" if t.credit else "DBIT")
        if t.reversal:
            sub(entry, "RvslInd", "true")
        sub(sub(entry, "Sts"), "Cd", "BOOK")
        sub(sub(entry, "BookgDt"), "Dt", t.booking_date.isoformat())
        sub(sub(entry, "ValDt"), "Dt", t.booking_date.isoformat())
        sub(entry, "AcctSvcrRef", t.transaction_id)
        domain = sub(sub(entry, "BkTxCd"), "Domn")
        sub(domain, "Cd", "PMNT")
        family = sub(domain, "Fmly")
        sub(family, "Cd", "RCDT" if t.credit else "ICDT")
        sub(family, "SubFmlyCd", "ESCT")
        detail = sub(sub(entry, "NtryDtls"), "TxDtls")
        refs = sub(detail, "Refs")
        sub(refs, "AcctSvcrRef", t.transaction_id)
        sub(refs, "EndToEndId", t.end_to_end_id or "NOTPROVIDED")
        sub(detail, "Amt", _yuan(t.amount), Ccy=c.currency)
        sub(detail, "CdtDbtInd", "CRDT" if t.credit else "DBIT")
        parties = sub(detail, "RltdPties")
        sub(sub(sub(parties, "Dbtr"), "Pty"), "Nm", t.debtor_name)
        account(sub(parties, "DbtrAcct"), t.debtor_account)
        sub(sub(detail, "RmtInf"), "Ustrd", t.remittance[:140])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def bank_csv(statement: BankStatement) -> str:
    """The statement as the bank CSV of docs/billing.md."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in statement.transactions:
        writer.writerow([t.transaction_id, t.booking_date.isoformat(), t.booking_date.isoformat(),
                         "CRDT" if t.credit else "DBIT", _yuan(t.amount), statement.config.currency,
                         "true" if t.reversal else "false", t.end_to_end_id, t.remittance, t.debtor_name,
                         t.debtor_account])
    return out.getvalue()


def truth_csv(statement: BankStatement) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("transaction_id", "reference", "outcome", "applied"))
    for m in statement.truth:
        writer.writerow((m.transaction_id, m.reference or "", m.outcome, m.applied))
    return out.getvalue()


def write_bank_files(statement: BankStatement, folder: str | Path, *, stem: str = "bank") -> dict[str, Path]:
    """``<stem>.camt053.xml``, ``<stem>.csv`` and ``<stem>.truth.csv`` in ``folder``."""
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
        paths = {"camt053": target / f"{stem}.camt053.xml", "csv": target / f"{stem}.csv",
                 "truth": target / f"{stem}.truth.csv"}
        paths["camt053"].write_bytes(camt053_xml(statement))
        paths["csv"].write_text(bank_csv(statement), encoding="utf-8")
        paths["truth"].write_text(truth_csv(statement), encoding="utf-8")
    except OSError as exc:
        raise DataGenError(f"cannot write the bank files into {target}: {exc.strerror or exc}") from None
    return paths
