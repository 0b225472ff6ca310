"""RFC 9162 Merkle proofs: transparency-dev/merkle vectors (SHA-256), the same cases
with SM3 against a slow RFC transcription, mutation probes, and hypothesis properties."""

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_anchor import merkle
from ledger_anchor.errors import ProofError
from ledger_anchor.sm3 import sm3
from tests.unit.ledger import rfc9162_reference as ref

VECTOR_DIR = Path(__file__).parents[2] / "vectors/ledger/transparency-dev-merkle"
INCLUSION = sorted((VECTOR_DIR / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((VECTOR_DIR / "consistency").rglob("*.json"))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(values: list | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


def _id(path: Path) -> str:
    return str(path.relative_to(VECTOR_DIR))


def test_vendored_vectors_are_all_present() -> None:
    assert len(INCLUSION) == 98 and len(CONSISTENCY) == 98


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_transparency_dev_inclusion_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    call = lambda: merkle.verify_inclusion(merkle.SHA256_HASHER, v["leafIdx"], v["treeSize"],  # noqa: E731
                                           _b64(v["leafHash"]), _proof(v["proof"]), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        assert call() is None


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_transparency_dev_consistency_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    call = lambda: merkle.verify_consistency(merkle.SHA256_HASHER, v["size1"], v["size2"],  # noqa: E731
                                             _proof(v["proof"]), _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        assert call() is None


def _tree(hasher: merkle.LogHasher, leaves: list[bytes]) -> dict:
    frontier = merkle.Frontier(hasher)
    nodes = {}
    for level, index, value in frontier.extend(hasher.hash_leaf(leaf) for leaf in leaves):
        nodes[(level, index)] = value
    return nodes


def _reader(nodes: dict):
    return lambda ids: {node: nodes[node] for node in ids}


def _leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


@pytest.mark.parametrize("hasher", [merkle.SHA256_HASHER, merkle.SM3_HASHER], ids=["sha256", "sm3"])
def test_proof_builder_equals_the_rfc_transcription(hasher: merkle.LogHasher) -> None:
    """Every (index, size) and (size1, size2) with size <= 33, and the happy-path cases
    of the vendored vectors, with both hash functions."""
    h = hasher.hash_fn
    for size in range(1, 34):
        leaves = _leaves(size)
        nodes = _tree(hasher, leaves)
        root = ref.mth(h, leaves)
        assert merkle.root_of(hasher, size, _reader(nodes)) == root
        for index in range(size):
            proof = merkle.inclusion_proof(hasher, index, size, _reader(nodes))
            assert proof == ref.path(h, index, leaves)
            merkle.verify_inclusion(hasher, index, size, hasher.hash_leaf(leaves[index]), proof, root)
        for size1 in range(1, size + 1):
            proof = merkle.consistency_proof(hasher, size1, size, _reader(nodes))
            assert proof == ref.proof(h, size1, leaves)
            merkle.verify_consistency(hasher, size1, size, proof, ref.mth(h, leaves[:size1]), root)


def test_vector_cases_rerun_with_sm3() -> None:
    """The (index, size) / (size1, size2) of every happy-path vector, built and verified with SM3."""
    cases = 0
    for path in INCLUSION + CONSISTENCY:
        v = json.loads(path.read_text())
        if v["wantErr"]:
            continue
        size = v.get("treeSize") or v.get("size2")
        leaves = _leaves(size)
        nodes = _tree(merkle.SM3_HASHER, leaves)
        root = ref.mth(sm3, leaves)
        if "leafIdx" in v:
            proof = merkle.inclusion_proof(merkle.SM3_HASHER, v["leafIdx"], size, _reader(nodes))
            assert proof == ref.path(sm3, v["leafIdx"], leaves)
            assert len(proof) == len(v["proof"] or [])
            merkle.verify_inclusion(merkle.SM3_HASHER, v["leafIdx"], size,
                                    merkle.SM3_HASHER.hash_leaf(leaves[v["leafIdx"]]), proof, root)
        else:
            proof = merkle.consistency_proof(merkle.SM3_HASHER, v["size1"], size, _reader(nodes))
            assert proof == ref.proof(sm3, v["size1"], leaves)
            assert len(proof) == len(v["proof"] or [])
            merkle.verify_consistency(merkle.SM3_HASHER, v["size1"], size, proof,
                                      ref.mth(sm3, leaves[:v["size1"]]), root)
        cases += 1
    assert cases >= 10  # the happy-path files of inclusion/{1..4,...} and consistency/{1..4,...}


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _inclusion_probes(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes):
    yield "index - 1", (index - 1, size, leaf, proof, root)
    yield "index + 1", (index + 1, size, leaf, proof, root)
    yield "size * 2", (index, size * 2, leaf, proof, root)
    yield "size // 2", (index, size // 2, leaf, proof, root)
    yield "trailing garbage", (index, size, leaf, proof + [b"\x00" * 32], root)
    yield "preceding garbage", (index, size, leaf, [b"\x00" * 32] + proof, root)
    if proof:
        yield "removed element", (index, size, leaf, proof[:-1], root)
        yield "inserted element", (index, size, leaf, proof[:1] + [proof[0]] + proof[1:], root)
    for position in range(len(proof)):
        for bit in (0, 7, 255):
            mutated = list(proof)
            mutated[position] = _flip(proof[position], bit)
            yield f"bit {bit} of element {position}", (index, size, leaf, mutated, root)
    yield "wrong leaf", (index, size, _flip(leaf, 3), proof, root)
    yield "wrong root", (index, size, leaf, proof, _flip(root, 100))
    yield "truncated element", (index, size, leaf, [p[:31] for p in proof] or [b"\x00"], root)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 31, 64, 100])
def test_inclusion_mutation_probes_are_all_rejected(size: int) -> None:
    hasher = merkle.SM3_HASHER
    leaves = _leaves(size)
    nodes = _tree(hasher, leaves)
    root = merkle.root_of(hasher, size, _reader(nodes))
    for index in sorted({0, size // 2, size - 1}):
        leaf = hasher.hash_leaf(leaves[index])
        proof = merkle.inclusion_proof(hasher, index, size, _reader(nodes))
        merkle.verify_inclusion(hasher, index, size, leaf, proof, root)
        for description, args in _inclusion_probes(index, size, leaf, proof, root):
            try:
                merkle.verify_inclusion(hasher, *args)
            except ProofError as exc:
                assert "got" in str(exc) and "want" in str(exc), description
            else:
                # Only a probe that describes the same statement may pass.
                raise AssertionError(f"probe accepted: {description} (index {index}, size {size})")


@pytest.mark.parametrize(("size1", "size2"), [(1, 2), (3, 7), (4, 8), (5, 13), (8, 9), (17, 100)])
def test_consistency_mutation_probes_are_all_rejected(size1: int, size2: int) -> None:
    hasher = merkle.SM3_HASHER
    leaves = _leaves(size2)
    nodes = _tree(hasher, leaves)
    root1 = merkle.root_of(hasher, size1, _reader(nodes))
    root2 = merkle.root_of(hasher, size2, _reader(nodes))
    proof = merkle.consistency_proof(hasher, size1, size2, _reader(nodes))
    merkle.verify_consistency(hasher, size1, size2, proof, root1, root2)
    probes = [
        ("size1 - 1", (size1 - 1, size2, proof, root1, root2)),
        ("size1 + 1", (size1 + 1, size2, proof, root1, root2)),
        ("size2 * 2", (size1, size2 * 2, proof, root1, root2)),
        ("size2 // 2", (size1, max(size2 // 2, 1), proof, root1, root2)),
        ("swapped roots", (size1, size2, proof, root2, root1)),
        ("trailing garbage", (size1, size2, proof + [b"\x01" * 32], root1, root2)),
        ("preceding garbage", (size1, size2, [b"\x01" * 32] + proof, root1, root2)),
        ("removed element", (size1, size2, proof[:-1], root1, root2)),
        ("inserted element", (size1, size2, proof[:1] + proof[:1] + proof[1:], root1, root2)),
        ("wrong root1", (size1, size2, proof, _flip(root1, 9), root2)),
        ("wrong root2", (size1, size2, proof, root1, _flip(root2, 9))),
    ]
    for position in range(len(proof)):
        mutated = list(proof)
        mutated[position] = _flip(proof[position], 17)
        probes.append((f"bit 17 of element {position}", (size1, size2, mutated, root1, root2)))
    for description, args in probes:
        with pytest.raises(ProofError):
            merkle.verify_consistency(hasher, *args)
            raise AssertionError(f"probe accepted: {description}")


def test_errors_say_got_and_want() -> None:
    with pytest.raises(ProofError, match=r"got 3, want 4"):
        merkle.verify_inclusion(merkle.SM3_HASHER, 0, 9, b"\x00" * 32, [b"\x00" * 32] * 3, b"\x00" * 32)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 1024), data=st.data())
def test_property_inclusion_and_consistency_for_every_size_up_to_1024(size: int, data: st.DataObject) -> None:
    """Any size up to 1024: proofs built from the stored nodes verify against the root
    computed straight from the leaves (RFC MTH), and a different leaf never verifies."""
    hasher = merkle.SM3_HASHER
    leaves = _leaves(size)
    nodes = _tree(hasher, leaves)
    root = ref.mth(sm3, leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(hasher, index, size, _reader(nodes))
    assert len(proof) == merkle.inclusion_proof_length(index, size)
    merkle.verify_inclusion(hasher, index, size, hasher.hash_leaf(leaves[index]), proof, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(hasher, index, size, hasher.hash_leaf(b"not a leaf"), proof, root)
    size1 = data.draw(st.integers(1, size))
    consistency = merkle.consistency_proof(hasher, size1, size, _reader(nodes))
    merkle.verify_consistency(hasher, size1, size, consistency, ref.mth(sm3, leaves[:size1]), root)


@settings(max_examples=40, deadline=None)
@given(begin=st.integers(0, 5000), length=st.integers(0, 5000))
def test_property_perfect_decomposition_covers_the_range(begin: int, length: int) -> None:
    nodes = merkle.perfect_nodes(begin, begin + length)
    covered = begin
    for level, index in nodes:
        assert index << level == covered  # aligned and contiguous
        covered += 1 << level
    assert covered == begin + length
    assert len(nodes) <= 2 * max(length, 1).bit_length()


def test_every_size_up_to_1024_against_the_memoised_rfc_definition() -> None:
    """Exhaustively, for every tree size 1..1024: the root from stored nodes equals
    MTH (RFC 9162, memoised over ranges), and inclusion proofs of the first, middle and
    last leaf and a consistency proof from size//2 verify against it."""
    import functools

    hasher = merkle.SM3_HASHER
    leaves = _leaves(1024)
    nodes = _tree(hasher, leaves)

    @functools.cache
    def mth(begin: int, end: int) -> bytes:
        if end - begin == 1:
            return hasher.hash_leaf(leaves[begin])
        k = merkle.split_point(end - begin)
        return hasher.hash_children(mth(begin, begin + k), mth(begin + k, end))

    reader = _reader(nodes)
    for size in range(1, 1025):
        root = mth(0, size)
        assert merkle.root_of(hasher, size, reader) == root
        for index in {0, size // 2, size - 1}:
            proof = merkle.inclusion_proof(hasher, index, size, reader)
            merkle.verify_inclusion(hasher, index, size, hasher.hash_leaf(leaves[index]), proof, root)
        old = max(size // 2, 1)
        merkle.verify_consistency(hasher, old, size, merkle.consistency_proof(hasher, old, size, reader),
                                  mth(0, old), root)
