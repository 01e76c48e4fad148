"""One-line notes to the user on stdout (rank 0 only under torchrun); errors go to stderr."""

from __future__ import annotations

import os
import sys


_QUIET = False


def set_quiet(quiet: bool) -> None:
    """``gankit ... --quiet``: no notes (errors are still printed, on stderr)."""
    global _QUIET
    _QUIET = quiet


def some(names: list[str], shown: int = 5) -> str:
    """'a.png, b.png and 3 more': the first ``shown`` of ``names`` for a one-line message."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def note(message: str) -> None:
    """Print ``gankit: message`` on stdout (ranks > 0 stay quiet): what the run took or
    skipped, never an error."""
    if not _QUIET and os.environ.get("RANK", "0") == "0":
        print(f"gankit: {message}", file=sys.stdout, flush=True)
