"""``settlechain psi``: a standalone two-party PSI run, for benchmarks and debugging.

::

    settlechain psi serve   --listen 127.0.0.1:17201 --input a.parquet \\
        --columns service,calling,called,start_time,duration_s,charge \\
        --id-column record_id --session-id demo-1 --output a-matches.parquet \\
        --ca ca.crt --cert a.crt --key a.key --peer B
    settlechain psi connect --server localhost:17201 --input b.parquet ... --peer A  (same options)

Each side reads its Parquet file, builds one element per row from ``--columns``, runs the
PSI (the server side offers the session and waits for the client) and writes the matched
rows in the common pair order: ``pair_id`` (16 bytes, a fixed-size array of uint8),
``row`` (0-based input row) and the ``--id-column`` values.  A JSON summary (sizes, matches, seconds, bytes, CPU
seconds, peak RSS) goes to stdout or ``--stats-json``.

Element encoding per column (the same on both sides, so equal values give equal
elements): integers and booleans as int64; timestamps as int64 microseconds since the
epoch (UTC); dates as int64 days; strings as two words, per value: a number of 1-18
digits with an optional leading ``+`` as ``int(digits) | len(digits) << 56``
(docs/matching.md) and a fixed mark, any other string as its 16-byte BLAKE2b digest
(computed once per distinct value).  Floats and nulls are refused with the row and
column named.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import resource
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: Second word of a string column's encoding when the value is a number (see _encode_column).
NUMBER_MARK = 0x6E756D6265722121  # b"!!rebmun" little-endian: never a BLAKE2b word in practice


def register(subparsers: argparse._SubParsersAction) -> None:
    psi = subparsers.add_parser(
        "psi", help="standalone two-party PSI run (benchmarks, debugging)",
        description="Standalone two-party PSI (KKRT16 or RR22) between two processes: each side reads a "
                    "Parquet file, builds one element per row from --columns and writes its "
                    "matched rows (pair_id, row, --id-column) in the common pair order.",
        epilog="example:\n"
               "  settlechain psi serve --listen 127.0.0.1:17201 --input a.parquet --columns "
               "service,calling,called,start_time --id-column record_id --session-id s1 "
               "--output a-out.parquet --ca ca.pem --cert a.pem --key a.key --peer B\n"
               "  settlechain psi connect --server localhost:17201 --input b.parquet ... "
               "(same options, B's files, --peer A)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = psi.add_subparsers(dest="psi_command", metavar="ROLE", required=True)
    for name, help_text in (("serve", "offer a session and wait for the peer (OPRF sender)"),
                            ("connect", "connect to a serving peer (OPRF receiver)")):
        p = sub.add_parser(name, help=help_text)
        if name == "serve":
            p.add_argument("--listen", required=True, help="HOST:PORT to listen on (port 0: any)")
            p.add_argument("--port-file", type=Path, help="write the bound port here once listening")
        else:
            p.add_argument("--server", required=True, help="HOST:PORT of the serving peer")
        p.add_argument("--input", required=True, type=Path, help="Parquet file, one element per row")
        p.add_argument("--columns", required=True,
                       help="comma-separated columns whose values make the element")
        p.add_argument("--id-column", help="column copied to the output for matched rows")
        p.add_argument("--session-id", required=True, help="session id (UTF-8 text, same on both sides)")
        p.add_argument("--output", type=Path, help="Parquet file of the matched rows")
        p.add_argument("--stats-json", type=Path, help="write the JSON summary here instead of stdout")
        p.add_argument("--ca", type=Path, help="CA certificate (PEM) for mutual TLS")
        p.add_argument("--cert", type=Path, help="our certificate (PEM)")
        p.add_argument("--key", type=Path, help="our private key (PEM)")
        p.add_argument("--insecure", action="store_true",
                       help="plaintext gRPC (loopback debugging only; mutual TLS otherwise)")
        p.add_argument("--peer", help="member id (certificate common name / DNS name) of the other "
                       "party: serve refuses any other client, connect accepts only that server "
                       "(required with mutual TLS)")
        p.add_argument("--timeout", type=float, default=600.0, help="session timeout, seconds")
        p.add_argument("--peer-timeout", type=float, default=60.0,
                       help="longest wait for one peer message, seconds")
        p.add_argument("--max-elements", type=int, default=100_000_000)
        p.add_argument("--protocol", choices=("kkrt16", "rr22"), default=None,
                       help="PSI protocol, the same on both sides (default: protocols.psi.DEFAULT_PROTOCOL)")
        p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from .errors import InputBoundsError

    tls = (args.ca, args.cert, args.key)
    if any(tls) and not all(tls):
        raise InputBoundsError("mutual TLS needs all of --ca, --cert and --key")
    if not any(tls) and not args.insecure:
        raise InputBoundsError("give --ca/--cert/--key for mutual TLS, or --insecure for plaintext")
    if all(tls) and not args.peer:
        raise InputBoundsError("mutual TLS needs --peer: the member id the other party's certificate names")
    start_wall = time.perf_counter()
    start_cpu = time.process_time()
    from .roles import DEFAULT_PROTOCOL
    args.protocol = args.protocol or DEFAULT_PROTOCOL
    elements, ids, n = load_elements(args.input, args.columns.split(","), args.id_column,
                                     protocol=args.protocol)
    loaded = time.perf_counter()
    result = _run(args, elements)
    ran = time.perf_counter()
    if args.output is not None:
        _write_output(args.output, result, ids)
    end = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary = {
        "role": args.psi_command, "protocol": args.protocol, "elements": n,
        "peer_elements": result.peer_size,
        "matches": len(result), "seconds": {"load": loaded - start_wall, "psi": ran - loaded,
                                             "write": end - ran, "total": end - start_wall},
        "cpu_seconds": time.process_time() - start_cpu,
        "peak_rss_mib": _peak_rss_mib(usage),
        "stats": result.stats,
    }
    text = json.dumps(summary, indent=2, default=float)
    if args.stats_json is not None:
        args.stats_json.write_text(text + "\n")
    else:
        print(text)
    return 0


def _peak_rss_mib(usage) -> float:
    """Peak resident memory of this process: VmHWM (ru_maxrss can carry the parent's peak
    across fork/exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return usage.ru_maxrss / 1024.0


def _run(args: argparse.Namespace, elements):
    import grpc
    from concurrent import futures

    from . import (PsiConfig, PsiServicer, channel_credentials, run_psi_client, secure_channel,
                   server_credentials)
    from .transport import GRPC_OPTIONS

    config = PsiConfig(peer_timeout_s=args.peer_timeout, max_elements=args.max_elements)
    session_id = args.session_id.encode()
    pems = [p.read_bytes() for p in (args.ca, args.cert, args.key)] if args.ca else None
    if args.psi_command == "serve":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=GRPC_OPTIONS)
        servicer = PsiServicer(config)
        servicer.add_to_server(server)
        if pems:
            port = server.add_secure_port(args.listen, server_credentials(*pems))
        else:
            port = server.add_insecure_port(args.listen)
        session = servicer.offer(session_id, elements, args.timeout,
                                 peer=args.peer if pems else None, protocol=args.protocol)
        server.start()
        log.info("listening on port %d", port)
        if args.port_file is not None:
            args.port_file.write_text(f"{port}\n")
        try:
            return session.result()
        finally:
            server.stop(grace=1.0).wait()
    if pems:
        channel = secure_channel(args.server, channel_credentials(*pems), args.peer, GRPC_OPTIONS)
    else:
        channel = grpc.insecure_channel(args.server, options=GRPC_OPTIONS)
    with channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.peer_timeout)
        except grpc.FutureTimeoutError:
            from .errors import PsiTimeoutError
            raise PsiTimeoutError(
                f"could not connect to {args.server} within {args.peer_timeout:.0f} s") from None
        return run_psi_client(channel, session_id, elements, args.timeout, config, protocol=args.protocol)


def warm_up(protocol: str = "kkrt16") -> None:
    """Load (or compile) the numba kernels a run of ``protocol`` uses."""
    from . import kernels
    kernels.warm_up()
    if protocol == "rr22":
        from . import rr22
        rr22.warm_up()


def load_elements(path: Path, columns: list[str], id_column: str | None, protocol: str = "kkrt16"):
    """Read ``columns`` of a Parquet file and build the ElementSet (see module docstring)."""
    import numpy as np
    import polars as pl

    from .elements import ElementSet
    from .errors import InputBoundsError

    # numba's first dispatch and kernel loading (~0.5 s) overlap the Parquet read
    warm = threading.Thread(target=warm_up, args=(protocol,), name="psi-warm-up", daemon=True)
    warm.start()
    try:
        wanted = list(dict.fromkeys(columns + ([id_column] if id_column else [])))
        try:
            frame = pl.read_parquet(path, columns=wanted)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputBoundsError(f"{path}: cannot read columns {wanted}: {exc}") from exc
        if not columns:
            raise InputBoundsError(f"{path}: expected at least one column to build elements from")
        words: list[np.ndarray] = []
        for name in columns:
            words.extend(_encode_column(path, name, frame.get_column(name)))
        ids = frame.get_column(id_column) if id_column else None
        height = frame.height
        del frame
    finally:
        warm.join()
    elements = ElementSet.from_words(words)
    return elements, ids, height


def _encode_column(path: Path, name: str, series):
    """One column as a list of 1 or 2 uint64 arrays (see the module docstring)."""
    import numpy as np
    import polars as pl

    from .errors import InputBoundsError

    if series.null_count():
        row = int(series.is_null().arg_max())
        raise InputBoundsError(f"{path}: row {row}, column {name!r}: expected a value, found null")
    dtype = series.dtype
    if dtype.is_integer() or dtype == pl.Boolean:
        return [series.cast(pl.Int64).to_numpy().view(np.uint64)]
    if isinstance(dtype, pl.Datetime):
        return [series.dt.epoch("us").to_numpy().astype(np.int64).view(np.uint64)]
    if dtype == pl.Date:
        return [series.cast(pl.Int32).cast(pl.Int64).to_numpy().view(np.uint64)]
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        # Per value, so that both sides encode equal strings equally whatever else their
        # columns hold: a number (1-18 digits, optional leading "+") as
        # (int | len << 56, NUMBER_MARK), any other text as its 16-byte BLAKE2b.
        text = series.cast(pl.String)
        value = text.cast(pl.UInt64, strict=False)      # digits with at most one leading "+"
        digits = text.str.len_bytes() - text.str.starts_with("+").cast(pl.UInt32)
        is_number = (value.is_not_null() & (digits >= 1) & (digits <= 18)).to_numpy()
        low = (value.fill_null(0).to_numpy() | (digits.cast(pl.UInt64).to_numpy() << np.uint64(56)))
        high = np.full(low.shape[0], NUMBER_MARK, np.uint64)
        if not is_number.all():
            others = np.flatnonzero(~is_number)
            subset = text if others.size == text.len() else text.gather(others)
            categorical = subset.cast(pl.Categorical)
            codes = categorical.to_physical().to_numpy()
            distinct = categorical.unique()
            distinct_codes = distinct.to_physical().to_numpy()
            table = np.array([np.frombuffer(hashlib.blake2b(v.encode(), digest_size=16).digest(), "<u8")
                              for v in distinct.cast(pl.String).to_list()], np.uint64).reshape(-1, 2)
            order = np.argsort(distinct_codes)
            index = order[np.searchsorted(distinct_codes[order], codes)]
            low[others] = table[index, 0]
            high[others] = table[index, 1]
        return [low, high]
    raise InputBoundsError(
        f"{path}: column {name!r}: expected integer, boolean, timestamp, date or string values, "
        f"found {dtype}")


def pair_id_series(pair_ids):
    """(k, 16) uint8 pair ids -> a polars Array(UInt8, 16) series (no per-row objects)."""
    import numpy as np
    import polars as pl

    ids = np.ascontiguousarray(pair_ids, dtype=np.uint8).reshape(-1, 16)
    return pl.Series("pair_id", ids.reshape(-1)).reshape((ids.shape[0], 16))


def _write_output(path: Path, result, ids) -> None:
    import polars as pl

    data = {
        "pair_id": pair_id_series(result.pair_ids),
        "row": pl.Series("row", result.local_indices, dtype=pl.Int64),
    }
    if ids is not None:
        data[ids.name] = ids.gather(result.local_indices) if len(result) else ids.head(0)
    pl.DataFrame(data).write_parquet(path, compression="lz4")

