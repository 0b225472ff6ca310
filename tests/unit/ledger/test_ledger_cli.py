"""`settlechain ledger ...` in-process: init, append, show, cosign, prove, check, keygen."""

import json
import stat
from pathlib import Path

import pytest

from engine.cli import main
from tests.unit.ledger.ledger_consortium import make_consortium


def test_operator_workflow(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    c = make_consortium(tmp_path / "c", finality_threshold=2)
    config = str(c.config_path)
    assert main(["ledger", "init", "--config", config]) == 0
    assert "\n0\n" in capsys.readouterr().out
    entry_file = tmp_path / "entry.json"
    for i in range(3):
        entry_file.write_text(json.dumps({"kind": "payment", "invoice": f"inv-{i}", "amount": 100 * i}))
        assert main(["ledger", "append", "--config", config, "--entry", str(entry_file), "--sign", "A",
                     "--sign", f"B={c.root / 'members/B/sm2.key'}"]) == 0
        assert json.loads(capsys.readouterr().out)["index"] == i
    for member in ("A", "C"):
        assert main(["ledger", "cosign", "--config", config, "--member", member]) == 0
        assert "cosigned checkpoint size 3" in capsys.readouterr().out
    assert (c.root / "members/A/witness-state.json").exists()
    assert main(["ledger", "show", "--config", config]) == 0
    assert "size 3, final size 3" in capsys.readouterr().out
    assert main(["ledger", "show", "--config", config, "--index", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["invoice"] == "inv-1"
    assert main(["ledger", "show", "--config", config, "--members"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["epoch"] == 0 and shown["index"] is None and shown["witness_policy"] == {"k": 2}
    assert [m["id"] for m in shown["members"]] == ["A", "B", "C"]
    bundle = tmp_path / "entry1.tlog-proof"
    assert main(["ledger", "prove", "--config", config, "--index", "1", "--out", str(bundle)]) == 0
    capsys.readouterr()
    c.config.ledger.db.rename(tmp_path / "moved.sqlite")  # check needs no database
    assert main(["ledger", "check", "--config", config, "--proof", str(bundle)]) == 0
    assert "entry 1 (payment) is in the log at size 3, cosigned by A, C" in capsys.readouterr().out
    bundle.write_text(bundle.read_text().replace("index 1", "index 2"))
    assert main(["ledger", "check", "--config", config, "--proof", str(bundle)]) == 2
    assert "error" in capsys.readouterr().err


def test_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    c = make_consortium(tmp_path / "c")
    config = str(c.config_path)
    assert main(["ledger", "verify", "--config", config]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["ledger", "init", "--config", config]) == 0
    entry_file = tmp_path / "entry.json"
    entry_file.write_text(json.dumps({"kind": "gossip"}))
    assert main(["ledger", "append", "--config", config, "--entry", str(entry_file), "--sign", "A"]) == 2
    assert "expected a kind" in capsys.readouterr().err
    assert main(["ledger", "append", "--config", config, "--entry", str(entry_file), "--sign", "Q"]) == 2
    assert "no key file for member 'Q'" in capsys.readouterr().err
    q_key = tmp_path / "q.key"
    assert main(["ledger", "keygen", "--out", str(q_key)]) == 0
    capsys.readouterr()
    assert main(["ledger", "append", "--config", config, "--entry", str(entry_file), "--sign", f"Q={q_key}"]) == 2
    assert "expected a kind" in capsys.readouterr().err
    entry_file.write_text(json.dumps({"kind": "payment"}))
    assert main(["ledger", "append", "--config", config, "--entry", str(entry_file), "--sign", f"Q={q_key}"]) == 2
    assert "unknown signer 'Q': not a member in epoch 0" in capsys.readouterr().err


def test_keygen_writes_a_0600_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "k" / "sm2.key"
    assert main(["ledger", "keygen", "--out", str(out)]) == 0
    assert len(capsys.readouterr().out.strip()) == 128
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert main(["ledger", "keygen", "--out", str(out)]) == 2


def test_show_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`settlechain ledger show | head -1`: the reader leaves early; no traceback, exit 0."""
    import subprocess
    import sys

    c = make_consortium(tmp_path / "c")
    config = str(c.config_path)
    assert main(["ledger", "init", "--config", config]) == 0
    entry_file = tmp_path / "entry.json"
    for i in range(60):  # ~240 KB of JSON: more than a pipe holds
        entry_file.write_text(json.dumps({"kind": "payment", "invoice": f"inv-{i}", "amount": i,
                                          "memo": "x" * 4000}))
        assert main(["ledger", "append", "--config", config, "--entry", str(entry_file),
                     "--sign", "A"]) == 0
    shown = subprocess.Popen(
        [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())",
         "ledger", "show", "--config", config, "--start", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert shown.stdout is not None
    shown.stdout.readline()
    shown.stdout.close()  # the reader goes away, as `head -1` does
    _, err = shown.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert shown.returncode == 0
