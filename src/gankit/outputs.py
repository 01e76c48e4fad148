"""The rules every gankit command that writes files follows (so none destroys or merges user
data), and the helpers that enforce them:

1. **Never into an input.** An output that is, lies inside, or contains one of the command's
   inputs (an image folder, a statistics file, a run folder read for its checkpoints) is
   refused in one line before any work (:func:`refuse_overlap`).
2. **Output folders are new or empty** (``gankit translate --out``): outputs are never merged
   into other files (:func:`check_new_folder`).
3. **One output per input.** Output names are planned before anything is written; two inputs
   that would get one name (also names differing only in case, which a case-insensitive file
   system merges) are refused (:func:`one_to_one`). The count a command prints is the count of
   files it wrote.
4. **An output file named on the command line** (``sample --out``, ``fid --save-stats``) is
   written whole or not at all (a temporary file renamed into place, :func:`write_via`); when
   it already exists it is replaced, and the command says so.
5. **Records in a run folder** (``gankit eval``'s ``eval-STEP.json``) never replace a
   different earlier result: it goes to ``eval-STEP-2.json`` (then -3, ...) instead
   (:func:`keep_both`). ``gankit plot`` redraws the figures in ``RUN/plots/`` (derived from
   the run, replaced) and writes nothing else.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from gankit.errors import GankitError
from gankit.fileio import atomic_write, current_umask


def _real(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def refuse_overlap(output: Path, inputs: Mapping[str, Path], flag: str = "--out") -> None:
    """Rule 1: GankitError when ``output`` equals, lies inside or contains an input
    (``{label: path}``; symbolic links are followed, so an alias is caught too)."""
    out = _real(output)
    for label, path in inputs.items():
        if path is None:
            continue
        inp = _real(path)
        if _within(out, inp) or _within(inp, out):
            how = ("is" if out == inp else "lies inside" if _within(out, inp) else "contains")
            raise GankitError(f"{flag} {output} {how} {label} {path}; gankit never writes into "
                              "its inputs: choose an output elsewhere")


def check_new_folder(folder: Path, inputs: Mapping[str, Path], flag: str = "--out") -> None:
    """Rules 1-2 for an output folder: not overlapping an input, and new or empty."""
    refuse_overlap(folder, inputs, flag)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise GankitError(f"{flag} {folder} exists and is not an empty folder; gankit writes "
                          "its outputs into a new or empty folder (never among other files): "
                          "choose another")


def one_to_one(names: Iterable[str], name_of: Callable[[str], str],
               reserved: Iterable[str] = ()) -> dict[str, str]:
    """Rule 3: ``{input name: output name}`` (``name_of(input name)``), GankitError when two
    inputs, or an input and a ``reserved`` output name, would share an output name, compared
    without case."""
    taken = {r.casefold(): f"the command's own {r}" for r in reserved}
    plan = {}
    for name in names:
        out = name_of(name)
        other = taken.get(out.casefold())
        if other is not None:
            raise GankitError(f"{name} and {other} would both be written as {out}; rename one "
                              "of them")
        taken[out.casefold()] = name
        plan[name] = out
    return plan


def check_writable(path: Path, flag: str = "--out") -> None:
    """Rule 4, before any work: GankitError (one line) when a file cannot be created at
    ``path``: an existing part of its folder is a file, or the nearest existing folder refuses
    a new file (tried with a temporary file, removed at once; permissions alone do not tell,
    e.g. for root or on /proc)."""
    what = f"{flag} {path}"
    folder = Path(path).expanduser().absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise GankitError(f"cannot write {what}: {folder} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".gankit-check.", dir=folder)
    except OSError as e:
        raise GankitError(f"cannot write {what}: cannot create files in {folder} "
                          f"({e.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


def write_via(path: Path, write: Callable[[Path], object]) -> bool:
    """Rule 4: ``write(tmp)`` to a temporary file beside ``path`` (same suffix, so writers
    that go by the extension work), then rename it into place. Returns whether an existing
    file was replaced. The temporary file is removed if ``write`` fails; GankitError (one
    line) when the folder or the temporary file cannot be made (commands call
    ``check_writable`` before their work, so this is the late safety net)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as e:
        raise GankitError(f"cannot write {path}: {e.strerror}") from None
    existed = path.exists()
    os.fchmod(fd, 0o666 & ~current_umask())        # mkstemp's 0600: as open() would make it
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return existed


def keep_both(path: Path, data: bytes) -> Path:
    """Rule 5: write ``data`` to ``path``, or, when ``path`` holds something else, to the
    first free ``<stem>-2<suffix>``, ``-3``, ...; the same bytes already there are kept as
    they are. Returns the path that holds ``data``."""
    candidate, k = path, 1
    while candidate.exists():
        if candidate.read_bytes() == data:
            return candidate
        k += 1
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
    atomic_write(candidate, data)
    return candidate
