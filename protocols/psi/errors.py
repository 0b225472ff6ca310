"""Errors of the PSI protocol.  All derive from :class:`protocols.errors.ProtocolError`.

Each error says what was expected and what was found.  A malformed, truncated,
replayed or out-of-order message raises :class:`PsiProtocolError` on the party that
sees it; that party sends an ``Abort`` naming the reason, and the peer raises
:class:`PeerAbortedError` with the same reason, so both sides end with a clear error.
"""

from __future__ import annotations

from protocols.errors import ProtocolError


class PsiError(ProtocolError):
    """Base class of the errors of ``protocols.psi``."""


class DuplicateElementError(PsiError):
    """An element set contains the same element twice.

    ``index`` is the position of the later copy, ``first_index`` the earlier one.
    """

    def __init__(self, index: int, first_index: int) -> None:
        super().__init__(
            f"duplicate element: element {index} equals element {first_index} "
            "(expected distinct elements)"
        )
        self.index = index
        self.first_index = first_index


class InputBoundsError(PsiError):
    """A set size, session id or parameter is outside the configured bounds."""


class PsiProtocolError(PsiError):
    """A message was malformed, truncated, replayed, out of order or inconsistent."""


class PeerAbortedError(PsiError):
    """The peer ended the run with an ``Abort`` message; ``reason`` is its text."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"peer aborted the PSI run: {reason}")
        self.reason = reason


class PsiTimeoutError(PsiError):
    """No message from the peer within the configured timeout (the peer vanished or stalled)."""


class SessionError(PsiError):
    """Unknown, duplicate or already used session id (a session id runs once)."""


class PeerRefusedError(PsiError):
    """The connecting peer is not the member the session was offered to.

    Raised (and passed to the ``on_refused`` callback) on the serving side when a client's
    TLS certificate names another member, or none; raised on the client side when the
    server refused it (gRPC status PERMISSION_DENIED).  ``expected`` is the member id the
    session names, ``common_name``, ``subject`` and ``fingerprint_sha256`` describe the
    certificate the peer presented (None where unknown, e.g. on the client side).
    """

    def __init__(self, message: str, *, expected: str | None = None, common_name: str | None = None,
                 subject: str | None = None, fingerprint_sha256: str | None = None,
                 session_id: bytes | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.common_name = common_name
        self.subject = subject
        self.fingerprint_sha256 = fingerprint_sha256
        self.session_id = session_id


class TransportError(PsiError):
    """The gRPC stream failed (connection refused or reset, TLS handshake failure, …)."""
