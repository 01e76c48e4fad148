"""Crash-safe file writes (checkpoints, configs, metrics): all of a file or none of it; and
the one tolerant reader of the small JSON files gankit keeps beside them."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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


def read_json(path: Path, kind: type = dict) -> Any | None:
    """The JSON value in ``path`` when it is a ``kind`` (default: an object), else None: a
    missing, unreadable, torn or foreign file (eval results, cache metadata, run-time tables)
    is treated as absent, never as an error, since every caller can recompute or skip it."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):    # ValueError: bad JSON or bad UTF-8
        return None
    return value if isinstance(value, kind) else None
