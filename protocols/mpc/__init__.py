"""Three-party secure computation of the tolerance evaluation (docs/matching.md) over the
candidate pairs whose values differ: operators A and B and a helper H, with MPyC.

Public API (docs/interfaces.md, "MPC")::

    MpcParties, MpcTls, ToleranceParams, PairValues, DiscrepancyResult, ChargeCells, Cell
    run_discrepancy(parties, params, n_pairs, values, timeout_s) -> DiscrepancyResult | None
    plaintext_discrepancy(a, b, params) -> DiscrepancyResult   (the same, in the clear)

Modules, in order of their imports: ``errors``, ``params`` (data types), ``field``
(GF(2^89 - 1) arithmetic in numba and the range-check polynomials, pure), ``cells``
(the small-cell rule: which charge sums the operators learn, pure), ``reference``
(the plaintext computation), ``rounds`` (the message-layer interface, message rounds,
the in-memory layer for tests), ``shuffle`` (the one oblivious shuffle of all pairs
for the ``aggregate`` policy), ``protocol`` (the role object of each party),
``runtime`` (the only importer of MPyC: runtime, TLS connections, framing, PRSS
randomness), ``api`` (run_discrepancy), ``cli`` (``settlechain mpc``).

Attributes are loaded lazily so that ``import protocols.mpc`` (e.g. by the console
script's command registration) does not import MPyC.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MpcParties": "protocols.mpc.params",
    "MpcTls": "protocols.mpc.params",
    "ToleranceParams": "protocols.mpc.params",
    "PairValues": "protocols.mpc.params",
    "DiscrepancyResult": "protocols.mpc.params",
    "ChargeCells": "protocols.mpc.params",
    "Cell": "protocols.mpc.params",
    "run_discrepancy": "protocols.mpc.api",
    "plaintext_discrepancy": "protocols.mpc.reference",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'protocols.mpc' has no attribute {name!r}")
