"""Operators by name and who signed, read from summary.json, statement.json, the rules
and the ledger checkpoint; a statement of another job or of another shape is refused."""

from __future__ import annotations

import pytest

from engine.report import ReportInputError, render_report
from engine.report.parties import read_parties
from tests.unit.report.report_fixtures import CHECKPOINT_ORIGIN, Job, PageReader, build_job


@pytest.fixture(scope="module")
def job() -> Job:
    return build_job(400, seed=21)


def test_names_from_the_rules_and_key_ids_from_the_checkpoint(job: Job) -> None:
    parties = read_parties(job.summary, job.statement, job.rules)
    assert (parties.this.role, parties.this.member_id, parties.this.name) == \
        ("A", "CMCC", "China Mobile")
    assert (parties.other.role, parties.other.member_id, parties.other.name) == \
        ("B", "CUCC", "China Unicom")
    assert [(s.member_id, s.role, s.key_id, s.key_id_source) for s in parties.signers] == [
        ("CMCC", "A", job.key_ids[f"{CHECKPOINT_ORIGIN}/witness/CMCC"], "checkpoint"),
        ("CUCC", "B", job.key_ids[f"{CHECKPOINT_ORIGIN}/witness/CUCC"], "checkpoint")]
    assert parties.checkpoint is not None and parties.checkpoint.problem is None
    assert {k.key_name: k.key_id for k in parties.checkpoint.keys} == job.key_ids
    assert [k.kind for k in parties.checkpoint.keys] == ["log", "witness", "witness", "witness"]
    assert [k.member_id for k in parties.checkpoint.keys] == [None, "CMCC", "CTCC", "CUCC"]


def test_documents_take_precedence_over_rules_and_checkpoint(job: Job) -> None:
    summary = {**job.summary, "operators": {"A": {"id": "CMCC", "name": "China Mobile Ltd",
                                                  "key_id": "aaaa0001"}}}
    statement = {**job.statement, "operators": {"A": "CMCC", "B": {
        "id": "CUCC", "name": "Unicom (B)", "key_id": "bbbb0002"}},
        "signatures": [{"signer": "CMCC", "sig": "00", "key_id": "cccc0003"},
                       {"signer": "CUCC", "sig": "00"}]}
    parties = read_parties(summary, statement, job.rules)
    assert parties.this.name == "China Mobile Ltd" and parties.other.name == "Unicom (B)"
    signers = {s.member_id: (s.key_id, s.key_id_source) for s in parties.signers}
    assert signers == {"CMCC": ("aaaa0001", "summary"), "CUCC": ("bbbb0002", "statement")}
    without_summary = read_parties(job.summary, statement, job.rules)
    assert {s.member_id: s.key_id for s in without_summary.signers} == {
        "CMCC": "cccc0003", "CUCC": "bbbb0002"}
    assert parties.this.key_id == "aaaa0001" and parties.this.key_id_source == "summary"


def test_page_names_operators_and_signers(job: Job) -> None:
    page = PageReader(render_report(*job.render_args(), **job.render_kwargs()))
    assert "CMCC China Mobile (party A)" in page.texts["this-party"]
    assert "CUCC China Unicom (party B)" in page.texts["counterparty"]
    signers = page.texts["signers"]
    for member in ("CMCC", "CUCC"):
        assert f"key id {job.key_ids[f'{CHECKPOINT_ORIGIN}/witness/{member}']}" in signers
    keys = page.texts["checkpoint-keys"]
    assert all(key_id in keys for key_id in job.key_ids.values())
    assert page.texts["title"] == "CMCC China Mobile ↔ CUCC China Unicom · 2026-10"


def test_without_a_statement_the_page_says_so(job: Job) -> None:
    page = PageReader(render_report(*job.render_args(), quarantine=job.quarantine))
    assert page.texts["signers"] == "statement not given to the report"
    # summary.json names only the roles: without the statement no member id is known
    assert page.texts["this-party"] == "A" and page.texts["counterparty"] == "B"


def test_unsigned_statement(job: Job) -> None:
    statement = {**job.statement, "signatures": []}
    page = PageReader(render_report(*job.render_args(), statement=statement))
    assert page.texts["signers"] == "not signed"
    assert "CMCC China Mobile" in page.texts["this-party"]


@pytest.mark.parametrize(("change", "message"), [
    ({"job_id": "another-job"}, "the statement is of another job"),
    ({"signatures": {"signer": "CMCC"}}, "wrong type"),
    ({"signatures": [{"sig": "00"}]}, "malformed signature entry"),
    ({"signatures": [{"signer": 7, "sig": "00"}]}, "malformed signature entry"),
])
def test_bad_statement_is_refused(job: Job, change: dict, message: str) -> None:
    with pytest.raises(ReportInputError) as info:
        render_report(*job.render_args(), statement={**job.statement, **change})
    assert message in str(info.value) and "statement.json" in str(info.value)


def test_statement_not_an_object_is_refused(job: Job) -> None:
    with pytest.raises(ReportInputError) as info:
        render_report(*job.render_args(), statement=["not", "a", "dict"])  # type: ignore[arg-type]
    assert "statement.json" in str(info.value)


@pytest.mark.parametrize("checkpoint", [
    "settlechain.example/demo\n42\nnot base64!\n\n— x AAAA\n",
    "no blank line\n",
    "origin\n1\n" + "A" * 44 + "\n\n— origin !!!notbase64\n",
])
def test_unreadable_checkpoint_is_reported_not_fatal(job: Job, checkpoint: str) -> None:
    summary = {**job.summary, "anchor": {**job.summary["anchor"], "checkpoint": checkpoint}}
    parties = read_parties(summary, job.statement, job.rules)
    assert parties.checkpoint is not None and parties.checkpoint.problem
    assert all(s.key_id is None for s in parties.signers)
    page = PageReader(render_report(summary, *job.render_args()[1:], **job.render_kwargs()))
    assert "key id not given" in page.texts["signers"]


def test_member_ids_from_the_summary(job: Job) -> None:
    """summary.json may name both members itself: then names need no statement."""
    summary = {**job.summary, "member": "CUCC", "counterparty_member": "CMCC"}
    parties = read_parties(summary, None, job.rules)
    assert (parties.this.member_id, parties.this.name) == ("CUCC", "China Unicom")
    assert (parties.other.member_id, parties.other.name) == ("CMCC", "China Mobile")
    page = PageReader(render_report(summary, *job.render_args()[1:]))
    assert page.texts["title"].startswith("CUCC China Unicom ↔ CMCC China Mobile")
