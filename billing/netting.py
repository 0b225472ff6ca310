"""Multilateral netting of a period over all pairs of the consortium (docs/billing.md "Netting").

*The plan.*  Given each member's net position (what it is owed net of what it owes,
over all its counterparties; the positions sum to zero), the fewest transfers that
settle them all: n − g, where n is the number of members with a non-zero position and
g the largest number of disjoint groups of them whose positions each sum to zero
(every group of k settles with k − 1 transfers and no fewer; T. Verhoeff, "Settling
multiple debts efficiently: an invitation to computing science", Informatics in
Education 3(1), 2004.  Finding g is NP-hard in general, so :func:`fewest_payments` is an
exact search over subsets, O(3^n), for the few members of a consortium).

*The run* (each step a sealed ledger document; the agent is the rules'
``netting_agent``):

1. ``netting_call`` (agent, to every member): the period, the ledger size whose state is
   netted (the cutoff), the members;
2. ``netting_submission`` (each member, to itself and the agent): its net position and,
   per counterparty, a salted commitment to their bilateral amount.  The salt is derived
   from the salts of the documents the pair shares before the cutoff, which only the two
   of them know, so the agent can check that both sides of every pair committed to the
   same amount without learning it;
3. ``netting_result`` (agent, to each member and itself): its net position, the plan's
   payments it makes or receives, and a salted commitment to the whole plan;
4. ``netting_acceptance`` (each member): its signature on that plan;
5. ``netting_final`` (agent, to every member): for every acceptance its ledger index and
   salt, so each member checks that every other member accepted the same plan without
   seeing their positions.  From then on the items the run netted are settled
   (``netted``) and the plan's payments are items of their own, due on the run's
   settlement date, matched from bank statements like invoices.

*Who learns what.*  A member: its own bilateral amounts (it had them), its net position
and its own payments.  The agent additionally: every member's net position (it needs
them to plan); never a bilateral amount.  Everyone else on the ledger: that netting
documents exist.  Items on hold (disputed) are held out of the run.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from itertools import combinations

import rfc8785

from billing.documents import NettingCall, NettingSubmission, Payment1
from billing.errors import RefusedError
from billing.ledgerio import LedgerView
from billing.state import BillingState, NettingRecord, netting_items
from ledger_anchor.commitment import commit
from ledger_anchor.sm3 import sm3

MAX_MEMBERS = 12


def fewest_payments(positions: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """(payer, payee, amount) transfers settling ``positions`` (member -> net fen owed to it,
    summing to zero) with the fewest transfers; deterministic for the same input."""
    if sum(positions.values()) != 0:
        raise RefusedError("netting_unbalanced", f"net positions sum to {sum(positions.values())}, not zero")
    members = sorted(m for m, v in positions.items() if v != 0)
    n = len(members)
    if n > MAX_MEMBERS:
        raise RefusedError("netting_too_large", f"{n} members with a position; at most {MAX_MEMBERS}")
    values = [positions[m] for m in members]
    full = (1 << n) - 1
    total = [0] * (1 << n)
    for mask in range(1, 1 << n):
        low = (mask & -mask).bit_length() - 1
        total[mask] = total[mask ^ (1 << low)] + values[low]
    # best[mask]: most zero-sum groups the members of mask can be split into (mask itself zero-sum)
    best = [0] * (1 << n)
    for mask in range(1, 1 << n):
        if total[mask] != 0:
            continue
        best[mask] = 1
        sub = (mask - 1) & mask
        while sub:
            if total[sub] == 0 and best[sub] and best[mask ^ sub] and best[sub] + best[mask ^ sub] > best[mask]:
                best[mask] = best[sub] + best[mask ^ sub]
            sub = (sub - 1) & mask
    groups: list[int] = []

    def split(mask: int) -> None:
        sub = (mask - 1) & mask
        while sub:
            if total[sub] == 0 and best[sub] and best[mask ^ sub] and best[sub] + best[mask ^ sub] == best[mask]:
                split(sub)
                split(mask ^ sub)
                return
            sub = (sub - 1) & mask
        groups.append(mask)

    if n:
        split(full)
    transfers: list[tuple[str, str, int]] = []
    for group in groups:
        owed = {members[i]: values[i] for i in range(n) if group >> i & 1}
        while any(owed.values()):
            creditor = max(owed, key=lambda m: (owed[m], m))
            debtor = min(owed, key=lambda m: (owed[m], m))
            amount = min(owed[creditor], -owed[debtor])
            transfers.append((debtor, creditor, amount))
            owed[creditor] -= amount
            owed[debtor] += amount
    return transfers


def bilateral_amounts(state_at_cutoff: BillingState, member: str, netting_id: str, members: Sequence[str],
                      period: str, cutoff: int) -> dict[str, int]:
    """counterparty -> what it owes ``member`` net over the run's items (negative: member owes)."""
    call = NettingCall(netting_id, period, cutoff, "", tuple(members), dt.date(2000, 1, 1))
    amounts = {m: 0 for m in members if m != member}
    for item in netting_items(state_at_cutoff, call, member):
        other = item.counterparty(member)
        amounts[other] += item.outstanding if item.creditor == member else -item.outstanding
    return amounts


def pair_salt(view: LedgerView, member: str, counterparty: str, netting_id: str, cutoff: int) -> bytes:
    """32 bytes only ``member`` and ``counterparty`` can compute: SM3 over the salts of the
    documents sealed to exactly the two of them before the cutoff."""
    shared = sorted((d.index, d.salt) for d in view.documents
                    if d.index < cutoff and set(d.recipients) == {member, counterparty})
    pair = ",".join(sorted((member, counterparty)))
    return sm3(b"settlechain/netting-pair/v1\n" + netting_id.encode() + b"\n" + pair.encode() + b"\n"
               + b"".join(salt for _, salt in shared))


def pair_commitment(view: LedgerView, member: str, counterparty: str, netting_id: str, cutoff: int,
                    owed_to_member: int) -> str:
    creditor, debtor = (member, counterparty) if owed_to_member > 0 else (counterparty, member)
    if owed_to_member == 0:
        creditor, debtor = sorted((member, counterparty))
    body = rfc8785.dumps({"netting_id": netting_id, "creditor": creditor, "debtor": debtor,
                          "amount": abs(owed_to_member)})
    return commit("netting_pair", pair_salt(view, member, counterparty, netting_id, cutoff), body)


def check_submissions(record: NettingRecord) -> dict[str, int]:
    """The agent's checks; the net positions when every member submitted and every pair agrees."""
    members = sorted(record.call.members)
    missing = [m for m in members if m not in record.submissions]
    if missing:
        raise RefusedError("netting_incomplete", f"{record.call.netting_id}: no submission from {', '.join(missing)}")
    subs: dict[str, NettingSubmission] = {m: record.submissions[m][1] for m in members}
    disagree = []
    for a, b in combinations(members, 2):
        ca = dict(subs[a].pair_commitments).get(b)
        cb = dict(subs[b].pair_commitments).get(a)
        if ca is None or ca != cb:
            disagree.append(f"{a}/{b}")
    if disagree:
        raise RefusedError("netting_pairs_disagree", f"{record.call.netting_id}: the two sides of "
                                                     f"{', '.join(disagree)} committed to different amounts")
    positions = {m: subs[m].net_position for m in members}
    if sum(positions.values()) != 0:
        raise RefusedError("netting_unbalanced", f"net positions sum to {sum(positions.values())}")
    return positions


def plan(record: NettingRecord, positions: Mapping[str, int]) -> tuple[list[Payment1], str]:
    """The plan's payments with their references, and the salted commitment to the whole plan."""
    transfers = fewest_payments(positions)
    payments = [Payment1(payer, payee, amount, f"{record.call.netting_id}-{k}")
                for k, (payer, payee, amount) in enumerate(transfers, start=1)]
    body = rfc8785.dumps({"netting_id": record.call.netting_id, "positions": dict(sorted(positions.items())),
                          "payments": [[p.payer, p.payee, p.amount, p.reference] for p in payments]})
    return payments, commit("netting_plan", secrets.token_bytes(32), body)


def netting_id_for(period: str, cutoff: int) -> str:
    return f"NET-{period}-{cutoff}"
