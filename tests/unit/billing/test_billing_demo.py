"""The demo continuation on statements anchored like a job's: invoices, a camt.053 with one
full, one partial and one missing payment, an overdue alert, one adjustment, netting, reports."""

from __future__ import annotations

import tomli_w

from billing.demo import DemoJob, run_billing_demo
from tests.unit.billing.billing_fixtures import TERMS_TABLE, Consortium, classes


def _rules(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(tomli_w.dumps({"billing": TERMS_TABLE}), encoding="utf-8")
    return path


def test_demo_with_three_pairs(tmp_path) -> None:
    consortium = Consortium.create(tmp_path)
    pairs = [("CMCC", "CUCC", classes(100_000, 40_000)), ("CUCC", "CTCC", classes(80_000, 10_000)),
             ("CTCC", "CMCC", classes(60_000, 30_000))]
    jobs = []
    for n, (a, b, listed) in enumerate(pairs):
        path = consortium.settle(f"demo-2026-10-{n}", operators={"A": a, "B": b}, classes_=listed)
        jobs.append(DemoJob(f"demo-2026-10-{n}", {a: path, b: path}))
    lines: list[str] = []
    outcome = run_billing_demo(tmp_path, consortium.config_path, _rules(tmp_path), jobs, say=lines.append)
    assert len(outcome.invoices) == 3 and outcome.note is not None
    assert list(outcome.plan.values())[:3] == ["full", "partial", "missing"]
    assert outcome.payments["full"] >= 1 and outcome.payments["partial"] == 1 and outcome.payments["unmatched"] == 1
    assert outcome.alerts and outcome.netting is not None
    assert set(outcome.reports) == {"CMCC", "CUCC", "CTCC"}
    assert all(p.exists() for p in outcome.reports.values())
    assert any("sweep as of" in line for line in lines)


def test_demo_with_one_job(tmp_path) -> None:
    consortium = Consortium.create(tmp_path)
    path = consortium.settle("demo-2026-10-seed1")
    lines: list[str] = []
    outcome = run_billing_demo(tmp_path, consortium.config_path, _rules(tmp_path),
                               [DemoJob("demo-2026-10-seed1", {"CMCC": path, "CUCC": path})], say=lines.append)
    assert outcome.plan == {outcome.invoices[0]: "partial", outcome.note: "full"}
    assert outcome.alerts == [f"{outcome.invoices[0]}: reminded"]
    assert any("CTCC (not a party) sees" in line and "opens none" in line for line in lines)
    print("\n".join(lines))


def test_demo_approves_an_unapproved_statement(tmp_path) -> None:
    consortium = Consortium.create(tmp_path)
    path = consortium.settle("demo-unapproved", approve=False)
    lines: list[str] = []
    outcome = run_billing_demo(tmp_path, consortium.config_path, _rules(tmp_path),
                               [DemoJob("demo-unapproved", {"CMCC": path, "CUCC": path})], say=lines.append)
    assert any("approved for payment" in line for line in lines) and len(outcome.invoices) == 1


def test_demo_signs_the_request_the_job_filed(tmp_path) -> None:
    from governance import api as governance_api

    consortium = Consortium.create(tmp_path)
    path = consortium.settle("demo-filed", approve=False)
    with consortium.ledger() as ledger:   # as engine/job/roles.py does after anchoring
        governance_api.request_statement_approval(ledger, job_id="demo-filed", requester="CMCC",
                                                  key=consortium.signing_key("CMCC"), operators=("CMCC", "CUCC"))
    outcome = run_billing_demo(tmp_path, consortium.config_path, _rules(tmp_path),
                               [DemoJob("demo-filed", {"CMCC": path, "CUCC": path})], say=lambda line: None)
    assert len(outcome.invoices) == 1
    with consortium.ledger() as ledger:
        assert [r.status for r in governance_api.replay(ledger).requests.values()] == ["approved"]
