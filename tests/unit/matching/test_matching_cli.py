"""`settlechain reconcile-plain`: registration and help through the real console script.

The end-to-end run (through engine.ingest) is tested where ingest lives.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.reference_cli import default_job_id


def _settlechain() -> str:
    return str(Path(sys.executable).parent / "settlechain")


def test_help_says_no_privacy() -> None:
    proc = subprocess.run([_settlechain(), "reconcile-plain", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "NO PRIVACY" in text and "testing and debugging" in text
    for option in ("--a FILE", "--b FILE", "--rules FILE", "--out DIR", "--disclosure POLICY",
                   "--job-id ID"):
        assert option in text
    listing = subprocess.run([_settlechain(), "--help"], capture_output=True, text=True,
                             timeout=60)
    assert "reconcile-plain" in listing.stdout and "NO privacy" in listing.stdout


def test_missing_arguments_fail() -> None:
    proc = subprocess.run([_settlechain(), "reconcile-plain", "--a", "x.csv"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "required" in proc.stderr


def test_default_job_id_depends_on_rules_and_contents(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"x")
    b.write_bytes(b"y")
    first = default_job_id("00" * 32, (a, b))
    assert first == default_job_id("00" * 32, (a, b))
    assert first.startswith("plain-") and len(first) == 6 + 16
    assert default_job_id("11" * 32, (a, b)) != first
    assert default_job_id("00" * 32, (b, a)) != first
    b.write_bytes(b"z")
    assert default_job_id("00" * 32, (a, b)) != first
