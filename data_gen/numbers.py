"""Chinese mobile numbers in E.164 (country code 86, 11-digit national number 1xx xxxx xxxx).

A number is held as the integer of its 13 digits, e.g. ``8613812345678``; the
first three national digits (the "segment", 130-199) name the operator that was
allocated the range.  The allocation below follows the public MIIT number plan
(mobile segments only; virtual-operator ranges 170/171/162/165/167 left out).
"""

from __future__ import annotations

import numpy as np

from data_gen.errors import DataGenError

OPERATOR_NAMES: dict[str, str] = {
    "CMCC": "China Mobile",
    "CUCC": "China Unicom",
    "CTCC": "China Telecom",
}

OPERATOR_SEGMENTS: dict[str, tuple[int, ...]] = {
    "CMCC": (134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 157, 158, 159, 172, 178, 182,
             183, 184, 187, 188, 195, 197, 198),
    "CUCC": (130, 131, 132, 145, 155, 156, 166, 175, 176, 185, 186, 196),
    "CTCC": (133, 149, 153, 173, 177, 180, 181, 189, 190, 191, 193, 199),
}

COUNTRY = 86
_NATIONAL = 10 ** 11          # 11 national digits
_SUBSCRIBER = 10 ** 8         # 8 digits after the segment


def _segment_weights(segments: tuple[int, ...]) -> np.ndarray:
    """Older 13x ranges are fuller than the newer 19x/17x ones."""
    weights = np.array([3.0 if s < 140 else 2.0 if s < 160 else 1.5 if s < 190 else 1.0
                        for s in segments])
    return weights / weights.sum()


def categorical_table(weights: np.ndarray, bits: int = 16) -> np.ndarray:
    """A lookup table of 2^bits entries whose uniform index draws category i with
    probability weights[i] (quantised to 2^-bits): one gather per draw."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    points = (np.arange(1 << bits) + 0.5) / (1 << bits)
    return np.minimum(np.searchsorted(cdf, points, side="right"),
                      len(cdf) - 1).astype(np.int16)


def draw_prefixes(rng: np.random.Generator, operator: str, count: int) -> np.ndarray:
    """``count`` random number heads of ``operator``: 86·10^11 + segment·10^8 (int64)."""
    segments = np.array(OPERATOR_SEGMENTS[operator], dtype=np.int64)
    table = categorical_table(_segment_weights(OPERATOR_SEGMENTS[operator]))
    pick = table[rng.integers(0, table.shape[0], size=count, dtype=np.uint16)]
    return COUNTRY * _NATIONAL + segments[pick] * _SUBSCRIBER


def random_subscribers(rng: np.random.Generator, count: int) -> np.ndarray:
    """Uniformly random subscriber digits (8 digits after the segment)."""
    return rng.integers(0, _SUBSCRIBER, size=count)


class CalledNumbers:
    """Subscriber digits of called numbers that never repeat within a scenario.

    One counter per called operator (0: operator A's subscriber is called, 1: B's): the
    k-th fresh number of an operator gets the digits (k·M + c) mod 10^8, a bijection of
    0..10^8-1 (M coprime to 10, c from the seed, one per operator); numbers given to
    renumbered events count down from the top (k = 10^8 - 1, 10^8 - 2, ...), so the two
    never meet while an operator has at most 10^8 of them.  Numbers of two different
    operators differ in their segment, so no two called numbers are equal.  Draws are
    made in event order, hence the same whatever the block size.

    For the sizes generated here this is statistically the same as drawing uniformly
    (which would repeat a number with probability ~n/10^8 per pair, without any realism
    to gain)."""

    MULTIPLIER = 54_435_761  # odd, not a multiple of 5: coprime to 10^8

    def __init__(self, rng: np.random.Generator) -> None:
        self._offset = [int(x) for x in rng.integers(0, _SUBSCRIBER, size=2)]
        self._fresh = [0, 0]
        self._renumbered = [0, 0]

    def fresh(self, operator: np.ndarray) -> np.ndarray:
        """Digits for events in order whose called operator is ``operator`` (uint8 0/1)."""
        out = np.empty(operator.shape[0], dtype=np.int64)
        for op in (0, 1):
            where = np.flatnonzero(operator == op)
            index = self._fresh[op] + np.arange(where.shape[0], dtype=np.int64)
            self._fresh[op] += where.shape[0]
            self._check(op)
            out[where] = self._digits(op, index)
        return out

    def renumber(self, operator: np.ndarray) -> np.ndarray:
        """Fresh digits for renumbered events in order (from the top of the range)."""
        out = np.empty(operator.shape[0], dtype=np.int64)
        for op in (0, 1):
            where = np.flatnonzero(operator == op)
            index = (_SUBSCRIBER - 1 - self._renumbered[op]
                     - np.arange(where.shape[0], dtype=np.int64))
            self._renumbered[op] += where.shape[0]
            self._check(op)
            out[where] = self._digits(op, index)
        return out

    def _digits(self, op: int, index: np.ndarray) -> np.ndarray:
        return (index * self.MULTIPLIER + self._offset[op]) % _SUBSCRIBER

    def _check(self, op: int) -> None:
        if self._fresh[op] + self._renumbered[op] > _SUBSCRIBER:
            raise DataGenError("more than 10^8 unique called numbers of one operator: fewer "
                               "records, please")


def with_subscribers(numbers: np.ndarray, subscribers: np.ndarray) -> np.ndarray:
    """The same numbers (same segment: same operator, call type, tariff) with other
    subscriber digits."""
    return numbers - numbers % _SUBSCRIBER + subscribers
