"""Errors of ``protocols.mpc``; all derive from :class:`protocols.errors.ProtocolError`."""

from __future__ import annotations

from protocols.errors import ProtocolError


class MpcError(ProtocolError):
    """Base class of the three-party discrepancy computation's errors."""


class MpcConfigError(MpcError):
    """Bad configuration: addresses, party index, TLS material, tolerances, policy."""


class MpcInputError(MpcError):
    """Bad pair values handed to :func:`run_discrepancy` (names the column and pair index)."""

    def __init__(self, message: str, *, column: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.column = column
        self.index = index


class ParameterMismatchError(MpcError):
    """The parties disagree on the job (number of pairs, tolerances, policy, protocol version)."""


class PeerLostError(MpcError):
    """A peer closed its connection or died before the computation finished."""


class PeerTimeoutError(MpcError):
    """A peer did not connect, or did not send an expected message, within the timeout."""


class PeerAuthenticationError(MpcError):
    """A peer was not authenticated by the consortium CA or presented another member's identity."""


class MalformedMessageError(MpcError):
    """A peer sent a message of the wrong size or with values outside the field."""
