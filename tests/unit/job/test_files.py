"""Consortium and job files: every problem names the file and the key."""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.job.consortium import load_consortium
from engine.job.jobfile import Timeouts, load_job, write_job

HEX = "ab" * 64


def test_job_round_trip_and_errors(tmp_path):
    path = write_job(tmp_path / "job.toml", job_id="j-1", period="2026-10", rules="r.toml",
                     rules_sm3="0" * 64, parties={"A": "a", "B": "b", "H": "h"},
                     timeouts=Timeouts(connect_s=5, stage_s=6, peer_silence_s=7),
                     disclosure="flags")
    job = load_job(path)
    assert (job.id, job.period, job.disclosure, job.timeouts.stage_s) == ("j-1", "2026-10",
                                                                          "flags", 6.0)
    assert job.rules_path == tmp_path / "r.toml" and job.role_of("b") == "B"
    with pytest.raises(InputError, match="member takes no part"):
        job.role_of("zz")
    text = path.read_text()
    for old, new, message in [
        ('H = "h"', 'H = "a"', "three different members"),
        ('rules_sm3 = "0', 'rules_sm3 = "x', "malformed rules hash"),
        ("stage_s = 6", "stage_s = -1", "bad timeout"),
        ('disclosure = "flags"', 'disclosure = "all"', "unknown disclosure policy"),
        ('id = "j-1"', 'id = "j 1"', "malformed job id"),
    ]:
        path.write_text(text.replace(old, new))
        with pytest.raises(InputError, match=message) as caught:
            load_job(path)
        assert str(path) in caught.value.diagnostics()
    with pytest.raises(InputError, match="job file not found"):
        load_job(tmp_path / "missing.toml")
    path.write_text("[job\n")
    with pytest.raises(InputError, match="cannot read job file"):
        load_job(path)


def test_consortium_errors_name_the_key(tmp_path):
    """One reader (ledger_anchor.config): keys are checked to be curve points, ids and
    endpoints by one definition; the engine adds what a party needs."""
    from ledger_anchor import sm2

    key = sm2.generate_keypair()[1].hex()
    log_key = sm2.generate_keypair()[1].hex()
    path = tmp_path / "c.toml"
    member = ('[[members]]\nid = "{id}"\nsm2_public_key = "{key}"\ntls_cert = "a.crt"\n'
              'grpc_endpoint = "{endpoint}"\nmpc_endpoint = "127.0.0.1:2"\n')
    head = ('[consortium]\nname = "x"\nca_cert = "ca.crt"\n'
            f'[ledger]\norigin = "test/x"\nlog_public_key = "{log_key}"\n')
    path.write_text(head + member.format(id="A", key=key, endpoint="127.0.0.1:1"))
    loaded = load_consortium(path)
    assert loaded.member("A").grpc_endpoint == "127.0.0.1:1"
    assert loaded.member("A").sm2_key == tmp_path / "members" / "A" / "sm2.key"
    assert loaded.config.member("A").sm2_public_key == bytes.fromhex(key)
    for member_id, member_key, endpoint, message, column in [
        ("A", "abc", "127.0.0.1:1", "SM2 public key", "members[0].sm2_public_key"),
        ("A", HEX, "127.0.0.1:1", "point off the curve", "members[0].sm2_public_key"),
        ("A", key, "nowhere", "expected host:port", "members[0].grpc_endpoint"),
        ("A B", key, "127.0.0.1:1", "expected letters, digits", "members[0].id"),
    ]:
        path.write_text(head + member.format(id=member_id, key=member_key, endpoint=endpoint))
        with pytest.raises(InputError, match=message) as caught:
            load_consortium(path)
        assert caught.value.column == column and str(path) in caught.value.diagnostics()
    path.write_text(head + 2 * member.format(id="A", key=key, endpoint="127.0.0.1:1"))
    with pytest.raises(InputError, match="appears twice"):
        load_consortium(path)
    path.write_text(head.replace('ca_cert = "ca.crt"\n', "") + member.format(id="A", key=key, endpoint="127.0.0.1:1"))
    with pytest.raises(InputError, match="missing required key") as caught:
        load_consortium(path)
    assert caught.value.column == "consortium.ca_cert"


def test_listen_addresses_default_to_the_endpoints_and_are_checked(tmp_path):
    """grpc_listen / mpc_listen: where the member's own servers bind (behind NAT, a load
    balancer or a relay); optional, checked like the endpoints, and never without the
    endpoint the others dial."""
    from ledger_anchor import sm2

    key = sm2.generate_keypair()[1].hex()
    log_key = sm2.generate_keypair()[1].hex()
    path = tmp_path / "c.toml"
    head = ('[consortium]\nname = "x"\nca_cert = "ca.crt"\n'
            f'[ledger]\norigin = "test/x"\nlog_public_key = "{log_key}"\n'
            f'[[members]]\nid = "A"\nsm2_public_key = "{key}"\ntls_cert = "a.crt"\n')
    endpoints = 'grpc_endpoint = "203.0.113.7:443"\nmpc_endpoint = "203.0.113.7:8443"\n'
    path.write_text(head + endpoints)
    member = load_consortium(path).member("A")
    assert (member.grpc_listen, member.mpc_listen) == ("203.0.113.7:443", "203.0.113.7:8443")
    path.write_text(head + endpoints + 'grpc_listen = "0.0.0.0:17001"\nmpc_listen = "[::1]:17002"\n')
    member = load_consortium(path).member("A")
    assert (member.grpc_endpoint, member.grpc_listen) == ("203.0.113.7:443", "0.0.0.0:17001")
    assert (member.mpc_endpoint, member.mpc_listen) == ("203.0.113.7:8443", "[::1]:17002")
    for extra, message, column in [
        ('grpc_listen = "17001"\n', "expected host:port", "members[0].grpc_listen"),
        ('mpc_listen = "host:port"\n', "expected host:port", "members[0].mpc_listen"),
        ('mpc_listen = "a b:1"\n', "expected host:port", "members[0].mpc_listen"),
        ("grpc_listen = 17001\n", "expected str", "members[0].grpc_listen"),
    ]:
        path.write_text(head + endpoints + extra)
        with pytest.raises(InputError, match=message) as caught:
            load_consortium(path)
        assert caught.value.column == column and str(path) in caught.value.diagnostics()
    for service in ("grpc", "mpc"):
        other = "mpc" if service == "grpc" else "grpc"
        path.write_text(head + f'{other}_endpoint = "127.0.0.1:1"\n{service}_listen = "127.0.0.1:2"\n')
        with pytest.raises(InputError, match=f"without {service}_endpoint") as caught:
            load_consortium(path)
        assert caught.value.column == f"members[0].{service}_listen"
