"""``run_discrepancy``: one party's entry point (docs/interfaces.md, "MPC")."""

from __future__ import annotations

import logging
import resource
import time

import numpy as np

from protocols.mpc.errors import MpcConfigError, MpcInputError
from protocols.mpc.params import (
    DIFFERENCE_KEYS,
    MAX_PAIRS,
    DiscrepancyResult,
    MpcParties,
    PairValues,
    ToleranceParams,
)
from protocols.mpc.protocol import DiscrepancyParty

logger = logging.getLogger(__name__)


def _validate(parties: MpcParties, params: ToleranceParams, n_pairs: int, values: PairValues | None) -> None:
    if not isinstance(parties, MpcParties):
        raise MpcConfigError(f"parties: expected MpcParties, found {type(parties).__name__}")
    if not isinstance(params, ToleranceParams):
        raise MpcConfigError(f"params: expected ToleranceParams, found {type(params).__name__}")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or not 0 <= n_pairs <= MAX_PAIRS:
        raise MpcInputError(f"n_pairs: expected an integer 0..{MAX_PAIRS} (partition larger jobs), "
                            f"found {n_pairs!r}")
    if parties.index == 2:
        if values is not None:
            raise MpcInputError("party H holds no data: expected values=None, found pair values")
        return
    if not isinstance(values, PairValues):
        raise MpcInputError(f"party {parties.name}: expected PairValues, found {type(values).__name__}")
    if len(values) != n_pairs:
        raise MpcInputError(f"party {parties.name}: expected {n_pairs} pairs, found {len(values)}")


def _empty_result(params: ToleranceParams, name: str) -> DiscrepancyResult:
    from protocols.mpc.reference import summarize

    reasons = np.zeros(0, dtype=np.uint8)
    counts, cells = summarize(reasons, np.zeros(0, np.int64), np.zeros(0, np.int64), params.min_cell_pairs)
    return DiscrepancyResult(
        disputed=np.zeros(0, dtype=bool),
        reasons=reasons if params.policy != "aggregate" else None,
        differences=({key: np.zeros(0, np.int64) for key in DIFFERENCE_KEYS}
                     if params.policy == "differences" else None),
        reason_pairs=counts, cells=cells,
        stats={"party": name, "pairs": 0, "seconds": 0.0, "cpu_seconds": 0.0, "bytes_sent": 0})


def run_discrepancy(parties: MpcParties, params: ToleranceParams, n_pairs: int,
                    values: PairValues | None, timeout_s: float, *,
                    chunk_size: int | None = None) -> DiscrepancyResult | None:
    """Evaluate the candidate pairs' tolerances jointly with the two other parties.

    A (index 0) and B (index 1) pass their values in the common pair order and get the
    result allowed by ``params.policy``; H (index 2) passes ``None`` and gets ``None``.
    Blocks until the three parties are done.  ``timeout_s`` bounds the connection
    phase and every wait for a peer's message; a peer that drops its connection ends
    the job at once.  Raises a :class:`protocols.errors.ProtocolError` subclass.
    """
    _validate(parties, params, n_pairs, values)
    if n_pairs == 0:
        # nothing to compute and nothing to learn; no port is opened
        if parties.index == 2:
            return None
        return _empty_result(params, parties.name)

    from protocols.mpc import field
    from protocols.mpc.runtime import run_session

    field.warm_up()  # before the port opens: the peers do not wait for numba's first calls
    started = time.perf_counter()

    async def job(net, rand):
        party = DiscrepancyParty(net, rand, params, n_pairs, values, chunk_size=chunk_size)
        return await party.run()

    result = run_session(parties, timeout_s, job)
    if result is not None:
        result.stats["wall_seconds_with_setup"] = time.perf_counter() - started
        result.stats["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    logger.info("party %s: %d pairs evaluated in %.2f s", parties.name, n_pairs, time.perf_counter() - started)
    return result
