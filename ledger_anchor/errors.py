"""Root exception of the ledger_anchor package, and its subclasses.

Every error the ledger raises on purpose derives from :class:`LedgerError`.  Errors
say what was expected and what was found; verifiers raise (never return a bool).
Only the CLI catches broadly and prints :meth:`LedgerError.diagnostics`.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of all deliberate ledger errors.  Verifiers raise subclasses of this."""

    exit_code = 2

    def diagnostics(self) -> str:
        return str(self)


class ConfigError(LedgerError):
    """The consortium file is missing, malformed or inconsistent."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ", ".join(part for part in (file, f"key {key!r}" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.key = key


class KeyFileError(LedgerError):
    """A key file could not be read, has unsafe permissions, or holds no valid key."""


class SignatureError(LedgerError):
    """An SM2 signature, public key or private key is malformed or does not verify."""


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof does not verify; says got/want."""

    def __init__(self, message: str, *, got: object = None, want: object = None) -> None:
        text = message
        if got is not None or want is not None:
            text += f" (got {_show(got)}, want {_show(want)})"
        super().__init__(text)
        self.got = got
        self.want = want


class EntryError(LedgerError):
    """An entry is refused: unknown kind, bad or missing signature, unknown signer, ..."""


class NoteError(LedgerError):
    """A signed note, checkpoint or cosignature is malformed or its signature fails."""


class ForkError(LedgerError):
    """Two checkpoints of the log cannot both be honest (same size, different roots,
    or no consistency proof between them).  Carries both notes as evidence."""

    exit_code = 4

    def __init__(self, message: str, *, first: str = "", second: str = "") -> None:
        super().__init__(message)
        self.first = first
        self.second = second


class StorageError(LedgerError):
    """The SQLite ledger file is missing, locked for too long, or not a ledger."""


class VerificationError(LedgerError):
    """Full verification of a ledger failed; ``index`` names the first bad entry
    (or the last entry covered by the bad checkpoint)."""

    exit_code = 3

    def __init__(self, message: str, *, index: int | None = None, what: str = "entry") -> None:
        prefix = f"{what} {index}: " if index is not None else ""
        super().__init__(prefix + message)
        self.index = index
        self.what = what


class TransportError(LedgerError):
    """The gRPC ledger service could not be reached or answered with an error."""


class BundleError(LedgerError):
    """A proof bundle (``ledger prove`` output) is malformed or does not verify."""


def _show(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex() if len(value) <= 64 else bytes(value[:32]).hex() + "..."
    return repr(value)


class MismatchError(LedgerError):
    """A document handed to the auditor does not match what the ledger holds (exit 3)."""

    exit_code = 3
