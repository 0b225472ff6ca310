"""A bucket worker refuses every bucket and peer its signed manifest does not name.

Real gRPC over loopback with the consortium's mutual-TLS certificates: A's worker is a
:class:`BucketWorker` in this process; "B's worker" is a :class:`PairClient` with the
certificate under test.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import polars as pl
import pytest

from engine.job import session_pb2
from engine.job.consortium import load_consortium
from engine.job.keys import MemberSpec, init_consortium
from engine.job.local import free_ports
from engine.job.session import bucket_step
from engine.job.tls import TlsIdentity
from engine.ingest.stream import BUCKET_RECORDS_SCHEMA, IngestWork
from engine.partition import local_partition
from engine.rules import load_rules
from engine.scale.errors import ManifestError, PeerRefused
from engine.scale.identity import issue_worker_identities
from engine.scale.manifest import SignedManifest, WorkerSlot, build_manifest
from engine.scale.pair import PairClient
from engine.scale.worker import BucketWorker, RangeTask, WorkerSetup, cert_sha256
from engine.side import SidePlan
from ledger_anchor import sm2
from protocols.psi import ElementSet, run_psi_client

ROOT = Path(__file__).resolve().parents[3]
NONCE = b"\x07" * 16
JOB = "job-refusals"


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    folder = tmp_path_factory.mktemp("consortium")
    ports = free_ports(6)
    specs = [MemberSpec(m, m, ports[i], ports[3 + i]) for i, m in enumerate(("CMCC", "CUCC", "CTCC"))]
    return load_consortium(init_consortium(folder, specs, name="refusals"))


def _identity(consortium, member_id, cert=None, key=None) -> TlsIdentity:
    member = consortium.member(member_id)
    return TlsIdentity.load(member_id, consortium.ca_cert, cert or member.tls_cert,
                            key or member.tls_key)


class _A:
    """A's worker of range 0 (buckets 0..1 of 4), running in a thread."""

    def __init__(self, consortium, tmp_path, *, a_cert=None, sign_b_with="CUCC", b_cert=None):
        self.worker = BucketWorker(WorkerSetup(
            index=0, role="A", member_id="CMCC", consortium=str(consortium.path),
            listen_host="127.0.0.1", connect_timeout_s=10, stage_timeout_s=10,
            peer_silence_s=5))
        info = self.worker.start()
        self.endpoint = info["endpoint"]
        b_fp = b_cert or cert_sha256(consortium.member("CUCC").tls_cert.read_bytes())
        offers = {"A": [WorkerSlot(self.endpoint, a_cert or info["cert_sha256"]),
                        WorkerSlot("127.0.0.1:1", "ab" * 32)],
                  "B": [WorkerSlot("", b_fp), WorkerSlot("", "cd" * 32)]}
        partition = local_partition(4)
        manifest = build_manifest(job_id=JOB, session_nonce=NONCE, n_buckets=4,
                                  partition=partition.fingerprint(),
                                  members={"A": "CMCC", "B": "CUCC"}, offers=offers)
        data = manifest.signing_bytes()
        keys = {m.id: sm2.load_private_key(m.sm2_key) for m in consortium.members}
        self.signed = SignedManifest(manifest, {"A": sm2.sign(keys["CMCC"], data),
                                                "B": sm2.sign(keys[sign_b_with], data)})
        plan = SidePlan("A", load_rules(ROOT / "docs" / "example_rules.toml"), None, partition,
                        tmp_path / "work-A")
        work = IngestWork(plan.work)
        work.prepare(4)
        for bucket in range(4):  # one record per bucket: A gets to its first step
            record = {c: [False if c == "excluded" else 0] for c in BUCKET_RECORDS_SCHEMA}
            record.update(calling=[861390000000 + bucket], called=[861380000000], service=[1],
                          start=[1_790_000_000], duration_s=[60], charge=[10], rated_charge=[10],
                          parts=[1])
            pl.DataFrame(record, schema=BUCKET_RECORDS_SCHEMA) \
                .write_parquet(work.bucket_file(bucket, "records.parquet"))
        self.task = RangeTask(signed=self.signed.to_json(), range_index=0, job_id=JOB,
                              session_nonce=NONCE, job_secret=b"\x01" * 32, plan=plan)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.worker.run(self.task)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc

    def client(self, identity: TlsIdentity) -> PairClient:
        channel = identity.channel(self.endpoint, "CMCC", 5)
        return PairClient(channel, job_id=JOB, manifest_sm3=self.signed.manifest.sm3(),
                          bucket_range=self.signed.manifest.range(0), stage_timeout_s=10)

    def stop(self):
        self.thread.join(15)
        self.worker.stop()


def test_a_step_for_a_bucket_outside_the_range_stops_both_workers(consortium, tmp_path):
    a = _A(consortium, tmp_path)
    a.thread.start()
    try:
        b = a.client(_identity(consortium, "CUCC"))
        assert b.open({}, 10) == set()
        with pytest.raises(PeerRefused, match=r"bucket 3, outside range 0 \(buckets 0\.\.1\)"):
            b.exchange(bucket_step(3, 0, "S1"), pass_ready=session_pb2.PassReady(
                bucket=3, pass_name="S1", attempt=0, elements=1))
        b.close()
    finally:
        a.stop()
    assert isinstance(a.error, PeerRefused) and "bucket 3" in str(a.error)


@pytest.mark.parametrize("who", ["helper", "another worker of B"])
def test_a_peer_not_in_the_manifest_is_refused_before_any_protocol_message(consortium, tmp_path, who):
    a = _A(consortium, tmp_path)
    a.thread.start()
    try:
        if who == "helper":
            identity = _identity(consortium, "CTCC")
            expected = "certificate of 'CTCC'"
        else:  # CN CUCC, issued by the consortium CA, but not the certificate the manifest names
            (cert, key), = issue_worker_identities(consortium.ca_cert,
                                                   consortium.ca_cert.parent / "ca.key", "CUCC",
                                                   ["127.0.0.1"], tmp_path / "certs")
            identity = _identity(consortium, "CUCC", cert, key)
            expected = "certificate of 'CUCC'"
        with pytest.raises(PeerRefused, match=expected):
            a.client(identity).open({}, 10)
        # the PSI service behind the same gate: no session for it either
        channel = identity.channel(a.endpoint, "CMCC", 5)
        with pytest.raises(Exception) as caught:
            run_psi_client(channel, b"\x00" * 16, ElementSet.from_fixed(
                __import__("numpy").zeros((1, 16), dtype="uint8")), 5)
        assert "not in the worker manifest" in str(caught.value) or \
            "PERMISSION_DENIED" in str(caught.value), caught.value
        channel.close()
        assert len(a.worker._gate.refusals) >= 2
        # the rightful B's worker still gets in
        b = a.client(_identity(consortium, "CUCC"))
        assert b.open({}, 10) == set()
        b.close()
    finally:
        a.worker._host.refused = "test over"  # end A's wait for the epoch
        a.stop()


def test_a_worker_refuses_a_manifest_signed_by_the_wrong_key(consortium, tmp_path):
    a = _A(consortium, tmp_path, sign_b_with="CTCC")
    try:
        with pytest.raises(ManifestError, match="B's .CUCC. signature on the worker manifest"):
            a.worker.run(a.task)
    finally:
        a.worker.stop()


def test_a_worker_refuses_a_range_the_manifest_gives_another_certificate(consortium, tmp_path):
    a = _A(consortium, tmp_path, a_cert="ef" * 32)
    try:
        with pytest.raises(ManifestError, match="this worker's is"):
            a.worker.run(a.task)
    finally:
        a.worker.stop()


def test_an_unauthenticated_client_cannot_reach_a_worker(consortium, tmp_path):
    a = _A(consortium, tmp_path)
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=consortium.ca_cert.read_bytes())  # no client certificate
        channel = grpc.secure_channel(a.endpoint, credentials,
                                      options=[("grpc.ssl_target_name_override", "CMCC")])
        with pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(channel).result(timeout=3)
        channel.close()
    finally:
        a.worker.stop()
