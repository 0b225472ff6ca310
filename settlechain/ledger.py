"""Verifying a consortium's ledger (``settlechain ledger verify``).

Opening the ledger is :func:`ledger_anchor.open_ledger`, re-exported as
:func:`settlechain.open_ledger`; this module adds the one composition the CLI and the
demo make to verify a whole ledger file from the consortium file alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger_anchor.verify import VerificationReport

PathLike = str | os.PathLike[str]


def verify_ledger(config: PathLike, *, db: PathLike | None = None) -> VerificationReport:
    """Verify every entry, hash, checkpoint, SM2 signature and cosignature of the ledger
    file of the consortium file ``config`` (``[ledger].db``, or ``db``), trusting only the
    keys and the genesis membership in ``config`` (:func:`ledger_anchor.verify_ledger`).

    Returns the report (``size``, ``checkpoints``, ``cosignatures``, ``final_size``:
    the largest size cosigned by the finality threshold, ``root``, ``membership``);
    raises :class:`~ledger_anchor.errors.VerificationError` naming the first bad index.
    """
    from ledger_anchor.client import identity_of
    from ledger_anchor.config import load_config
    from ledger_anchor.verify import verify_ledger as verify

    parsed = load_config(config)
    return verify(Path(db) if db is not None else parsed.ledger.db, identity_of(parsed))


__all__ = ["verify_ledger"]
