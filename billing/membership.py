"""Who is a member, with which keys, and when a statement is final: the one place billing asks.

Billing needs three answers from governance (DESIGN.md "After the statement"):

- the members in force and their SM2 signing keys (:func:`signing_keys`), to check the
  signatures on a settlement statement and on billing documents;
- their sealing keys (:func:`sealing_recipients`), to seal a document to them; these are
  the members' own ``sealing_key`` entries (:mod:`billing.ledgerio`), accepted only from
  members in force;
- whether a settlement statement is final for payment (:func:`require_final`): co-signed
  by both operators (checked when it is read, :mod:`billing.statement`), settled
  automatically rather than marked for manual review, and -- where the governance
  package's approvals exist -- its approval policy met.

Until the governance package is merged the membership is the consortium file's and a
statement is final when it is co-signed and ``automatic``.
"""

from __future__ import annotations

from typing import Any

from billing.errors import RefusedError
from billing.statement import SettledStatement


def signing_keys(config: Any, ledger: Any | None = None, at_index: int | None = None) -> dict[str, bytes]:
    """member id -> 64-byte SM2 signing public key of the membership in force."""
    return dict(config.member_keys())


def require_final(settled: SettledStatement, ledger: Any | None = None) -> None:
    """Return nothing if ``settled`` is final for payment; else raise ``statement_not_final``."""
    Finality(ledger).check(settled.job_id, settled.settlement, before=None)


class Finality:
    """Whether a job's statement is final for payment, as of a ledger index (the replay
    asks it for every invoice: an invoice appended around the checks is refused too)."""

    def __init__(self, ledger: Any | None = None) -> None:
        self.ledger = ledger

    def check(self, job_id: str, settlement: str | None, *, before: int | None) -> None:
        """``settlement``: the statement's ``settlement`` field when known (from the file,
        or in clear on the entry), else None (then only what the ledger says counts)."""
        if settlement is not None and settlement != "automatic":
            raise RefusedError("statement_not_final",
                               f"job {job_id}: the statement is marked {settlement!r}, not settled "
                               "automatically; it is final for payment only once approved")
