"""Issue 11 item 4: the receiver's match positions do not reveal which cuckoo hash function
placed an element.

Before, the client sent p = k·n_S + e (k: the hash function, e: the server's element), so
the server learned k, which depends on the client's *other* elements.  Now only e travels.
The tests decode every Matches message the server receives.
"""

from __future__ import annotations

import random

import numpy as np
from psi_helpers import make_sets, plaintext_pairs

from protocols.psi import ClientRole, ElementSet, ServerRole
from protocols.psi.psi_pb2 import PsiMessage
from protocols.psi.sink import run_in_memory


def _seeded(seed: int):
    source = random.Random(seed)
    return lambda n: source.randbytes(n)


def _run(a_rows, b_rows, server_seed=1):
    """A is the client (receiver), B the server with a deterministic rng (same permutation)."""
    client = ClientRole(b"positions", ElementSet.from_fixed(a_rows))
    server = ServerRole(b"positions", ElementSet.from_fixed(b_rows), rng=_seeded(server_seed))
    sent: list[np.ndarray] = []

    def tap(direction: str, data: bytes) -> None:
        message = PsiMessage.FromString(data)
        if direction == "client->server" and message.WhichOneof("body") == "matches":
            sent.append(np.frombuffer(message.matches.positions, "<u4").astype(np.int64))

    ra, rb = run_in_memory(client, server, tap=tap)
    positions = np.concatenate(sent) if sent else np.empty(0, np.int64)
    return ra, rb, positions, client, server


def test_positions_name_server_elements_only() -> None:
    a, b = make_sets(np.random.default_rng(3), 3000, 2000, 1500)
    ra, rb, positions, client, server = _run(a, b)
    n_s = len(b)
    # the client's table placed matched elements with every hash function, including k = 1, 2
    receiver = client._receiver
    matched_bins = np.flatnonzero(np.isin(receiver.bin_element, ra.local_indices))
    functions = set(receiver.bin_function[matched_bins].tolist())
    assert functions == {0, 1, 2}, "the probe needs elements placed by every hash function"
    # what the server received is exactly the matched elements' places in its own order
    assert positions.size == 1500 and positions.max() < n_s
    assert np.all(np.diff(positions) > 0)
    assert set(server._sender.permutation[positions].tolist()) == set(rb.local_indices.tolist())
    # the old encoding would have sent k·n_S + e, i.e. values >= n_S for k >= 1
    assert not np.any(positions >= n_s)


def test_positions_do_not_depend_on_the_clients_other_elements() -> None:
    """The same intersection with different non-matching client elements changes where the
    client's cuckoo table puts the matched elements, but not one byte of the positions sent."""
    rng = np.random.default_rng(4)
    a, b = make_sets(rng, 2500, 2000, 1200)
    shared = {r.tobytes() for r in a} & {r.tobytes() for r in b}
    extra = np.unique(rng.integers(0, 256, (4000, 30), dtype=np.uint8), axis=0)
    a2 = np.concatenate([np.array([r for r in a if r.tobytes() in shared]), extra])
    a2 = a2[rng.permutation(a2.shape[0])]
    run1 = _run(a, b)
    run2 = _run(a2, b)

    def placement(run):
        ra, client = run[0], run[3]
        receiver = client._receiver
        rows = {client.elements.digests[i].tobytes(): i for i in ra.local_indices}
        out = {}
        for bin_index in np.flatnonzero(receiver.bin_element >= 0):
            e = int(receiver.bin_element[bin_index])
            key = client.elements.digests[e].tobytes()
            if key in rows:
                out[key] = int(receiver.bin_function[bin_index])
        return out

    p1, p2 = placement(run1), placement(run2)
    assert p1.keys() == p2.keys() and len(p1) == 1200
    assert sum(p1[k] != p2[k] for k in p1) > 100, "the other elements moved the matched ones"
    assert np.array_equal(run1[2], run2[2]), "the server sees the same positions either way"


def test_results_equal_the_plaintext_join_in_both_roles() -> None:
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        n_a, n_b = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
        a, b = make_sets(rng, n_a, n_b, int(rng.integers(0, min(n_a, n_b) + 1)))
        ra, rb, _, _, _ = _run(a, b, server_seed=seed)
        assert set(zip(ra.local_indices.tolist(), rb.local_indices.tolist())) == plaintext_pairs(a, b)
        assert np.array_equal(ra.pair_ids, rb.pair_ids)
