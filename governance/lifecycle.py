"""The lifecycles of a proposal and of an approval request, as declared state machines
(python-statemachine): the transitions allowed are exactly the ones declared here, and
anything else raises, which the replay turns into a refusal naming the entry.

Proposal::

    pending --pass--> passed --execute--> executed      (membership types: a manifest on the ledger)
    pending --reject--> rejected     (the policy can no longer be met)
    pending --expire--> expired      (no pass before expires_at)

Approval request (issue 13 item 4)::

    draft --submit--> pending --approve--> approved
                      pending --reject--> rejected
                      pending --expire--> expired     (the deadline passed)
    draft | pending --withdraw--> withdrawn
"""

from __future__ import annotations

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

__all__ = ["ApprovalLifecycle", "ProposalLifecycle", "TransitionNotAllowed", "state_of"]


class ProposalLifecycle(StateMachine):
    pending = State(initial=True)
    passed = State()
    executed = State(final=True)
    rejected = State(final=True)
    expired = State(final=True)

    adopt = pending.to(passed)
    reject = pending.to(rejected)
    expire = pending.to(expired)
    execute = passed.to(executed)


class ApprovalLifecycle(StateMachine):
    draft = State(initial=True)
    pending = State()
    approved = State(final=True)
    rejected = State(final=True)
    expired = State(final=True)
    withdrawn = State(final=True)

    submit = draft.to(pending)
    approve = pending.to(approved)
    reject = pending.to(rejected)
    expire = pending.to(expired)
    withdraw = draft.to(withdrawn) | pending.to(withdrawn)


def state_of(machine: StateMachine) -> str:
    """The id of the machine's (single) current state."""
    return next(iter(machine.configuration)).id
