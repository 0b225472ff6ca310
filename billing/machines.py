"""The state machines of billing, declared with python-statemachine (no hand-written transitions).

Every state is derived by replaying ledger documents through these machines
(:mod:`billing.state`); an event the machine does not allow in the current state
raises :class:`statemachine.exceptions.TransitionNotAllowed`, which the replay turns into
a refusal of that document.  The library also checks each machine's definition when
the class is created (every state reachable, no trap states).

- :class:`InvoiceLifecycle`  draft -> finalized -> voided
- :class:`PaymentStatus`     open | partial | paid | held (disputed), driven by amounts
- :class:`OverdueState`      current -> reminded -> escalated -> held, settled; the
  conditions of each move come from the rules' ``[[billing.overdue]]`` table
- :class:`AdjustmentLifecycle`  applied -> reversed (an adjustment is undone only by another)
- :class:`NettingRun`        collecting -> computed -> final
"""

from __future__ import annotations

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

__all__ = ["InvoiceLifecycle", "PaymentStatus", "OverdueState", "AdjustmentLifecycle", "NettingRun",
           "TransitionNotAllowed", "state_of"]


def state_of(machine: StateMachine) -> str:
    return str(machine.current_state_value)


class InvoiceLifecycle(StateMachine):
    """A draft is local (no number); finalising appends it with the next gapless number;
    voiding is final and names the replacing invoice, if any."""

    draft = State(initial=True)
    finalized = State()
    voided = State(final=True)

    finalize = draft.to(finalized)
    void = finalized.to(voided)


class PaymentStatus(StateMachine):
    """What the payer still owes on an item.  Events carry ``outstanding`` (fen, after the
    event) and ``paid`` (fen applied so far); the guards pick the target state."""

    open = State(initial=True)
    partial = State()
    paid = State()
    held = State()

    pay = (open.to(paid, cond="covered") | open.to(partial, cond="some_paid")
           | partial.to(paid, cond="covered") | partial.to.itself(cond="some_paid")
           | held.to.itself())
    reverse = (paid.to(open, cond="nothing_paid") | paid.to(partial, cond="some_paid")
               | partial.to(open, cond="nothing_paid") | partial.to.itself(cond="some_paid")
               | held.to.itself())
    hold = open.to(held) | partial.to(held)
    release = (held.to(paid, cond="covered") | held.to(partial, cond="some_paid")
               | held.to(open, cond="nothing_paid"))

    def covered(self, outstanding: int, paid: int) -> bool:
        return outstanding <= 0

    def some_paid(self, outstanding: int, paid: int) -> bool:
        return outstanding > 0 and paid > 0

    def nothing_paid(self, outstanding: int, paid: int) -> bool:
        return outstanding > 0 and paid <= 0


class OverdueState(StateMachine):
    """Overdue escalation of an unpaid item.  Which move happens when is configured in the
    rules (``[[billing.overdue]]``: days past due, minimum outstanding, action); this
    machine says which moves exist at all: never back from escalated to reminded, a
    held item only released, anything settled once paid."""

    current = State(initial=True)
    reminded = State()
    escalated = State()
    held = State()
    settled = State()

    remind = current.to(reminded)
    escalate = current.to(escalated) | reminded.to(escalated)
    hold = current.to(held) | reminded.to(held) | escalated.to(held)
    release = held.to(current)
    settle = current.to(settled) | reminded.to(settled) | escalated.to(settled) | held.to(settled)
    reopen = settled.to(current)

    EVENT_TO: dict[str, str] = {"reminded": "remind", "escalated": "escalate", "held": "hold"}


class AdjustmentLifecycle(StateMachine):
    applied = State(initial=True)
    reversed = State(final=True)

    reverse = applied.to(reversed)


class NettingRun(StateMachine):
    """Submissions are collected, the agent computes the plan, every member accepts its part."""

    collecting = State(initial=True)
    computed = State()
    final = State(final=True)

    compute = collecting.to(computed)
    accept = computed.to(final, cond="all_accepted") | computed.to.itself(cond="some_missing")

    def all_accepted(self, missing: int) -> bool:
        return missing == 0

    def some_missing(self, missing: int) -> bool:
        return missing > 0
