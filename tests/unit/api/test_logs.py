"""Logs a machine can read (docs/job.md "Logs"): ``--log-format json`` and
``settlechain.JsonFormatter`` write one JSON object per event with the documented keys."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import settlechain
from conftest import ROOT, DocRun

ALWAYS = {"time", "level", "logger", "message"}


def _documented_lines() -> list[dict[str, object]]:
    text = (ROOT / "docs" / "job.md").read_text("utf-8")
    section = text[text.index("## Logs"):text.index("## Files")]
    return [json.loads(line) for line in re.findall(r"^\{.*\}$", section, flags=re.M)]


def test_the_documented_lines_have_the_documented_keys() -> None:
    lines = _documented_lines()
    assert len(lines) >= 6
    for line in lines:
        assert set(line) == ALWAYS
        assert line["level"] in ("info", "error")


def test_the_formatter_writes_the_documented_keys() -> None:
    formatter = settlechain.JsonFormatter()
    record = logging.LogRecord("engine.job.party", logging.WARNING, __file__, 1,
                               "stage %s", ("psi_key",), None)
    record.stage = "psi_key"
    record.peer = object()  # not JSON: written as its repr
    document = json.loads(formatter.format(record))
    assert document["message"] == "stage psi_key" and document["level"] == "warning"
    assert document["logger"] == "engine.job.party" and document["stage"] == "psi_key"
    assert document["peer"].startswith("<object object")
    assert abs(document["time"] - record.created) < 0.001
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("engine.job", logging.ERROR, __file__, 1, "failed", (),
                                   sys.exc_info())
    document = json.loads(formatter.format(record))
    assert "ValueError: boom" in document["exception"] and "\n" not in formatter.format(record)


def test_the_cli_writes_json_lines_to_party_log(api_doc_run: DocRun, tmp_path: Path) -> None:
    folder = api_doc_run.folder
    out = tmp_path / "H"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "settlechain"), "party",
         "--config", str(folder / "job" / "consortium" / "consortium.toml"),
         "--job", str(folder / "job-02.toml"), "--as", "CTCC", "--out", str(out),
         "--data", str(folder / "data" / "a.csv"), "--log-format", "json"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [json.loads(line) for line in (out / "party.log").read_text("utf-8").splitlines()]
    assert lines and all(set(line) >= ALWAYS for line in lines)
    assert lines[-1]["level"] == "error" and lines[-1]["logger"] == "engine.job"
    assert "holds no data" in str(lines[-1]["message"])


def test_a_party_run_through_the_api_logs_json_lines(api_doc_run: DocRun) -> None:
    # launch_party.py of docs/api.md attaches settlechain.JsonFormatter to its log file
    lines = [json.loads(line) for line in
             (api_doc_run.folder / "CMCC.log").read_text("utf-8").splitlines()]
    assert all(set(line) >= ALWAYS for line in lines)
    # stages are logged by the logger docs/job.md names for them
    text = (ROOT / "docs" / "job.md").read_text("utf-8")
    found = re.search(r'The stage a party enters is the event `"message": "stage <name>"` of '
                      r"`([\w.]+)`", text)
    assert found is not None
    stages = [line["message"] for line in lines if line["logger"] == found.group(1)
              and str(line["message"]).startswith("stage ")]
    assert stages and stages[0] == "stage agree" and stages[-1] == "stage anchor"
    assert "stage mpc" in stages
    assert not [line for line in lines if line["logger"] != found.group(1)
                and str(line["message"]).startswith("stage ")]
