"""A Ray cluster of two nodes on this machine, for one operator (loopback addresses).

Each node is a ``ray start --block`` process of its own, in a session (process group) of
its own, so that the test ends exactly the processes it started (by process group id),
never other Ray clusters on the machine.  Ray refuses 127.0.0.1 as a node address (it
takes the host's network address instead), so nodes use 127.0.0.2 and up.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.job.local import free_ports


def ray_binary() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("the ray command is not installed next to this Python "
                           "(pip install settlechain[ray]; it is in requirements/test.txt)")
    return found


def _wait_port(host: str, port: int, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}; see its log")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


class RayCluster:
    def __init__(self, folder: Path, head_ip: str, worker_ip: str) -> None:
        self.folder = folder
        self.head_ip, self.worker_ip = head_ip, worker_ip
        self.port = free_ports(1)[0]
        self.processes: list[subprocess.Popen] = []
        # Ray's sockets live under its temp dir, and a Unix socket path has at most 107 bytes
        self.temp_dir = Path(tempfile.mkdtemp(prefix="scray-", dir="/tmp"))

    @property
    def address(self) -> str:
        return f"{self.head_ip}:{self.port}"

    def _start(self, args: list[str], log_name: str) -> None:
        agent, grpc_agent, metrics, runtime_env, manager, objects = free_ports(6)
        command = [ray_binary(), "start", "--block", "--num-cpus=1", "--disable-usage-stats",
                   f"--dashboard-agent-listen-port={agent}",
                   f"--dashboard-agent-grpc-port={grpc_agent}",
                   f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
                   f"--node-manager-port={manager}", f"--object-manager-port={objects}", *args]
        log = open(self.folder / log_name, "wb")
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def start(self) -> RayCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start(["--head", f"--node-ip-address={self.head_ip}", f"--port={self.port}",
                     "--include-dashboard=false", f"--dashboard-port={free_ports(1)[0]}",
                     f"--temp-dir={self.temp_dir}"], "head.log")
        _wait_port(self.head_ip, self.port, 120, self.processes[0])
        self._start([f"--address={self.address}", f"--node-ip-address={self.worker_ip}"],
                    "node.log")
        self.wait_nodes(2, 120)
        return self

    def wait_nodes(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                 "print(sum(1 for n in ray.nodes() if n['Alive']))")
        while time.monotonic() < deadline:
            done = subprocess.run([sys.executable, "-c", probe, self.address],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            time.sleep(1)
        raise TimeoutError(f"the Ray cluster at {self.address} has not {count} nodes")

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGTERM)  # the group this test started
            except ProcessLookupError:
                continue
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.processes = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)
