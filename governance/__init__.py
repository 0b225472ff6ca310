"""Consortium governance and approvals on the ledger (issue 13; DESIGN.md "After the
statement").  Stands on :mod:`ledger_anchor` only; independent of ``engine`` and
``protocols``.

Modules, in topological order of their imports:

``errors``     the root error :class:`GovernanceError` and its subclasses
``clock``      times (``created_at``, deadlines) and settlement periods
``policy``     AND / OR / OutOf policies over member and person roles; distinct keys only
``documents``  the entries: proposals, votes, people's certificates, approval requests,
               DSSE approval envelopes -- their exact fields, builders and readers
``lifecycle``  the proposal and approval-request state machines (python-statemachine)
``manifests``  the membership manifest that executes a passed membership proposal
``state``      :class:`ConsortiumState`: everything derived by replaying the entries
``rules``      :func:`rules_in_force`: the rule package a job may use for its period
``api``        the write path (propose, vote, execute, certify, request, approve) and queries
``audit``      audit bundles: export for a job, verify offline from the genesis manifest
``cli``        ``settlechain governance | people | approve | audit``

What the job calls::

    from governance import rules_in_force, statement_approval
    rules_in_force(ledger, "2026-10", rules_sm3)     # agree step: RulePackage, or NotInForce
    statement_approval(ledger, job_id).final_for_payment
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GovernanceError": "governance.errors",
    "NotInForce": "governance.errors",
    "ConsortiumState": "governance.state",
    "rules_in_force": "governance.rules",
    "RulePackage": "governance.rules",
    "statement_approval": "governance.api",
    "request_statement_approval": "governance.api",
    "propose": "governance.api",
    "vote": "governance.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'governance' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
