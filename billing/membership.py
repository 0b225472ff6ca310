"""Who is a member, with which keys, and when a statement is final: the one place billing asks.

Billing takes three answers from the ledger's membership and from governance (DESIGN.md
"After the statement"; the governance package, docs/governance.md):

- the members in force and their SM2 signing keys (:func:`signing_keys`): the membership
  manifest in force at a ledger index (:meth:`ledger_anchor.client.LedgerClient.membership`),
  used to check both operators' signatures on a settlement statement;
- which members may receive a sealed document (:func:`members_in_force`): the current
  manifest's members; their sealing keys are their own ``sealing_key`` entries
  (:mod:`billing.ledgerio`), which the log accepts only from a member in force;
- whether a settlement statement is final for payment (:class:`Finality`): co-signed by
  both operators (checked when it is read, :mod:`billing.statement`) and its approval
  request -- governance's ``approval_request`` whose subject is that statement entry --
  approved (default policy: one finance approver of each operator of the pair), the
  approval decided before the invoice that relies on it.  A statement marked for
  manual review is final only through that approval as well.

A ledger client without governance entries (an older client object, a test double)
falls back to the consortium file's members and to "settled automatically" as final.
"""

from __future__ import annotations

from typing import Any

from billing.errors import RefusedError
from billing.statement import STATEMENT_KIND, SettledStatement


def signing_keys(config: Any, ledger: Any | None = None, at_index: int | None = None) -> dict[str, bytes]:
    """member id -> 64-byte SM2 signing public key of the manifest in force at ``at_index``
    (default: the current one)."""
    if ledger is not None and hasattr(ledger, "membership"):
        membership = ledger.membership()
        manifest = membership.current if at_index is None else membership.at(at_index)
        return dict(manifest.signing_keys())
    return dict(config.member_keys())


def members_in_force(config: Any, ledger: Any | None = None) -> frozenset[str]:
    if ledger is not None and hasattr(ledger, "membership"):
        return frozenset(ledger.membership().current.member_ids)
    return frozenset(m.id for m in config.members)


def require_final(settled: SettledStatement, ledger: Any | None = None) -> None:
    """Return nothing if ``settled`` is final for payment now; else raise ``statement_not_final``."""
    Finality(ledger).check(settled.job_id, settled.settlement, before=None, statement_index=settled.ledger_index)


class Finality:
    """Whether a job's statement is final for payment, as of a ledger index.  The replay asks
    it for every invoice, so an invoice appended around the checks is refused too."""

    def __init__(self, ledger: Any | None = None) -> None:
        self.ledger = ledger
        self._governance: Any = None

    def _state(self) -> Any:
        if self._governance is None and self.ledger is not None and hasattr(self.ledger, "governance_entries"):
            from governance.state import ConsortiumState  # noqa: PLC0415 - only with a governed ledger

            self._governance = ConsortiumState.replay(self.ledger)
        return self._governance

    def check(self, job_id: str, settlement: str | None, *, before: int | None,
              statement_index: int | None = None) -> None:
        """``settlement``: the statement's field when known (from the file, or in clear on the
        entry); ``before``: the index of the document relying on it (None: now)."""
        state = self._state()
        if state is None:
            if settlement is not None and settlement != "automatic":
                raise RefusedError("statement_not_final",
                                   f"job {job_id}: the statement is marked {settlement!r}, not settled "
                                   "automatically; it is final for payment only once approved")
            return
        requests = [r for r in state.requests.values()
                    if r.draft.subject and r.draft.subject.get("type") == STATEMENT_KIND
                    and r.draft.subject.get("job_id") == job_id
                    and (statement_index is None or r.draft.subject.get("entry_index") == statement_index)
                    and (before is None or (r.draft.index or 0) < before)]
        if not requests:
            raise RefusedError("statement_not_final",
                               f"job {job_id}: no approval request for its settlement statement; it is final for "
                               f"payment once approved (settlechain approve ...)")
        latest = max(requests, key=lambda r: r.draft.index or 0)
        decided = latest.decided_at
        if latest.status != "approved" or (before is not None and (decided is None or decided >= before)):
            raise RefusedError("statement_not_final",
                               f"job {job_id}: the approval request {latest.draft.request_id} is {latest.status}"
                               + (f" (decided at ledger index {decided})" if decided is not None else "")
                               + "; the statement is final for payment once it is approved")
