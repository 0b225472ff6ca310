"""The job as role objects: :class:`OperatorRun` for A and B, :class:`HelperRun` for H.

Each has one method per stage (docs/job.md "Stages") and talks to the other parties only
through its :class:`~engine.job.session.Link` (typed session steps), the PSI service
(A serves, B connects) and the MPC runtime.  It imports the heavy libraries (polars,
numba, MPyC), which ``settlechain --help`` should not load; :mod:`engine.job.party` is
the entry point.

An operator's stages::

    agree      join A's session (job, rules adopted, not settled; or, recovering: settled)
    ingest     open the export; exchange partition shares with the other operator
               (A and B only); pass 1 (pieces into buckets); the circuit breaker over
               everyone's sizes (step ``sizes``); pass 2 (each bucket's records)
    commit     the signed dataset commitment (root over bucket roots), exchanged before
               any PSI message, with the buckets already done by an interrupted run
    psi_exact, psi_key   per bucket: passes S1..S3b, each one PSI session; a bucket
               whose PSI fails is tried again (up to MAX_ATTEMPTS)
    mpc        every bucket's candidate pairs in one three-party evaluation
    report     every output written durably (records.parquet, quarantine.parquet,
               summary.json, report.html) before the party says it is ready to anchor
    anchor     A checks the ledger and appends both commitments and the statement's
               commitment in one transaction; every member checks them and cosigns;
               then statement.json and anchor.json

A recovery run (``--recover``) takes the same stages up to the statement, refuses unless
the inputs give the anchored commitments and the statement opens the anchored one, and
writes the outputs again without anchoring anything.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.breaker import SideSizes, check_considered, check_sizes
from engine.commitment import FORMAT as COMMITMENT_FORMAT
from engine.ingest.reading import InputFile, open_input
from engine.job import session_pb2
from engine.job.job_secrets import JobSecrets
from engine.job.buckets import MAX_ATTEMPTS, BucketPasses, PsiPeer, forget_bucket, kept_digest
from engine.job.context import fault_point
from engine.job.session import SessionAborted
from engine.matching.evaluation import pair_values, tolerance_params
from engine.names import OPERATOR_ROLES
from engine.outputs import (
    ANCHOR_FILE, QUARANTINE_FILE, RECORDS_FILE, STATEMENT_FILE, SUMMARY_FILE,
    statement_document, statement_signing_bytes, summary_document, write_json,
)
from engine.partition import bucket_count, partition_share
from engine.side import OperatorSide, SidePlan, save_partition
from ledger_anchor import canonical_entry_bytes, open_ledger, sm2
from ledger_anchor.commitment import commit as salted_commit
from ledger_anchor.sm3 import sm3
from protocols.mpc import MpcParties, MpcTls, run_discrepancy
from protocols.psi import PsiServicer

log = logging.getLogger(__name__)


def _other(role: str) -> str:
    return OPERATOR_ROLES[1 - OPERATOR_ROLES.index(role)]


def _entry_json(entry: dict) -> str:
    return canonical_entry_bytes(entry).decode("utf-8")


class _Stage:
    """``with run.stage("psi_exact"):`` — times a stage (and its waiting) on the clock."""

    def __init__(self, clock: Any, name: str) -> None:
        self.clock, self.name = clock, name

    def __enter__(self):
        self.clock.enter(self.name)
        return self

    def __exit__(self, *exc):
        self.clock.leave(self.name)
        return False


@dataclass
class _Ledgered:
    """What the ledger says about this job (read by A at the agree step)."""

    settled_at: int | None
    rules_adopted: bool


class _Run:
    """What both kinds of role share: context, link, clock, signing."""

    def __init__(self, ctx: Any, link: Any) -> None:
        self.ctx = ctx
        self.link = link
        self.clock = ctx.clock
        self.job = ctx.job
        self.role = ctx.role

    def stage(self, name: str) -> _Stage:
        return _Stage(self.clock, name)

    def exchange(self, step: str, **body) -> dict[str, session_pb2.Post]:
        began = time.perf_counter()
        try:
            return self.link.exchange(step, **body)
        finally:
            self.clock.waited(time.perf_counter() - began)

    def sign(self, data: bytes) -> bytes:
        return sm2.sign(self.ctx.sm2_key, data)

    def verify(self, member_id: str, data: bytes, signature: bytes, what: str) -> None:
        try:
            sm2.verify(self.ctx.consortium.member(member_id).sm2_public_key, data, signature)
        except Exception as exc:  # noqa: BLE001 - any failure is a bad signature here
            raise SessionAborted(f"{member_id}'s signature on {what} does not verify: "
                                 f"{exc}") from None

    def hello(self) -> session_pb2.Hello:
        from engine.job.session import PROTOCOL_VERSION

        return session_pb2.Hello(
            job_id=self.job.id, role=self.role, member_id=self.ctx.member.id,
            rules_sm3=self.ctx.rules.sm3_hash(), protocol_version=PROTOCOL_VERSION,
            psi_protocol=self.job.psi_protocol, records_per_bucket=self.job.records_per_bucket,
            recover=self.ctx.recover)

    def agree(self) -> session_pb2.JoinReply:
        with self.stage("agree"):
            reply = self.link.join(self.hello())
            self.ctx.on_joined()
            self.check_ledger()
        return reply

    def witness_state(self) -> Path:
        return self.ctx.member.key_dir / "witness-state.json"

    def check_ledger(self) -> None:
        """What this member relies on, checked before the job uses the ledger (the rules in
        force, the settled check, the anchor, the cosignature): the latest checkpoint's
        signature, its consistency with the last one this member saw, the signatures of
        every entry since (ledger_anchor check_before_rely).  A ledger that fails stops the
        job on every party; nothing is appended or cosigned."""
        from ledger_anchor.errors import LedgerError

        try:
            with self.open_ledger(create=self.role == "A") as ledger:
                ledger.check_before_rely(self.ctx.member.id, state_path=self.witness_state())
        except LedgerError as exc:
            raise SessionAborted(f"party {self.role} ({self.ctx.member.id}) refuses the ledger: "
                                 f"{exc.diagnostics()}") from None

    def mpc_parties(self) -> MpcParties:
        members = [self.ctx.consortium.member(self.job.member_of(r)) for r in ("A", "B", "H")]
        tls = MpcTls(ca_cert=self.ctx.consortium.ca_cert, cert=self.ctx.member.tls_cert,
                     key=self.ctx.member.tls_key, peer_names=tuple(m.id for m in members))
        index = ("A", "B", "H").index(self.role)
        # MPyC's party i listens on entry i and dials the entries of the others: its own
        # listen address, the others' advertised endpoints (the two differ behind NAT or a relay)
        return MpcParties(addresses=tuple(m.mpc_listen if i == index else m.mpc_endpoint
                                          for i, m in enumerate(members)),
                          index=index, tls=tls)

    def mpc_timeout(self) -> float:
        return self.job.timeouts.peer_silence_s + 20

    # -- the ledger --------------------------------------------------------------------

    def open_ledger(self, *, create: bool = False):
        return open_ledger(self.ctx.consortium.path, member_id=self.ctx.member.id,
                           create=create)

    def job_entries(self) -> dict[str, tuple[int, dict]]:
        """The ledger entries of this job, by kind (the dataset commitments by party)."""
        found: dict[str, tuple[int, dict]] = {}
        with self.open_ledger() as ledger:
            end = ledger.size()
            while end > 0 and len(found) < 3:
                start = max(0, end - 1024)
                for offset, entry in enumerate(reversed(ledger.entries(start, end))):
                    if entry.get("job_id") != self.job.id:
                        continue
                    key = entry.get("kind", "")
                    if key == "dataset_commitment":
                        key = f"dataset_commitment:{entry.get('party')}"
                    found.setdefault(key, (end - 1 - offset, entry))
                end = start
        return found

    def cosign(self) -> int:
        from ledger_anchor.errors import LedgerError

        try:
            with self.open_ledger() as ledger:
                cosignature = ledger.cosign(self.ctx.member.id, self.ctx.sm2_key,
                                            state_path=self.witness_state())
                return cosignature.size
        except LedgerError as exc:
            raise SessionAborted(f"party {self.role} ({self.ctx.member.id}) refuses to cosign: "
                                 f"{exc.diagnostics()}") from None

    def check_anchored(self, receipt: session_pb2.AnchorReceipt,
                       statement_entry: dict | None) -> None:
        if len(receipt.indices) != 3 or len(receipt.leaf_hashes) != 3:
            raise SessionAborted(f"A's anchor receipt is malformed: {receipt!r}")
        with self.open_ledger() as ledger:
            stored = [ledger.entry(int(i)) for i in receipt.indices]
        if stored[2].get("kind") != "settlement_statement" or stored[2].get("job_id") != self.job.id:
            raise SessionAborted(f"ledger entry {receipt.indices[2]} is not this job's statement")
        if statement_entry is not None and {k: v for k, v in stored[2].items()
                                            if k != "signatures"} != statement_entry:
            raise SessionAborted("the statement A anchored differs from the one "
                                 f"{self.role} signed (ledger index {receipt.indices[2]})")


class HelperRun(_Run):
    """H: joins, takes part in the breaker's view of the sizes, the MPC and the cosigning."""

    def run(self) -> dict[str, Any]:
        reply = self.agree()
        with self.stage("ingest"):  # H waits while A and B read their exports
            sizes = self.exchange("sizes", sizes=session_pb2.Sizes())
        learned_sizes = {r: (sizes[r].sizes.input_rows, sizes[r].sizes.invalid_rows)
                         for r in OPERATOR_ROLES}
        with self.stage("mpc"):
            counts = self.exchange("candidates", candidates=session_pb2.Candidates(pairs=0))
            n_pairs = int(counts["A"].candidates.pairs)
            run_discrepancy(self.mpc_parties(), tolerance_params(self.ctx.rules), n_pairs, None,
                            self.mpc_timeout())
        self.clock.count("mpc", n_pairs)
        summary = {
            "job_id": self.job.id, "party": "H", "member": self.ctx.member.id,
            "period": self.job.period, "rules_sm3": self.job.rules_sm3,
            "learned": {"input_rows": {r: learned_sizes[r][0] for r in OPERATOR_ROLES},
                        "invalid_rows": {r: learned_sizes[r][1] for r in OPERATOR_ROLES},
                        "mpc_pairs": n_pairs},
            "stages": self.clock.stages_json(),
        }
        with self.stage("report"):
            write_json(self.ctx.out_dir / SUMMARY_FILE, summary)
        if self.ctx.recover:
            self.exchange("recovered", empty=session_pb2.Empty())
            return summary
        with self.stage("anchor"):
            self.exchange("anchor_ready", anchor_ready=session_pb2.AnchorReady())
            anchored = self.exchange("anchored", empty=session_pb2.Empty())["A"].anchored
            self.check_anchored(anchored, None)
            fault_point("anchor:anchored")
            size = self.cosign()
            self.exchange("cosigned", cosigned=session_pb2.Cosigned(size=size))
        write_json(self.ctx.out_dir / ANCHOR_FILE, _receipt_json(anchored, self.clock))
        del reply
        return summary


class OperatorRun(_Run):
    """A or B: see the module docstring."""

    def __init__(self, ctx: Any, link: Any, *, psi_servicer: PsiServicer | None = None,
                 psi_channel: Any = None) -> None:
        super().__init__(ctx, link)
        self.psi_servicer = psi_servicer
        self.psi_channel = psi_channel
        self.other = _other(self.role)
        self.side: OperatorSide | None = None
        self.secrets: JobSecrets | None = None
        self.nonce = b""
        self.workers = None  # engine.scale.driver.WorkerGroup

    # -- the stages ----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        reply = self.agree()
        self.nonce = reply.session_nonce
        try:
            self.ingest()
            commitments = self.commit()
            self.psi()
            evaluation = self.mpc()
            statement, entry = self.report(evaluation, commitments)
        except SessionAborted:
            self._quarantine_for_the_operator()
            raise
        if self.ctx.recover:
            return self.recovered(statement, entry, commitments)
        return self.anchor(statement, entry, commitments)

    def _quarantine_for_the_operator(self) -> None:
        """A job stopped after reading the export still leaves its quarantine file, so that
        the operator can correct the rows (the invalid-share breaker stops such jobs)."""
        side = self.side
        if side is None or side.scanned is None:
            return
        path = self.ctx.out_dir / QUARANTINE_FILE
        if path.exists():
            return
        try:
            side.write_quarantine(path)
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            log.warning("could not write %s: %s", path, exc)

    def ingest(self) -> None:
        ctx = self.ctx
        with self.stage("ingest"):
            from engine.scale.driver import start_workers

            self.workers = start_workers(ctx)  # None without --workers; they start meanwhile
            ctx.kernels_ready()
            source: InputFile = open_input(ctx.data_path)
            share = partition_share(bytes(ctx.sm2_key), self.job.id)
            shares = self.exchange("partition", partition=session_pb2.Partition(
                share=share, estimated_rows=source.estimated_rows))
            self.secrets = JobSecrets.from_shares(self.job.id, shares["A"].partition.share,
                                                  shares["B"].partition.share)
            estimate = max(shares[r].partition.estimated_rows for r in OPERATOR_ROLES)
            partition = self.secrets.partition(bucket_count(estimate, self.job.records_per_bucket))
            log.info("partition %s: %d buckets for about %d rows", partition.fingerprint(),
                     partition.n_buckets, estimate)
            save_partition(ctx.work_dir, partition)
            self.side = OperatorSide(SidePlan(self.role, ctx.rules, ctx.period, partition,
                                              ctx.work_dir), source)
            self.side.scan(progress=lambda done, total: self.clock.progress("ingest", done, total,
                                                                           "rows"))
            self.clock.count("ingest", self.side.input_rows)
            sizes = self.exchange("sizes", sizes=session_pb2.Sizes(
                input_rows=self.side.input_rows, invalid_rows=self.side.invalid_rows))
            del sizes  # the host ran the circuit breaker on them (check_sizes)
            self.side.local(progress=lambda done, total: self.clock.progress(
                "ingest", done, total, "buckets"))

    def commit(self) -> dict[str, dict]:
        side = self.side
        assert side is not None
        with self.stage("commit"):
            commitment = side.commitment()
            entry = {"kind": "dataset_commitment", "job_id": self.job.id, "party": self.role,
                     "member": self.ctx.member.id, "period": self.job.period,
                     "rules_sm3": self.job.rules_sm3, "format": COMMITMENT_FORMAT,
                     "root": commitment.root.hex()}
            signature = self.sign(canonical_entry_bytes(entry))
            done = self._resumable()
            posts = self.exchange("commitments", commitment=session_pb2.Commitment(
                entry_json=_entry_json(entry), signature=signature,
                considered=side.considered,
                done=[session_pb2.BucketDigest(bucket=b, digest=d) for b, d in done.items()]))
            peer = posts[self.other].commitment
            try:
                peer_entry = json.loads(peer.entry_json)
            except json.JSONDecodeError as exc:
                raise SessionAborted(f"{self.other}'s commitment is not JSON: {exc}") from None
            self.verify(self.job.member_of(self.other), canonical_entry_bytes(peer_entry),
                        peer.signature, "its dataset commitment")
            expected = {"kind": "dataset_commitment", "job_id": self.job.id,
                        "party": self.other, "member": self.job.member_of(self.other),
                        "rules_sm3": self.job.rules_sm3, "period": self.job.period,
                        "format": COMMITMENT_FORMAT}
            for key, value in expected.items():
                if peer_entry.get(key) != value:
                    raise SessionAborted(f"{self.other}'s commitment has {key}="
                                         f"{peer_entry.get(key)!r}, expected {value!r}")
            peer_done = {d.bucket: d.digest for d in peer.done}
            self.skip = {b for b, digest in done.items() if peer_done.get(b) == digest}
            if self.skip:
                log.info("resuming: %d of %d buckets were done by an earlier run",
                         len(self.skip), side.n_buckets)
            for b in set(range(side.n_buckets)) - self.skip:
                forget_bucket(side, b)
            entries = {self.role: {"entry": entry, "sig": signature.hex()},
                       self.other: {"entry": peer_entry, "sig": peer.signature.hex()}}
            self._save_resume_point(entries)
            if self.ctx.recover:
                self._check_recovered_commitments(entries)
        self.clock.count("commit", side.considered)
        return entries

    def _resume_file(self) -> Path:
        return self.ctx.work_dir / "resume.json"

    def _resumable(self) -> dict[int, bytes]:
        """Buckets whose passes an earlier run of this job kept, with the same buckets and
        the same commitment (this side's; the other's is checked by the digests)."""
        side = self.side
        assert side is not None
        try:
            saved = json.loads(self._resume_file().read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}
        if saved.get("job_id") != self.job.id or saved.get("partition") != \
                side.plan.partition.fingerprint() or saved.get("root") != \
                side.commitment().root.hex():
            return {}
        out = {}
        for b in range(side.n_buckets):
            digest = kept_digest(side, b)
            if digest is not None:
                out[b] = digest
        return out

    def _save_resume_point(self, entries: dict[str, dict]) -> None:
        side = self.side
        assert side is not None
        self._resume_file().write_text(json.dumps({
            "job_id": self.job.id, "partition": side.plan.partition.fingerprint(),
            "root": side.commitment().root.hex(),
            "peer_root": entries[self.other]["entry"]["root"]}), encoding="utf-8")

    def _check_recovered_commitments(self, entries: dict[str, dict]) -> None:
        anchored = self.job_entries()
        for role in OPERATOR_ROLES:
            found = anchored.get(f"dataset_commitment:{role}")
            if found is None:
                raise SessionAborted(f"recovery: the ledger has no dataset commitment of {role} "
                                     f"for job {self.job.id!r}")
            root = found[1].get("root")
            if root != entries[role]["entry"]["root"]:
                raise SessionAborted(
                    f"recovery: {role}'s input gives commitment {entries[role]['entry']['root'][:16]}… "
                    f"but the ledger holds {str(root)[:16]}… (entry {found[0]}); the inputs are "
                    "not the settled ones")

    def psi(self) -> None:
        """Every bucket's passes (:class:`engine.job.buckets.BucketPasses`): in this process
        in lockstep through the job session, or on the operator's bucket workers
        (:mod:`engine.scale`) when both operators offered workers at the ``workers`` step."""
        side = self.side
        assert side is not None and self.secrets is not None
        from engine.scale.driver import agree_workers

        plan = agree_workers(self)
        if plan is not None:
            plan.run(self)
            return
        passes = BucketPasses(
            side=side, role=self.role, secrets=self.secrets, nonce=self.nonce,
            exchange=self.exchange, psi=PsiPeer(self.role, self.psi_servicer, self.psi_channel,
                                                peer=self.job.member_of("B"),
                                                protocol=self.job.psi_protocol),
            timeout_s=self.job.timeouts.stage_s, stage=self.stage)
        for b in range(side.n_buckets):
            if b in self.skip:
                continue
            passes.run(b)
            self.clock.progress("psi_key", b + 1, side.n_buckets, "buckets")
        for stage, items in passes.items.items():
            self.clock.count(stage, items)

    def mpc(self):
        side = self.side
        assert side is not None
        with self.stage("mpc"):
            values, _counts = side.candidates()
            counts = self.exchange("candidates", candidates=session_pb2.Candidates(
                pairs=len(values)))
            n_pairs = int(counts["A"].candidates.pairs)
            evaluation = run_discrepancy(self.mpc_parties(), tolerance_params(self.ctx.rules),
                                         n_pairs, pair_values(values), self.mpc_timeout())
        self.clock.count("mpc", n_pairs)
        return evaluation

    def report(self, evaluation, commitments) -> tuple[dict, dict]:
        """Every output but statement.json and anchor.json, durably; the signed statement."""
        side = self.side
        ctx = self.ctx
        assert side is not None and self.secrets is not None
        with self.stage("report"):
            tally = side.finish(evaluation)
            self.clock.count("report", side.input_rows)
            out = ctx.out_dir
            side.write_quarantine(out / QUARANTINE_FILE)
            digest = side.write_records(out / RECORDS_FILE)
            fault_point("report:records")
            facts = self.exchange("facts", facts=session_pb2.Facts(
                facts_json=json.dumps(tally.side_facts(side.evaluation).to_json()), records_digest=digest))
            from engine.matching.outcome import SideFacts

            remote = SideFacts.from_json(json.loads(facts[self.other].facts.facts_json))
            outcome = tally.outcome(remote, side.evaluation, ctx.rules, self.job.parties)
            digests = {r: facts[r].facts.records_digest for r in OPERATOR_ROLES}
            statement = statement_document(
                outcome, job_id=self.job.id, period=self.job.period,
                rules_sm3=self.job.rules_sm3, operators=self.job.parties,
                commitments={r: commitments[r]["entry"]["root"] for r in OPERATOR_ROLES},
                outputs=digests)
            signing = statement_signing_bytes(statement)
            statement_sm3 = sm3(signing)
            entry = {"kind": "settlement_statement", "job_id": self.job.id,
                     "period": self.job.period, "rules_sm3": self.job.rules_sm3,
                     "operators": {r: self.job.member_of(r) for r in OPERATOR_ROLES},
                     "commitment": salted_commit("settlement_statement",
                                                 self.secrets.statement_salt, signing)}
            summary = summary_document(
                outcome, job_id=self.job.id, period=self.job.period,
                rules_sm3=self.job.rules_sm3, operators=self.job.parties,
                stages=self.clock.stages_json(), excluded_by_reason=tally.excluded_by_reason,
                invalid_by_reason=tally.invalid_by_reason, outputs={"records": digest},
                statement_sm3=statement_sm3.hex(),
                partition={"buckets": side.n_buckets, "resumed": len(self.skip),
                           "psi_protocol": self.job.psi_protocol},
                period_window=ctx.period)
            write_json(out / SUMMARY_FILE, summary)
            ctx.write_report(summary, statement, side)
            fault_point("report:written")
            signed = self.exchange("statement", signature=session_pb2.StatementSignature(
                statement_sm3=statement_sm3, signature=self.sign(signing),
                entry_signature=self.sign(canonical_entry_bytes(entry))))
            peer = signed[self.other].signature
            if peer.statement_sm3 != statement_sm3:
                raise SessionAborted("A's and B's settlement statements differ (SM3 "
                                     f"{signed['A'].signature.statement_sm3.hex()[:16]}… vs "
                                     f"{signed['B'].signature.statement_sm3.hex()[:16]}…)")
            other_member = self.job.member_of(self.other)
            self.verify(other_member, signing, peer.signature, "the statement")
            self.verify(other_member, canonical_entry_bytes(entry), peer.entry_signature,
                        "the statement's ledger entry")
            statement["signatures"] = sorted(
                [{"signer": self.job.member_of(r), "sig": signed[r].signature.signature.hex(),
                  "key_id": key_fingerprint(self.ctx.consortium.member(
                      self.job.member_of(r)).sm2_public_key)}
                 for r in OPERATOR_ROLES], key=lambda s: s["signer"])
            self.entry_signatures = {self.job.member_of(r): signed[r].signature.entry_signature
                                     for r in OPERATOR_ROLES}
            fault_point("report:signed")
        return statement, entry

    def anchor(self, statement: dict, entry: dict, commitments: dict) -> dict[str, Any]:
        ctx = self.ctx
        with self.stage("anchor"):
            self.exchange("anchor_ready", anchor_ready=session_pb2.AnchorReady(
                statement_sm3=sm3(statement_signing_bytes(statement))))
            fault_point("anchor:ready")
            if self.role == "A":
                items = [(commitments[r]["entry"], {self.job.member_of(r): bytes.fromhex(
                    commitments[r]["sig"])}) for r in OPERATOR_ROLES]
                items.append((entry, self.entry_signatures))
                with self.open_ledger(create=True) as ledger:
                    receipts = ledger.append_many(items, verify_as=ctx.member.id,
                                                  state_path=self.witness_state())
                    self._request_approval(ledger)
                fault_point("anchor:appended")
                receipt = session_pb2.AnchorReceipt(
                    indices=[r.index for r in receipts],
                    leaf_hashes=[r.leaf_hash for r in receipts],
                    checkpoint=receipts[-1].checkpoint)
                anchored = self.exchange("anchored", anchored=receipt)["A"].anchored
            else:
                anchored = self.exchange("anchored", empty=session_pb2.Empty())["A"].anchored
            self.check_anchored(anchored, entry)
            fault_point("anchor:anchored")
            size = self.cosign()
            self.exchange("cosigned", cosigned=session_pb2.Cosigned(size=size))
            fault_point("anchor:cosigned")
        self.clock.count("anchor", 3)
        self._write_statement(statement, anchored)
        fault_point("anchor:statement")
        return self._result(anchored)

    def _request_approval(self, ledger) -> None:
        """The statement is final for payment once people with roles approve it (default:
        one finance approver of each operator; governance): A files the request."""
        from governance import GovernanceError
        from governance.api import request_statement_approval

        try:
            request = request_statement_approval(ledger, job_id=self.job.id,
                                                 requester=self.ctx.member.id,
                                                 key=self.ctx.sm2_key,
                                                 state_path=self.witness_state())
            log.info("approval of the statement requested: %s", request)
        except GovernanceError as exc:
            # the statement is anchored; the request can be filed again with
            # `settlechain approve request`
            log.warning("could not request the statement's approval: %s", exc.diagnostics())

    def recovered(self, statement: dict, entry: dict, commitments: dict) -> dict[str, Any]:
        anchored_entries = self.job_entries()
        found = anchored_entries.get("settlement_statement")
        if found is None:
            raise SessionAborted(f"recovery: the ledger has no statement for job {self.job.id!r}")
        index, stored = found
        if stored.get("commitment") != entry["commitment"]:
            raise SessionAborted(
                "recovery: the rebuilt statement does not open the anchored commitment "
                f"(ledger entry {index}); the outputs were not rebuilt as settled")
        receipt = session_pb2.AnchorReceipt(
            indices=[anchored_entries[f"dataset_commitment:{r}"][0] for r in OPERATOR_ROLES]
            + [index])
        self.exchange("recovered", empty=session_pb2.Empty())
        self._write_statement(statement, receipt)
        log.info("recovered the outputs of job %s; they open ledger entry %d", self.job.id, index)
        return self._result(receipt)

    def _write_statement(self, statement: dict, anchored: session_pb2.AnchorReceipt) -> None:
        assert self.secrets is not None
        document = dict(statement)
        document["ledger"] = {"commitment_salt": self.secrets.statement_salt.hex(),
                              "index": int(anchored.indices[2])}
        write_json(self.ctx.out_dir / STATEMENT_FILE, document, canonical=True)
        write_json(self.ctx.out_dir / ANCHOR_FILE, _receipt_json(anchored, self.clock))

    def _result(self, anchored: session_pb2.AnchorReceipt) -> dict[str, Any]:
        return json.loads((self.ctx.out_dir / SUMMARY_FILE).read_text(encoding="utf-8")) | {
            "anchor": _receipt_json(anchored, self.clock)}


def key_fingerprint(public_key: Any) -> str:
    """An SM2 public key's fingerprint as shown to people: 16 hex of SM3 of the 64-byte key."""
    raw = public_key.raw if hasattr(public_key, "raw") else bytes(public_key)
    return sm3(b"settlechain/key-id/v1\n" + raw).hex()[:16]


def _receipt_json(receipt: session_pb2.AnchorReceipt, clock: Any) -> dict[str, Any]:
    return {"index": int(receipt.indices[2]) if len(receipt.indices) == 3 else None,
            "commitment_indices": [int(i) for i in receipt.indices[:2]],
            "leaf_hashes": [bytes(h).hex() for h in receipt.leaf_hashes],
            "checkpoint": receipt.checkpoint,
            "anchor_stage": clock.stage_time("anchor").as_json()}


def host_checks(rules: Any, recover: bool) -> dict[str, Any]:
    """The circuit breaker, run by the host on the steps it judges (engine.breaker)."""

    def sizes(posts):
        return check_sizes({r: SideSizes(posts[r].sizes.input_rows, posts[r].sizes.invalid_rows)
                            for r in OPERATOR_ROLES}, rules.circuit_breaker)

    def commitments(posts):
        return check_considered({r: posts[r].commitment.considered for r in OPERATOR_ROLES})

    def candidates(posts):
        a, b = posts["A"].candidates.pairs, posts["B"].candidates.pairs
        if a != b:
            return f"A and B disagree on the number of candidate pairs: {a} vs {b}"
        return None

    return {"sizes": sizes, "commitments": commitments, "candidates": candidates}


__all__ = ["HelperRun", "MAX_ATTEMPTS", "OperatorRun", "host_checks"]
