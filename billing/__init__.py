"""Billing after the co-signed settlement statement: invoices, payments, aging and overdue
alerts, adjustments, multilateral netting -- private between the operators concerned,
committed on the ledger (docs/billing.md).

Stands on ``ledger_anchor`` (sealed entries, commitments, signatures) and ``governance``
(the membership in force, statement approvals); independent of ``engine`` and
``protocols`` (an import-linter contract keeps it so).

Modules, in topological order of their imports:

``errors``      the root error :class:`BillingError`; input errors name file, row/line, column
``money``       integer fen, exact rates in basis points, rounding half away from zero
``config``      the ``[billing]`` terms of the rules file (tax classes, payment terms, overdue rules)
``documents``   the sealed documents (invoice, void, receipt, fapiao, hold, alert, payment, ...)
``machines``    the state machines (python-statemachine): invoice, payment status, overdue, ...
``statement``   a party's statement.json checked against its ledger entry (the one adapter)
``membership``  members and keys in force, and when a statement is final for payment
``invoices``    lines per direction and rate class, tax lines, gapless numbers, due dates
``ledgerio``    sealing keys, appending sealed documents, reading what a member can open
``state``       the replay: a member's billing state from its documents, with every refusal
``bank``        camt.053 / camt.054 (validated against the ISO 20022 XSD) and the bank CSV
``matching``    bank transactions to items: full, partial, overpaid, reversal, unmatched
``aging``       aging buckets per counterparty and side
``overdue``     the overdue sweep and its hooks
``adjustments`` co-signed adjustments and their credit / debit notes
``netting``     multilateral netting: the fewest payments, the sealed run
``party``       :class:`BillingMember`: one member's actions over the ledger
``exports``     CSV / Parquet exports and the double-entry journal
``report``      billing-report.html
``demo``        the demo's billing act (``run_billing_demo``)
``cli``         the ``settlechain billing ...`` subcommands
"""
