"""Helpers for tests that run the ledger service as a real process."""

from __future__ import annotations

import signal
import subprocess


def stop_service(process: subprocess.Popen, timeout_s: float = 15) -> None:
    """SIGTERM ``process`` and assert it exits 0 within ``timeout_s`` (killed otherwise)."""
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout_s) == 0
    finally:
        if process.poll() is None:
            process.kill()
