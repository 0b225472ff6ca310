"""The root exception of the governance package, and its subclasses.

Every deliberate error derives from :class:`GovernanceError`; it says what was expected
and what was found, and where (the ledger index, the field).  Only the CLI catches
broadly and prints :meth:`GovernanceError.diagnostics`.
"""

from __future__ import annotations


class GovernanceError(Exception):
    """Base class of all deliberate governance errors."""

    exit_code = 2

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None) -> None:
        where = ", ".join(part for part in (f"entry {index}" if index is not None else None,
                                            f"field {field!r}" if field else None) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.index = index
        self.field = field

    def diagnostics(self) -> str:
        return str(self)


class PolicyError(GovernanceError):
    """A policy expression is malformed or names something that does not exist."""


class ProposalError(GovernanceError):
    """A proposal or vote is refused (unknown member, expired, second vote, ...)."""


class ApprovalError(GovernanceError):
    """A person's certificate, an approval request or an approval is refused."""


class NotInForce(GovernanceError):
    """What a job asked for (rules, an engine release) is not adopted and in force."""

    exit_code = 3


class AuditError(GovernanceError):
    """An audit bundle is malformed or does not verify."""

    exit_code = 3
