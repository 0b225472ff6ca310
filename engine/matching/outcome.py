"""A party's numbers over all its buckets: what it tells the counterparty, and the summary.

The sums of docs/records.md "summary.json" (counts of rows per status, pairs, charges per
outcome and side, reasons) and the review decision of the circuit breaker
(:func:`engine.breaker.review_reasons`), from the buckets' tallies, the evaluation's
totals and the counterparty's :class:`SideFacts`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.breaker import review_reasons
from engine.matching.bucket import BucketTally
from engine.matching.errors import MatchingError
from engine.names import OPERATOR_ROLES, REASON_CODES
from engine.rules import Rules
from protocols.mpc.params import DiscrepancyResult


@dataclass(frozen=True)
class SideFacts:
    """What a party tells its counterparty at the end of a job (docs/matching.md
    § Disclosure: input sizes, the unmatched count and total charge).

    ``local_charge`` is derivable by the counterparty from the other disclosed sums;
    it is sent so that each side can check the identity of the totals.
    """

    party: str
    rows: int
    considered: int
    unmatched_records: int
    unmatched_rows: int
    unmatched_charge: int
    local_charge: int

    def to_json(self) -> dict[str, Any]:
        return {"party": self.party, "rows": self.rows, "considered": self.considered,
                "unmatched_records": self.unmatched_records,
                "unmatched_rows": self.unmatched_rows,
                "unmatched_charge": self.unmatched_charge, "local_charge": self.local_charge}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SideFacts:
        try:
            return cls(**{k: (str(data[k]) if k == "party" else int(data[k]))
                          for k in cls.__dataclass_fields__})
        except (KeyError, TypeError, ValueError) as exc:
            raise MatchingError(f"malformed counterparty facts: {exc}") from None


@dataclass(frozen=True)
class Review:
    settlement: str
    """``automatic`` | ``manual_review``."""
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """A party's summary numbers (docs/records.md summary.json)."""

    party: str
    disclosure: str
    counts: dict[str, int]
    pairs: dict[str, int]
    reasons: dict[str, dict[str, int]]
    totals: dict[str, int]
    review: Review
    local: SideFacts
    remote: SideFacts


@dataclass
class JobTally:
    """One party's running sums over its finished buckets."""

    party: str
    input_rows: int
    invalid_rows: int = 0
    """Rows found invalid before any bucket (read and repeated-id checks)."""
    rows: Counter[str] = field(default_factory=Counter)
    excluded_by_reason: Counter[str] = field(default_factory=Counter)
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    """Every invalid row by reason (the side adds the rows found before the buckets)."""
    pairs: Counter[str] = field(default_factory=Counter)
    considered: int = 0
    unmatched_records: int = 0
    unmatched_rows: int = 0
    local_charge: int = 0
    exact_charge: int = 0
    values_charge: int = 0
    unmatched_charge: int = 0

    def add(self, tally: BucketTally) -> None:
        self.rows.update(tally.rows)
        self.excluded_by_reason.update(tally.excluded_by_reason)
        self.invalid_by_reason.update(tally.invalid_by_reason)
        self.pairs.update(tally.pairs)
        self.considered += tally.considered
        self.unmatched_records += tally.unmatched_records
        self.unmatched_rows += tally.unmatched_rows
        self.local_charge += tally.local_charge
        self.exact_charge += tally.exact_charge
        self.values_charge += tally.values_charge
        self.unmatched_charge += tally.unmatched_charge

    def side_facts(self) -> SideFacts:
        return SideFacts(party=self.party, rows=self.input_rows, considered=self.considered,
                         unmatched_records=self.unmatched_records,
                         unmatched_rows=self.unmatched_rows,
                         unmatched_charge=self.unmatched_charge, local_charge=self.local_charge)

    def outcome(self, remote: SideFacts, evaluation: DiscrepancyResult, rules: Rules) -> Outcome:
        """The summary numbers, given the counterparty's facts and the evaluation's totals."""
        local = self.side_facts()
        other = OPERATOR_ROLES[1 - OPERATOR_ROLES.index(self.party)]
        if remote.party != other:
            raise MatchingError("counterparty facts from the wrong party", expected=other,
                                found=remote.party)
        li, ri = OPERATOR_ROLES.index(self.party), 1 - OPERATOR_ROLES.index(self.party)
        n_disputed = int(self.pairs["disputed"])
        n_key_tolerance = int(self.pairs["key"]) - n_disputed
        pairs = {"matched_exact": int(self.pairs["exact"]),
                 "matched_tolerance": int(self.pairs["tolerant_values"]) + n_key_tolerance,
                 "disputed": n_disputed}
        total_pairs = sum(pairs.values())
        if remote.considered - remote.unmatched_records != total_pairs:
            raise MatchingError("counterparty facts disagree with the pairs",
                                expected=f"{total_pairs} paired records of {other}",
                                found=f"{remote.considered - remote.unmatched_records}")
        key_tol = evaluation.tolerance_charge
        agreed_local = self.exact_charge + self.values_charge + key_tol[li]
        agreed_remote = self.exact_charge + self.values_charge + key_tol[ri]
        agreed = self.exact_charge + self.values_charge + (key_tol[0] + key_tol[1]) // 2
        disputed_local, disputed_remote = evaluation.disputed_charge[li], evaluation.disputed_charge[ri]
        totals = {
            "local_charge": self.local_charge, "remote_charge": remote.local_charge,
            "agreed_charge": agreed,
            "agreed_local_charge": agreed_local, "agreed_remote_charge": agreed_remote,
            "disputed_local_charge": disputed_local, "disputed_remote_charge": disputed_remote,
            "unmatched_local_charge": self.unmatched_charge,
            "unmatched_remote_charge": remote.unmatched_charge,
        }
        if remote.local_charge != agreed_remote + disputed_remote + remote.unmatched_charge:
            raise MatchingError(
                "counterparty totals do not add up",
                expected=f"remote_charge = agreed + disputed + unmatched = "
                         f"{agreed_remote + disputed_remote + remote.unmatched_charge}",
                found=str(remote.local_charge))
        reasons = {code: {"pairs": evaluation.per_reason[code][0],
                          "local_charge": evaluation.per_reason[code][1 + li],
                          "remote_charge": evaluation.per_reason[code][1 + ri]}
                   for code in REASON_CODES}
        counts = {"records": self.input_rows}
        for name in ("invalid", "excluded", "duplicate", "matched_exact", "matched_tolerance",
                     "disputed"):
            counts[name] = int(self.rows[name]) + (self.invalid_rows if name == "invalid" else 0)
        counts["unmatched_local"] = int(self.rows["unmatched"])
        counts["unmatched_remote"] = remote.unmatched_rows
        if sum(v for k, v in counts.items() if k not in ("records", "unmatched_remote")) \
                != self.input_rows:
            raise MatchingError("rows lost between ingest and matching (a bug)",
                                expected=f"{self.input_rows} rows accounted for",
                                found=str(counts))
        facts = {local.party: local, remote.party: remote}
        review = review_reasons(n_disputed, total_pairs,
                                {p: (facts[p].unmatched_records, facts[p].considered)
                                 for p in OPERATOR_ROLES}, rules.circuit_breaker)
        return Outcome(party=self.party, disclosure=rules.disclosure, counts=counts,
                       pairs=pairs, reasons=reasons, totals=totals,
                       review=Review("manual_review" if review else "automatic", review),
                       local=local, remote=remote)
