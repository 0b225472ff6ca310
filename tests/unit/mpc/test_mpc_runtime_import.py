"""Importing MPyC through protocols.mpc.runtime ignores the program's argv and logging."""

import subprocess
import sys

SCRIPT = """
import logging, sys
sys.argv = ["settlechain", "-M3", "--n", "5", "-H", "--output", "x"]
import protocols.mpc.runtime as r
assert sys.argv == ["settlechain", "-M3", "--n", "5", "-H", "--output", "x"], sys.argv
assert not logging.getLogger().handlers, logging.getLogger().handlers
print("imported", r.MPYC_VERSION)
"""


def test_import_is_independent_of_argv_and_logging() -> None:
    # with these arguments a plain `import mpyc` would exit (ambiguous --n / --output, -H)
    # or spawn two more processes (-M3 without -I)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imported 0.11"
