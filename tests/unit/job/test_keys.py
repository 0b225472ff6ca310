"""`keys init` makes a consortium the engine and the ledger both accept and can use."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509

from engine.errors import InputError
from engine.job.consortium import load_consortium
from engine.job.keys import MemberSpec, init_consortium
from ledger_anchor import canonical_entry_bytes, open_ledger, sm2


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    out = tmp_path_factory.mktemp("consortium")
    specs = [MemberSpec("A", "Operator A", 17501, 17511), MemberSpec("B", "Operator B", 17502, 17512),
             MemberSpec("H", "Helper", 17503, 17513)]
    return init_consortium(out, specs, name="unit")


def test_files_and_permissions(consortium):
    base = consortium.parent
    for private in ["ca/ca.key", "ledger/log.key"] + [f"members/{m}/{f}" for m in "ABH"
                                                      for f in ("tls.key", "sm2.key")]:
        mode = stat.S_IMODE((base / private).stat().st_mode)
        assert mode == 0o600, (private, oct(mode))
    loaded = load_consortium(consortium)
    assert [m.id for m in loaded.members] == ["A", "B", "H"]
    ca = x509.load_pem_x509_certificate(loaded.ca_cert.read_bytes())
    for member in loaded.members:
        cert = x509.load_pem_x509_certificate(member.tls_cert.read_bytes())
        assert cert.issuer == ca.subject
        assert cert.subject.rfc4514_string() == f"CN={member.id}"
        cert.verify_directly_issued_by(ca)
        # the SM2 public key in the file belongs to the private key on disk
        private = sm2.load_private_key(member.sm2_key)
        assert sm2.public_key_of(private) == member.sm2_public_key


def test_refuses_to_overwrite(consortium):
    with pytest.raises(InputError, match="refusing to overwrite"):
        init_consortium(consortium.parent, [MemberSpec("A", "a", 1, 2), MemberSpec("B", "b", 3, 4)])


def test_ledger_accepts_members_and_cosigns(consortium):
    loaded = load_consortium(consortium)
    with open_ledger(consortium, create=True) as ledger:
        entry = {"kind": "dataset_commitment", "job_id": "j", "party": "A", "root": "00" * 32,
                 "size": 0}
        key = sm2.load_private_key(loaded.member("A").sm2_key)
        receipt = ledger.append(entry, {"A": sm2.sign(key, canonical_entry_bytes(entry))})
        assert receipt.index == 0
        for member in loaded.members:
            ledger.cosign(member.id, sm2.load_private_key(member.sm2_key))
        assert ledger.final_size() == 1
