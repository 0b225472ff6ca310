"""The errors the facade lets through: each package's own root error, re-exported.

settlechain has no error type of its own.  Every deliberate error comes from the
package that found the problem, derives from that package's root, and has
``diagnostics()`` (what was expected and found, and where: file, row and column for
bad input; ledger index or field for the ledger and governance)::

    try:
        settlechain.validate("a.csv", "rules.toml")
    except settlechain.ERRORS as exc:
        print(exc.diagnostics())
        raise SystemExit(exc.exit_code)

Importing this module is cheap: the error modules import nothing heavy.
"""

from __future__ import annotations

from billing.errors import BillingError
from data_gen.errors import DataGenError
from engine.errors import InputError, JobError, RulesError, SettlechainError
from governance.errors import GovernanceError, NotInForce
from ledger_anchor.errors import LedgerError
from protocols.errors import ProtocolError

ERRORS: tuple[type[SettlechainError], type[LedgerError], type[GovernanceError],
              type[BillingError], type[DataGenError], type[ProtocolError]] = (
    SettlechainError, LedgerError, GovernanceError, BillingError, DataGenError, ProtocolError,
)
"""The root error of each package (engine, ledger_anchor, governance, billing, data_gen,
protocols): ``except settlechain.ERRORS`` catches every deliberate error, and each has
``diagnostics()`` and ``exit_code`` (typed so: the caught error is the union of the roots)."""

__all__ = [
    "ERRORS", "BillingError", "DataGenError", "GovernanceError", "InputError", "JobError",
    "LedgerError", "NotInForce", "ProtocolError", "RulesError", "SettlechainError",
]
