"""Root exception of the engine package.

Every error the engine raises on purpose derives from :class:`SettlechainError`.
Only the CLI catches broadly; it prints :meth:`SettlechainError.diagnostics` and exits
non-zero.  Errors about bad input carry the file, row and column.
"""

from __future__ import annotations


class SettlechainError(Exception):
    """Base class of all deliberate engine errors."""

    exit_code = 2

    def diagnostics(self) -> str:
        """A human-readable explanation, printed by the CLI instead of a traceback."""
        return str(self)


class InputError(SettlechainError):
    """Bad input: a file, row and column (where known) and what was expected/found."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        self.expected = expected
        self.found = found

    def diagnostics(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = (": ".join([", ".join(where), self.message]) if where else self.message)
        if self.expected is not None:
            text += f"\n  expected: {self.expected}"
        if self.found is not None:
            text += f"\n  found:    {self.found}"
        return text

    def __str__(self) -> str:  # so that logs and pytest show the full diagnosis
        return self.diagnostics()


class RulesError(InputError):
    """The rules TOML is malformed or inconsistent."""


class JobError(SettlechainError):
    """A reconciliation job could not proceed (agreement failed, a peer vanished, ...)."""

    exit_code = 3
