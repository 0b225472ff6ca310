"""A small consortium, a ledger and co-signed settlement statements, for the billing tests.

``Consortium.create(folder)`` makes three members (CMCC, CUCC, CTCC) with keys and a
ledger; ``settle(...)`` anchors a co-signed statement the way a job does (both
operators' signatures on the ``settlement_statement`` entry) and writes the party's
``statement.json``; ``member(id)`` opens that member's billing.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from billing.config import BillingTerms, parse_terms
from billing.party import BillingMember
from billing.statement import signing_bytes
from engine.job.local import create_consortium
from governance import api as governance_api
from ledger_anchor import canonical_entry_bytes, open_ledger, sm2
from ledger_anchor.commitment import commit
from ledger_anchor.config import load_config

TERMS_TABLE: dict[str, Any] = {
    "currency": "CNY",
    "payment_terms_days": 30,
    "invoice_series": "{issuer}-{payer}-{year}",
    "netting_agent": "CTCC",
    "tax_classes": [
        {"name": "basic_telecom", "rate": "9%", "services": ["voice"]},
        {"name": "value_added_telecom", "rate": "6%", "services": ["sms", "data"]},
    ],
    "overdue": [
        {"state": "reminded", "days_past_due": 1, "action": "reminder"},
        {"state": "escalated", "days_past_due": 31, "min_outstanding": 1000, "action": "escalation"},
        {"state": "held", "days_past_due": 91, "action": "dispute_hold"},
    ],
}
ROLES = {"A": "CMCC", "B": "CUCC", "H": "CTCC"}
ISSUED = dt.date(2026, 11, 5)


def terms(**changes: Any) -> BillingTerms:
    return parse_terms({**TERMS_TABLE, **changes}, source="test-rules.toml")


def classes(a_to_b: int = 100_000, b_to_a: int = 40_000) -> list[dict[str, Any]]:
    """A owes B ``a_to_b`` (voice 3/4, sms 1/4); B owes A ``b_to_a`` (voice, data)."""
    return [
        {"payer": "A", "payee": "B", "service": "voice", "call_type": "domestic", "time_band": "peak",
         "agreed_charge": a_to_b * 3 // 4},
        {"payer": "A", "payee": "B", "service": "sms", "call_type": "domestic", "time_band": "all_day",
         "agreed_charge": a_to_b - a_to_b * 3 // 4},
        {"payer": "B", "payee": "A", "service": "voice", "call_type": "domestic", "time_band": "offpeak",
         "agreed_charge": b_to_a // 2},
        {"payer": "B", "payee": "A", "service": "data", "call_type": "domestic", "time_band": "all_day",
         "agreed_charge": b_to_a - b_to_a // 2},
    ]


def statement_document(job_id: str, *, period: str = "2026-10", settlement: str = "automatic",
                       operators: dict[str, str] | None = None, classes_: list[dict[str, Any]] | None = None
                       ) -> dict[str, Any]:
    listed = classes() if classes_ is None else classes_
    agreed = sum(c["agreed_charge"] for c in listed)
    return {"kind": "settlement_statement", "job_id": job_id, "period": period, "rules_sm3": "ab" * 32,
            "disclosure": "flags",
            "operators": operators or {"A": ROLES["A"], "B": ROLES["B"]},
            "commitments": {"A": "01" * 32, "B": "02" * 32},
            "records": {"a_rows": 10, "b_rows": 10, "a_considered": 10, "b_considered": 10, "a_unmatched": 0,
                        "b_unmatched": 0},
            "pairs": {"matched_exact": 10, "matched_tolerance": 0, "disputed": 0},
            "totals": {"a_charge": agreed, "b_charge": agreed, "agreed_charge": agreed},
            "classes": listed, "settlement": settlement, "settlement_reasons": [], "signatures": []}


@dataclass
class Consortium:
    folder: Path
    config_path: Path
    terms: BillingTerms = field(default_factory=terms)
    finance: dict[str, tuple[str, bytes]] = field(default_factory=dict)   # operator -> (cert id, person key)

    @classmethod
    def create(cls, folder: Path, **term_changes: Any) -> Consortium:
        path = create_consortium(folder / "consortium", ROLES, name="billing-test")
        with open_ledger(path, create=True):
            pass
        made = cls(folder, path, terms(**term_changes) if term_changes else terms())
        for member in ROLES.values():  # every member publishes its sealing key, as `billing keys` does
            with BillingMember(path, member, made.terms) as billing:
                billing.publish_keys()
        with made.ledger() as ledger:  # one certified finance approver per operator (governance)
            for member in ROLES.values():
                private, public = sm2.generate_keypair()
                cert_id, _ = governance_api.certify(ledger, operator=member, key=made.signing_key(member),
                                                    person=f"{member.lower()}-finance", role="finance",
                                                    public_key=public)
                made.finance[member] = (cert_id, private)
        return made

    def approve(self, job_id: str, operators: tuple[str, str]) -> str:
        """The statement's approval request, signed by both operators' finance approvers."""
        with self.ledger() as ledger:
            request_id = governance_api.request_statement_approval(
                ledger, job_id=job_id, requester=operators[0], key=self.signing_key(operators[0]),
                operators=operators)
            for operator in operators:
                cert_id, person = self.finance[operator]
                governance_api.sign_approval(ledger, request_id=request_id, cert_id=cert_id, person_key=person,
                                             relay_key=self.signing_key(operator))
        return request_id

    @property
    def config(self):
        return load_config(self.config_path)

    def signing_key(self, member: str) -> bytes:
        return sm2.load_private_key(self.config.member_key_path(member))

    def ledger(self):
        return open_ledger(self.config_path)

    def settle(self, job_id: str, *, signers: tuple[str, ...] | None = None, approve: bool = True,
               **kwargs: Any) -> Path:
        """Anchor a statement for ``job_id`` the way a job does (engine/job/roles.py: the entry holds a
        salted commitment, both operators sign it and the statement; statement.json carries
        ``ledger.commitment_salt`` and ``ledger.index``), signed by ``signers`` (default: both
        operators) and, unless ``approve`` is false, approved by both finance approvers."""
        statement = statement_document(job_id, **kwargs)
        signers = tuple(statement["operators"].values()) if signers is None else signers
        salt = secrets.token_bytes(32)
        entry = {"kind": "settlement_statement", "job_id": job_id, "period": statement["period"],
                 "rules_sm3": statement["rules_sm3"], "operators": statement["operators"],
                 "commitment": commit("settlement_statement", salt, signing_bytes(statement))}
        entry_signatures = {m: sm2.sign(self.signing_key(m), canonical_entry_bytes(entry)) for m in signers}
        with self.ledger() as ledger:
            index = ledger.append(entry, entry_signatures).index
        statement["signatures"] = [{"signer": m, "sig": sm2.sign(self.signing_key(m), signing_bytes(statement)).hex()}
                                   for m in sorted(signers)]
        statement["ledger"] = {"commitment_salt": salt.hex(), "index": index}
        if approve and len(signers) == 2:
            self.approve(job_id, (statement["operators"]["A"], statement["operators"]["B"]))
        path = self.folder / job_id / "statement.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rfc8785.dumps(statement))
        return path

    def member(self, member: str, *statements: Path) -> BillingMember:
        billing = BillingMember(self.config_path, member, self.terms, statements=statements)
        billing.publish_keys()
        return billing
