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
    HostLink, JobSessionServicer, RemoteLink, SessionAborted, SessionHost,
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


def hello(role: str, job: str = "job-1", rules: str = "r" * 64, rows: int = 10) -> session_pb2.Hello:
    return session_pb2.Hello(job_id=job, role=role, member_id=MEMBERS[role], rules_sm3=rules,
                             protocol_version=1, input_rows=rows)


def agree(hellos):
    hashes = {h.rules_sm3 for h in hellos.values()}
    if len(hashes) != 1:
        return "rules differ: " + ", ".join(f"{r}={h.rules_sm3[:8]}" for r, h in hellos.items())
    return None


class Harness:
    def __init__(self, identities, steps=(("s1", ("A", "B")), ("s2", ("A", "B", "H")))):
        self.host = SessionHost("job-1", MEMBERS, agree, steps=steps)
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
        s1 = run_parallel(lambda: a.exchange("s1", {"x": 1}), lambda: b.exchange("s1", {"x": 2}))
        assert s1[0] == s1[1] == {"A": {"x": 1}, "B": {"x": 2}}
        s2 = run_parallel(lambda: a.exchange("s2", {}), lambda: b.exchange("s2", {}),
                          lambda: hh.exchange("s2", {"h": True}))
        assert s2[2]["H"] == {"h": True}
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


def test_out_of_order_step_aborts_everyone(identities):
    h = Harness(identities)
    try:
        a, b, hh = h.local(), h.link("B"), h.link("H")
        run_parallel(lambda: a.join(hello("A")), lambda: b.join(hello("B")),
                     lambda: hh.join(hello("H")))
        results = run_parallel(lambda: a.exchange("s1", {}), lambda: b.exchange("s2", {}))
        assert all(isinstance(r, SessionAborted) for r in results)
        assert "out of order" in results[0].reason and results[0].reason == results[1].reason
    finally:
        h.close()


def test_wrong_member_for_role_is_refused(identities):
    h = Harness(identities)
    try:
        intruder = h.link("B", identity="intruder")
        with pytest.raises(SessionAborted, match="belongs to member 'opB'"):
            intruder.join(hello("B"))
        assert "B" not in h.host._hellos
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
    h.host  # noqa: B018
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
        a, b, hh = h.local(), h.link("B"), h.link("H")
        run_parallel(lambda: a.join(hello("A")), lambda: b.join(hello("B")),
                     lambda: hh.join(hello("H")))
        seen = threading.Event()
        h.host.on_abort(lambda reason: seen.set())
        hh.close()  # H goes away mid-job
        assert seen.wait(10)
        assert "lost the connection to party H" in h.host.abort_reason
        with pytest.raises(SessionAborted, match="party H"):
            a.exchange("s1", {})
        # B learns it through its watch stream
        for _ in range(50):
            if "B" in h.aborts:
                break
            threading.Event().wait(0.1)
        assert "party H" in h.aborts["B"]
    finally:
        h.close()


def test_a_party_may_post_its_next_step_early(identities):
    """H's first step is the second of the job: it waits for A and B's first one."""
    h = Harness(identities)
    try:
        a, b, hh = h.local(), h.link("B"), h.link("H")
        run_parallel(lambda: a.join(hello("A")), lambda: b.join(hello("B")),
                     lambda: hh.join(hello("H")))
        early = {}
        t = threading.Thread(target=lambda: early.setdefault("H", hh.exchange("s2", {"h": 1})))
        t.start()
        threading.Event().wait(0.5)
        assert "H" not in early and h.host.abort_reason is None
        run_parallel(lambda: a.exchange("s1", {}), lambda: b.exchange("s1", {}))
        run_parallel(lambda: a.exchange("s2", {}), lambda: b.exchange("s2", {}))
        t.join(10)
        assert early["H"]["H"] == {"h": 1}
    finally:
        h.close()


def test_posting_a_step_twice_aborts(identities):
    h = Harness(identities)
    try:
        a, b, hh = h.local(), h.link("B"), h.link("H")
        run_parallel(lambda: a.join(hello("A")), lambda: b.join(hello("B")),
                     lambda: hh.join(hello("H")))
        run_parallel(lambda: a.exchange("s1", {}), lambda: b.exchange("s1", {}))
        with pytest.raises(SessionAborted, match="B posted step 's1' out of order"):
            b.exchange("s1", {})
    finally:
        h.close()
