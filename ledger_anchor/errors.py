"""Root exception of the ledger_anchor package."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of all deliberate ledger errors.  Verifiers raise subclasses of this."""

    exit_code = 2

    def diagnostics(self) -> str:
        return str(self)
