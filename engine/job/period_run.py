"""A period for the whole consortium: every pair of members that exchanged traffic.

``settlechain period run --config CONSORTIUM --period 2026-10 --data-dir DIR --out OUT
[--as MEMBER]``

The data folder has one folder per pair that settles this period, named
``<A>+<B>`` after the two members (``+`` is never part of a member id); the first is
operator A of the pair's job (it hosts the session), the second B::

    DIR/
      rules.toml                 # the rules, unless a pair has its own
      CMCC+CUCC/CMCC.csv         # CMCC's export of its traffic with CUCC (.csv or .parquet)
      CMCC+CUCC/CUCC.csv
      CMCC+CUCC/rules.toml       # optional: this pair's rules (an adopted rule package)
      CMCC+CTCC/...

In production each member runs ``--as`` itself with its own files only: its data folder
holds a folder for *every* pair of the period (agreed beforehand, like the job files),
with its own export in the folders of its pairs and nothing in the folders of the pairs
it helps.  Without ``--as`` every party of every pair runs here (demos, tests).

Each pair's helper H is a third member; with several candidates the helper is rotated,
pair by pair in name order, to the candidate that has helped least so far (ties: the
fewer later pairs it could help, then the consortium file's order), so every member
derives the same assignment.  The pairs run one after the other in that order, every
member going through the same list: a member's
ports are those of the consortium file, one job at a time, and the earliest unfinished
job always has all three of its members (no deadlock).  A pair already settled in OUT is
not run again.  Each pair's job id is ``<period>-<A>-<B>``; its files are in
``OUT/<A>+<B>/`` (the job file, and a folder per party: ``A/``, ``B/``, ``H/``).

At the end, ``OUT/period-summary.json`` (and the terminal) gives every pair's outcome
and the totals across pairs.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.job.consortium import Consortium, load_consortium
from engine.job.jobfile import Timeouts, write_job
from engine.job.local import PartyProcess, party_command
from engine.period import parse_period
from engine.rules import load_rules

log = logging.getLogger(__name__)

PAIR_SEPARATOR = "+"
SUMMARY_FILE = "period-summary.json"
DATA_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class PairJob:
    a: str
    b: str
    h: str
    folder: Path
    rules: Path
    job_id: str

    @property
    def name(self) -> str:
        return f"{self.a}{PAIR_SEPARATOR}{self.b}"

    @property
    def parties(self) -> dict[str, str]:
        return {"A": self.a, "B": self.b, "H": self.h}

    def data(self, member: str) -> Path | None:
        for suffix in DATA_SUFFIXES:
            path = self.folder / f"{member}{suffix}"
            if path.exists():
                return path
        return None


def discover_pairs(data_dir: Path, consortium: Consortium) -> list[tuple[str, str, Path]]:
    """The pair folders of ``data_dir``, in name order; :class:`InputError` for a folder
    that names no two distinct members."""
    if not data_dir.is_dir():
        raise InputError("the data folder does not exist", file=str(data_dir))
    members = {m.id for m in consortium.members}
    pairs = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        a, sep, b = folder.name.partition(PAIR_SEPARATOR)
        if not sep:
            continue
        if a not in members or b not in members or a == b:
            raise InputError("a pair folder must be named <A>+<B> after two members of the "
                             "consortium", file=str(folder),
                             expected=" | ".join(sorted(members)), found=repr(folder.name))
        pairs.append((a, b, folder))
    seen: set[frozenset[str]] = set()
    for a, b, folder in pairs:
        if frozenset((a, b)) in seen:
            raise InputError("the pair has two folders (one per order); keep one",
                             file=str(folder))
        seen.add(frozenset((a, b)))
    return pairs


def assign_helpers(pairs: list[tuple[str, str]], members: list[str]) -> list[str]:
    """Each pair's helper (see the module docstring)."""
    helped = {m: 0 for m in members}
    helpers = []
    for position, (a, b) in enumerate(pairs):
        candidates = [m for m in members if m not in (a, b)]
        if not candidates:
            raise InputError(f"pair {a}{PAIR_SEPARATOR}{b} needs a third member as its helper; "
                             "the consortium has none")
        later = pairs[position + 1:]

        def chances(m: str) -> int:  # later pairs this member could still help
            return sum(1 for pair in later if m not in pair)

        chosen = min(candidates, key=lambda m: (helped[m], chances(m), members.index(m)))
        helped[chosen] += 1
        helpers.append(chosen)
    return helpers


def plan_period(config: Path, period: str, data_dir: Path) -> tuple[Consortium, list[PairJob]]:
    parse_period(period, column="--period")
    consortium = load_consortium(config)
    found = discover_pairs(Path(data_dir).resolve(), consortium)
    if not found:
        raise InputError("no pair folder (<A>+<B>) in the data folder", file=str(data_dir))
    helpers = assign_helpers([(a, b) for a, b, _ in found], [m.id for m in consortium.members])
    jobs = []
    for (a, b, folder), h in zip(found, helpers):
        rules = folder / "rules.toml"
        if not rules.exists():
            rules = Path(data_dir).resolve() / "rules.toml"
        if not rules.exists():
            raise InputError("no rules for the pair (its folder's rules.toml or the data "
                             "folder's)", file=str(folder))
        jobs.append(PairJob(a=a, b=b, h=h, folder=folder, rules=rules,
                            job_id=f"{period}-{a}-{b}"))
    return consortium, jobs


def _settled(out: Path, job_id: str) -> bool:
    from engine.job.party import settled_here

    return settled_here(out, job_id) is not None


def run_period(config: Path, period: str, data_dir: Path, out: Path, *,
               member: str | None = None, party_args: list[str] | None = None,
               timeouts: Timeouts | None = None, on_pair=None) -> dict[str, Any]:
    """Run the period (see the module docstring); returns the summary document."""
    consortium, jobs = plan_period(Path(config), period, Path(data_dir))
    if member is not None:
        consortium.member(member)  # raises, naming the members there are
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timeouts = timeouts or Timeouts(connect_s=3600, stage_s=3600, peer_silence_s=10)
    began = time.perf_counter()
    rows = []
    for job in jobs:
        roles = [r for r, m in job.parties.items() if member is None or m == member]
        row: dict[str, Any] = {"pair": job.name, "job_id": job.job_id, "A": job.a, "B": job.b,
                               "H": job.h, "roles_here": roles}
        if not roles:
            row["state"] = "not a party"
            rows.append(row)
            continue
        folder = out / job.name
        folder.mkdir(parents=True, exist_ok=True)
        missing = [r for r in roles if r != "H" and job.data(job.parties[r]) is None]
        if missing:
            row["state"] = "no data"
            row["detail"] = ", ".join(f"{job.parties[r]} has no export in {job.folder}"
                                      for r in missing)
            rows.append(row)
            log.error("pair %s: %s", job.name, row["detail"])
            continue
        rules = load_rules(job.rules)
        job_path = write_job(folder / "job.toml", job_id=job.job_id, period=period,
                             rules=str(job.rules), rules_sm3=rules.sm3_hash(),
                             parties=job.parties, disclosure=rules.disclosure, timeouts=timeouts)
        if all(_settled(folder / r, job.job_id) for r in roles):
            row["state"] = "settled before"
        else:
            row.update(_run_pair(consortium.path, job, job_path, folder, roles, party_args or [],
                                 timeouts))
        row.update(_outcome(folder, roles))
        rows.append(row)
        if on_pair is not None:
            on_pair(row)
    summary = {"period": period, "consortium": str(consortium.path), "member": member,
               "pairs": rows, "totals": _totals(rows),
               "seconds": round(time.perf_counter() - began, 3)}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def _run_pair(config: Path, job, job_path: Path, folder: Path, roles: list[str],
              party_args: list[str], timeouts: Timeouts) -> dict[str, Any]:
    began = time.perf_counter()
    processes = []
    for role in roles:
        member = job.parties[role]
        command = party_command(config, job_path, member, job.data(member) if role != "H" else None,
                                folder / role)
        if role != "H":
            command += party_args
        party = PartyProcess(role, command, folder / role)
        party.out.mkdir(parents=True, exist_ok=True)
        with open(party.console, "wb") as console:
            party.process = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT,
                                             cwd=folder)
        processes.append(party)
    deadline = time.monotonic() + timeouts.connect_s + 4 * timeouts.stage_s
    codes = {}
    for party in processes:
        try:
            codes[party.role] = party.process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            party.process.kill()
            codes[party.role] = party.process.wait()
    state = "settled" if all(c == 0 for c in codes.values()) else "failed"
    result: dict[str, Any] = {"state": state, "exit_codes": codes,
                              "seconds": round(time.perf_counter() - began, 3)}
    if state == "failed":
        lines = []
        for party in processes:
            if codes[party.role] != 0:
                tail = party.console_text().strip().splitlines()[-1:] or [""]
                lines.append(f"{party.role}: {tail[0]}")
        result["detail"] = "; ".join(lines)
    return result


def _outcome(folder: Path, roles: list[str]) -> dict[str, Any]:
    operator = next((r for r in ("A", "B") if r in roles), None)
    if operator is None:
        return {}
    try:
        summary = json.loads((folder / operator / "summary.json").read_text(encoding="utf-8"))
        anchor = json.loads((folder / operator / "anchor.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    counts, totals = summary.get("counts", {}), summary.get("totals", {})
    return {"view": operator,
            "counts": {k: counts.get(k, 0) for k in ("records", "matched_exact",
                                                      "matched_tolerance", "disputed",
                                                      "unmatched_local", "unmatched_remote")},
            "totals": {k: totals.get(k, 0) for k in ("agreed_charge", "disputed_local_charge",
                                                      "disputed_remote_charge",
                                                      "unmatched_local_charge",
                                                      "unmatched_remote_charge")},
            "settlement": summary.get("review", {}).get("settlement"),
            "ledger_index": anchor.get("index")}


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    with_outcome = [r for r in rows if "totals" in r]
    return {"pairs": len(rows), "states": states,
            "agreed_charge": sum(r["totals"]["agreed_charge"] for r in with_outcome),
            "disputed_pairs": sum(r["counts"]["disputed"] for r in with_outcome),
            "manual_review": sum(1 for r in with_outcome if r.get("settlement") != "automatic")}


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The period's outcome as lines for the terminal."""
    lines = [f"period {summary['period']}"
             + (f", as {summary['member']}" if summary.get("member") else "") + ":",
             f"  {'pair':<16}{'helper':<8}{'state':<16}{'matched':>10}{'disputed':>10}"
             f"{'unmatched':>11}{'agreed ¥':>14}  settlement"]
    for row in summary["pairs"]:
        counts = row.get("counts", {})
        matched = counts.get("matched_exact", 0) + counts.get("matched_tolerance", 0)
        agreed = row.get("totals", {}).get("agreed_charge")
        lines.append(
            f"  {row['pair']:<16}{row['H']:<8}{row['state']:<16}"
            + (f"{matched:>10,}{counts.get('disputed', 0):>10,}"
               f"{counts.get('unmatched_local', 0) + counts.get('unmatched_remote', 0):>11,}"
               f"{agreed / 100:>14,.2f}  {row.get('settlement') or ''}"
               if counts else "")
            + (f"  ({row['detail']})" if row.get("detail") else ""))
    totals = summary["totals"]
    lines.append(f"  {totals['pairs']} pairs: "
                 + ", ".join(f"{n} {state}" for state, n in sorted(totals["states"].items()))
                 + f"; agreed ¥{totals['agreed_charge'] / 100:,.2f} across pairs; "
                 f"{totals['manual_review']} for manual review")
    return lines


__all__ = ["PAIR_SEPARATOR", "PairJob", "assign_helpers", "discover_pairs", "plan_period",
           "run_period", "summary_lines"]
