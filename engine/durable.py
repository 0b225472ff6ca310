"""Writing an output so that it survives a crash: write, fsync, rename, fsync the folder."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

FULL_DISK_ENV = "SETTLECHAIN_FAULT_FULL_DISK"
"""Fault injection for the tests: writing the output file named here fails as on a full
disk (ENOSPC), after part of it was written."""


def durable_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` durably: to a temporary name, fsync, rename, fsync the folder.  After
    it returns, the file survives a crash or a power cut; a failure leaves no partial file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        if os.environ.get(FULL_DISK_ENV) == path.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
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
