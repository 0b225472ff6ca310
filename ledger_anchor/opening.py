"""``open_ledger``: one call that gives the embedded SQLite ledger or the gRPC client.

Kept apart from :mod:`ledger_anchor.client` so that neither the client nor the gRPC
client (:mod:`ledger_anchor.remote`, which builds on the client's base class) imports
the other's importer: the module graph stays without cycles.
"""

from __future__ import annotations

import os
from typing import Any

from ledger_anchor import sm2
from ledger_anchor.client import EmbeddedLedger, LedgerClient, _load_log_key
from ledger_anchor.config import ConsortiumConfig, load_config
from ledger_anchor.errors import LedgerError
from ledger_anchor.signature_pool import ParallelVerification


def open_ledger(config: str | os.PathLike[str] | ConsortiumConfig, *, log_private_key: Any = None,
                db: str | os.PathLike[str] | None = None, member_id: str | None = None,
                create: bool = False, readonly: bool = False, synchronous: str = "NORMAL",
                sm2_backend: str | None = None, parallel: ParallelVerification | None = None) -> LedgerClient:
    """Open the ledger described by ``config`` (a consortium file or a parsed one).

    Embedded when ``[ledger].endpoint`` is empty (or ``db`` is given): the log key is
    ``log_private_key`` (bytes, a PrivateKey or a key file path), else ``ledger/log.key``
    beside the consortium file if present; without one the ledger is read-only.
    Remote otherwise: ``member_id`` says whose TLS certificate (``members/<id>/tls.*``)
    authenticates this client to the service.

    ``parallel``: when the author signatures of a batch are verified on several cores
    (embedded only; default :class:`~ledger_anchor.signature_pool.ParallelVerification`:
    batches of at least 16 gmssl or 256 tongsuopy signatures, one worker per core
    beyond the first; ``signature_pool.SERIAL``: never).
    """
    parsed = config if isinstance(config, ConsortiumConfig) else load_config(config)
    backend = sm2.get_backend(sm2_backend)
    if db is not None or not parsed.ledger.endpoint:
        key = None if readonly else _load_log_key(parsed, log_private_key)
        return EmbeddedLedger(parsed, db=db, log_private_key=key, create=create, readonly=readonly,
                              synchronous=synchronous, backend=backend, parallel=parallel)
    from ledger_anchor.remote import RemoteLedger  # gRPC only when needed

    if member_id is None:
        raise LedgerError("a remote ledger needs member_id: whose TLS certificate authenticates this client")
    return RemoteLedger(parsed, member_id=member_id, backend=backend)
