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
from engine.names import OPERATOR_ROLES, REASON_CODES, SERVICES
from engine.rules import Rules
from protocols.mpc.params import DiscrepancyResult


@dataclass(frozen=True)
class SideFacts:
    """What a party tells its counterparty at the end of a job (docs/matching.md
    § Disclosure): input sizes, the unmatched count and total charge, and, where the
    small-cell rule lets the candidate pairs' sums be known, its total charge and its
    charges per rate class over the key-matched pairs within tolerance.

    ``local_charge`` is derivable by the counterparty from the other disclosed sums; it is
    sent so that each side can check the identity of the totals, and withheld (None) when
    it would give away a withheld cell.  ``tolerance_classes`` (class key as text -> charge)
    lets both sides split the agreed money per direction and rate class; each entry is
    within the charge tolerance of the counterparty's own figure for the same pairs.
    """

    party: str
    rows: int
    considered: int
    unmatched_records: int
    unmatched_rows: int
    unmatched_charge: int
    local_charge: int | None
    tolerance_classes: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"party": self.party, "rows": self.rows, "considered": self.considered,
                "unmatched_records": self.unmatched_records,
                "unmatched_rows": self.unmatched_rows,
                "unmatched_charge": self.unmatched_charge, "local_charge": self.local_charge,
                "tolerance_classes": self.tolerance_classes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SideFacts:
        try:
            ints = {k: int(data[k]) for k in ("rows", "considered", "unmatched_records",
                                              "unmatched_rows", "unmatched_charge")}
            local = data.get("local_charge")
            classes = data.get("tolerance_classes")
            return cls(party=str(data["party"]), **ints,
                       local_charge=None if local is None else int(local),
                       tolerance_classes=None if classes is None else
                       {str(k): int(v) for k, v in dict(classes).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise MatchingError(f"malformed counterparty facts: {exc}") from None


@dataclass(frozen=True)
class Review:
    settlement: str
    """``automatic`` | ``manual_review``."""
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """A party's summary numbers (docs/records.md summary.json).  Amounts the small-cell
    rule withholds are None; ``held`` says how many candidate pairs' money is then left
    for the operators to settle by hand."""

    party: str
    disclosure: str
    counts: dict[str, int]
    pairs: dict[str, int]
    reasons: dict[str, dict[str, Any]]
    totals: dict[str, int | None]
    held: dict[str, Any] | None
    classes: list[dict[str, Any]]
    """Agreed money per direction and rate class (party-neutral), summing to agreed_charge."""
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
    class_agreed: Counter[int] = field(default_factory=Counter)
    class_tolerance: Counter[int] = field(default_factory=Counter)
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
        self.class_agreed.update(tally.class_agreed)
        self.class_tolerance.update(tally.class_tolerance)
        self.considered += tally.considered
        self.unmatched_records += tally.unmatched_records
        self.unmatched_rows += tally.unmatched_rows
        self.local_charge += tally.local_charge
        self.exact_charge += tally.exact_charge
        self.values_charge += tally.values_charge
        self.unmatched_charge += tally.unmatched_charge

    def side_facts(self, evaluation: DiscrepancyResult | None = None) -> SideFacts:
        """What this party tells the other; without an evaluation, everything it has."""
        cells = evaluation.cells if evaluation is not None else None
        candidates_known = cells is None or cells.candidates.charge is not None \
            or cells.candidates.pairs == 0
        tolerance_known = cells is None or cells.matched_tolerance.charge is not None
        return SideFacts(party=self.party, rows=self.input_rows, considered=self.considered,
                         unmatched_records=self.unmatched_records,
                         unmatched_rows=self.unmatched_rows,
                         unmatched_charge=self.unmatched_charge,
                         local_charge=self.local_charge if candidates_known else None,
                         tolerance_classes={str(k): int(v) for k, v in
                                            sorted(self.class_tolerance.items())}
                         if tolerance_known else None)

    def outcome(self, remote: SideFacts, evaluation: DiscrepancyResult, rules: Rules,
                members: dict[str, str] | None = None) -> Outcome:
        """The summary numbers, given the counterparty's facts and the evaluation."""
        local = self.side_facts(evaluation)
        other = OPERATOR_ROLES[1 - OPERATOR_ROLES.index(self.party)]
        if remote.party != other:
            raise MatchingError("counterparty facts from the wrong party", expected=other,
                                found=remote.party)
        li, ri = OPERATOR_ROLES.index(self.party), 1 - OPERATOR_ROLES.index(self.party)
        cells = evaluation.cells
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
        agreed_both = self.exact_charge + self.values_charge  # equal on both sides
        tol, dis, cand = (cells.matched_tolerance.charge, cells.disputed.charge,
                          cells.candidates.charge)
        classes = self._classes(remote, tol is not None and remote.tolerance_classes is not None,
                                rules, members)
        agreed = sum(c["agreed_charge"] for c in classes)
        if tol is not None:
            agreed_local, agreed_remote = agreed_both + tol[li], agreed_both + tol[ri]
        else:
            agreed_local = agreed_remote = agreed_both
        held = None
        if tol is None or dis is None:
            held = {"pairs": int(self.pairs["key"]) if tol is None else n_disputed,
                    "local_charge": None, "remote_charge": None}
            if tol is None and cand is not None:
                held.update(local_charge=cand[li], remote_charge=cand[ri])
        totals = {
            "local_charge": self.local_charge,
            "remote_charge": remote.local_charge,
            "agreed_charge": agreed,
            "agreed_local_charge": agreed_local, "agreed_remote_charge": agreed_remote,
            "disputed_local_charge": dis[li] if dis is not None else None,
            "disputed_remote_charge": dis[ri] if dis is not None else None,
            "unmatched_local_charge": self.unmatched_charge,
            "unmatched_remote_charge": remote.unmatched_charge,
        }
        if remote.local_charge is not None:
            middle = (agreed_remote - agreed_both + dis[ri]) if tol is not None and dis is not None \
                else (cand[ri] if cand is not None else 0)
            if remote.local_charge != agreed_both + middle + remote.unmatched_charge:
                raise MatchingError(
                    "counterparty totals do not add up",
                    expected=f"remote_charge = agreed + disputed + unmatched = "
                             f"{agreed_both + middle + remote.unmatched_charge}",
                    found=str(remote.local_charge))
        reasons: dict[str, dict[str, Any]] = {}
        for code in REASON_CODES:
            cell = cells.by_reason[code]
            reasons[code] = {"pairs": int(evaluation.reason_pairs.get(code, 0)),
                             "class_pairs": cell.pairs,
                             "local_charge": cell.charge[li] if cell.charge else None,
                             "remote_charge": cell.charge[ri] if cell.charge else None,
                             "in_other": cell.in_other}
        reasons["other"] = {"pairs": cells.other.pairs, "class_pairs": cells.other.pairs,
                            "local_charge": cells.other.charge[li] if cells.other.charge else None,
                            "remote_charge": cells.other.charge[ri] if cells.other.charge else None,
                            "in_other": False}
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
        review = list(review_reasons(n_disputed, total_pairs,
                                     {p: (facts[p].unmatched_records, facts[p].considered)
                                      for p in OPERATOR_ROLES}, rules.circuit_breaker))
        if held is not None:
            review.append(f"small_cells: the amounts of {held['pairs']} candidate pairs are "
                          f"withheld (a cell of fewer than {cells.min_cell_pairs} pairs); "
                          "settle them by hand")
        return Outcome(party=self.party, disclosure=rules.disclosure, counts=counts,
                       pairs=pairs, reasons=reasons, totals=totals, held=held, classes=classes,
                       review=Review("manual_review" if review else "automatic", tuple(review)),
                       local=local, remote=remote)

    def _classes(self, remote: SideFacts, with_tolerance: bool, rules: Rules,
                 members: dict[str, str] | None) -> list[dict[str, Any]]:
        """Agreed money per direction and rate class, the same on both sides: the exact and
        tolerant-values pairs' charge (equal on both), plus, where the small-cell rule gives
        the tolerance sums, the midpoint of both sides' charges of the key-matched pairs
        within tolerance, per class."""
        from engine.ingest.rating import rating_names
        from engine.matching.bucket import class_codes

        mine = {int(k): v for k, v in self.class_tolerance.items()}
        theirs = {int(k): v for k, v in (remote.tolerance_classes or {}).items()}
        keys = set(self.class_agreed) | (set(mine) | set(theirs) if with_tolerance else set())
        names = rating_names(rules)
        role_of = {member: role for role, member in (members or {}).items()}
        out = []
        for key in sorted(keys):
            amount = int(self.class_agreed.get(key, 0))
            if with_tolerance:
                amount += (mine.get(key, 0) + theirs.get(key, 0)) // 2
            payer, payee, service, call_type = class_codes(key)
            payer_id, payee_id = names.parties[payer], names.parties[payee]
            out.append({"payer": role_of.get(payer_id, payer_id),
                        "payee": role_of.get(payee_id, payee_id),
                        "service": SERVICES[service], "call_type": names.call_types[call_type],
                        "time_band": "all", "agreed_charge": amount})
        return out
