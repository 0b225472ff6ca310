"""SM3 known answers (GB/T 32905-2016) for whichever implementation is active, and
agreement of the two implementations (hashlib/OpenSSL and cryptography)."""

import json
from pathlib import Path

import pytest

from ledger_anchor import sm3 as sm3_module
from ledger_anchor.sm3 import _CryptographySM3, sm3, sm3_hasher

VECTORS = json.loads((Path(__file__).parents[2] / "vectors/ledger/sm3.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_sm3_known_answers(vector: dict) -> None:
    message = vector["message_ascii"].encode("ascii") * vector["repeat"]
    assert sm3(message).hex() == vector["digest"]
    fallback = _CryptographySM3()
    fallback.update(message)
    assert fallback.digest().hex() == vector["digest"]


def test_incremental_hashing_matches_one_shot() -> None:
    data = bytes(range(256)) * 5
    hasher = sm3_hasher()
    for start in range(0, len(data), 37):
        hasher.update(data[start:start + 37])
    assert hasher.digest() == sm3(data)
    assert sm3_module.BACKEND in ("hashlib", "cryptography")
