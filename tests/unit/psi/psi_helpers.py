"""Shared helpers of the PSI unit tests: random sets with a known intersection, a plaintext join."""

from __future__ import annotations

import numpy as np

from protocols.psi import ElementSet, client_role, server_role
from protocols.psi.sink import run_in_memory


def make_sets(rng: np.random.Generator, n_a: int, n_b: int, common: int, width: int = 30):
    """Two arrays of distinct rows sharing exactly ``common`` rows, each in random order."""
    total = n_a + n_b - common
    rows = np.unique(rng.integers(0, 256, (total + 16, width), dtype=np.uint8), axis=0)
    rows = rows[rng.permutation(rows.shape[0])][:total]
    assert rows.shape[0] == total, "not enough distinct random rows"
    shared, only_a, only_b = rows[:common], rows[common:n_a], rows[n_a:]
    a = np.concatenate([shared, only_a])[rng.permutation(n_a)]
    b = np.concatenate([shared, only_b])[rng.permutation(n_b)]
    return a, b


def plaintext_pairs(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    index = {a[i].tobytes(): i for i in range(a.shape[0])}
    return {(index[b[j].tobytes()], j) for j in range(b.shape[0]) if b[j].tobytes() in index}


def run_pair(a_elements: ElementSet, b_elements: ElementSet, session: bytes = b"test-session",
             a_is_client: bool = True, protocol: str = "kkrt16", **kwargs):
    """Run A and B in memory with ``protocol``; return (result of A, result of B)."""
    if a_is_client:
        ra, rb = run_in_memory(client_role(protocol, session, a_elements),
                               server_role(protocol, session, b_elements), **kwargs)
    else:
        rb, ra = run_in_memory(client_role(protocol, session, b_elements),
                               server_role(protocol, session, a_elements), **kwargs)
    return ra, rb
