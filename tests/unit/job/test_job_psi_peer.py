"""The job offers each PSI session only to B's member, with the protocol A and B agreed on.

protocols.psi tests the servicer's refusal over real TLS (tests/unit/psi/
test_psi_peer_identity.py); this checks that the engine hands it the right member and
protocol, so that H (or any other member) holding a consortium certificate is refused.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine.job.buckets import PsiPeer
from engine.job.jobfile import DEFAULT_PSI_PROTOCOL, PSI_PROTOCOLS
from protocols.psi import ElementSet, PsiServicer
from protocols.psi.transport import PeerIdentity


def _elements() -> ElementSet:
    return ElementSet.from_fixed(np.arange(32, dtype=np.uint64).view(np.uint8).reshape(32, 8))


@pytest.mark.parametrize("protocol", PSI_PROTOCOLS)
def test_a_offers_its_session_to_b_only_with_the_agreed_protocol(protocol):
    servicer = PsiServicer()
    peer = PsiPeer("A", servicer=servicer, peer="CUCC", protocol=protocol)
    session = peer.offer(os.urandom(16), _elements(), 30.0)
    assert session.peer == "CUCC" and session.protocol == protocol
    assert session.check_peer(PeerIdentity(tls=True, common_name="CUCC")) is None
    for other in (PeerIdentity(tls=True, common_name="CBN"),       # the helper's certificate
                  PeerIdentity(tls=True, common_name="CMCC"),      # A's own
                  PeerIdentity(tls=False)):                        # no certificate
        refusal = session.check_peer(other)
        assert refusal is not None and "expects member 'CUCC'" in str(refusal)


def test_a_never_offers_a_session_open_to_anyone():
    """A PsiPeer of A without B's member id would offer a plaintext-only session: refused
    at once rather than run."""
    with pytest.raises(AssertionError):
        PsiPeer("A", servicer=PsiServicer()).offer(os.urandom(16), _elements(), 30.0)


def test_the_job_default_is_rr22_and_known_to_protocols_psi():
    assert DEFAULT_PSI_PROTOCOL == "rr22" and DEFAULT_PSI_PROTOCOL in PSI_PROTOCOLS
