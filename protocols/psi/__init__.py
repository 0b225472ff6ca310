"""Two-party private set intersection with mutual output (KKRT16), placeholder docstring."""

from .elements import ElementSet, PsiResult
from .errors import (DuplicateElementError, InputBoundsError, PeerAbortedError, PsiError,
                     PsiProtocolError, PsiTimeoutError, SessionError, TransportError)
from .roles import ClientRole, PsiConfig, ServerRole
from .transport import (PsiServicer, PsiSession, channel_credentials, run_psi_client,
                        server_credentials)

__all__ = [
    "ClientRole", "DuplicateElementError", "ElementSet", "InputBoundsError", "PeerAbortedError",
    "PsiConfig", "PsiError", "PsiProtocolError", "PsiResult", "PsiServicer", "PsiSession",
    "PsiTimeoutError", "ServerRole", "SessionError", "TransportError", "channel_credentials",
    "run_psi_client", "server_credentials",
]
