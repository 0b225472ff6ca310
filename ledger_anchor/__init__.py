"""Append-only SM3 Merkle transparency log with SM2-signed entries and cosigned checkpoints.

Depends on nothing else of settlechain's: it takes bytes and returns proofs, and
could be lifted out as its own library.

Modules, in topological order of their imports:

``errors``      the root error :class:`LedgerError` and its subclasses
``sm3``         SM3 through OpenSSL (hashlib), else ``cryptography``
``sm2``         SM2 signatures: one interface, backends tongsuopy (fast) and gmssl
``signature_pool``  a batch's signatures verified on several cores (worker processes)
``merkle``      RFC 9162 tree hashing, proofs and verifiers; the hash is a parameter
``entries``     RFC 8785 canonical entries with a ``kind`` and author signatures
``note``        C2SP signed notes, checkpoints and cosignatures with SM2
``membership``  membership manifests by epoch: who may sign at each entry (TUF-style rotation)
``config``      the consortium file: the local bootstrap and the genesis manifest
``commitment``  salted SM3 commitments for documents kept off the ledger
``sealed``      sealed documents: SM4-GCM bodies, content keys wrapped with SM2 encryption
``log``         the log over SQLite (WAL): appends, proofs, checkpoints, cosignatures
``witness``     what a member checks before it relies on the log; the cosigning step
``verify``      full verification of a ledger file
``bundle``      C2SP tlog-proof style offline bundles (``ledger prove`` / ``check``)
``client``      the ledger clients: embedded SQLite (and the base of the gRPC one)
``opening``     ``open_ledger``: one call, embedded SQLite or remote gRPC
``remote``      the gRPC client; ``service`` the gRPC server (mutual TLS)
``cli``         the ``settlechain ledger ...`` subcommands

The names below are imported lazily so that ``import ledger_anchor.sm3`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "open_ledger": "ledger_anchor.opening",
    "LedgerClient": "ledger_anchor.client",
    "EmbeddedLedger": "ledger_anchor.client",
    "AppendReceipt": "ledger_anchor.log",
    "Cosignature": "ledger_anchor.note",
    "canonical_entry_bytes": "ledger_anchor.entries",
    "LedgerError": "ledger_anchor.errors",
    "load_config": "ledger_anchor.config",
    "verify_ledger": "ledger_anchor.verify",
    "Manifest": "ledger_anchor.membership",
    "Membership": "ledger_anchor.membership",
    "Reliance": "ledger_anchor.witness",
    "check_bundle": "ledger_anchor.bundle",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger_anchor' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
