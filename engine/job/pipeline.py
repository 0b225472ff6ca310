"""The stages of one party's job (see :mod:`engine.job.party` for the overview).

Kept apart from ``party`` because it pulls in the heavy dependencies (polars, the
numba PSI kernels, MPyC) that ``settlechain --help`` should not load.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any


from engine.errors import InputError, JobError
from engine.ingest import ingest
from engine.job.commitment import commit_records
from engine.job.party import (
    PASS_STAGE, AbortWatch, PartyRun, connect_link, hello_of, psi_session_id,
    sign_entry, start_host, verify_entry,
)
from engine.job.session import HostLink, SessionAborted
from engine.matching import PartyMatcher, SideFacts
from engine.outputs import StageTime, statement_document, statement_signing_bytes, \
    summary_document, write_party_outputs
from engine.report import write_report
from ledger_anchor import open_ledger, sm2
from ledger_anchor.sm3 import sm3
from protocols.errors import ProtocolError
from protocols.mpc import MpcParties, MpcTls, ToleranceParams, run_discrepancy
from protocols.psi import ElementSet, PsiConfig, PsiServicer, run_psi_client
from protocols.psi.kernels import warm_up

log = logging.getLogger(__name__)


def run_pipeline(run: PartyRun) -> dict[str, Any]:
    watch = AbortWatch(run.role)
    try:
        return _run(run, watch)
    finally:
        watch.finished()


def _run(run: PartyRun, watch: AbortWatch) -> dict[str, Any]:
    clock = run.clock
    t_total = time.perf_counter()
    job, rules, role = run.job, run.rules, run.role

    # The session comes first, so that whatever fails later (even reading our own
    # input) reaches the other parties at once instead of at their timeouts.
    server = channel = psi_servicer = host = None
    if role == "A":
        # The agreement step applies the circuit breaker to the input sizes; the PSI's
        # own bounds only guard against a peer announcing something else.
        psi_servicer = PsiServicer(PsiConfig(
            peer_timeout_s=job.timeouts.stage_s,
            max_elements=min(rules.circuit_breaker.max_records, 1 << 30)))
        adopted, settled_at = _ledger_state(run)
        server, host = start_host(run, [psi_servicer.add_to_server],
                                  rules_adopted=adopted, settled_at=settled_at)
        host.on_abort(watch)
        link: Any = HostLink(host, "A", job.timeouts.stage_s, job.timeouts.connect_s)
    else:
        link, channel = connect_link(run, watch)
    try:
        try:
            # 1. ingest ------------------------------------------------------------
            ingested = None
            if role in ("A", "B"):
                # numba loads (or compiles) the PSI kernels while we read the file
                threading.Thread(target=warm_up, name="psi-warm-up", daemon=True).start()
                with clock.timed("ingest"):
                    ingested = ingest(run.data_path, rules,
                                      quarantine_path=run.out_dir / "quarantine.parquet")
                clock.add("ingest", 0.0, ingested.n_rows)
                log.info("ingested %s: %s", run.data_path, ingested.counts)
            input_rows = ingested.n_rows if ingested else 0
            considered = ingested.counts["considered"] if ingested else 0

            # 2. agree -------------------------------------------------------------
            with clock.timed("agree"):
                reply = link.join(hello_of(run, input_rows, considered))
            nonce = reply.session_nonce
            sizes = {h.role: (h.input_rows, h.considered_records) for h in reply.parties}
            log.info("agreed: sizes %s", sizes)
            result = _after_agreement(run, link, channel, psi_servicer, ingested, nonce,
                                      sizes)
        except SessionAborted:
            raise
        except (ProtocolError, JobError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            link.abort(reason)
            raise JobError(f"party {role} stopped the job: {reason}") from exc
        except InputError as exc:
            # The details (file, row, values) stay on this party; the others learn the kind.
            link.abort(f"party {role} could not use its input ({type(exc).__name__}; "
                       "the details are in its own log)")
            raise
        except BaseException as exc:
            link.abort(f"party {role} failed ({type(exc).__name__}; see its log)")
            raise
        result["stages"]["total"] = {"seconds": round(time.perf_counter() - t_total, 6),
                                     "items": input_rows}
        result["stages"]["peak_memory_mib"] = round(clock.peak_mib(), 1)
        for name, block in result["stages"].items():
            if isinstance(block, dict) and name in clock.peaks:
                block["peak_memory_mib"] = round(clock.peaks[name], 1)
        (run.out_dir / "summary.json").write_text(json.dumps(result, indent=2) + "\n",
                                                  encoding="utf-8")
        clock.note("done")
        return result
    except SessionAborted as exc:
        if link.abort_reason is None:
            # found here (a check on a peer's message failed): stop the others too
            link.abort(exc.reason)
        clock.note("stopped", exc.reason)
        raise JobError(f"the job was stopped: {exc.reason}") from None
    finally:
        link.close()
        if server is not None:
            if host.abort_reason is not None:
                # Keep listening until B and H have heard why (one may not have joined yet).
                host.wait_informed(("B", "H"), job.timeouts.connect_s)
            # Let the last replies reach B and H before the port closes.
            server.stop(grace=3).wait()


def _ledger_state(run: PartyRun) -> tuple[bool, int | None]:
    """What the agreement step needs from the ledger: are the job's rules adopted (jobs
    may only use rules the consortium adopted, DESIGN.md governance), and the index of
    a settlement statement already anchored for this job id, if any."""
    from governance import GovernanceError, rules_in_force

    try:
        with open_ledger(run.consortium.path, member_id=run.member.id, readonly=True) as ledger:
            try:
                rules_in_force(ledger, run.job.period, run.job.rules_sm3)
                adopted = True
            except GovernanceError as exc:
                log.warning("%s", exc.diagnostics())
                adopted = False
            return adopted, settled_at(ledger, run.job.id)
    except Exception as exc:  # noqa: BLE001 - no ledger yet: nothing is adopted
        log.warning("cannot read the ledger to check rule adoption: %s", exc)
        return False, None


def settled_at(ledger: Any, job_id: str, *, chunk: int = 1024) -> int | None:
    """The index of the last ``settlement_statement`` for ``job_id`` on ``ledger``, or None.
    Reads the ledger from its end, ``chunk`` entries at a time (a job's statement is
    usually among the last entries)."""
    end = ledger.size()
    while end > 0:
        start = max(0, end - chunk)
        for offset, entry in enumerate(reversed(ledger.entries(start, end))):
            if entry.get("kind") == "settlement_statement" and entry.get("job_id") == job_id:
                return end - 1 - offset
        end = start
    return None


def _after_agreement(run, link, channel, psi_servicer, ingested, nonce, sizes):
    clock, job, rules, role = run.clock, run.job, run.rules, run.role
    considered = sizes[role][1]
    matcher = None
    commitments: dict[str, dict] = {}
    if role in ("A", "B"):
        # 3. commit ----------------------------------------------------------------
        with clock.timed("commit"):
            commitment = commit_records(ingested.records)
            entry = {"kind": "dataset_commitment", "job_id": job.id, "party": role,
                     "member": run.member.id, "period": job.period,
                     "rules_sm3": job.rules_sm3, **commitment.as_json(),
                     "considered": considered}
            signature = sign_entry(run, entry)
            both = link.exchange("commitments", {"entry": entry, "sig": signature.hex()})
        other = "B" if role == "A" else "A"
        peer = both[other]
        peer_entry = peer.get("entry", {})
        verify_entry(run, job.member_of(other), peer_entry, str(peer.get("sig", "")))
        expected = {"kind": "dataset_commitment", "job_id": job.id, "party": other,
                    "member": job.member_of(other), "rules_sm3": job.rules_sm3}
        for key, value in expected.items():
            if peer_entry.get(key) != value:
                raise SessionAborted(f"{other}'s commitment has {key}={peer_entry.get(key)!r}, "
                                     f"expected {value!r}")
        if peer_entry.get("considered") != sizes[other][1]:
            raise SessionAborted(f"{other} committed to {peer_entry.get('considered')} "
                                 f"considered records but announced {sizes[other][1]}")
        commitments = {r: {"entry": both[r]["entry"], "sig": both[r]["sig"]} for r in ("A", "B")}

        # 4. PSI passes ------------------------------------------------------------
        matcher = PartyMatcher(role, ingested.rows, ingested.records, rules)
        while matcher.next_pass is not None:
            spec = matcher.next_pass
            stage = PASS_STAGE[spec.name]
            with clock.timed(stage):
                elements = matcher.build_pass(spec)
                session_id = psi_session_id(nonce, job.id, spec.name)
                element_set = ElementSet.from_fixed(elements.elements)
                if role == "A":
                    offered = psi_servicer.offer(session_id, element_set, job.timeouts.stage_s)
                    link.exchange(f"psi_{spec.name}", {"elements": len(elements)})
                    psi = offered.result()
                else:
                    link.exchange(f"psi_{spec.name}", {"elements": len(elements)})
                    psi = run_psi_client(channel, session_id, element_set, job.timeouts.stage_s)
                matcher.record_pass(elements, psi.local_indices, psi.pair_ids)
            clock.add(stage, 0.0, len(elements))
            log.info("pass %s: %d elements, %d pairs (peer %d)", spec.name, len(elements),
                     len(psi.local_indices), psi.peer_size)

    # 5. MPC ---------------------------------------------------------------------------
    n_pairs = matcher.candidate_count if matcher is not None else 0
    with clock.timed("mpc"):
        counts = link.exchange("candidates", {"pairs": n_pairs} if matcher else {})
        if counts["A"].get("pairs") != counts["B"].get("pairs"):
            raise SessionAborted(f"A and B disagree on the number of candidate pairs: "
                                 f"{counts['A'].get('pairs')} vs {counts['B'].get('pairs')}")
        n_pairs = int(counts["A"]["pairs"])
        values = None
        if matcher is not None:
            cv = matcher.candidate_values()
            from protocols.mpc import PairValues

            values = PairValues(start=cv.start, duration_s=cv.duration_s, charge=cv.charge,
                                rated_charge=cv.rated_charge)
        evaluation = run_discrepancy(_mpc_parties(run), _tolerance_params(rules), n_pairs,
                                     values, job.timeouts.peer_silence_s + 20)
        if matcher is not None:
            matcher.record_evaluation(evaluation)
    clock.add("mpc", 0.0, n_pairs)

    # 6. statement and outputs -------------------------------------------------------------
    outcome = statement = None
    if matcher is not None:
        t0 = time.perf_counter()
        clock.note("report")
        facts = link.exchange("unmatched", matcher.side_facts().to_json())
        other = "B" if role == "A" else "A"
        outcome = matcher.finish(SideFacts(**facts[other]))
        statement = {"kind": "settlement_statement", **statement_document(
            outcome, job_id=job.id, period=job.period, rules_sm3=job.rules_sm3,
            operators=job.parties,
            commitments={r: commitments[r]["entry"]["root"] for r in ("A", "B")})}
        signing = statement_signing_bytes(statement)
        signature = sm2.sign(run.sm2_key, signing)
        signed = link.exchange("statement", {"sm3": sm3(signing).hex(), "sig": signature.hex()})
        if signed[other]["sm3"] != sm3(signing).hex():
            raise SessionAborted("A's and B's settlement statements differ "
                                 f"(SM3 {signed['A']['sm3'][:16]}… vs {signed['B']['sm3'][:16]}…)")
        try:
            sm2.verify(run.consortium.member(job.member_of(other)).sm2_public_key, signing,
                       bytes.fromhex(signed[other]["sig"]))
        except Exception as exc:  # noqa: BLE001
            raise SessionAborted(f"{other}'s signature on the statement does not verify: "
                                 f"{exc}") from None
        statement["signatures"] = sorted(
            [{"signer": job.member_of(r), "sig": signed[r]["sig"]} for r in ("A", "B")],
            key=lambda s: s["signer"])
        clock.add("report", time.perf_counter() - t0, outcome.records.height)

    # 7. anchor and cosign -----------------------------------------------------------------
    anchor = _anchor_and_cosign(run, link, commitments, statement)

    # outputs ------------------------------------------------------------------------------
    stages = {name: StageTime(run.clock.seconds.get(name, 0.0), run.clock.items.get(name, 0))
              for name in ("ingest", "psi_exact", "psi_key", "mpc", "report", "anchor")}
    if outcome is None:
        return _helper_summary(run, sizes, n_pairs, anchor, stages)
    t0 = time.perf_counter()
    run.clock.memory_stage("report")  # writing the outputs is part of the report stage
    stages["total"] = StageTime(0.0, 0)
    summary = summary_document(outcome, job_id=job.id, period=job.period,
                               rules_sm3=job.rules_sm3, stages=stages,
                               peak_memory_mib=run.clock.peak_mib(), anchor=anchor)
    write_party_outputs(run.out_dir, outcome.records, summary, statement)
    write_report(run.out_dir, summary, outcome.records, ingested.records, ingested.rows, rules)
    summary["stages"]["report"]["seconds"] += round(time.perf_counter() - t0, 6)
    return summary


def _anchor_and_cosign(run, link, commitments, statement) -> dict[str, Any]:
    clock, job, role = run.clock, run.job, run.role
    t0 = time.perf_counter()
    clock.note("anchor")
    link.exchange("anchor_ready", {"statement_sm3": sm3(statement_signing_bytes(statement)).hex()}
                  if statement is not None else {})
    ledger = open_ledger(run.consortium.path, member_id=run.member.id, create=(role == "A"))
    try:
        payload: dict[str, Any] = {}
        if role == "A":
            items = [(commitments[r]["entry"], {job.member_of(r): bytes.fromhex(
                commitments[r]["sig"])}) for r in ("A", "B")]
            items.append((statement, None))
            receipts = ledger.append_many(items)
            payload = {"indices": [r.index for r in receipts],
                       "leaf_hashes": [r.leaf_hash.hex() for r in receipts],
                       "checkpoint": receipts[-1].checkpoint}
        anchored = link.exchange("anchored", payload)["A"]
        indices = anchored.get("indices")
        if not isinstance(indices, list) or len(indices) != 3:
            raise SessionAborted(f"A's anchor receipt is malformed: {anchored!r}")
        if statement is not None:
            # what A anchored must be exactly what this party signed
            stored = ledger.entry(indices[2])
            if stored != statement:
                raise SessionAborted("the statement A anchored differs from the one "
                                     f"{role} signed (ledger index {indices[2]})")
        cosignature = ledger.cosign(run.member.id, run.sm2_key,
                                    state_path=run.member.key_dir / "witness-state.json")
        link.exchange("cosigned", {"size": cosignature.size})
        checkpoint = ledger.checkpoint()
    finally:
        ledger.close()
    clock.add("anchor", time.perf_counter() - t0, 3)
    return {"index": indices[2], "leaf_hash": anchored["leaf_hashes"][2],
            "commitment_indices": indices[:2], "checkpoint": checkpoint}


def _helper_summary(run, sizes, n_pairs, anchor, stages) -> dict[str, Any]:
    return {
        "job_id": run.job.id, "party": "H", "period": run.job.period,
        "rules_sm3": run.job.rules_sm3,
        "learned": {"input_rows": {"A": sizes["A"][0], "B": sizes["B"][0]},
                    "considered_records": {"A": sizes["A"][1], "B": sizes["B"][1]},
                    "mpc_pairs": n_pairs},
        "anchor": anchor,
        "stages": {**{name: {"seconds": round(t.seconds, 6), "items": t.items}
                      for name, t in stages.items()},
                   "peak_memory_mib": round(run.clock.peak_mib(), 1)},
    }


def _mpc_parties(run: PartyRun) -> MpcParties:
    members = [run.consortium.member(run.job.member_of(r)) for r in ("A", "B", "H")]
    tls = MpcTls(ca_cert=run.consortium.ca_cert, cert=run.member.tls_cert,
                 key=run.member.tls_key, peer_names=tuple(m.id for m in members))
    return MpcParties(addresses=tuple(m.mpc_endpoint for m in members),
                      index=("A", "B", "H").index(run.role), tls=tls)


def _tolerance_params(rules) -> ToleranceParams:
    tol = rules.tolerances
    return ToleranceParams(time_tolerance_s=tol.time_tolerance_s,
                           duration_tolerance_s=tol.duration_tolerance_s,
                           charge_tolerance=tol.charge_tolerance, policy=rules.disclosure)
