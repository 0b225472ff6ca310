"""`settlechain ledger serve` as a real process, reached over gRPC with mutual TLS."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger_anchor import merkle, open_ledger
from ledger_anchor.bundle import check_bundle
from ledger_anchor.client import identity_of
from ledger_anchor.config import load_config
from ledger_anchor.errors import EntryError, StorageError, TransportError
from ledger_anchor.note import Checkpoint, Note
from ledger_anchor.remote import RemoteLedger
from ledger_anchor.verify import verify_ledger
from tests.integration.ledger.processes import stop_service
from tests.unit.ledger.ledger_consortium import make_consortium


@pytest.fixture
def service(tmp_path: Path):
    consortium = make_consortium(tmp_path / "c", finality_threshold=2)
    open_ledger(consortium.config_path, create=True).close()
    port_file = tmp_path / "port"
    settlechain = Path(sys.executable).parent / "settlechain"
    process = subprocess.Popen([str(settlechain), "ledger", "serve", "--config", str(consortium.config_path),
                                "--db", str(consortium.config.ledger.db), "--listen", "127.0.0.1:0",
                                "--port-file", str(port_file)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "service did not start"
        time.sleep(0.05)
    endpoint = f"localhost:{port_file.read_text().strip()}"
    yield consortium, endpoint
    stop_service(process)


def _remote_config(consortium, endpoint: str, tmp_path: Path):
    text = consortium.config_path.read_text().replace('endpoint = ""', f'endpoint = "{endpoint}"')
    path = consortium.root / "remote.toml"
    path.write_text(text)
    return load_config(path)


def test_remote_client_has_the_embedded_api(service, tmp_path: Path) -> None:
    consortium, endpoint = service
    config = _remote_config(consortium, endpoint, tmp_path)
    with open_ledger(config, member_id="B") as ledger:
        assert isinstance(ledger, RemoteLedger)
        items = []
        for i in range(6):
            entry = {"kind": "settlement_statement", "job_id": f"j{i}", "a_total": i}
            items.append((entry, consortium.sign(entry, "A", "B")))
        receipts = ledger.append_many(items[:4]) + [ledger.append(*item) for item in items[4:]]
        assert [r.index for r in receipts] == list(range(6))
        assert ledger.size() == 6 and ledger.entry(2)["job_id"] == "j2"
        assert [e["job_id"] for e in ledger.entries(1, 4)] == ["j1", "j2", "j3"]
        root = Checkpoint.parse_body(Note.parse(ledger.checkpoint()).text).root
        proof = ledger.inclusion_proof(3, 6)
        merkle.verify_inclusion(merkle.SM3_HASHER, 3, 6, receipts[3].leaf_hash, proof, root)
        old_root = Checkpoint.parse_body(Note.parse(ledger.checkpoint(4)).text).root
        merkle.verify_consistency(merkle.SM3_HASHER, 4, 6, ledger.consistency_proof(4, 6), old_root, root)
        for member in ("A", "C"):
            ledger.cosign(member, consortium.member_keys[member], state_path=tmp_path / f"{member}.json")
        assert ledger.final_size() == 6
        identity = identity_of(config)
        report = check_bundle(ledger.proof_bundle(5).format(), origin=identity.origin, log_key=identity.log_key,
                              members=identity.members, min_cosignatures=2)
        assert report.final
        bad = {"kind": "invoice", "n": 1}
        with pytest.raises(EntryError, match="unknown signer"):
            ledger.append(bad, {"Z": consortium.sign(bad, "A")["A"]})
        with pytest.raises(EntryError, match="does not verify"):
            ledger.append(bad, consortium.sign({"kind": "invoice", "n": 2}, "A"))
        with pytest.raises(StorageError):
            ledger.inclusion_proof(0, 99)
    verify_ledger(consortium.config.ledger.db, identity_of(consortium.config))


def test_peers_without_a_consortium_certificate_are_refused(service, tmp_path: Path) -> None:
    consortium, endpoint = service
    stranger = make_consortium(tmp_path / "stranger", ca_name="Other CA")
    # A member-looking client whose certificate comes from another CA: refused in the handshake.
    for name in ("ca/ca.crt",):
        shutil.copy(consortium.root / name, stranger.root / name)  # trusts our CA as server root ...
    config = _remote_config(stranger, endpoint, tmp_path)
    with RemoteLedger(config, member_id="A", timeout_s=5) as ledger:  # ... but presents a foreign cert
        with pytest.raises(TransportError):
            ledger.size()


def test_reads_are_open_to_ca_certificates_but_writes_need_a_member(service, tmp_path: Path) -> None:
    consortium, endpoint = service
    # The service read the members' certificates at start-up.  Now client "A" presents the
    # ledger's own certificate: CA-issued, but not any member's.
    for name in ("tls.crt", "tls.key"):
        shutil.copy(consortium.root / "ledger" / name, consortium.root / "members/A" / name)
    config = _remote_config(consortium, endpoint, tmp_path)
    with RemoteLedger(config, member_id="A", timeout_s=5) as ledger:
        assert ledger.size() == 0
        entry = {"kind": "invoice", "n": 1}
        with pytest.raises(TransportError, match="member"):
            ledger.append(entry, consortium.sign(entry, "A"))


def test_malformed_messages_get_clear_errors_and_the_service_keeps_serving(service, tmp_path: Path) -> None:
    from ledger_anchor import ledger_pb2

    consortium, endpoint = service
    config = _remote_config(consortium, endpoint, tmp_path)
    with RemoteLedger(config, member_id="A", timeout_s=10) as ledger:
        stub = ledger._stub
        bad_requests = [
            ("Append", ledger_pb2.AppendRequest(entries=[ledger_pb2.SignedEntry(entry_json=b"\xff{")])),
            ("Append", ledger_pb2.AppendRequest(entries=[ledger_pb2.SignedEntry(
                entry_json=b'{"kind":"invoice"}', signatures=[ledger_pb2.Signature(signer="A", signature=b"x" * 64)] * 2)])),
            ("Append", ledger_pb2.AppendRequest(entries=[ledger_pb2.SignedEntry(
                entry_json=b'[1,2]', signatures=[ledger_pb2.Signature(signer="A", signature=b"x" * 3)])])),
            ("GetEntries", ledger_pb2.GetEntriesRequest(start=5, end=2)),
            ("GetEntries", ledger_pb2.GetEntriesRequest(start=0, end=5000)),
            ("GetInclusionProof", ledger_pb2.InclusionProofRequest(index=3, tree_size=2)),
            ("GetConsistencyProof", ledger_pb2.ConsistencyProofRequest(first_size=3, second_size=2)),
            ("AddCosignature", ledger_pb2.AddCosignatureRequest(member_id="A", tree_size=0, signature_line="junk\n")),
            ("ReportFork", ledger_pb2.ReportForkRequest(reason="x", first_checkpoint="a", second_checkpoint="b")),
        ]
        import grpc

        for name, request in bad_requests:
            with pytest.raises(grpc.RpcError) as info:
                getattr(stub, name)(request, timeout=10)
            assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                         grpc.StatusCode.FAILED_PRECONDITION), (name, info.value)
            assert info.value.details(), name
        entry = {"kind": "invoice", "n": 1}
        assert ledger.append(entry, consortium.sign(entry, "A")).index == 0


def test_a_client_without_a_certificate_is_refused(service) -> None:
    import grpc

    from ledger_anchor import ledger_pb2, ledger_pb2_grpc

    consortium, endpoint = service
    credentials = grpc.ssl_channel_credentials(root_certificates=(consortium.root / "ca/ca.crt").read_bytes())
    with grpc.secure_channel(endpoint, credentials) as channel:
        with pytest.raises(grpc.RpcError) as info:
            ledger_pb2_grpc.LedgerServiceStub(channel).GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_remote_witness_without_state_uses_the_logs_record(service, tmp_path: Path) -> None:
    consortium, endpoint = service
    config = _remote_config(consortium, endpoint, tmp_path)
    with RemoteLedger(config, member_id="C", timeout_s=10) as ledger:
        assert ledger.last_cosigned("C") is None
        entry = {"kind": "payment", "n": 1}
        ledger.append(entry, consortium.sign(entry, "C"))
        ledger.cosign("C", consortium.member_keys["C"])
        assert "\n1\n" in ledger.last_cosigned("C")
        ledger.append(entry, consortium.sign(entry, "C"))
        assert ledger.cosign("C", consortium.member_keys["C"]).size == 2  # checked consistency 1 -> 2
