"""Writing an output so that it survives a crash: write, fsync, rename, fsync the folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def durable_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` durably: to a temporary name, fsync, rename, fsync the folder.  After
    it returns, the file survives a crash or a power cut; a failure leaves no partial file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
