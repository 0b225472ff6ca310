"""Root exception of the billing package.

Every error billing raises on purpose derives from :class:`BillingError`; only the CLI
catches broadly and prints :meth:`BillingError.diagnostics`.  Bad input names the file
and the row, column or XML element (with its line); a refusal says which rule refused
and what was found.
"""

from __future__ import annotations


class BillingError(Exception):
    """Base class of all deliberate billing errors."""

    exit_code = 2

    def diagnostics(self) -> str:
        return str(self)


class BillingInputError(BillingError):
    """A bad input file or value: the file, and where known the row/line and column/element."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None, expected: str | None = None, found: str | None = None,
                 line_word: str = "row") -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        self.expected = expected
        self.found = found
        self.line_word = line_word

    def diagnostics(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"{self.line_word} {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}" if self.line_word == "row" else str(self.column))
        text = ": ".join([", ".join(where), self.message]) if where else self.message
        if self.expected is not None:
            text += f"\n  expected: {self.expected}"
        if self.found is not None:
            text += f"\n  found:    {self.found}"
        return text

    def __str__(self) -> str:
        return self.diagnostics()


class TermsError(BillingInputError):
    """The ``[billing]`` section of the rules file is malformed or inconsistent."""


class BankFileError(BillingInputError):
    """A bank statement (camt.053/054 XML or the documented CSV) is malformed or invalid."""


class RefusedError(BillingError):
    """A billing action the rules forbid: an invoice for a statement that is not final, a
    duplicate number, a payment matching two invoices, an adjustment signed by one side only…
    ``rule`` is a short stable code the tests and the CLI use."""

    exit_code = 3

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"refused ({rule}): {message}")
        self.rule = rule


class StatementError(BillingError):
    """A settlement statement does not match the ledger, or is not signed as it must be."""

    exit_code = 3


class HookError(BillingError):
    """An overdue hook (command or webhook) failed."""
