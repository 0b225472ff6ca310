"""Transcript canary: B's non-matching elements never reach A, in any form we can think of.

Distinctive values are planted in B's unmatched elements; A's received bytes (every
message from B, serialized) and A's output must not contain them, their SHA-256 or SM3
hashes, or the element digests the protocol itself uses internally.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from psi_helpers import run_pair

from protocols.psi import ElementSet
from protocols.psi.elements import ELEMENT_PERSON


def _sm3(data: bytes) -> bytes:
    try:
        return hashlib.new("sm3", data).digest()
    except ValueError:  # pragma: no cover - OpenSSL without SM3
        from gmssl import sm3, func
        return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


@pytest.mark.parametrize("protocol", ["kkrt16", "rr22"])
@pytest.mark.parametrize("a_is_client", [True, False])
def test_canaries_of_b_never_reach_a(a_is_client, protocol) -> None:
    rng = np.random.default_rng(99)
    shared = [rng.bytes(30) for _ in range(150)]
    only_a = [rng.bytes(30) for _ in range(100)]
    canaries = [b"CANARY%04d-B-unmatched-secret!" % i for i in range(120)]
    a_items = shared + only_a
    b_items = shared + canaries
    received_by_a = bytearray()
    a_receives = "server->client" if a_is_client else "client->server"

    def tap(direction: str, data: bytes) -> None:
        if direction == a_receives:
            received_by_a.extend(data)

    ra, rb = run_pair(ElementSet.from_bytes(a_items), ElementSet.from_bytes(b_items),
                      a_is_client=a_is_client, protocol=protocol, tap=tap)
    assert len(ra) == len(rb) == 150
    assert len(received_by_a) > 120 * 10, "the tap saw the transcript"
    transcript = bytes(received_by_a)
    output = ra.pair_ids.tobytes() + ra.local_indices.tobytes()
    forbidden = []
    for canary in canaries:
        forbidden += [canary, canary[:12], canary[-12:], hashlib.sha256(canary).digest(),
                      hashlib.sha256(canary).digest()[:8], _sm3(canary), _sm3(canary)[:8],
                      hashlib.blake2b(canary, digest_size=16, person=ELEMENT_PERSON).digest()[:8]]
    for needle in forbidden:
        assert needle not in transcript
        assert needle not in output
    # control: the same search does find a planted needle, so it could fail
    assert transcript[100:112] in transcript
