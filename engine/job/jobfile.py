"""The job file: which job, which rules (by SM3 hash), which members play A, B and H.

```toml
[job]
id = "2026-10-CMCC-CUCC-01"   # unique per settlement run; binds every message and pair id
period = "2026-10"
rules = "rules.toml"           # relative to this file
rules_sm3 = "<64 hex>"         # every party refuses to run with other rules
disclosure = "flags"           # optional, for the reader: must equal the rules' policy
psi_protocol = "rr22"          # optional: "rr22" (default) or "kkrt16" (protocols.psi); A and B must agree
records_per_bucket = 1048576   # optional: partitioning (engine.partition); A and B must agree

[parties]                      # consortium member ids
A = "CMCC"                     # A hosts the job session (gRPC) and the PSI server side
B = "CUCC"
H = "CBN"                      # the helper: holds no data, takes part in MPC and cosigning

[timeouts]
connect_s = 60                 # how long A waits for B and H to join (and they for A)
stage_s = 1800                 # upper bound on any one stage
peer_silence_s = 10            # a peer silent this long is gone: the job stops on every party
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from engine.errors import InputError
from engine.job.consortium import read_toml
from engine.partition import DEFAULT_RECORDS_PER_BUCKET
from engine.period import parse_period
from protocols.psi import PROTOCOLS

PSI_PROTOCOLS: tuple[str, ...] = PROTOCOLS
"""The PSI protocols a job file may name (protocols.psi)."""
DEFAULT_PSI_PROTOCOL = "rr22"
"""RR22 sends about a quarter of KKRT16's bytes (31 against 121 per element) at the same
speed on a LAN, and is 2.3 times faster on a 100 Mbit/s link (bench/RESULTS-psi.md);
operators settle over WAN links."""

ROLES: tuple[str, ...] = ("A", "B", "H")
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 60.0
    stage_s: float = 1800.0
    peer_silence_s: float = 10.0


@dataclass(frozen=True)
class Job:
    path: Path
    id: str
    period: str
    rules_path: Path
    rules_sm3: str
    parties: dict[str, str]
    timeouts: Timeouts
    disclosure: str | None = None
    """As stated in the job file (the rules decide; a different value is refused)."""
    psi_protocol: str = DEFAULT_PSI_PROTOCOL
    records_per_bucket: int = DEFAULT_RECORDS_PER_BUCKET

    def member_of(self, role: str) -> str:
        return self.parties[role]

    def role_of(self, member_id: str) -> str:
        for role, member in self.parties.items():
            if member == member_id:
                return role
        raise InputError("member takes no part in this job", file=str(self.path),
                         column="parties", expected=" | ".join(self.parties.values()),
                         found=repr(member_id))


def load_job(path: str | Path) -> Job:
    path, doc = read_toml(path, "job file")
    source = str(path)

    def need(table: dict, section: str, key: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value:
            raise InputError("missing or empty key", file=source, column=f"{section}.{key}",
                             expected="a non-empty string", found=repr(value))
        return value

    head = doc.get("job", {})
    job_id = need(head, "job", "id")
    if not _JOB_ID_RE.match(job_id):
        raise InputError("malformed job id", file=source, column="job.id",
                         expected=_JOB_ID_RE.pattern, found=repr(job_id))
    rules_sm3 = need(head, "job", "rules_sm3").lower()
    if not _HEX64_RE.match(rules_sm3):
        raise InputError("malformed rules hash", file=source, column="job.rules_sm3",
                         expected="64 hex characters (SM3)", found=repr(rules_sm3))
    parties_table = doc.get("parties", {})
    parties = {role: need(parties_table, "parties", role) for role in ROLES}
    if len(set(parties.values())) != 3:
        raise InputError("A, B and H must be three different members", file=source,
                         column="parties", found=repr(parties))
    raw_timeouts = doc.get("timeouts", {})
    values = {}
    for key, default in vars(Timeouts()).items():
        value = raw_timeouts.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise InputError("bad timeout", file=source, column=f"timeouts.{key}",
                             expected="a positive number of seconds", found=repr(value))
        values[key] = float(value)
    unknown = set(raw_timeouts) - set(values)
    if unknown:
        raise InputError("unknown key", file=source, column=f"timeouts.{sorted(unknown)[0]}",
                         expected=" | ".join(values), found=repr(sorted(unknown)[0]))
    disclosure = head.get("disclosure")
    if disclosure is not None and disclosure not in ("aggregate", "flags", "differences"):
        raise InputError("unknown disclosure policy", file=source, column="job.disclosure",
                         expected="aggregate | flags | differences", found=repr(disclosure))
    period = need(head, "job", "period")
    parse_period(period, source=source, column="job.period")
    psi_protocol = head.get("psi_protocol", DEFAULT_PSI_PROTOCOL)
    if psi_protocol not in PSI_PROTOCOLS:
        raise InputError("unknown PSI protocol", file=source, column="job.psi_protocol",
                         expected=" | ".join(PSI_PROTOCOLS), found=repr(psi_protocol))
    per_bucket = head.get("records_per_bucket", DEFAULT_RECORDS_PER_BUCKET)
    if isinstance(per_bucket, bool) or not isinstance(per_bucket, int) or per_bucket < 1:
        raise InputError("bad partitioning", file=source, column="job.records_per_bucket",
                         expected="a positive integer", found=repr(per_bucket))
    known = {"id", "period", "rules", "rules_sm3", "disclosure", "psi_protocol",
             "records_per_bucket"}
    unknown_keys = set(head) - known
    if unknown_keys:
        raise InputError("unknown key", file=source, column=f"job.{sorted(unknown_keys)[0]}",
                         expected=" | ".join(sorted(known)), found=repr(sorted(unknown_keys)[0]))
    return Job(
        path=path, id=job_id, period=period,
        rules_path=path.parent / need(head, "job", "rules"), rules_sm3=rules_sm3,
        parties=parties, timeouts=Timeouts(**values), disclosure=disclosure,
        psi_protocol=psi_protocol, records_per_bucket=per_bucket,
    )


def write_job(path: str | Path, *, job_id: str, period: str, rules: str, rules_sm3: str,
              parties: dict[str, str], timeouts: Timeouts | None = None,
              disclosure: str | None = None, psi_protocol: str | None = None,
              records_per_bucket: int | None = None) -> Path:
    path = Path(path)
    if not _JOB_ID_RE.match(job_id):
        raise InputError("malformed job id", column="--id", expected=_JOB_ID_RE.pattern,
                         found=repr(job_id))
    parse_period(period, column="--period")
    if len({parties[r] for r in ROLES}) != 3:
        raise InputError("A, B and H must be three different members", column="--a/--b/--h",
                         found=repr(parties))
    head: dict = {"id": job_id, "period": period, "rules": rules, "rules_sm3": rules_sm3}
    if disclosure is not None:
        head["disclosure"] = disclosure
    if psi_protocol is not None:
        head["psi_protocol"] = psi_protocol
    if records_per_bucket is not None:
        head["records_per_bucket"] = records_per_bucket
    document = {
        "job": head,
        "parties": {role: parties[role] for role in ROLES},
        "timeouts": vars(timeouts or Timeouts()),
    }
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return path
