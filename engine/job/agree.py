"""The agree stage: the check A's session runs once on everyone's hello.

Every party then gets the same answer: go, or stop with the returned reason.  Nothing is
read, computed or anchored before this passes, so a refused job (another job id, other
rules, rules not adopted, a job already settled) leaves every folder as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.job.jobfile import Job
from engine.job.session import PROTOCOL_VERSION


def agreement(job: Job, hellos: Mapping[str, Any], *, recover: bool,
              rules_not_in_force: str | None, settled_at: int | None) -> str | None:
    """The join check A's session runs once on everyone's hello (docs/job.md "agree").
    ``rules_not_in_force``: why the ledger does not have the job's rules in force for its
    period (governance.rules_in_force), or None."""
    for role in ("A", "B", "H"):
        hello = hellos[role]
        if hello.job_id != job.id:
            return f"{role} runs job {hello.job_id!r}, not {job.id!r}"
        if hello.member_id != job.member_of(role):
            return f"{role} is member {hello.member_id!r} but the job names {job.member_of(role)!r}"
        if hello.protocol_version != PROTOCOL_VERSION:
            return (f"{role} speaks protocol version {hello.protocol_version}, "
                    f"this job needs {PROTOCOL_VERSION}")
        if hello.recover != recover:
            return (f"{role} {'recovers' if hello.recover else 'runs'} the job while A "
                    f"{'recovers' if recover else 'runs'} it (--recover on all three or none)")
    differing = [r for r in ("A", "B", "H") if hellos[r].rules_sm3 != job.rules_sm3]
    if differing:
        detail = ", ".join(f"{r} has {hellos[r].rules_sm3[:16]}…" for r in differing)
        return f"rules differ from the job's (rules_sm3 {job.rules_sm3[:16]}…): {detail}"
    for key, what in (("psi_protocol", "PSI protocol"), ("records_per_bucket", "partitioning")):
        if getattr(hellos["A"], key) != getattr(hellos["B"], key):
            return (f"A and B run the job with another {what}: {getattr(hellos['A'], key)!r} "
                    f"vs {getattr(hellos['B'], key)!r} (job.{key})")
    if recover:
        if settled_at is None:
            return f"nothing to recover: job {job.id!r} is not settled on the ledger"
    elif settled_at is not None:
        return (f"job {job.id!r} is already settled: its settlement statement is ledger entry "
                f"{settled_at}; to settle again (e.g. on corrected exports) write a new job file "
                "with a new id (settlechain job init)")
    if rules_not_in_force is not None:
        return (f"the rules {job.rules_sm3[:16]}… are not in force for period {job.period}: "
                f"{rules_not_in_force} (settlechain governance propose / vote)")
    return None
