"""Invoices from a final settlement statement: lines, tax, numbers, due dates.

From a statement that is final, the operator that is owed money (net, over both
directions of the pair's traffic) issues one invoice to the other (docs/billing.md
"Invoices"):

- one line per direction and rate class (service, call type, time band), the agreed
  amount of the statement; a line whose payee is the issuer counts for it, a line whose
  payee is the payer against it, so the invoice total is the net amount owed;
- one tax line per direction and tax class (the rules' ``[[billing.tax_classes]]``, e.g.
  9 % on basic telecom services, 6 % on value-added ones): tax = base × rate rounded
  half away from zero to the fen (:func:`billing.money.tax_of`), once per tax line;
- net = Σ signed lines, tax = Σ signed tax lines, gross = net + tax; all integer fen;
- due date = issue date + ``payment_terms_days``;
- the number: gapless per issuer and series (series = ``invoice_series`` of the rules,
  naming both operators and the year), assigned at finalisation as the last number of
  the series on the ledger + 1; the invoice id, ``<series>-<number:06d>``, is the
  reference the payer quotes in its transfer (an ISO 20022 EndToEndId, at most 35
  characters).

A draft (:func:`draft_invoice`) has number 0 and is a local file; finalising it
(:func:`finalize`) gives it its number and appends it, sealed to both operators.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from billing.config import NUMBER_DIGITS, BillingTerms
from billing.documents import Charge, Invoice, Line, StatementRef, TaxLine
from billing.errors import RefusedError
from billing.money import show, tax_of
from billing.statement import SettledStatement


def reference(series: str, number: int) -> str:
    return f"{series}-{number:0{NUMBER_DIGITS}d}"


def charge_of(lines: Iterable[Line], creditor: str, debtor: str, terms: BillingTerms) -> Charge:
    """Tax lines and totals of ``lines`` (between ``creditor`` and ``debtor``) from the creditor's side."""
    lines = tuple(sorted(lines, key=lambda x: (x.payer, x.payee, x.service, x.call_type, x.time_band)))
    for line in lines:
        if {line.payer, line.payee} != {creditor, debtor}:
            raise RefusedError("foreign_line", f"a line from {line.payer} to {line.payee} is not between "
                                              f"{creditor} and {debtor}")
    groups: dict[tuple[str, str, str], int] = defaultdict(int)
    for line in lines:
        groups[(line.payer, line.payee, line.tax_class)] += line.amount
    rates = {t.name: t.rate_bp for t in terms.tax_classes}
    tax_lines = tuple(TaxLine(payer, payee, tax_class, rates[tax_class], base, tax_of(base, rates[tax_class]))
                      for (payer, payee, tax_class), base in sorted(groups.items()))

    def signed(payee: str, amount: int) -> int:
        return amount if payee == creditor else -amount

    net = sum(signed(x.payee, x.amount) for x in lines)
    tax = sum(signed(t.payee, t.tax) for t in tax_lines)
    return Charge(creditor, debtor, lines, tax_lines, net, tax, net + tax)


def statement_lines(settled: SettledStatement, terms: BillingTerms) -> tuple[Line, ...]:
    return tuple(Line(c.payer, c.payee, c.service, c.call_type, c.time_band, terms.tax_class_of(c.service).name,
                      c.amount) for c in settled.classes if c.amount)


def draft_invoice(settled: SettledStatement, issuer: str, terms: BillingTerms, *, issue_date: dt.date,
                  replaces: str | None = None) -> Invoice:
    """The invoice ``issuer`` would issue for ``settled``, numbered 0 (a draft).

    Refuses an issuer that is not one of the statement's operators, or that is not owed
    money by it (the other operator issues the invoice then)."""
    if issuer not in settled.members:
        raise RefusedError("not_an_operator", f"{issuer} is not an operator of job {settled.job_id} "
                                              f"({' and '.join(settled.members)})")
    payer = settled.members[1] if settled.members[0] == issuer else settled.members[0]
    charge = charge_of(statement_lines(settled, terms), issuer, payer, terms)
    if charge.gross <= 0:
        raise RefusedError("not_owed", f"job {settled.job_id}: {issuer} is owed nothing net "
                                       f"({show(charge.gross)} including tax); "
                                       + (f"{payer} issues the invoice" if charge.gross < 0 else "nothing to invoice"))
    year = issue_date.year
    series = terms.series_for(issuer, payer, year)
    return Invoice(invoice_id=reference(series, 0), issuer=issuer, payer=payer, series=series, number=0,
                   issue_date=issue_date, due_date=issue_date + dt.timedelta(days=terms.payment_terms_days),
                   currency=terms.currency,
                   statement=StatementRef(settled.job_id, settled.period, settled.ledger_index,
                                          settled.statement_sm3),
                   charge=charge, terms_sm3=terms.terms_sm3, replaces=replaces)


def finalize(draft: Invoice, next_number: int) -> Invoice:
    """The draft with its number: the series' last number on the ledger + 1."""
    if draft.number != 0:
        raise RefusedError("already_final", f"{draft.invoice_id} already has number {draft.number}")
    if next_number < 1:
        raise RefusedError("bad_number", f"invoice numbers start at 1, found {next_number}")
    return dataclasses.replace(draft, number=next_number, invoice_id=reference(draft.series, next_number))
