"""A peer of bench_psi.py: SecretFlow's PSI (spu 0.9.5 from PyPI, its bundled ``libpsi``),
one party per process over loopback, from the same records to the matched record ids.

This script runs only under a separate virtual environment that has ``spu`` (and, for
Parquet input, ``pyarrow``) installed; settlechain's own environment never imports it.
bench/RESULTS-psi.md gives the install steps.  One process per party::

    /tmp/sfvenv/bin/python bench/secretflow_peer.py --rank 0 \\
        --addresses 127.0.0.1:17610,127.0.0.1:17611 --protocol rr22 \\
        --input a.csv --keys service,calling,called,start_time,duration_s,charge \\
        --output a-out.csv --stats-json a.json
    /tmp/sfvenv/bin/python bench/secretflow_peer.py --rank 1 ... (b.csv, b-out.csv, b.json)

``--addresses`` lists party 0's and party 1's addresses as *this* party sees them: it
listens on its own entry and dials the other one (bench_psi.py points the other entry at
a byte-counting relay in its traffic round).  Rank 0 is SecretFlow's receiver; with
``broadcast_result`` both parties get the intersection, each as a CSV of its own
intersecting rows (every input column), both files in one common order (SecretFlow's
alignment: sorted by key).  ``--protocol``: ``rr22`` (Raghuraman-Rindal, CCS 2022, in
SecretFlow's default fast mode), ``kkrt`` (Kolesnikov et al., CCS 2016) or
``ecdh-25519`` (DH-PSI over Curve25519).

Input is CSV, SecretFlow's own format; with a ``.parquet`` input the script first writes
the id and key columns to a CSV in ``--work-dir`` with pyarrow, timed as the
``to_csv`` step, so that SecretFlow can be measured from the same Parquet files as
settlechain.  The stats JSON has the step times, SecretFlow's report (counts), CPU
seconds and the process's peak RSS (VmHWM).  SecretFlow's Python API reports no byte
counts; bench_psi.py measures them with a relay.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

START = time.perf_counter()

PROTOCOLS = ("rr22", "kkrt", "ecdh-25519")


class PeerError(Exception):
    """The SecretFlow peer could not run; the message says what was expected and found."""


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise PeerError("expected a VmHWM line in /proc/self/status, found none")


def _parquet_to_csv(source: Path, target: Path, columns: list[str]) -> int:
    try:
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError as exc:
        raise PeerError(f"Parquet input needs pyarrow in this environment ({sys.executable}): {exc}") from exc
    table = pyarrow.parquet.read_table(source, columns=columns)
    pyarrow.csv.write_csv(table, target)
    return table.num_rows


def _rendezvous(address: str, rank: int, timeout: float) -> None:
    """Both parties leave here within a millisecond of each other: rank 0 listens, rank 1
    dials until it connects, rank 0 answers with one byte."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    if rank == 0:
        with socket.create_server((host, int(port))) as server:
            server.settimeout(timeout)
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"\x01")
        return
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=timeout) as conn:
                if conn.recv(1) != b"\x01":
                    raise PeerError(f"rendezvous at {address}: expected one byte 0x01, found none")
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise PeerError(f"rendezvous at {address}: no party 0 within {timeout} s") from None
            time.sleep(0.005)


def _config(psi, protocol: str, rank: int, input_csv: Path, keys: list[str], output: Path):
    kinds = {"rr22": psi.PsiProtocol.PROTOCOL_RR22, "kkrt": psi.PsiProtocol.PROTOCOL_KKRT,
             "ecdh-25519": psi.PsiProtocol.PROTOCOL_ECDH}
    protocol_conf = psi.PsiProtocolConfig(
        protocol=kinds[protocol], receiver_rank=0, broadcast_result=True,
        ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_25519))
    return psi.PsiExecuteConfig(
        protocol_conf=protocol_conf,
        input_params=psi.InputParams(path=str(input_csv.resolve()), selected_keys=keys, keys_unique=True),
        output_params=psi.OutputParams(path=str(output.resolve())))


def run(args: argparse.Namespace) -> dict:
    try:
        import spu
        import spu.psi as psi
    except ImportError as exc:
        raise PeerError(f"expected spu (SecretFlow) importable by {sys.executable}: {exc}") from exc
    steps: dict[str, float] = {"start_and_import": time.perf_counter() - START}
    addresses = args.addresses.split(",")
    if len(addresses) != 2:
        raise PeerError(f"--addresses: expected two host:port entries, found {args.addresses!r}")
    keys = args.keys.split(",")
    input_csv = args.input
    if args.input.suffix == ".parquet":
        t = time.perf_counter()
        args.work_dir.mkdir(parents=True, exist_ok=True)
        input_csv = args.work_dir / f"{args.input.stem}-rank{args.rank}.csv"
        _parquet_to_csv(args.input, input_csv, [*keys, args.id_column])
        steps["to_csv"] = time.perf_counter() - t
    elif args.input.suffix != ".csv":
        raise PeerError(f"--input: expected a .csv or .parquet file, found {args.input}")
    t = time.perf_counter()
    if args.rendezvous:
        _rendezvous(args.rendezvous, args.rank, args.timeout)
    steps["rendezvous"] = time.perf_counter() - t
    t = time.perf_counter()
    desc = spu.link.Desc()
    for rank, address in enumerate(addresses):
        desc.add_party(f"party{rank}", address)
    desc.recv_timeout_ms = int(args.timeout * 1000)
    # Both parties start together, so the first dial usually finds no server yet.  The
    # defaults (1 s between connection attempts; a failed send retried after 1 s, then 3 s
    # more) add 1-4 s of sleeping to a run; dial every 100 ms instead, as settlechain's
    # client polls for its server's port.
    desc.connect_retry_times = max(1, int(args.timeout * 10))
    desc.connect_retry_interval_ms = 100
    retry = desc.retry_opts
    retry.retry_interval_ms = 100
    retry.retry_interval_incr_ms = 100
    desc.retry_opts = retry
    link = spu.link.create_brpc(desc, args.rank)
    steps["link"] = time.perf_counter() - t
    t = time.perf_counter()
    report = psi.psi_execute(_config(psi, args.protocol, args.rank, input_csv, keys, args.output), link)
    steps["psi_execute"] = time.perf_counter() - t
    link.stop_link()
    if args.input.suffix == ".parquet":
        input_csv.unlink()
    return {"rank": args.rank, "protocol": args.protocol, "spu_version": spu.__version__,
            "original_count": report.original_count, "intersection_count": report.intersection_count,
            "original_unique_count": report.original_unique_count,
            "intersection_unique_count": report.intersection_unique_count, "seconds": steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rank", type=int, choices=[0, 1], required=True)
    parser.add_argument("--addresses", required=True, help="party 0,party 1 as host:port")
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument("--input", type=Path, required=True, help=".csv, or .parquet (converted first)")
    parser.add_argument("--keys", required=True, help="comma-separated key columns")
    parser.add_argument("--id-column", default="record_id", help="kept beside the keys when converting Parquet")
    parser.add_argument("--output", type=Path, required=True, help="CSV of this party's intersecting rows")
    parser.add_argument("--rendezvous", help="host:port where the parties meet before linking "
                        "(rank 0 listens); without it each links as soon as it has started")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp"), help="where converted CSVs go")
    parser.add_argument("--stats-json", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the peer")
    args = parser.parse_args(argv)
    cpu = time.process_time()
    try:
        out = run(args)
    except (PeerError, RuntimeError) as exc:  # RuntimeError: what libpsi raises
        print(f"secretflow_peer rank {args.rank}: {exc}", file=sys.stderr)
        return 1
    out.update(wall_seconds=time.perf_counter() - START, cpu_seconds=time.process_time() - cpu,
               peak_rss_mib=_peak_rss_mib())
    args.stats_json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
