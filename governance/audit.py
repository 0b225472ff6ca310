"""Audit bundles: everything a regulator needs to check one job offline (issue 13 item 5).

``settlechain audit export --job ID --out FILE`` writes one JSON document::

    {"format": "settlechain-audit/v1", "job_id", "origin",
     "checkpoint": <C2SP checkpoint note with its cosignatures>,
     "entries": [{"index", "leaf": base64 leaf data, "proof": [base64 SM3 hashes], "why"}],
     "statement": null | {"document": <statement JSON>, "salt": hex}}

``entries`` holds, each with its RFC 9162 inclusion proof against ``checkpoint``: the
job's entries (those whose ``job_id`` is the job's), every membership manifest up to
the checkpoint with the proposal and votes it executes, the rule package proposal and
votes that put the job's rules in force,
the approval requests about the job with their approvals, and the certificates (and
revocations) of the people who signed them.  ``statement`` is there only if the
exporting party holds the statement and passes it: the ledger keeps amounts off
itself as a salted commitment (:mod:`ledger_anchor.commitment`), and the bundle adds
nothing from the ledger that the ledger does not already show every member.

``settlechain audit verify FILE --genesis genesis.json`` needs nothing else: from the
genesis manifest (origin, log key, members, witness policy) it follows the manifests
in the bundle (each signed as :mod:`ledger_anchor.membership` requires), checks the
checkpoint's log signature and that its cosigners meet the witness policy in force,
every inclusion proof, every entry's author signatures against the manifest in force
at that entry, replays the governance entries (approvals, certificates), and opens
the statement's commitment if the statement is present.

Limits, stated: inclusion proofs show that each entry is in the log, not that nothing
else is; a bundle that leaves out a later manifest, a rejection or a revocation is
detected only against the full log (``settlechain ledger verify`` and
``settlechain approve show`` on a member's copy).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from governance.documents import APPROVAL, CERTIFICATE, MANIFEST, PROPOSAL, REQUEST, REVOCATION, VOTE
from governance.errors import AuditError, GovernanceError
from governance.state import ConsortiumState
from ledger_anchor import merkle
from ledger_anchor.commitment import verify_commitment
from ledger_anchor.entries import SignedEntry
from ledger_anchor.errors import LedgerError
from ledger_anchor.membership import Manifest, Membership
from ledger_anchor.note import verify_checkpoint
from ledger_anchor.sm2 import PublicKey

FORMAT = "settlechain-audit/v1"


def _job_entries(ledger: Any, job_id: str, size: int) -> list[tuple[int, dict[str, Any]]]:
    found = []
    for start in range(0, size, 1000):
        for offset, entry in enumerate(ledger.entries(start, min(size, start + 1000))):
            if entry.get("job_id") == job_id and entry.get("kind") not in (REQUEST,):
                found.append((start + offset, entry))
    return found


def export_bundle(ledger: Any, job_id: str, *, statement: Mapping[str, Any] | None = None,
                  salt: bytes | None = None) -> dict[str, Any]:
    """The audit bundle of ``job_id`` against the latest final checkpoint (else the latest)."""
    size = ledger.final_size() or ledger.size()
    job = _job_entries(ledger, job_id, size)
    if not job:
        raise AuditError(f"no entry of job {job_id!r} in the log up to size {size}")
    why: dict[int, str] = {index: "job" for index, _ in job}
    rules = {entry["rules_sm3"] for _, entry in job if isinstance(entry.get("rules_sm3"), str)}
    consortium = [(i, e) for i, e in ledger.governance_entries() if i < size]
    proposals = {e["proposal_id"] for _, e in consortium
                 if e["kind"] == PROPOSAL and e.get("type") == "rule_package"
                 and e.get("content", {}).get("rules_sm3") in rules}
    decisions = {e["proposal_id"] for _, e in consortium if e["kind"] == MANIFEST}
    requests = {e["request_id"] for _, e in consortium if e["kind"] == REQUEST and e.get("action") == "draft"
                and e.get("subject", {}).get("job_id") == job_id}
    certificates: set[str] = set()
    for index, entry in consortium:
        kind = entry["kind"]
        if kind == MANIFEST:
            why[index] = "membership manifest"
        elif kind in (PROPOSAL, VOTE) and entry.get("proposal_id") in proposals:
            why[index] = "rules in force"
        elif kind in (PROPOSAL, VOTE) and entry.get("proposal_id") in decisions:
            why[index] = "membership decision"
        elif kind in (REQUEST, APPROVAL) and entry.get("request_id") in requests:
            why[index] = "approval"
            if kind == APPROVAL:
                for signature in entry.get("envelope", {}).get("signatures", []):
                    certificates.add(signature.get("keyid"))
    for index, entry in consortium:
        if entry["kind"] in (CERTIFICATE, REVOCATION) and entry.get("cert_id") in certificates:
            why[index] = "certificate"
    entries = []
    for index in sorted(why):
        entries.append({"index": index, "why": why[index],
                        "leaf": base64.b64encode(ledger.entry_data(index)).decode("ascii"),
                        "proof": [base64.b64encode(h).decode("ascii") for h in ledger.inclusion_proof(index, size)]})
    document = None
    if statement is not None:
        document = {"document": dict(statement), "salt": salt.hex() if salt is not None else None}
    return {"format": FORMAT, "job_id": job_id, "origin": ledger.identity.origin,
            "checkpoint": ledger.checkpoint(size), "entries": entries, "statement": document}


@dataclass
class AuditReport:
    job_id: str
    size: int
    cosigners: tuple[str, ...]
    epoch: int
    entries: int
    job_entries: list[int] = field(default_factory=list)
    statement_checked: bool = False
    approvals: dict[str, str] = field(default_factory=dict)  # request id -> status
    rules: list[str] = field(default_factory=list)  # rule package versions that are in the bundle, passed
    refused: list[str] = field(default_factory=list)


def verify_bundle(bundle: Mapping[str, Any] | str, genesis: Mapping[str, Any]) -> AuditReport:
    """Check an audit bundle with only the genesis manifest (module docstring)."""
    if isinstance(bundle, str):
        try:
            bundle = json.loads(bundle)
        except json.JSONDecodeError as exc:
            raise AuditError(f"audit bundle: expected JSON: {exc}") from None
    if not isinstance(bundle, Mapping) or bundle.get("format") != FORMAT:
        raise AuditError(f"audit bundle: expected format {FORMAT!r}")
    try:
        root = Manifest.from_body(genesis)
    except LedgerError as exc:
        raise AuditError(f"genesis manifest: {exc}") from None
    if root.epoch != 0:
        raise AuditError(f"genesis manifest: expected epoch 0, found {root.epoch}")
    log_key = PublicKey(root.log_public_key)
    try:
        checkpoint = verify_checkpoint(bundle.get("checkpoint", ""), origin=root.origin, log_key=log_key, members={})
    except LedgerError as exc:
        raise AuditError(f"audit bundle checkpoint: {exc}") from None
    size, tree_root = checkpoint.checkpoint.size, checkpoint.checkpoint.root
    entries: list[tuple[int, SignedEntry]] = []
    previous = -1
    for position, item in enumerate(bundle.get("entries") or []):
        where = f"audit bundle entries[{position}]"
        try:
            index = item["index"]
            leaf = base64.b64decode(item["leaf"], validate=True)
            proof = [base64.b64decode(h, validate=True) for h in item["proof"]]
        except (KeyError, TypeError, binascii.Error):
            raise AuditError(f"{where}: expected index, base64 leaf and proof") from None
        if not isinstance(index, int) or isinstance(index, bool) or not previous < index < size:
            raise AuditError(f"{where}: expected an index in increasing order below {size}, found {index!r}")
        previous = index
        try:
            merkle.verify_inclusion(merkle.SM3_HASHER, index, size, merkle.SM3_HASHER.hash_leaf(leaf), proof,
                                    tree_root)
            entries.append((index, SignedEntry.from_leaf_data(leaf)))
        except LedgerError as exc:
            raise AuditError(f"{where} (ledger entry {index}): {exc}") from None
    membership = Membership(root)
    for index, entry in entries:  # manifests first: who may sign what
        if entry.kind == MANIFEST:
            _check_signatures(membership, index, entry)
            try:
                membership.apply(index, entry.kind, entry.body, list(entry.signatures))
            except LedgerError as exc:
                raise AuditError(f"ledger entry {index}: {exc}") from None
    manifest = membership.at(size)
    cosigners = []
    try:
        verified = verify_checkpoint(bundle["checkpoint"], origin=root.origin, log_key=log_key,
                                     members={m: PublicKey(k) for m, k in manifest.signing_keys().items()})
        cosigners = list(verified.cosigners)
    except LedgerError as exc:
        raise AuditError(f"audit bundle checkpoint: {exc}") from None
    if len(cosigners) < manifest.witness_k:
        raise AuditError(f"checkpoint at size {size}: cosigned by {len(cosigners)} members "
                         f"({', '.join(cosigners) or 'none'}), the witness policy of epoch {manifest.epoch} "
                         f"needs {manifest.witness_k}")
    for index, entry in entries:
        if entry.kind != MANIFEST:
            _check_signatures(membership, index, entry)
    job_id = str(bundle.get("job_id"))
    report = AuditReport(job_id, size, tuple(cosigners), manifest.epoch, len(entries),
                         [i for i, e in entries if e.body.get("job_id") == job_id and e.kind != REQUEST])
    if not report.job_entries:
        raise AuditError(f"the bundle holds no entry of job {job_id!r}")
    state = ConsortiumState(root)
    for index, entry in entries:
        state.apply(index, entry.to_json())
    report.refused = [f"entry {r.index} ({r.kind}): {r.reason}" for r in state.refused]
    report.approvals = {rid: r.status for rid, r in state.requests.items()}
    report.rules = [f"{p.proposal.content['name']} {p.proposal.content['version']}"
                    for p in state.proposals.values() if p.proposal.type == "rule_package" and p.status == "passed"]
    statement = bundle.get("statement")
    if statement is not None:
        _check_statement(statement, [e for i, e in entries if i in report.job_entries], job_id)
        report.statement_checked = True
    return report


def _check_signatures(membership: Membership, index: int, entry: SignedEntry) -> None:
    try:
        keys = membership.signers_of(index, entry.kind, entry.body, list(entry.signatures))
        for signer, signature in entry.signatures.items():
            membership.public_key(keys[signer]).verify(entry.signed_bytes, signature)
    except LedgerError as exc:
        raise AuditError(f"ledger entry {index} ({entry.kind}): {exc}") from None


def _check_statement(statement: Any, job_entries: list[SignedEntry], job_id: str) -> None:
    anchored = [e for e in job_entries if e.kind == "settlement_statement"]
    if not anchored:
        raise AuditError(f"the bundle has a statement but no settlement_statement entry of job {job_id!r}")
    entry = anchored[-1]
    if not isinstance(statement, Mapping) or not isinstance(statement.get("document"), Mapping):
        raise AuditError("audit bundle statement: expected {document, salt}")
    document = statement["document"]
    commitment = entry.body.get("commitment")
    if isinstance(commitment, str):
        try:
            salt = bytes.fromhex(statement.get("salt") or "")
            verify_commitment(commitment, "settlement_statement", salt, rfc8785.dumps(dict(document)))
        except (ValueError, LedgerError) as exc:
            raise AuditError(f"the statement does not open the anchored commitment: {exc}") from None
        return
    if rfc8785.dumps(dict(document)) != rfc8785.dumps(entry.to_json()):
        raise AuditError("the statement differs from the anchored settlement_statement entry")


def genesis_document(ledger_or_config: Any) -> dict[str, Any]:
    """The genesis manifest as the JSON an auditor keeps (from a ledger client or a config)."""
    config = getattr(ledger_or_config, "config", ledger_or_config)
    return config.genesis_manifest().body()


__all__ = ["AuditReport", "GovernanceError", "export_bundle", "genesis_document", "verify_bundle"]
