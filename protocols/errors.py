"""Root exception of the protocols package."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of all deliberate errors raised by ``protocols``.

    A malformed, truncated, replayed or out-of-order message, a dead peer or a
    timeout ends the protocol with a subclass of this error on every party.
    """

    exit_code = 3

    def diagnostics(self) -> str:
        return str(self)
