"""``settlechain ledger ...``: operate, serve, inspect and verify the ledger.

::

    settlechain ledger keygen --out members/A/sm2.key          # SM2 key pair (0600 file), prints the public key
    settlechain ledger init --config consortium.toml           # create the SQLite ledger, signed checkpoint 0
    settlechain ledger append --config C --entry e.json --sign A --sign B
    settlechain ledger serve --db FILE --listen HOST:PORT --config C
    settlechain ledger show --config C [--index I | --start S --end E | --members | --forks] [--json]
    settlechain ledger verify --config C                       # recompute everything; names the first bad index
    settlechain ledger prove --config C --index I [--out F]    # C2SP tlog-proof style bundle
    settlechain ledger check --proof F --config C              # offline, pinned keys only, no database
    settlechain ledger cosign --config C --member A            # the witness step

``--db FILE`` uses that SQLite file instead of ``[ledger].db``; with a non-empty
``[ledger].endpoint`` and no ``--db`` the commands talk to the service, authenticated
as ``--member ID``.  Exit status: 0 ok, 2 bad input, 3 verification failed, 4 fork.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    description = (__doc__ or "").replace("``", "").replace("::\n", "")
    ledger = subparsers.add_parser("ledger", help="the SM3 Merkle ledger: serve, show, verify, prove, check, cosign",
                                   description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = ledger.add_subparsers(dest="ledger_command", metavar="SUBCOMMAND")
    ledger.set_defaults(handler=lambda args: (ledger.print_help(), 2)[1])

    def command(name: str, help_text: str, handler) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(handler=handler)
        return parser

    def with_config(parser: argparse.ArgumentParser, *, db: bool = True, member: bool = True) -> None:
        parser.add_argument("--config", required=True, type=Path, help="consortium TOML file")
        if db:
            parser.add_argument("--db", type=Path, help="SQLite ledger file (default: [ledger].db)")
        if member:
            parser.add_argument("--member", help="member id whose TLS certificate authenticates to a remote ledger")
        parser.add_argument("--sm2-backend", choices=["tongsuopy", "gmssl"], help="SM2 backend (default: fastest)")

    parser = command("keygen", "generate an SM2 key pair; write the private key (0600), print the public key",
                     _keygen)
    parser.add_argument("--out", required=True, type=Path, help="private key file to create (refuses to overwrite)")

    parser = command("init", "create the SQLite ledger with a signed checkpoint of the empty tree", _init)
    with_config(parser, member=False)
    parser.add_argument("--log-key", type=Path, help="log private key file (default: ledger/log.key)")

    parser = command("append", "append a JSON entry signed by member keys", _append)
    with_config(parser)
    parser.add_argument("--entry", required=True, type=Path, help="JSON file with the entry (no signatures)")
    parser.add_argument("--sign", action="append", default=[], metavar="ID[=KEYFILE]",
                        help="sign as this member (key: members/ID/sm2.key unless given); repeatable")
    parser.add_argument("--log-key", type=Path, help="log private key file (default: ledger/log.key)")

    parser = command("serve", "serve the ledger over gRPC with mutual TLS", _serve)
    with_config(parser, db=False, member=False)
    parser.add_argument("--db", required=True, type=Path, help="SQLite ledger file")
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on (port 0 picks one)")
    parser.add_argument("--tls-cert", type=Path, help="server certificate (default: ledger/tls.crt)")
    parser.add_argument("--tls-key", type=Path, help="server key (default: ledger/tls.key)")
    parser.add_argument("--log-key", type=Path, help="log private key file (default: ledger/log.key)")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file once listening")

    parser = command("show", "print the latest checkpoint, entries, governance or fork evidence", _show)
    with_config(parser)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--index", type=int, help="print the entry at this index")
    group.add_argument("--start", type=int, help="print entries from this index (with --end)")
    group.add_argument("--members", action="store_true",
                       help="print the membership manifest in force (epoch, members, keys, witness policy)")
    group.add_argument("--forks", action="store_true", help="print fork evidence")
    parser.add_argument("--end", type=int, help="end of the range (exclusive)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")

    parser = command("verify", "recompute the tree, check every signature and cosignature", _verify)
    with_config(parser, member=False)

    parser = command("prove", "write an offline-verifiable proof bundle for one entry", _prove)
    with_config(parser)
    parser.add_argument("--index", required=True, type=int, help="entry index")
    parser.add_argument("--size", type=int, help="tree size of the checkpoint (default: latest final)")
    parser.add_argument("--out", type=Path, help="output file (default: stdout)")

    parser = command("check", "verify a proof bundle against the pinned keys of the consortium file", _check)
    parser.add_argument("--proof", required=True, type=Path, help="bundle written by `ledger prove`")
    parser.add_argument("--config", required=True, type=Path, help="consortium TOML (pinned log and member keys)")
    parser.add_argument("--min-cosignatures", type=int,
                        help="cosignatures required (default: [ledger].finality_threshold)")
    parser.add_argument("--entry", type=Path,
                        help="a JSON document (e.g. a party's statement.json) that must be exactly "
                             "the bundle's entry")
    parser.add_argument("--sm2-backend", choices=["tongsuopy", "gmssl"], help="SM2 backend (default: fastest)")

    parser = command("cosign", "witness step: check the log since the last checkpoint this member saw "
                               "(signatures, consistency), then cosign", _cosign)
    with_config(parser, member=False)
    parser.add_argument("--member", required=True, help="the cosigning member's id")
    parser.add_argument("--key", type=Path, help="member SM2 key (default: members/ID/sm2.key)")
    parser.add_argument("--state", type=Path, help="witness state file (default: members/ID/witness-state.json)")


def _open(args: argparse.Namespace, **kwargs: Any):
    from ledger_anchor.opening import open_ledger  # noqa: PLC0415 - lazy heavy import

    return open_ledger(args.config, db=getattr(args, "db", None), member_id=getattr(args, "member", None),
                       sm2_backend=getattr(args, "sm2_backend", None), **kwargs)


def _keygen(args: argparse.Namespace) -> int:
    from ledger_anchor import sm2  # noqa: PLC0415

    private, public = sm2.generate_keypair()
    sm2.save_private_key(args.out, private)
    print(public.hex())
    return 0


def _init(args: argparse.Namespace) -> int:
    with _open(args, create=True, log_private_key=args.log_key) as ledger:
        print(ledger.checkpoint(), end="")
    return 0


def _append(args: argparse.Namespace) -> int:
    from ledger_anchor import sm2  # noqa: PLC0415
    from ledger_anchor.config import load_config  # noqa: PLC0415
    from ledger_anchor.entries import canonical_entry_bytes  # noqa: PLC0415
    from ledger_anchor.errors import EntryError  # noqa: PLC0415

    config = load_config(args.config)
    try:
        entry = json.loads(args.entry.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EntryError(f"{args.entry}: cannot read the entry as JSON: {exc}") from None
    message = canonical_entry_bytes(entry)
    signatures = {}
    for item in args.sign:
        member_id, _, key_file = item.partition("=")
        key_path = Path(key_file) if key_file else config.member_key_path(member_id)
        if not key_file and not key_path.exists():
            raise EntryError(f"--sign {member_id}: no key file for member {member_id!r} ({key_path}); "
                             f"give --sign {member_id}=KEYFILE")
        key = sm2.load_private_key(key_path)
        signatures[member_id] = sm2.sign(key, message)
    with _open(args, log_private_key=args.log_key) as ledger:
        receipt = ledger.append(entry, signatures or None)
    print(json.dumps({"index": receipt.index, "leaf_hash": receipt.leaf_hash.hex(),
                      "checkpoint": receipt.checkpoint}, indent=1))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from ledger_anchor.service import start_server  # noqa: PLC0415

    ledger = _open(args, log_private_key=args.log_key)
    server, port = start_server(ledger, args.listen, tls_cert=args.tls_cert, tls_key=args.tls_key)
    if args.port_file:
        args.port_file.write_text(f"{port}\n", encoding="ascii")
    print(f"ledger service listening on port {port}", file=sys.stderr, flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=2).wait()
    ledger.close()
    return 0


def _show(args: argparse.Namespace) -> int:
    with _open(args, readonly=args.db is not None) as ledger:
        if args.index is not None:
            output: Any = ledger.entry(args.index)
        elif args.start is not None:
            end = args.end if args.end is not None else ledger.size()
            output = ledger.entries(args.start, end)
        elif args.members:
            manifest = ledger.membership().current
            output = {"index": manifest.index, "sm3": manifest.sm3(), **manifest.body()}
        elif args.forks:
            forks = getattr(ledger, "forks", lambda: [])()
            output = [fork.__dict__ for fork in forks]
        else:
            if not args.json:
                final = ledger.final_size()
                print(f"size {ledger.size()}, final size {final if final is not None else 'none'} "
                      f"(finality threshold {ledger.config.ledger.finality_threshold})")
                print(ledger.checkpoint(), end="")
                return 0
            output = {"size": ledger.size(), "final_size": ledger.final_size(), "checkpoint": ledger.checkpoint()}
    print(json.dumps(output, indent=1, sort_keys=True, ensure_ascii=False))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ledger_anchor import sm2  # noqa: PLC0415
    from ledger_anchor.client import identity_of  # noqa: PLC0415
    from ledger_anchor.config import load_config  # noqa: PLC0415
    from ledger_anchor.verify import verify_ledger  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    config = load_config(args.config)
    with tqdm(desc="verifying entries", unit=" entries", disable=not sys.stderr.isatty()) as bar:
        report = verify_ledger(args.db or config.ledger.db, identity_of(config, sm2.get_backend(args.sm2_backend)),
                               progress=lambda done: bar.update(done - bar.n))
    epoch = report.membership.current.epoch if report.membership is not None else 0
    print(f"ok: {report.size} entries, {report.checkpoints} checkpoints, {report.cosignatures} cosignatures "
          f"verified; root {report.root.hex()}; final size {report.final_size}; membership epoch {epoch}")
    return 0


def _prove(args: argparse.Namespace) -> int:
    with _open(args, readonly=args.db is not None) as ledger:
        text = ledger.proof_bundle(args.index, size=args.size).format()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ledger_anchor import sm2  # noqa: PLC0415
    from ledger_anchor.bundle import check_bundle  # noqa: PLC0415
    from ledger_anchor.client import identity_of  # noqa: PLC0415
    from ledger_anchor.config import load_config  # noqa: PLC0415
    from ledger_anchor.errors import BundleError  # noqa: PLC0415

    config = load_config(args.config)
    identity = identity_of(config, sm2.get_backend(args.sm2_backend))
    threshold = config.ledger.finality_threshold if args.min_cosignatures is None else args.min_cosignatures
    try:
        text = args.proof.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{args.proof}: cannot read: {exc}") from None
    report = check_bundle(text, origin=identity.origin, log_key=identity.log_key, members=identity.members,
                          min_cosignatures=threshold)
    if args.entry is not None:
        import json  # noqa: PLC0415

        import rfc8785  # noqa: PLC0415

        try:
            document = json.loads(args.entry.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{args.entry}: cannot read a JSON document: {exc}") from None
        if "commitment" in report.entry:
            # the ledger holds a salted commitment to the document (its amounts stay off the
            # ledger): the document must open it, and carry its authors' signatures
            from ledger_anchor.commitment import (  # noqa: PLC0415
                document_bytes, document_signatures, open_document,
            )
            from ledger_anchor.entries import parse_signature_list  # noqa: PLC0415
            from ledger_anchor.errors import EntryError, MismatchError  # noqa: PLC0415

            try:
                open_document(document, report.entry)
            except EntryError as exc:
                raise MismatchError(f"{args.entry}: differs from entry {report.index} of the "
                                    f"bundle: {exc}") from None
            try:
                signatures = document_signatures(document)
            except Exception as exc:  # noqa: BLE001 - any malformed list is a mismatch
                raise MismatchError(f"{args.entry}: malformed signatures: {exc}") from None
            authors = set(parse_signature_list(report.entry.get("signatures", [])))
            if set(signatures) != authors:
                raise MismatchError(f"{args.entry}: signed by {sorted(signatures)}, the entry by "
                                    f"{sorted(authors)}")
            signed = document_bytes(document)
            for signer, signature in signatures.items():
                try:
                    identity.members[signer].verify(signed, signature)
                except Exception as exc:  # noqa: BLE001 - a bad signature is a mismatch
                    raise MismatchError(f"{args.entry}: {signer}'s signature does not verify: "
                                        f"{exc}") from None
            print(f"ok: {args.entry} opens the commitment of entry {report.index} and is signed "
                  f"by {', '.join(sorted(signatures))}")
        else:
            if rfc8785.dumps(document) != rfc8785.dumps(report.entry):
                from ledger_anchor.errors import MismatchError  # noqa: PLC0415

                raise MismatchError(f"{args.entry}: differs from entry {report.index} of the "
                                    "bundle (canonical JSON compared)")
            print(f"ok: {args.entry} is entry {report.index}")
    print(f"ok: entry {report.index} ({report.entry['kind']}) is in the log at size "
          f"{report.checkpoint.checkpoint.size}, cosigned by {', '.join(report.checkpoint.cosigners) or 'no member'}")
    return 0


def _cosign(args: argparse.Namespace) -> int:
    from ledger_anchor import sm2  # noqa: PLC0415
    from ledger_anchor.config import load_config  # noqa: PLC0415

    config = load_config(args.config)
    key = sm2.load_private_key(args.key or config.member_key_path(args.member))
    state = args.state or config.base_dir / "members" / args.member / "witness-state.json"
    with _open(args) as ledger:
        cosignature = ledger.cosign(args.member, key, state_path=state)
    print(f"member {args.member} cosigned checkpoint size {cosignature.size}")
    print(cosignature.line, end="")
    return 0
