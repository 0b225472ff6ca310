"""Salted commitments bind the document, the kind and the salt; the verifier raises."""

import pytest

from ledger_anchor.commitment import SALT_BYTES, commit, new_salt, verify_commitment
from ledger_anchor.errors import EntryError
from ledger_anchor.sm3 import sm3


def test_commitment_is_sm3_of_the_documented_bytes():
    salt = bytes(range(SALT_BYTES))
    expected = sm3(b"settlechain/commitment/v1\nsettlement_statement\n" + salt + b"{}").hex()
    assert commit("settlement_statement", salt, b"{}") == expected


def test_opens_only_to_the_same_kind_salt_and_document():
    salt = new_salt()
    c = commit("invoice", salt, b"doc")
    verify_commitment(c, "invoice", salt, b"doc")
    verify_commitment(c.upper(), "invoice", salt, b"doc")
    for kind, s, doc in (("payment", salt, b"doc"), ("invoice", new_salt(), b"doc"),
                         ("invoice", salt, b"doc "), ("invoice", salt, b"")):
        with pytest.raises(EntryError, match="does not open"):
            verify_commitment(c, kind, s, doc)


def test_salts_are_fresh_and_checked():
    assert new_salt() != new_salt()
    with pytest.raises(EntryError, match="salt must be 32 bytes"):
        commit("invoice", b"short", b"doc")
    with pytest.raises(EntryError, match="kind"):
        commit("Invoice!", new_salt(), b"doc")
