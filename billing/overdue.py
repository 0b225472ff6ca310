"""The overdue sweep: which unpaid items move to which overdue state, recorded as alerts.

``settlechain billing sweep --as-of DATE`` (:func:`plan_sweep`) looks at every item of
which the member is the creditor, still outstanding and not void, and finds the most
advanced overdue state whose rule holds on that date (the rules'
``[[billing.overdue]]``: days past due and minimum outstanding).  If that state is
beyond the item's current one and the overdue machine
(:class:`billing.machines.OverdueState`) allows the move, an ``overdue_alert`` document
records it -- signed by the creditor, sealed to both operators -- and the action
follows: ``reminder`` and ``escalation`` are alerts, ``dispute_hold`` also puts the item
on hold.  Running the sweep again on the same date finds nothing new: the state is the
replay of the alerts already on the ledger.

Hooks (:func:`run_hooks`): after the alerts are appended, a command (run once per alert
with the alert as JSON on standard input, and ``SETTLECHAIN_ALERT_*`` variables) and/or
a webhook URL (an HTTP POST of the same JSON) are called.  A failing hook is reported;
the alert stays on the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from billing import machines
from billing.config import OVERDUE_STATES
from billing.documents import OverdueAlert, document_json
from billing.errors import BillingInputError
from billing.state import BillingState

log = logging.getLogger(__name__)

ORDER = ("current",) + OVERDUE_STATES


def plan_sweep(state: BillingState, as_of: dt.date) -> list[OverdueAlert]:
    """The alerts the member (creditor) must record on ``as_of``."""
    alerts = []
    for item in sorted(state.items.values(), key=lambda i: (i.due_date, i.item_id)):
        if item.creditor != state.member or item.is_void or item.outstanding <= 0:
            continue
        current = item.overdue_state
        if current in ("settled", "held"):
            continue
        days = item.days_past_due(as_of)
        target = None
        for rule in state.terms.overdue:            # in the order reminded, escalated, held
            if days >= rule.days_past_due and item.outstanding >= rule.min_outstanding:
                if ORDER.index(rule.state) > ORDER.index(current):
                    target = rule
        if target is None:
            continue
        probe = machines.OverdueState(start_value=current)
        event = machines.OverdueState.EVENT_TO[target.state]
        if event not in {e.id for e in probe.allowed_events}:
            log.info("%s: no move from %s to %s", item.item_id, current, target.state)
            continue
        alerts.append(OverdueAlert(item.item_id, current, target.state, target.action, as_of, days,
                                   item.outstanding))
    return alerts


@dataclass(frozen=True)
class HookResult:
    item_id: str
    target: str
    ok: bool
    detail: str


def run_hooks(alerts: Sequence[OverdueAlert], *, command: Sequence[str] | None = None, url: str | None = None,
              timeout_s: float = 10.0, member: str = "") -> list[HookResult]:
    results = []
    if url is not None and not url.startswith(("http://", "https://")):
        raise BillingInputError("the webhook must be an http:// or https:// URL", column="--hook-url",
                                found=repr(url), line_word="option")
    for alert in alerts:
        payload = json.dumps({"member": member, **document_json(alert)}, sort_keys=True).encode("utf-8")
        if command:
            env = {**os.environ, "SETTLECHAIN_ALERT_ITEM": alert.item_id, "SETTLECHAIN_ALERT_STATE": alert.to_state,
                   "SETTLECHAIN_ALERT_ACTION": alert.action, "SETTLECHAIN_ALERT_OUTSTANDING": str(alert.outstanding),
                   "SETTLECHAIN_ALERT_DAYS_PAST_DUE": str(alert.days_past_due)}
            try:
                done = subprocess.run(list(command), input=payload, env=env, capture_output=True, timeout=timeout_s,
                                      check=False)
                ok = done.returncode == 0
                detail = f"exit {done.returncode}" + (f": {done.stderr.decode(errors='replace')[-200:]}" if not ok
                                                      else "")
            except (OSError, subprocess.TimeoutExpired) as exc:
                ok, detail = False, str(exc)
            results.append(HookResult(alert.item_id, "command", ok, detail))
        if url:
            request = urllib.request.Request(url, data=payload, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - http(s) only
                    ok, detail = 200 <= response.status < 300, f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                ok, detail = False, str(exc)
            results.append(HookResult(alert.item_id, "webhook", ok, detail))
        for result in results[-2:]:
            if not result.ok:
                log.warning("overdue hook %s for %s failed: %s", result.target, result.item_id, result.detail)
    return results
