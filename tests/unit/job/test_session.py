"""The job session: agreement, ordered steps, aborts, identity — over real gRPC with mTLS."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from engine.job import session_pb2
from engine.job.tls import issue_member_cert, make_ca
from engine.job.session import (
    BUCKETS, PROTOCOL_VERSION, HostLink, JobSessionServicer, RemoteLink, SessionAborted,
    SessionHost, bucket_step,
)
from engine.job.tls import TlsIdentity

MEMBERS = {"A": "opA", "B": "opB", "H": "helper"}


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def identities():
    ca_key, ca_cert = make_ca("test CA")
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    out = {}
    for member in list(MEMBERS.values()) + ["intruder"]:
        key, cert = issue_member_cert(ca_key, ca_cert, member, "127.0.0.1")
        out[member] = TlsIdentity(member, ca_pem, cert.public_bytes(serialization.Encoding.PEM),
                                  _pem_key(key))
    # a member certificate from another CA
    other_key, other_ca = make_ca("rogue CA")
    key, cert = issue_member_cert(other_key, other_ca, "opB", "127.0.0.1")
    out["rogue-opB"] = TlsIdentity("opB", ca_pem, cert.public_bytes(serialization.Encoding.PEM),
                                   _pem_key(key))
    return out


def hello(role: str, job: str = "job-1", rules: str = "r" * 64) -> session_pb2.Hello:
    return session_pb2.Hello(job_id=job, role=role, member_id=MEMBERS[role], rules_sm3=rules,
                             protocol_version=PROTOCOL_VERSION)


def agree(hellos):
    hashes = {h.rules_sm3 for h in hellos.values()}
    if len(hashes) != 1:
        return "rules differ: " + ", ".join(f"{r}={h.rules_sm3[:8]}" for r, h in hellos.items())
    return None


# a short job: a step of A and B, the buckets, then a step of all three
STEPS = (("partition", ("A", "B"), "partition"), (BUCKETS, ("A", "B"), ""),
         ("candidates", ("A", "B", "H"), "candidates"))


def sizes_check(posts):
    if posts["A"].partition.estimated_rows > 100:
        return "circuit breaker: too big"
    return None


class Harness:
    def __init__(self, identities, steps=STEPS, checks=None):
        self.host = SessionHost("job-1", MEMBERS, agree, steps=steps,
                                checks=checks or {"partition": sizes_check})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        from engine.job import session_pb2_grpc
        session_pb2_grpc.add_JobSessionServicer_to_server(
            JobSessionServicer(self.host, connect_timeout_s=5, stage_timeout_s=5), self.server)
        self.port = self.server.add_secure_port("127.0.0.1:0",
                                                identities["opA"].server_credentials())
        self.server.start()
        self.identities = identities
        self.aborts: dict[str, str] = {}

    def link(self, role: str, identity: str | None = None) -> RemoteLink:
        ident = self.identities[identity or MEMBERS[role]]
        channel = ident.channel(f"127.0.0.1:{self.port}", "opA", peer_silence_s=4)
        return RemoteLink(channel, "job-1", role, stage_timeout_s=5, connect_timeout_s=3,
                          on_abort=lambda reason: self.aborts.setdefault(role, reason))

    def local(self) -> HostLink:
        return HostLink(self.host, "A", stage_timeout_s=5, connect_timeout_s=5)

    def close(self):
        self.server.stop(0)

    def joined(self):
        a, b, hh = self.local(), self.link("B"), self.link("H")
        replies = run_parallel(lambda: a.join(hello("A")), lambda: b.join(hello("B")),
                               lambda: hh.join(hello("H")))
        assert all(isinstance(r, session_pb2.JoinReply) and r.ok for r in replies), replies
        return a, b, hh


def part(rows=1):
    return {"partition": session_pb2.Partition(share=b"s" * 32, estimated_rows=rows)}


def ready(bucket, name="S1"):
    return {"pass_ready": session_pb2.PassReady(bucket=bucket, pass_name=name)}


def cand(n=0):
    return {"candidates": session_pb2.Candidates(pairs=n)}


def run_parallel(*fns):
    results: list = [None] * len(fns)

    def wrap(i, fn):
        try:
            results[i] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_join_and_steps_in_order(identities):
    h = Harness(identities)
    try:
        a, b, hh = h.local(), h.link("B"), h.link("H")
        replies = run_parallel(lambda: a.join(hello("A")), lambda: b.join(hello("B")),
                               lambda: hh.join(hello("H")))
        assert all(r.ok for r in replies)
        assert len({r.session_nonce for r in replies}) == 1
        assert [p.role for p in replies[0].parties] == ["A", "B", "H"]
        s1 = run_parallel(lambda: a.exchange("partition", **part(1)),
                          lambda: b.exchange("partition", **part(2)))
        assert s1[0]["B"].partition.estimated_rows == 2 and s1[1]["A"].partition.estimated_rows == 1
        for bucket in range(2):
            got = run_parallel(lambda: a.exchange(bucket_step(bucket, 0, "S1"), **ready(bucket)),
                               lambda: b.exchange(bucket_step(bucket, 0, "S1"), **ready(bucket)))
            assert got[0]["B"].pass_ready.bucket == bucket
        s2 = run_parallel(lambda: a.exchange("candidates", **cand(3)),
                          lambda: b.exchange("candidates", **cand(3)),
                          lambda: hh.exchange("candidates", **cand(0)))
        assert s2[2]["A"].candidates.pairs == 3
        assert h.host.finished and h.host.abort_reason is None
    finally:
        h.close()


def test_rules_mismatch_gives_every_party_the_same_reason(identities):
    h = Harness(identities)
    try:
        a, b, hh = h.local(), h.link("B"), h.link("H")
        results = run_parallel(lambda: a.join(hello("A")),
                               lambda: b.join(hello("B", rules="x" * 64)),
                               lambda: hh.join(hello("H")))
        assert all(isinstance(r, SessionAborted) for r in results), results
        reasons = {r.reason for r in results}
        assert len(reasons) == 1 and "rules differ" in reasons.pop()
    finally:
        h.close()


def test_a_check_of_the_host_stops_everyone_with_its_reason(identities):
    h = Harness(identities)
    try:
        a, b, hh = h.joined()
        results = run_parallel(lambda: a.exchange("partition", **part(1000)),
                               lambda: b.exchange("partition", **part(1)),
                               lambda: hh.exchange("candidates", **cand()))
        assert all(isinstance(r, SessionAborted) for r in results), results
        assert {r.reason for r in results} == {"circuit breaker: too big"}
    finally:
        h.close()


@pytest.mark.parametrize("a_step, b_step, why", [
    (("partition", part()), ("candidates", cand()), "out of order"),
    (("partition", part()), ("partition", cand()), "with a candidates message; expected partition"),
    (("partition", part()), ("bucket:0:0:S1", ready(0)), "before the commitments"),
    (("partition", part()), ("nonsense", cand()), "that the job does not have"),
])
def test_out_of_order_or_mistyped_steps_abort_everyone(identities, a_step, b_step, why):
    steps = (("partition", ("A", "B"), "partition"),
             ("commitments", ("A", "B"), "commitment"), (BUCKETS, ("A", "B"), ""),
             ("candidates", ("A", "B", "H"), "candidates"))
    h = Harness(identities, steps=steps)
    try:
        a, b, _ = h.joined()
        results = run_parallel(lambda: a.exchange(a_step[0], **a_step[1]),
                               lambda: b.exchange(b_step[0], **b_step[1]))
        assert all(isinstance(r, SessionAborted) for r in results), results
        assert why in results[1].reason and results[0].reason == results[1].reason
    finally:
        h.close()


def test_buckets_must_be_taken_in_lockstep(identities):
    h = Harness(identities)
    try:
        a, b, _ = h.joined()
        run_parallel(lambda: a.exchange("partition", **part()),
                     lambda: b.exchange("partition", **part()))
        results = run_parallel(lambda: a.exchange(bucket_step(0, 0, "S1"), **ready(0)),
                               lambda: b.exchange(bucket_step(1, 0, "S1"), **ready(1)))
        assert all(isinstance(r, SessionAborted) for r in results), results
    finally:
        h.close()


def test_helper_cannot_take_bucket_steps(identities):
    h = Harness(identities)
    try:
        a, b, hh = h.joined()
        run_parallel(lambda: a.exchange("partition", **part()),
                     lambda: b.exchange("partition", **part()))
        with pytest.raises(SessionAborted, match="only A and B go through buckets"):
            hh.exchange(bucket_step(0, 0, "S1"), **ready(0))
    finally:
        h.close()


def test_wrong_member_for_role_is_refused_named_and_stops_the_job(identities, caplog):
    h = Harness(identities)
    try:
        intruder = h.link("B", identity="intruder")
        with caplog.at_level("ERROR", logger="engine.job.session"):
            with pytest.raises(SessionAborted, match="belongs to member 'opB'"):
                intruder.join(hello("B"))
        assert "B" not in h.host._hellos
        # the job stops at once on every party, naming the certificate
        reason = h.host.abort_reason
        assert reason is not None and "certificate of 'intruder'" in reason
        assert "CN=intruder" in reason and "SHA-256" in reason
        assert any("CN=intruder" in r.getMessage() for r in caplog.records)
        a = h.local()
        with pytest.raises(SessionAborted, match="certificate of 'intruder'"):
            a.join(hello("A"))
    finally:
        h.close()


def test_certificate_from_another_ca_cannot_connect(identities):
    h = Harness(identities)
    try:
        rogue = h.link("B", identity="rogue-opB")
        with pytest.raises(SessionAborted, match="could not reach party A"):
            rogue.join(hello("B"))
    finally:
        h.close()


def test_missing_party_times_out_with_its_name(identities):
    h = Harness(identities)
    try:
        a, b = h.local(), h.link("B")
        a._connect_timeout_s = 1.5
        results = run_parallel(lambda: a.join(hello("A")), lambda: b.join(hello("B")))
        assert all(isinstance(r, SessionAborted) for r in results)
        assert "H did not join" in results[0].reason
    finally:
        h.close()


def test_client_disconnect_aborts_the_job(identities):
    h = Harness(identities)
    try:
        a, b, hh = h.joined()
        seen = threading.Event()
        h.host.on_abort(lambda reason: seen.set())
        hh.close()  # H goes away mid-job
        assert seen.wait(10)
        assert "lost the connection to party H" in h.host.abort_reason
        with pytest.raises(SessionAborted, match="party H"):
            a.exchange("partition", **part())
        for _ in range(50):
            if "B" in h.aborts:
                break
            threading.Event().wait(0.1)
        assert "party H" in h.aborts["B"]
    finally:
        h.close()


def test_a_party_may_post_its_next_step_early(identities):
    """H's first step comes after A's and B's buckets: it waits for them."""
    h = Harness(identities)
    try:
        a, b, hh = h.joined()
        early = {}
        t = threading.Thread(target=lambda: early.setdefault("H", hh.exchange("candidates",
                                                                              **cand())))
        t.start()
        threading.Event().wait(0.5)
        assert "H" not in early and h.host.abort_reason is None
        run_parallel(lambda: a.exchange("partition", **part()),
                     lambda: b.exchange("partition", **part()))
        run_parallel(lambda: a.exchange(bucket_step(0, 0, "S1"), **ready(0)),
                     lambda: b.exchange(bucket_step(0, 0, "S1"), **ready(0)))
        assert "H" not in early
        run_parallel(lambda: a.exchange("candidates", **cand(5)),
                     lambda: b.exchange("candidates", **cand(5)))
        t.join(10)
        assert early["H"]["A"].candidates.pairs == 5
    finally:
        h.close()


def test_posting_a_step_twice_aborts(identities):
    h = Harness(identities)
    try:
        a, b, _ = h.joined()
        run_parallel(lambda: a.exchange("partition", **part()),
                     lambda: b.exchange("partition", **part()))
        with pytest.raises(SessionAborted, match="B posted step 'partition' out of order"):
            b.exchange("partition", **part())
    finally:
        h.close()


def test_every_message_round_trips():
    from engine.job.roles import _receipt_json  # noqa: F401 - the module imports cleanly

    posts = [
        session_pb2.Post(job_id="j", role="A", step="partition", **part(7)),
        session_pb2.Post(job_id="j", role="A", step="sizes",
                         sizes=session_pb2.Sizes(input_rows=5, invalid_rows=1)),
        session_pb2.Post(job_id="j", role="B", step="commitments", commitment=session_pb2.Commitment(
            entry_json="{}", signature=b"s", considered=3,
            done=[session_pb2.BucketDigest(bucket=1, digest=b"d")])),
        session_pb2.Post(job_id="j", role="A", step="bucket:0:0:S1", **ready(0)),
        session_pb2.Post(job_id="j", role="A", step="bucket:0:0:done",
                         bucket_done=session_pb2.BucketDone(ok=True, digest=b"x")),
        session_pb2.Post(job_id="j", role="A", step="facts",
                         facts=session_pb2.Facts(facts_json="{}", records_digest="ab")),
        session_pb2.Post(job_id="j", role="A", step="statement",
                         signature=session_pb2.StatementSignature(statement_sm3=b"1",
                                                                  signature=b"2",
                                                                  entry_signature=b"3")),
        session_pb2.Post(job_id="j", role="A", step="anchored",
                         anchored=session_pb2.AnchorReceipt(indices=[1, 2, 3],
                                                            leaf_hashes=[b"a"] * 3,
                                                            checkpoint="c")),
    ]
    for post in posts:
        assert session_pb2.Post.FromString(post.SerializeToString()) == post
