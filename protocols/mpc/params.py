"""The public data types of ``protocols.mpc`` (docs/interfaces.md, "MPC").

Frozen dataclasses, validated once on construction.  Nothing here touches MPyC or
the network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protocols.mpc.errors import MpcConfigError, MpcInputError

PARTY_NAMES: tuple[str, str, str] = ("A", "B", "H")
"""MPyC party 0, 1, 2: the two operators and the helper."""

POLICIES: tuple[str, ...] = ("aggregate", "flags", "differences")

REASON_CODES: tuple[str, ...] = (
    "start_time",
    "duration",
    "charge_rate_mismatch",
    "charge_rounding",
    "charge_unexplained",
)
"""In docs/matching.md order; bit ``1 << i`` of the reasons bitmask is ``REASON_CODES[i]``."""

REASON_BITS: dict[str, int] = {code: 1 << i for i, code in enumerate(REASON_CODES)}

VALUE_COLUMNS: tuple[str, ...] = ("start", "duration_s", "charge", "rated_charge")

DIFFERENCE_KEYS: tuple[str, ...] = ("start", "duration_s", "charge", "rated_charge")

MAX_ABS_VALUE = (1 << 62) - 1
"""Public bound on every input value: |x| <= 2^62 - 1, so every difference A - B fits
in an int64 and, with every tolerance offset, stays far below the field modulus
(see protocols.mpc.protocol, "Bit lengths")."""

MAX_PAIRS = 1 << 26
"""Largest number of candidate pairs in one job: a charge sum over at most 2^26 values
with |x| < 2^62 stays below p/2 = 2^88 and so opens to the exact integer (the
``aggregate`` policy sums in the field).  Larger inputs are partitioned by the caller."""

DEFAULT_MIN_CELL_PAIRS = 5
"""k of the small-cell rule (docs/matching.md, "Disclosure"): a charge sum over fewer
than k pairs is never disclosed on its own."""

MAX_TOLERANCE = 4096
"""Largest supported tolerance.  The range check costs O(tolerance) field elements per
pair (a polynomial with 2*tolerance+1 roots), so very wide tolerances are refused
instead of silently running for hours."""


@dataclass(frozen=True)
class MpcTls:
    """Mutual-TLS material of one party: consortium CA, own certificate and key, and
    the identity (a subjectAltName DNS name) every party's certificate must carry."""

    ca_cert: Path
    cert: Path
    key: Path
    peer_names: tuple[str, str, str]

    def __post_init__(self) -> None:
        for name in ("ca_cert", "cert", "key"):
            path = Path(getattr(self, name))
            object.__setattr__(self, name, path)
            if not path.is_file():
                raise MpcConfigError(f"TLS {name}: expected a readable file, found nothing at {path}")
        names = tuple(self.peer_names)
        if len(names) != 3 or not all(isinstance(n, str) and n for n in names):
            raise MpcConfigError(f"TLS peer_names: expected three non-empty names (A, B, H), found {names!r}")
        if len(set(names)) != 3:
            raise MpcConfigError(f"TLS peer_names: expected three distinct names, found {names!r}")
        object.__setattr__(self, "peer_names", names)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_address(address: str) -> tuple[str, int]:
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise MpcConfigError(f"MPC address: expected host:port, found {address!r}")
    return host, int(port_text)


@dataclass(frozen=True)
class MpcParties:
    """Who computes: the MPyC endpoints of A, B and H (in this order), this party's
    index (0 A, 1 B, 2 H) and its TLS material.  ``tls=None`` is a local demo and is
    refused unless every address is a loopback address."""

    addresses: tuple[str, str, str]
    index: int
    tls: MpcTls | None = None

    def __post_init__(self) -> None:
        addresses = tuple(self.addresses)
        if len(addresses) != 3:
            raise MpcConfigError(f"MPC parties: expected three addresses (A, B, H), found {len(addresses)}")
        endpoints = [split_address(a) for a in addresses]
        object.__setattr__(self, "addresses", addresses)
        if self.index not in (0, 1, 2):
            raise MpcConfigError(f"MPC party index: expected 0 (A), 1 (B) or 2 (H), found {self.index!r}")
        if self.tls is None and not all(_is_loopback(host) for host, _ in endpoints):
            raise MpcConfigError(
                "MPC without TLS is a local demo only: expected loopback addresses, found "
                + ", ".join(addresses)
            )

    @property
    def name(self) -> str:
        return PARTY_NAMES[self.index]

    def endpoint(self, index: int) -> tuple[str, int]:
        return split_address(self.addresses[index])


@dataclass(frozen=True)
class ToleranceParams:
    """Tolerances of docs/matching.md, the disclosure policy of the job and k of the
    small-cell rule (``min_cell_pairs``, docs/matching.md "Disclosure")."""

    time_tolerance_s: int
    duration_tolerance_s: int
    charge_tolerance: int
    policy: str = "flags"
    min_cell_pairs: int = DEFAULT_MIN_CELL_PAIRS

    def __post_init__(self) -> None:
        for name in ("time_tolerance_s", "duration_tolerance_s", "charge_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise MpcConfigError(f"{name}: expected an integer, found {value!r}")
            if not 0 <= int(value) <= MAX_TOLERANCE:
                raise MpcConfigError(f"{name}: expected 0..{MAX_TOLERANCE}, found {value}")
            object.__setattr__(self, name, int(value))
        if self.policy not in POLICIES:
            raise MpcConfigError(f"disclosure policy: expected one of {', '.join(POLICIES)}, found {self.policy!r}")
        k = self.min_cell_pairs
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_PAIRS:
            raise MpcConfigError(f"min_cell_pairs: expected an integer 1..{MAX_PAIRS} (1 turns the small-cell "
                                 f"rule off), found {k!r}")
        object.__setattr__(self, "min_cell_pairs", int(k))

    def tolerance(self, check: str) -> int:
        """The tolerance of one range check: t (start), d (duration), c and r (charges)."""
        return {
            "t": self.time_tolerance_s,
            "d": self.duration_tolerance_s,
            "c": self.charge_tolerance,
            "r": self.charge_tolerance,
        }[check]


@dataclass(frozen=True)
class PairValues:
    """One operator's values of the candidate pairs, in the common pair order."""

    start: np.ndarray
    duration_s: np.ndarray
    charge: np.ndarray
    rated_charge: np.ndarray

    def __post_init__(self) -> None:
        length = None
        for name in VALUE_COLUMNS:
            raw = getattr(self, name)
            array = np.asarray(raw)
            if array.ndim != 1:
                raise MpcInputError(f"pair values column {name}: expected a 1-d array, found shape {array.shape}",
                                    column=name)
            if array.dtype.kind not in "iu" and not (array.size == 0 and array.dtype.kind in "fO"):
                raise MpcInputError(f"pair values column {name}: expected integers, found dtype {array.dtype}",
                                    column=name)
            if array.dtype.kind == "u" and array.size and int(array.max()) > MAX_ABS_VALUE:
                index = int(np.argmax(array > MAX_ABS_VALUE))
                raise MpcInputError(
                    f"pair values column {name}, pair {index}: expected |value| <= 2^62 - 1, found {int(array[index])}",
                    column=name, index=index)
            array = array.astype(np.int64, copy=False)
            if array.size:
                bad = np.abs(array) > MAX_ABS_VALUE
                bad |= array == np.iinfo(np.int64).min
                if bad.any():
                    index = int(np.argmax(bad))
                    raise MpcInputError(
                        f"pair values column {name}, pair {index}: expected |value| <= 2^62 - 1, "
                        f"found {int(array[index])}", column=name, index=index)
            if length is None:
                length = array.size
            elif array.size != length:
                raise MpcInputError(
                    f"pair values column {name}: expected {length} values like the other columns, found {array.size}",
                    column=name)
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return int(self.start.size)

    def column(self, check: str) -> np.ndarray:
        return {"t": self.start, "d": self.duration_s, "c": self.charge, "r": self.rated_charge}[check]


@dataclass(frozen=True)
class Cell:
    """A set of candidate pairs of the disclosed totals (docs/matching.md, "Disclosure"):
    how many pairs it holds (always disclosed) and, when the small-cell rule allows,
    the two operators' charge sums over them.

    ``charge`` is ``(sum of A's charges, sum of B's charges)``, or ``None`` when the sums
    are withheld: the cell, or a cell they could be derived from, has fewer than
    ``min_cell_pairs`` pairs.  ``in_other`` marks a reason class whose sums are counted
    in the ``other`` cell instead of being given on their own."""

    pairs: int
    charge: tuple[int, int] | None
    in_other: bool = False

    @property
    def withheld(self) -> bool:
        return self.charge is None


@dataclass(frozen=True)
class ChargeCells:
    """The charge sums both operators learn, after the small-cell rule.

    ``matched_tolerance`` and ``disputed`` split the candidate pairs; ``candidates`` is
    all of them.  ``by_reason`` splits the disputed pairs by their *primary* reason, the
    last of their reason codes in the order of ``REASON_CODES`` (a charge reason if
    the charge is beyond tolerance, else ``duration``, else ``start_time``), so every
    disputed pair is in exactly one class.  ``other`` merges the classes marked
    ``in_other`` (0 pairs when none is).  When the disputed sums are withheld, so are
    the sums of every class and of ``other``.  protocols.mpc.cells has the rule."""

    min_cell_pairs: int
    matched_tolerance: Cell
    disputed: Cell
    candidates: Cell
    by_reason: dict[str, Cell]
    other: Cell


@dataclass
class DiscrepancyResult:
    """What A and B learn (docs/matching.md, "Disclosure"); H gets ``None``.

    - ``disputed``: per pair, in the common pair order (every policy);
    - ``reasons``: the reasons bitmask per pair (``flags``, ``differences``), else None;
    - ``differences``: A - B per value for disputed pairs, 0 elsewhere (``differences``);
    - ``reason_pairs``: per reason code, the number of disputed pairs with that reason
      (a pair with several reasons counts in each);
    - ``cells``: the charge sums after the small-cell rule (:class:`ChargeCells`);
    - ``stats``: seconds, bytes sent, chunk size of this party."""

    disputed: np.ndarray
    reasons: np.ndarray | None
    differences: dict[str, np.ndarray] | None
    reason_pairs: dict[str, int]
    cells: ChargeCells
    stats: dict = field(default_factory=dict)
