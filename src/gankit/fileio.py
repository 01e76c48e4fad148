"""Crash-safe file writes (checkpoints, configs, metrics): all of a file or none of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes so that ``path`` is either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())    # mkstemp's 0600: as open() would make it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)    # make the rename itself durable
    finally:
        os.close(dir_fd)


def current_umask() -> int:
    """The process's file-mode creation mask (reading it means setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
