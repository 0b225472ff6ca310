"""``settlechain governance | people | approve | audit``: the consortium's decisions and approvals.

::

    settlechain governance genesis  --config C [--out genesis.json]
    settlechain governance propose  --config C --as CMCC --type rule-package --name voice --version 2026.1 \\
                                    --sequence 1 --effective-from 2026-10 --rules-sm3 HEX [--policy EXPR] [--expires-in 14d]
    settlechain governance vote     --config C --as CUCC --proposal ID [--reject]
    settlechain governance status   --config C [--json]
    settlechain governance inspect  --config C --proposal ID [--json]
    settlechain governance execute  --config C --proposal ID --sign CMCC --sign CUCC --sign CBN=cbn/sm2.key
    settlechain people certify      --config C --as CMCC --person alice --role finance --public-key HEX
    settlechain people revoke       --config C --as CMCC --cert ID --reason TEXT
    settlechain people list         --config C [--json]
    settlechain approve request     --config C --as CMCC --job JOB [--deadline-in 14d]
    settlechain approve list | show --config C [--cert ID | --request ID] [--json]
    settlechain approve sign | reject --config C --request ID --cert ID --key alice.key
    settlechain approve withdraw    --config C --as CMCC --request ID
    settlechain audit export        --config C --job JOB --out bundle.json [--statement statement.json --salt HEX]
    settlechain audit verify        bundle.json --genesis genesis.json

``--as ID`` signs with ``members/ID/sm2.key`` beside the consortium file (``--key`` to
give another file) and, with ``--state``, checks the ledger as that member first.
Exit status: 0 ok, 2 bad input or refused, 3 not verified.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TYPES = ("rule-package", "member-add", "member-remove", "key-rotation", "key-revocation", "witness-policy",
         "engine-release")


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_governance(subparsers)
    _register_people(subparsers)
    _register_approve(subparsers)
    _register_audit(subparsers)


def _group(subparsers, name: str, help_text: str):
    parser = subparsers.add_parser(name, help=help_text, description=(__doc__ or "").replace("\\\n", "\n"),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])

    def command(sub: str, text: str, handler, *, author: bool = False, config: bool = True):
        p = commands.add_parser(sub, help=text, description=text)
        p.set_defaults(handler=handler)
        if config:
            p.add_argument("--config", required=True, type=Path, help="consortium file (the local bootstrap)")
            p.add_argument("--member", help="whose TLS certificate authenticates to a remote ledger "
                                            "(default: --as)")
        if author:
            p.add_argument("--as", dest="author", required=True, help="the member that signs")
            p.add_argument("--key", type=Path, help="its SM2 key (default: members/ID/sm2.key)")
            p.add_argument("--state", type=Path, help="its witness state file: check the ledger as it first")
        return p
    return command


def _register_governance(subparsers) -> None:
    command = _group(subparsers, "governance", "proposals, votes, membership manifests of the consortium")
    p = command("genesis", "write the genesis membership manifest (what an auditor keeps)", _genesis)
    p.add_argument("--out", type=Path, help="output file (default: stdout)")
    p = command("propose", "put a typed proposal on the ledger", _propose, author=True)
    p.add_argument("--type", required=True, choices=TYPES)
    p.add_argument("--id", help="proposal id (default: generated)")
    p.add_argument("--policy", help="AND / OR / OutOf over 'MEMBER.role' (default: [ledger].proposal_policy, "
                                    "i.e. ALL members)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--expires-in", default="14d", help="e.g. 12h, 7d (default 14d)")
    group.add_argument("--expires-at", help="UTC time YYYY-MM-DDTHH:MM:SSZ")
    for option, text in (("--name", "rule package name"), ("--version", "rule package or engine version"),
                         ("--effective-from", "first period YYYY-MM of a rule package"),
                         ("--rules-sm3", "SM3 of the rules' canonical form (settlechain job init prints it)"),
                         ("--member-id", "the member concerned"), ("--member-name", "a joining member's name"),
                         ("--member-key", "a joining member's SM2 public key (128 hex)"),
                         ("--member-roles", "a joining member's roles, comma-separated (default: member)"),
                         ("--member-tls-cert", "a joining member's TLS certificate file (pinned by SHA-256)"),
                         ("--new-key", "the rotated member's new SM2 public key (128 hex)"),
                         ("--package-sm3", "SM3 of an engine release package")):
        p.add_argument(option, help=text)
    p.add_argument("--sequence", type=int, help="rule package sequence (increases with each version)")
    p.add_argument("--k", type=int, help="witness policy: cosignatures that make a checkpoint final")
    p.add_argument("--package", type=Path, help="engine release file (its SM3 is proposed)")
    p = command("vote", "approve (or reject) a proposal", _vote, author=True)
    p.add_argument("--proposal", required=True)
    p.add_argument("--reject", action="store_true")
    p = command("status", "the membership in force and every proposal, replayed from the ledger", _status)
    p.add_argument("--json", action="store_true")
    p = command("inspect", "per member: what it approved, and where it differs from the proposal", _inspect)
    p.add_argument("--proposal", required=True)
    p.add_argument("--json", action="store_true")
    p = command("execute", "append the membership manifest of a passed membership proposal", _execute)
    p.add_argument("--proposal", required=True)
    p.add_argument("--sign", action="append", default=[], metavar="LABEL[=KEYFILE]",
                   help="sign the manifest: a member id (key members/ID/sm2.key), a joining member, or "
                        "ID/next=KEYFILE for a rotated member's new key; repeatable")
    p.add_argument("--signature", action="append", default=[], metavar="LABEL=HEX",
                   help="a signature collected from a member (settlechain governance sign-manifest)")
    p = command("sign-manifest", "print this member's signature of the manifest a proposal yields", _sign_manifest)
    p.add_argument("--proposal", required=True)
    p.add_argument("--key", required=True, type=Path, help="the signing SM2 key")


def _register_people(subparsers) -> None:
    command = _group(subparsers, "people", "certify people's SM2 keys with a role (e.g. CMCC.finance)")
    p = command("certify", "certify a person's key with a role", _certify, author=True)
    p.add_argument("--person", required=True, help="the person's id (lowercase)")
    p.add_argument("--role", required=True, help="the role, e.g. finance")
    p.add_argument("--public-key", required=True, help="the person's SM2 public key (128 hex)")
    p.add_argument("--valid-until", help="UTC time (default: a year)")
    p.add_argument("--id", help="certificate id (default: generated)")
    p = command("revoke", "revoke a certificate this operator issued", _revoke, author=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--reason", required=True)
    p = command("list", "every certificate and its state", _people_list)
    p.add_argument("--json", action="store_true")


def _register_approve(subparsers) -> None:
    command = _group(subparsers, "approve", "approval requests and people's approvals")
    p = command("request", "ask for the approval of a job's settlement statement", _request, author=True)
    p.add_argument("--job", required=True)
    p.add_argument("--deadline-in", default="14d")
    p.add_argument("--step", action="append", default=[], metavar="NAME=POLICY",
                   help="a step and its policy, in order (default: finance=AND('A.finance', 'B.finance'))")
    p = command("list", "approval requests (with --cert: what that person may sign now)", _approve_list)
    p.add_argument("--cert")
    p.add_argument("--json", action="store_true")
    p = command("show", "one request: its subject, steps, approvals and state", _approve_show)
    p.add_argument("--request", required=True)
    p.add_argument("--json", action="store_true")
    for name, text in (("sign", "approve a request with a person's key"),
                       ("reject", "reject a request with a person's key")):
        p = command(name, text, _approve_sign)
        p.add_argument("--request", required=True)
        p.add_argument("--cert", required=True, help="the person's certificate id")
        p.add_argument("--key", required=True, type=Path, help="the person's SM2 key file")
        p.add_argument("--step", help="the step (default: the first not yet met)")
        p.add_argument("--relay-key", type=Path,
                       help="the operator's member key that relays the envelope (default: members/OP/sm2.key)")
        p.set_defaults(decision="approve" if name == "sign" else "reject")
    p = command("withdraw", "withdraw a request (its requester)", _withdraw, author=True)
    p.add_argument("--request", required=True)


def _register_audit(subparsers) -> None:
    command = _group(subparsers, "audit", "self-contained audit bundles for a job")
    p = command("export", "write the audit bundle of one job", _audit_export)
    p.add_argument("--job", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--statement", type=Path, help="the statement this party holds (statement.json)")
    p.add_argument("--salt", help="the statement commitment's salt (hex), if the statement is committed")
    p = command("verify", "check an audit bundle offline with only the genesis manifest", _audit_verify,
                config=False)
    p.add_argument("bundle", type=Path)
    p.add_argument("--genesis", required=True, type=Path, help="genesis manifest (settlechain governance genesis)")


# ---------------------------------------------------------------------------


def _open(args: argparse.Namespace):
    from ledger_anchor.opening import open_ledger  # noqa: PLC0415

    member = getattr(args, "member", None) or getattr(args, "author", None)
    return open_ledger(args.config, member_id=member)


def _author_key(args: argparse.Namespace) -> bytes:
    from ledger_anchor import sm2  # noqa: PLC0415
    from ledger_anchor.config import load_config  # noqa: PLC0415

    path = args.key or load_config(args.config).member_key_path(args.author)
    return sm2.load_private_key(path)


def _print(value: Any) -> None:
    print(json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False))


def _genesis(args: argparse.Namespace) -> int:
    from ledger_anchor.config import load_config  # noqa: PLC0415

    text = json.dumps(load_config(args.config).genesis_manifest().body(), indent=1, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _need(args: argparse.Namespace, *names: str) -> list[Any]:
    from governance.errors import GovernanceError  # noqa: PLC0415

    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise GovernanceError(f"--type {args.type} needs {', '.join(missing)}")
    return [getattr(args, n) for n in names]


def _content(args: argparse.Namespace, ledger: Any) -> dict[str, Any]:
    from governance.errors import GovernanceError  # noqa: PLC0415
    from ledger_anchor.sm3 import sm3  # noqa: PLC0415

    if args.type == "rule-package":
        name, version, sequence, effective_from, rules_sm3 = _need(args, "name", "version", "sequence",
                                                                   "effective_from", "rules_sm3")
        return {"name": name, "version": version, "sequence": sequence, "effective_from": effective_from,
                "rules_sm3": rules_sm3}
    if args.type == "member-add":
        member_id, key = _need(args, "member_id", "member_key")
        fingerprint = ""
        if args.member_tls_cert:
            from cryptography import x509  # noqa: PLC0415
            from cryptography.hazmat.primitives import hashes  # noqa: PLC0415

            try:
                fingerprint = x509.load_pem_x509_certificate(Path(args.member_tls_cert).read_bytes()).fingerprint(
                    hashes.SHA256()).hex()
            except (OSError, ValueError) as exc:
                raise GovernanceError(f"{args.member_tls_cert}: cannot read a PEM certificate: {exc}") from None
        roles = args.member_roles.split(",") if args.member_roles else ["member"]
        return {"member": {"id": member_id, "name": args.member_name or member_id, "sm2_public_key": key,
                           "roles": roles, "tls_cert_sha256": fingerprint}}
    if args.type == "member-remove":
        return {"member_id": _need(args, "member_id")[0]}
    if args.type == "key-rotation":
        member_id, key = _need(args, "member_id", "new_key")
        return {"member_id": member_id, "sm2_public_key": key}
    if args.type == "key-revocation":
        member_id = _need(args, "member_id")[0]
        member = ledger.membership().current.member(member_id)
        if member is None or member.sm2_public_key is None:
            raise GovernanceError(f"{member_id!r} has no key in force to revoke")
        return {"member_id": member_id, "sm2_public_key": member.sm2_public_key.hex()}
    if args.type == "witness-policy":
        return {"k": _need(args, "k")[0]}
    version = _need(args, "version")[0]
    if args.package is not None:
        try:
            package_sm3 = sm3(args.package.read_bytes()).hex()
        except OSError as exc:
            raise GovernanceError(f"{args.package}: cannot read: {exc}") from None
    else:
        package_sm3 = _need(args, "package_sm3")[0]
    return {"version": version, "package_sm3": package_sm3}


def _propose(args: argparse.Namespace) -> int:
    from governance import api, clock  # noqa: PLC0415

    with _open(args) as ledger:
        proposal_id, receipt = api.propose(
            ledger, proposer=args.author, key=_author_key(args), type=args.type.replace("-", "_"),
            content=_content(args, ledger), policy_text=args.policy, proposal_id=args.id,
            expires_at=args.expires_at or clock.time_in(args.expires_in), state_path=args.state)
    print(f"proposal {proposal_id} at ledger index {receipt.index}")
    return 0


def _vote(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415

    with _open(args) as ledger:
        receipt = api.vote(ledger, proposal_id=args.proposal, voter=args.author, key=_author_key(args),
                           decision="reject" if args.reject else "approve", state_path=args.state)
        status = api.replay(ledger).proposals[args.proposal].status
    print(f"{args.author} voted {'reject' if args.reject else 'approve'} on {args.proposal} at ledger index "
          f"{receipt.index}; the proposal is {status}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415

    with _open(args) as ledger:
        report = api.status(ledger)
    if args.json:
        _print(report)
        return 0
    print(f"membership epoch {report['epoch']}: {', '.join(report['members'])}; checkpoints final with "
          f"{report['witness_k']} of {len(report['members'])} cosignatures")
    for p in report["proposals"]:
        print(f"  {p['proposal_id']:<32} {p['type']:<15} {p['status']:<9} approvals "
              f"{','.join(p['approvals']) or '-'}; policy {p['policy']}; expires {p['expires_at']}")
    for package in report["rule_packages"]:
        print(f"  rule package {package['name']} {package['version']} (sequence {package['sequence']}, from "
              f"{package['effective_from']}): rules {package['rules_sm3'][:16]}…")
    for refusal in report["refused"]:
        print(f"  refused entry {refusal['index']} ({refusal['kind']}): {refusal['reason']}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415

    with _open(args) as ledger:
        report = api.inspect(ledger, args.proposal)
    if args.json:
        _print(report)
        return 0
    print(f"{report['proposal_id']} ({report['type']}): {report['status']}; policy {report['expanded_policy']}")
    for row in report["members"]:
        if row["vote"] is None:
            print(f"  {row['member']:<10} has not voted")
        elif row["differs"]:
            print(f"  {row['member']:<10} {row['vote']} of other content: differs in {', '.join(row['differs'])}")
        else:
            print(f"  {row['member']:<10} {row['vote']}{' (counts)' if row['counts'] else ''}")
    return 0


def _signatures(args: argparse.Namespace, manifest: Any) -> dict[str, bytes]:
    from governance import api  # noqa: PLC0415
    from governance.errors import GovernanceError  # noqa: PLC0415
    from ledger_anchor import sm2  # noqa: PLC0415
    from ledger_anchor.config import load_config  # noqa: PLC0415

    config = load_config(args.config)
    signatures: dict[str, bytes] = {}
    for item in args.sign:
        label, _, key_file = item.partition("=")
        if not key_file and "/" in label:
            raise GovernanceError(f"--sign {label}: a new key needs its file: --sign {label}=KEYFILE")
        signatures[label] = api.sign_manifest(manifest, sm2.load_private_key(
            Path(key_file) if key_file else config.member_key_path(label)))
    for item in args.signature:
        label, _, text = item.partition("=")
        try:
            signatures[label] = bytes.fromhex(text)
        except ValueError:
            raise GovernanceError(f"--signature {label}: expected 128 hex digits") from None
    return signatures


def _execute(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415

    with _open(args) as ledger:
        manifest = api.manifest_for(ledger, args.proposal)
        receipt = api.execute(ledger, proposal_id=args.proposal, signatures=_signatures(args, manifest))
    print(f"membership epoch {manifest.epoch} ({', '.join(manifest.member_ids)}; witness policy "
          f"{manifest.witness_k} of {len(manifest.members)}) in force from ledger index {receipt.index + 1}")
    return 0


def _sign_manifest(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415
    from ledger_anchor import sm2  # noqa: PLC0415

    with _open(args) as ledger:
        manifest = api.manifest_for(ledger, args.proposal)
    print(api.sign_manifest(manifest, sm2.load_private_key(args.key)).hex())
    return 0


def _certify(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415
    from governance.errors import ApprovalError  # noqa: PLC0415

    try:
        public = bytes.fromhex(args.public_key)
    except ValueError:
        raise ApprovalError("--public-key: expected 128 hex digits") from None
    with _open(args) as ledger:
        cert_id, receipt = api.certify(ledger, operator=args.author, key=_author_key(args), person=args.person,
                                       role=args.role, public_key=public, valid_until=args.valid_until,
                                       cert_id=args.id, state_path=args.state)
    print(f"certificate {cert_id}: {args.author}.{args.role} for {args.person}, ledger index {receipt.index}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415

    with _open(args) as ledger:
        receipt = api.revoke_certificate(ledger, operator=args.author, key=_author_key(args), cert_id=args.cert,
                                         reason=args.reason, state_path=args.state)
    print(f"certificate {args.cert} revoked at ledger index {receipt.index}")
    return 0


def _people_list(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415

    with _open(args) as ledger:
        state = api.replay(ledger)
    rows = [{"cert_id": c.certificate.cert_id, "principal": c.certificate.principal, "person": c.certificate.person,
             "index": c.certificate.index, "valid_until": c.certificate.valid_until, "revoked_at": c.revoked_at,
             "sm2_public_key": c.certificate.sm2_public_key.hex()} for c in state.people()]
    if args.json:
        _print(rows)
    for row in [] if args.json else rows:
        revoked = f", revoked at entry {row['revoked_at']}" if row["revoked_at"] is not None else ""
        print(f"  {row['cert_id']:<36} {row['principal']:<20} {row['person']:<12} until {row['valid_until']}{revoked}")
    return 0


def _request(args: argparse.Namespace) -> int:
    from governance import api, clock  # noqa: PLC0415
    from governance.errors import ApprovalError  # noqa: PLC0415

    steps = []
    for item in args.step:
        name, _, policy_text = item.partition("=")
        if not policy_text:
            raise ApprovalError(f"--step {item!r}: expected NAME=POLICY")
        steps.append({"name": name, "policy": policy_text})
    with _open(args) as ledger:
        request_id = api.request_statement_approval(ledger, job_id=args.job, requester=args.author,
                                                    key=_author_key(args), steps=steps or None,
                                                    deadline=clock.time_in(args.deadline_in), state_path=args.state)
    print(f"approval request {request_id} is pending")
    return 0


def _show_request(summary: dict[str, Any]) -> None:
    subject = summary["subject"]
    print(f"{summary['request_id']}: {summary['status']} — {subject['type']} of job {subject['job_id']} "
          f"(ledger index {subject['entry_index']}), deadline {summary['deadline']}")
    for step in summary["steps"]:
        signed = ", ".join(f"{a['cert_id']} (entry {a['index']})" for a in step["approvals"]) or "nobody yet"
        print(f"  step {step['name']:<12} {step['policy']:<40} {'met' if step['met'] else 'open'}; signed by {signed}")
    for rejection in summary["rejections"]:
        print(f"  rejected by {rejection['cert_id']} (entry {rejection['index']})")


def _approve_list(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415

    with _open(args) as ledger:
        rows = api.approvals(ledger, cert_id=args.cert)
    if args.json:
        _print(rows)
        return 0
    if not rows:
        print("no approval requests" + (f" for {args.cert} to sign" if args.cert else ""))
    for row in rows:
        _show_request(row)
    return 0


def _approve_show(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415
    from governance.errors import ApprovalError  # noqa: PLC0415

    with _open(args) as ledger:
        rows = [r for r in api.approvals(ledger) if r["request_id"] == args.request]
    if not rows:
        raise ApprovalError(f"unknown request {args.request!r}")
    if args.json:
        _print(rows[0])
    else:
        _show_request(rows[0])
    return 0


def _approve_sign(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415
    from ledger_anchor import sm2  # noqa: PLC0415
    from ledger_anchor.config import load_config  # noqa: PLC0415

    person_key = sm2.load_private_key(args.key)
    with _open(args) as ledger:
        state = api.replay(ledger)
        certificate = state.certificates.get(args.cert)
        operator = certificate.certificate.operator if certificate is not None else ""
        relay = sm2.load_private_key(args.relay_key or load_config(args.config).member_key_path(operator)) \
            if certificate is not None else person_key
        receipt = api.sign_approval(ledger, request_id=args.request, cert_id=args.cert, person_key=person_key,
                                    relay_key=relay, decision=args.decision, step=args.step)
        status = api.replay(ledger).requests[args.request].status
    print(f"{args.cert} {'approved' if args.decision == 'approve' else 'rejected'} {args.request} at ledger index "
          f"{receipt.index}; the request is {status}")
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    from governance import api  # noqa: PLC0415

    with _open(args) as ledger:
        api.change_request(ledger, requester=args.author, key=_author_key(args), request_id=args.request,
                           action="withdraw", state_path=args.state)
    print(f"approval request {args.request} withdrawn")
    return 0


def _audit_export(args: argparse.Namespace) -> int:
    from governance.audit import export_bundle  # noqa: PLC0415
    from governance.errors import AuditError  # noqa: PLC0415

    statement = None
    if args.statement is not None:
        try:
            statement = json.loads(args.statement.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AuditError(f"{args.statement}: cannot read a JSON statement: {exc}") from None
    salt = None
    if args.salt:
        try:
            salt = bytes.fromhex(args.salt)
        except ValueError:
            raise AuditError("--salt: expected hex digits") from None
    with _open(args) as ledger:
        bundle = export_bundle(ledger, args.job, statement=statement, salt=salt)
    args.out.write_text(json.dumps(bundle, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(bundle['entries'])} entries of job {args.job} and its context with inclusion "
          f"proofs{', and the statement' if statement is not None else ''}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from governance.audit import verify_bundle  # noqa: PLC0415
    from governance.errors import AuditError  # noqa: PLC0415

    try:
        bundle = args.bundle.read_text(encoding="utf-8")
        genesis = json.loads(args.genesis.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read: {exc}") from None
    report = verify_bundle(bundle, genesis)
    print(f"ok: job {report.job_id}: {report.entries} entries included in the log at size {report.size}, "
          f"cosigned by {', '.join(report.cosigners)} (membership epoch {report.epoch}); job entries "
          f"{', '.join(map(str, report.job_entries))}")
    if report.rules:
        print(f"  rules in force by vote: {', '.join(report.rules)}")
    for request_id, status in report.approvals.items():
        print(f"  approval {request_id}: {status}")
    print("  statement: " + ("opens the anchored commitment" if report.statement_checked else "not in the bundle"))
    for refusal in report.refused:
        print(f"  refused on replay: {refusal}", file=sys.stderr)
    return 0
