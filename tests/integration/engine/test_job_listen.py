"""A job whose parties bind one address and are dialled at another (grpc_listen /
mpc_listen in the consortium file): every party-to-party connection goes through a relay
(bench/wan.py on a fast link), each party with its own copy of the consortium file
(bench/wan_job.py, what bench_e2e.py runs on the simulated WAN links)."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.job.jobfile import Timeouts
from engine.job.local import ROLES, LocalJob, adopt_rules, create_consortium, free_ports
from engine.rules import load_rules

from tests.integration.engine.jobs import JOB_TIMEOUT_S, describe, generate

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import wan  # noqa: E402
import wan_job  # noqa: E402


def test_parties_bind_listen_and_dial_endpoints(tmp_path):
    data = generate(tmp_path / "data", records=400, seed=16)
    rules = load_rules(data.rules)
    config = create_consortium(tmp_path / "consortium")
    adopt_rules(config, rules.sm3_hash(), rules.version, effective_from="2026-10")
    views, routes = wan_job.job_links(config, ROLES, free_ports(len(wan_job.CONNECTIONS)))
    # every dialled endpoint is a relay, never the target's real port
    real_ports = {route.real for route in routes}
    assert not real_ports & {route.relay for route in routes}
    # one link per connection here, so that each is seen to carry the job's bytes
    links = {route: wan.Link(10e9, 0.0) for route in routes}
    relays = [wan.Relay(route.relay, route.real, links[route], route.direction) for route in routes]
    try:
        job = LocalJob.prepare(tmp_path / "job", data.data, data.rules, config=config, views=views,
                               timeouts=Timeouts(connect_s=60, stage_s=120, peer_silence_s=6))
        job.start()
        codes = job.wait(JOB_TIMEOUT_S)
    finally:
        for relay in relays:
            relay.close()
    assert codes == {"A": 0, "B": 0, "H": 0}, describe(job)
    for route, link in links.items():
        # a party that dialled the real port (or bound the endpoint) leaves its relay idle
        assert link.ab.bytes > 1000 and link.ba.bytes > 1000, (route, link.ab.bytes, link.ba.bytes)
