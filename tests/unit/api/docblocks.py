"""Run the code blocks of a Markdown document as written, and compare what they print with
the ```text block that follows each of them.

Conventions of the documents it runs (docs/api.md, README.md's API example):

- a ```python block runs in one Python session shared by all python blocks of the
  document, in order, in the working folder;
- a ```python block whose first line is ``# NAME.py`` is a program: it is written to
  NAME.py in the working folder instead of being run (a later block runs it);
- a ```sh block runs with ``bash -e`` in the working folder, with this interpreter's
  ``bin`` folder first on PATH (so ``python`` and ``settlechain`` are the installed ones);
- a ```text block right after a python or sh block (blank lines between allowed) is what
  that block prints on stdout, line by line; ``...`` in a line stands for any text (for
  what differs from run to run: salted hashes, times).

``python tests/unit/api/docblocks.py FILE.md`` runs FILE.md's blocks in a fresh folder
and rewrites its ```text blocks with what they printed (for when an example changes).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
PROGRAM = re.compile(r"^# (\w[\w.-]*\.py)$")


@dataclass
class Block:
    lang: str
    code: str
    line: int
    """1-based line of the opening fence."""
    expected: str | None = None
    """The following ```text block, if any."""
    expected_span: tuple[int, int] | None = None
    """0-based line range of that text block's body."""

    @property
    def program(self) -> str | None:
        first = self.code.splitlines()[0] if self.code else ""
        match = PROGRAM.match(first) if self.lang == "python" else None
        return match.group(1) if match else None

    @property
    def name(self) -> str:
        return f"line {self.line} ({self.program or self.lang})"


def parse(text: str) -> list[Block]:
    """The python and sh blocks of ``text`` with their expected output."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    last: Block | None = None
    gap_only_blank = False
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                gap_only_blank = False
            i += 1
            continue
        lang, start = match.group(1), i
        end = start + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = "\n".join(lines[start + 1:end])
        if lang in ("python", "sh"):
            last = Block(lang, body, start + 1)
            blocks.append(last)
            gap_only_blank = True
        elif lang == "text" and last is not None and gap_only_blank and last.expected is None:
            last.expected = body
            last.expected_span = (start + 1, end)
            gap_only_blank = False
        else:
            gap_only_blank = False
        i = end + 1
    return blocks


@dataclass
class Outcome:
    block: Block
    output: str = ""
    error: str | None = None
    """The traceback (python) or exit status and stderr (sh) of a block that failed."""


@dataclass
class Session:
    """Runs blocks in order in one folder; a block after a failed one is not run."""

    folder: Path
    namespace: dict[str, object] = field(default_factory=lambda: {"__name__": "__docs__"})
    failed: str | None = None

    def run(self, block: Block) -> Outcome:
        if self.failed is not None:
            return Outcome(block, error=f"not run: {self.failed} failed")
        outcome = (self._program(block) if block.program else
                   self._python(block) if block.lang == "python" else self._sh(block))
        if outcome.error is not None:
            self.failed = block.name
        return outcome

    def _program(self, block: Block) -> Outcome:
        assert block.program is not None
        (self.folder / block.program).write_text(block.code + "\n", encoding="utf-8")
        return Outcome(block)

    def _python(self, block: Block) -> Outcome:
        buffer = io.StringIO()
        here = os.getcwd()
        os.chdir(self.folder)
        try:
            with contextlib.redirect_stdout(buffer):
                exec(compile(block.code, f"<{block.name}>", "exec"), self.namespace)  # noqa: S102
        except BaseException:  # noqa: BLE001 - reported as the block's failure
            return Outcome(block, buffer.getvalue(), traceback.format_exc())
        finally:
            os.chdir(here)
        return Outcome(block, buffer.getvalue())

    def _sh(self, block: Block) -> Outcome:
        env = dict(os.environ)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        proc = subprocess.run(["bash", "-e", "-c", block.code], cwd=self.folder, env=env,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return Outcome(block, proc.stdout, f"exit {proc.returncode}\n{proc.stderr}")
        return Outcome(block, proc.stdout)


def normalise(text: str) -> str:
    """Trailing spaces and trailing blank lines do not count."""
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def line_matches(expected: str, got: str) -> bool:
    """``got`` is ``expected``, where each ``...`` of ``expected`` stands for any text."""
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got) is not None


def matches(expected: str, got: str) -> bool:
    want, have = normalise(expected).splitlines(), normalise(got).splitlines()
    return len(want) == len(have) and all(map(line_matches, want, have))


def merge(expected: str | None, got: str) -> str:
    """What to write back: the new output, keeping the lines with ``...`` that still match."""
    old = normalise(expected or "").splitlines()
    new = normalise(got).splitlines()
    if len(old) != len(new):
        return "\n".join(new)
    return "\n".join(o if "..." in o and line_matches(o, n) else n for o, n in zip(old, new))


def update(path: Path) -> int:
    """Rewrite the ```text blocks of ``path`` with what the blocks print now."""
    text = path.read_text(encoding="utf-8")
    blocks = parse(text)
    lines = text.splitlines()
    with tempfile.TemporaryDirectory(prefix="docblocks-") as folder:
        session = Session(Path(folder))
        replacements = []
        for block in blocks:
            outcome = session.run(block)
            if outcome.error is not None:
                print(f"{path}: {block.name} failed:\n{outcome.error}", file=sys.stderr)
                return 1
            if block.expected_span is not None:
                replacements.append((block.expected_span, merge(block.expected, outcome.output)))
    for (start, end), output in reversed(replacements):
        lines[start:end] = output.splitlines()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{path}: {len(replacements)} outputs written")
    return 0


if __name__ == "__main__":
    sys.exit(update(Path(sys.argv[1])))
