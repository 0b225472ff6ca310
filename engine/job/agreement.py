"""Step 1 of a job: do the three parties run the same job, under the same rules, on inputs
the circuit breaker accepts?

The host (A) runs :func:`check_agreement` once, on everyone's ``Hello``; every party
then gets the same answer.  Nothing is computed on records and nothing is anchored
before this passes.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.job.session import PROTOCOL_VERSION
from engine.rules import Rules


def check_agreement(
    hellos: Mapping[str, object],
    *,
    job_id: str,
    rules_sm3: str,
    members: Mapping[str, str],
    rules: Rules,
    rules_adopted: bool = True,
    settled_at: int | None = None,
) -> str | None:
    """None if the job may go on, else the reason every party will report.

    ``rules_adopted``: whether the ledger shows the job's rules as adopted by the
    consortium (a ``rule_proposal`` whose vote policy is met); jobs may only use
    adopted rules.  ``settled_at``: the ledger index of a settlement statement already
    anchored for this job id, if any; a settled job is not run again (a second statement
    under the same id would leave an auditor two answers to one question).
    """
    for role in ("A", "B", "H"):
        hello = hellos[role]
        if hello.job_id != job_id:  # type: ignore[attr-defined]
            return f"{role} runs job {hello.job_id!r}, not {job_id!r}"  # type: ignore[attr-defined]
        if hello.member_id != members[role]:  # type: ignore[attr-defined]
            return (f"{role} is member {hello.member_id!r} but the job names "  # type: ignore[attr-defined]
                    f"{members[role]!r}")
        if hello.protocol_version != PROTOCOL_VERSION:  # type: ignore[attr-defined]
            return (f"{role} speaks protocol version {hello.protocol_version}, "  # type: ignore[attr-defined]
                    f"this job needs {PROTOCOL_VERSION}")
    differing = [role for role in ("A", "B", "H")
                 if hellos[role].rules_sm3 != rules_sm3]  # type: ignore[attr-defined]
    if differing:
        detail = ", ".join(f"{role} has {hellos[role].rules_sm3[:16]}…"  # type: ignore[attr-defined]
                           for role in differing)
        return (f"rules differ from the job's (rules_sm3 {rules_sm3[:16]}…): {detail}")

    if settled_at is not None:
        return (f"job {job_id!r} is already settled: its settlement statement is ledger entry "
                f"{settled_at}; to settle again (e.g. on corrected exports) write a new job file "
                "with a new id (settlechain job init)")
    if not rules_adopted:
        return (f"the rules {rules_sm3[:16]}… are not adopted on the consortium ledger; "
                "propose them (rule_proposal) and have the members vote (rule_vote) first")

    breaker = rules.circuit_breaker
    sizes = {role: int(hellos[role].input_rows) for role in ("A", "B")}  # type: ignore[attr-defined]
    for role, size in sizes.items():
        if size > breaker.max_records:
            return (f"circuit breaker: {role} has {size:,} input rows, more than "
                    f"max_records = {breaker.max_records:,}")
    small, large = sorted(sizes.values())
    if small >= breaker.min_records_for_ratio and large > breaker.max_size_ratio * small:
        return (f"circuit breaker: input sizes A={sizes['A']:,} and B={sizes['B']:,} differ by a "
                f"factor {large / small:.2f}, more than max_size_ratio = "
                f"{breaker.max_size_ratio}")
    if small < breaker.min_records_for_ratio and large > breaker.max_size_ratio * max(
            small, breaker.min_records_for_ratio):
        return (f"circuit breaker: input sizes A={sizes['A']:,} and B={sizes['B']:,} differ by "
                f"more than max_size_ratio = {breaker.max_size_ratio} "
                f"(the smaller side has fewer than {breaker.min_records_for_ratio:,} rows)")
    return None
