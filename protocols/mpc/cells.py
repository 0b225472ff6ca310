"""The small-cell rule: which charge sums the operators learn (docs/matching.md,
"Disclosure").  Pure: counts in, a plan out; the same plan for every policy, in the
protocol and in the plaintext reference.

Cells.  The candidate pairs (``candidates``) split into ``matched_tolerance`` and
``disputed``; the disputed pairs split by primary reason into five classes named by
the reason codes (:func:`primary_reason`).  These cells form a tree in which every
cell is the disjoint union of its children.  The counts of all cells are disclosed;
the rule decides which charge sums are.

Why a tree, and why "merge until k".  An operator knows, besides the disclosed sums,
the counterparty's total over all candidate pairs (the engine's side facts give its
total, unmatched and exactly matched charges), and under ``flags`` which pair is in
which cell.  From sums over a family of sets one can derive the sum over any set in
their linear span; for a tree that is spanned by the *atoms* -- each disclosed cell
minus its disclosed children -- so what an operator can derive about the other side's
charges is a combination of atom sums [cell suppression in tabular data: Cox,
"Suppression methodology and statistical disclosure control", JASA 75 (1980); the
"complementary suppression" of Hundepool et al., "Statistical Disclosure Control",
Wiley 2012, section 5.2].  The rule makes every non-empty atom hold at least k pairs:

1. a cell is *small* when it holds 1..k-1 pairs (an empty cell's sums are 0 and
   disclose nothing);
2. ``matched_tolerance`` and ``disputed``: if either is small, both sums are withheld
   (each is ``candidates`` minus the other), and so are all class sums (they add up to
   the disputed sum);
3. ``candidates``: its sum is given unless it is small;
4. classes, when the disputed sum is given: small classes are merged into ``other``;
   while ``other`` is non-empty and small, the smallest remaining non-empty class
   (the first in ``REASON_CODES`` order on a tie) is merged too.  Since the disputed
   cell then holds at least k pairs this ends with ``other`` empty or holding at least
   k pairs, and every class given on its own holds at least k pairs or none.

Reason codes themselves overlap (a pair can be off in start time, duration and charge
at once), which is why the sums are per primary reason and not per reason: with
overlapping cells, start_time + duration - disputed is the sum over the pairs off in
both, which can be a single pair.  The per-reason counts (``reason_pairs``) are still
disclosed; they are counts only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.mpc.params import REASON_BITS, REASON_CODES, Cell, ChargeCells

STATUS_CELLS = ("matched_tolerance", "disputed", "candidates")
OTHER = "other"
CELL_NAMES: tuple[str, ...] = (*STATUS_CELLS, *REASON_CODES, OTHER)
"""Every cell of the tree, in the order their sums travel on the wire."""

# primary reason of a bitmask 1..31: the index of its highest set bit
_PRIMARY = np.full(1 << len(REASON_CODES), -1, dtype=np.int8)
for _mask in range(1, 1 << len(REASON_CODES)):
    _PRIMARY[_mask] = _mask.bit_length() - 1


def primary_reason(reasons: np.ndarray) -> np.ndarray:
    """Per pair, the index into ``REASON_CODES`` of its primary reason (the last of its
    reason codes), -1 for a pair without reasons."""
    return _PRIMARY[np.asarray(reasons, dtype=np.uint8)]


def reason_pairs(reasons: np.ndarray) -> dict[str, int]:
    """Per reason code, how many pairs have it (a pair may count in several)."""
    reasons = np.asarray(reasons, dtype=np.uint8)
    return {code: int(((reasons & REASON_BITS[code]) != 0).sum()) for code in REASON_CODES}


@dataclass(frozen=True)
class CellPlan:
    """Which sums the rule gives, decided from the counts alone (known to A and B,
    never to H)."""

    min_cell_pairs: int
    pairs: dict[str, int]
    """Per cell name: its number of pairs (``other``: of the merged classes)."""
    disclosed: frozenset[str]
    """Cells whose sums are given (``other`` included when it is non-empty)."""
    in_other: tuple[str, ...]
    """Classes merged into ``other``."""

    @classmethod
    def from_counts(cls, n_tolerance: int, n_disputed: int, class_pairs: dict[str, int],
                    min_cell_pairs: int) -> "CellPlan":
        k = int(min_cell_pairs)
        if sum(class_pairs.values()) != n_disputed or set(class_pairs) != set(REASON_CODES):
            raise ValueError(f"class counts {class_pairs} do not split the {n_disputed} disputed pairs")

        def small(count: int) -> bool:
            return 0 < count < k

        pairs = {"matched_tolerance": int(n_tolerance), "disputed": int(n_disputed),
                 "candidates": int(n_tolerance) + int(n_disputed)}
        pairs.update({code: int(class_pairs[code]) for code in REASON_CODES})
        disclosed: set[str] = set()
        if not small(pairs["candidates"]):
            disclosed.add("candidates")
        merged: list[str] = []
        if not (small(pairs["matched_tolerance"]) or small(pairs["disputed"])):
            disclosed.update(("matched_tolerance", "disputed"))
            merged = [code for code in REASON_CODES if small(pairs[code])]
            while small(sum(pairs[code] for code in merged)):
                rest = [code for code in REASON_CODES if code not in merged and pairs[code] > 0]
                merged.append(min(rest, key=lambda code: (pairs[code], REASON_CODES.index(code))))
            disclosed.update(code for code in REASON_CODES if code not in merged)
            disclosed.add(OTHER)
        pairs[OTHER] = sum(pairs[code] for code in merged)
        in_other = tuple(code for code in REASON_CODES if code in merged)
        return cls(min_cell_pairs=k, pairs=pairs, disclosed=frozenset(disclosed), in_other=in_other)

    @property
    def wire_order(self) -> tuple[str, ...]:
        """The disclosed cells, in :data:`CELL_NAMES` order."""
        return tuple(name for name in CELL_NAMES if name in self.disclosed)

    def cells(self, sums: dict[str, tuple[int, int]]) -> ChargeCells:
        """The result, given ``(sum A, sum B)`` for every disclosed cell (others ignored)."""
        missing = [name for name in self.wire_order if name not in sums]
        if missing:
            raise ValueError(f"no sums for the disclosed cells {missing}")

        def cell(name: str) -> Cell:
            charge = None
            if name in self.disclosed:
                a, b = sums[name]
                charge = (int(a), int(b))
            return Cell(pairs=self.pairs[name], charge=charge, in_other=name in self.in_other)

        return ChargeCells(min_cell_pairs=self.min_cell_pairs,
                           matched_tolerance=cell("matched_tolerance"), disputed=cell("disputed"),
                           candidates=cell("candidates"),
                           by_reason={code: cell(code) for code in REASON_CODES},
                           other=cell(OTHER) if OTHER in self.disclosed else Cell(self.pairs[OTHER], None))


def class_counts(reasons: np.ndarray) -> dict[str, int]:
    """Per class (primary reason), how many disputed pairs it holds."""
    primary = primary_reason(reasons)
    counts = np.bincount(primary[primary >= 0].astype(np.int64), minlength=len(REASON_CODES))
    return {code: int(counts[i]) for i, code in enumerate(REASON_CODES)}


def plan_from_reasons(reasons: np.ndarray, min_cell_pairs: int) -> CellPlan:
    reasons = np.asarray(reasons, dtype=np.uint8)
    n_disputed = int((reasons != 0).sum())
    return CellPlan.from_counts(len(reasons) - n_disputed, n_disputed, class_counts(reasons), min_cell_pairs)


def own_sums(plan: CellPlan, reasons: np.ndarray, charge: np.ndarray) -> dict[str, int]:
    """One operator's own charge sum over every disclosed cell (Python ints: exact)."""
    reasons = np.asarray(reasons, dtype=np.uint8)
    primary = primary_reason(reasons)
    charge = np.asarray(charge, dtype=np.int64)

    def over(mask: np.ndarray) -> int:
        return int(charge[mask].astype(object).sum()) if mask.any() else 0

    sums = {"matched_tolerance": over(reasons == 0), "disputed": over(reasons != 0),
            "candidates": over(np.ones(len(reasons), dtype=bool))}
    for i, code in enumerate(REASON_CODES):
        sums[code] = over(primary == i)
    sums[OTHER] = sum(sums[code] for code in plan.in_other)
    return {name: sums[name] for name in plan.wire_order}
