"""Canonical entries compared with the obvious computation, and the gmssl backend
driving the whole ledger (appends verified with gmssl, the file verified with tongsuopy)."""

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_anchor import open_ledger, sm2
from ledger_anchor.client import identity_of
from ledger_anchor.entries import KINDS, SignedEntry, canonical_entry_bytes
from ledger_anchor.verify import verify_ledger
from tests.unit.ledger.ledger_consortium import make_consortium

_ascii = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
                 max_size=12)
_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _ascii,
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ascii, inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), fields=st.dictionaries(_ascii, _values, max_size=6))
def test_canonical_bytes_equal_sorted_compact_json(kind: str, fields: dict) -> None:
    """For integers and printable ASCII, RFC 8785 is JSON with sorted keys and no spaces."""
    entry = {**{k: v for k, v in fields.items() if k not in ("kind", "signatures")}, "kind": kind}
    obvious = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    assert canonical_entry_bytes(entry) == obvious
    assert canonical_entry_bytes({**entry, "signatures": "ignored"}) == obvious
    signed = SignedEntry.create(entry, {"B": b"\x02" * 64, "A": b"\x01" * 64})
    assert signed.signed_bytes == obvious
    assert SignedEntry.from_leaf_data(signed.leaf_data) == signed
    stored = json.loads(signed.leaf_data)
    assert stored["signatures"] == [{"signer": "A", "sig": "01" * 64}, {"signer": "B", "sig": "02" * 64}]


def test_gmssl_backend_drives_the_ledger(tmp_path: Path) -> None:
    consortium = make_consortium(tmp_path / "c")
    gmssl = sm2.get_backend("gmssl")
    with open_ledger(consortium.config_path, create=True, sm2_backend="gmssl") as ledger:
        key = sm2.PrivateKey(consortium.member_keys["B"], gmssl)
        items = []
        for i in range(3):
            entry = {"kind": "adjustment", "n": i}
            items.append((entry, {"B": key.sign(canonical_entry_bytes(entry))}))
        ledger.append_many(items)
        ledger.cosign("C", sm2.PrivateKey(consortium.member_keys["C"], gmssl))
    report = verify_ledger(consortium.config.ledger.db, identity_of(consortium.config, sm2.get_backend("tongsuopy")))
    assert report.size == 3 and report.cosignatures == 1


_any_text = st.text(max_size=8)
_any_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _any_text
                           | st.floats(allow_nan=False, allow_infinity=False),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_any_text, inner, max_size=3),
                           max_leaves=10)


@settings(max_examples=150, deadline=None)
@given(fields=st.dictionaries(_any_text, _any_values, max_size=6))
def test_leaf_and_signed_bytes_equal_rfc8785_of_the_whole_object(fields: dict) -> None:
    """Unicode names (UTF-16 ordering), floats: the member-wise assembly equals the
    reference library's serialisation of the whole object."""
    import rfc8785

    entry = {**{k: v for k, v in fields.items() if k != "signatures"}, "kind": "invoice"}
    signed = SignedEntry.create(entry, {"A": b"\x01" * 64})
    assert signed.signed_bytes == rfc8785.dumps(entry)
    assert signed.leaf_data == rfc8785.dumps({**entry, "signatures": [{"signer": "A", "sig": "01" * 64}]})
