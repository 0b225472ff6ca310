"""The peer of bench_psi.py: OpenMined PSI 2.0 (ECDH over P-256) between two processes over
loopback gRPC, from the same Parquet files, to the matched record ids.

OpenMined's protocol gives the client the intersection (``reveal_intersection=True``);
the server learns nothing (one-sided output, unlike settlechain's mutual output).  One
unary gRPC call carries the client's request to the server and the server's setup
message (its encrypted set, raw) and response back.

    python bench/openmined_peer.py serve   --listen 127.0.0.1:17250 --input a.parquet --stats-json a.json
    python bench/openmined_peer.py connect --server 127.0.0.1:17250 --input b.parquet --output b.parquet --stats-json b.json
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import polars as pl
import private_set_intersection.python as psi

COLUMNS = ["service", "calling", "called", "start_time", "duration_s", "charge"]
OPTIONS = [("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)]
METHOD = "/openmined.Psi/Run"


def _items(path: Path) -> tuple[list[str], pl.Series]:
    frame = pl.read_parquet(path, columns=COLUMNS + ["record_id"])
    items = frame.select(pl.concat_str([pl.col(c).cast(pl.String) for c in COLUMNS], separator="|"))
    return items.to_series().to_list(), frame.get_column("record_id")


def serve(args) -> dict:
    items, _ = _items(args.input)
    loaded = time.perf_counter()
    server_psi = psi.server.CreateWithNewKey(True)
    # a second object with the same key: the library's objects are not thread-safe, and the
    # setup runs while the request is processed
    setup_psi = psi.server.CreateFromKey(server_psi.GetPrivateKeyBytes(), True)
    done = threading.Event()
    sent = {}
    ready = threading.Event()
    setup_bytes = []

    def make_setup() -> None:  # the server's half runs while the client encrypts its set
        setup = setup_psi.CreateSetupMessage(1e-9, args.client_size, items, psi.DataStructure.RAW)
        setup_bytes.append(setup.SerializeToString())
        ready.set()

    def run(request_bytes: bytes, context) -> bytes:
        request = psi.Request()
        request.ParseFromString(request_bytes)
        response = server_psi.ProcessRequest(request)
        ready.wait()
        a, b = setup_bytes[0], response.SerializeToString()
        sent["bytes_received"] = len(request_bytes)
        sent["bytes_sent"] = len(a) + len(b) + 8
        done.set()
        return struct.pack("<Q", len(a)) + a + b

    server = grpc.server(futures.ThreadPoolExecutor(2), options=OPTIONS)
    handler = grpc.method_handlers_generic_handler("openmined.Psi", {
        "Run": grpc.unary_unary_rpc_method_handler(run)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(args.listen)
    server.start()
    make_setup()
    done.wait(args.timeout)
    time.sleep(0.5)  # let the response go out
    server.stop(1).wait()
    return {"elements": len(items), "load_seconds": loaded - START, **sent}


def connect(args) -> dict:
    items, ids = _items(args.input)
    client_psi = psi.client.CreateWithNewKey(True)
    request = client_psi.CreateRequest(items).SerializeToString()
    with grpc.insecure_channel(args.server, options=OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=args.timeout)
        reply = channel.unary_unary(METHOD)(request, timeout=args.timeout, wait_for_ready=True)
    (length,) = struct.unpack("<Q", reply[:8])
    setup, response = psi.ServerSetup(), psi.Response()
    setup.ParseFromString(reply[8:8 + length])
    response.ParseFromString(reply[8 + length:])
    indices = sorted(client_psi.GetIntersection(setup, response))
    pl.DataFrame({"record_id": ids.gather(indices)}).write_parquet(args.output)
    return {"elements": len(items), "matches": len(indices), "bytes_sent": len(request),
            "bytes_received": len(reply)}


START = time.perf_counter()


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["serve", "connect"])
    parser.add_argument("--listen")
    parser.add_argument("--server")
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--client-size", type=int, default=0)
    parser.add_argument("--stats-json", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    cpu = time.process_time()
    out = serve(args) if args.role == "serve" else connect(args)
    out.update(seconds=time.perf_counter() - START, cpu_seconds=time.process_time() - cpu,
               peak_rss_mib=_peak_rss_mib())
    args.stats_json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
