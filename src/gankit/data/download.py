"""Where data sets live, and how a missing file is fetched and verified.

Layout: ``<data root>/<data set folder>/<file>``, e.g. ``<user cache>/gankit/data/mnist/
train-images-idx3-ubyte.gz``, the user cache folder being the platform's
(``platformdirs.user_cache_dir``: ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux,
``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows). The original archives are kept
as published (gzip IDX, the CIFAR tarball) and checked against their published MD5 every time
they are opened (content, not names or times; measured 34-42 ms for MNIST's largest file and
93-127 ms for Fashion-MNIST's on the shared 2-core machine), so a file copied in by hand works
exactly like a downloaded one.

Downloads go through ``pooch`` (``pooch.retrieve``: a streamed HTTP download into a temporary
file beside the destination, the hash checked, then renamed into place, so an interrupted or
corrupted download never leaves a file that looks valid), trying each mirror in turn, with a
progress bar on a terminal. ``GANKIT_OFFLINE=1`` turns every download into an error that says
where to put the file by hand.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import pooch
from tqdm import tqdm

from gankit.errors import DataError
from gankit.fileio import current_umask

_TRUTHY = {"1", "true", "yes", "on"}
pooch.get_logger().setLevel(logging.WARNING)   # no "Downloading ..." lines of its own


@dataclass(frozen=True)
class Remote:
    """One published file: its name, MD5 and the base URLs it can be fetched from."""

    filename: str
    md5: str
    mirrors: tuple[str, ...]

    def urls(self) -> list[str]:
        return [m.rstrip("/") + "/" + self.filename for m in self.mirrors]


# Official sources; the MD5s are the published ones (also used by torchvision).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

REMOTES: dict[str, dict[str, Remote]] = {
    "mnist": {
        name: Remote(name, md5, MNIST_MIRRORS)
        for name, md5 in [
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ]
    },
    "fashion-mnist": {
        name: Remote(name, md5, FASHION_MNIST_MIRRORS)
        for name, md5 in [
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ]
    },
    "cifar10": {
        "cifar-10-python.tar.gz": Remote(
            "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            ("https://www.cs.toronto.edu/~kriz/",),
        )
    },
}


def _user_cache() -> Path:
    """The per-user cache folder of this platform (platformdirs; honours XDG_CACHE_HOME)."""
    return Path(platformdirs.user_cache_dir())


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``explicit`` > ``$GANKIT_DATA`` > ``<user cache>/gankit/data``.

    Data sets live in the cache folder, not the data folder: they are downloaded copies that
    can always be fetched again (and earlier versions of gankit put them there)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("GANKIT_DATA")
    if env:
        return Path(env).expanduser()
    return _user_cache() / "gankit" / "data"


def cache_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where derived caches go: ``explicit`` > ``$GANKIT_CACHE`` > ``<user cache>/gankit``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("GANKIT_CACHE")
    if env:
        return Path(env).expanduser()
    return _user_cache() / "gankit"


def offline() -> bool:
    return os.environ.get("GANKIT_OFFLINE", "").strip().lower() in _TRUTHY


def md5sum(path: Path) -> str:
    """Hex MD5 of a file's bytes (pooch.file_hash)."""
    return pooch.file_hash(str(path), alg="md5")


def verify_md5(path: Path, md5: str) -> bool:
    """Whether ``path``'s bytes have MD5 ``md5``, read every time: a file replaced with the
    same size and modification time is caught too."""
    return md5sum(path) == md5


def _fetch(url: str, dest: Path, md5: str, timeout: float) -> None:
    """``pooch.retrieve`` of ``url`` to ``dest``: streamed to a temporary file beside it,
    MD5-checked, renamed into place; raises OSError (requests' errors) or ValueError."""
    # disable=None: a bar on a terminal, silence in logs and CI. total=1 until pooch sets the
    # Content-Length: pooch asks the bar's truth first, and a tqdm without a total has none.
    bar = tqdm(total=1, unit="B", unit_scale=True, desc=dest.name, disable=None, leave=False)
    try:
        pooch.retrieve(url, known_hash=f"md5:{md5}", fname=dest.name, path=dest.parent,
                       downloader=pooch.HTTPDownloader(timeout=timeout, progressbar=bar))
    finally:
        bar.close()
    os.chmod(dest, 0o666 & ~current_umask())   # pooch's temporary file was private (0600)


def _manual_hint(remote: Remote, folder: Path) -> str:
    urls = remote.urls()
    where = f"download it from {urls[0]} and " if urls else "get it and "
    return where + f"place it in {folder}"


def _reason(e: Exception) -> str:
    """One line for a failed attempt; pooch says a hash mismatch in a paragraph."""
    if isinstance(e, ValueError) and "hash" in str(e):
        return "MD5 mismatch (the download was corrupt and is deleted)"
    return " ".join(str(e).split()) or type(e).__name__


def download(remote: Remote, folder: Path, *, timeout: float = 60.0) -> Path:
    """Fetch ``remote`` into ``folder``, trying each mirror in turn; DataError if all fail."""
    dest = folder / remote.filename
    if offline():
        raise DataError(
            f"{remote.filename} is missing and GANKIT_OFFLINE is set; "
            + _manual_hint(remote, folder)
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create data folder {folder}: {e.strerror or e}") from e
    failures = []
    for url in remote.urls():
        try:
            _fetch(url, dest, remote.md5, timeout)
        # requests' errors (HTTP status, connection, a body cut short) are OSErrors; pooch
        # raises ValueError for a hash mismatch.
        except (OSError, ValueError) as e:
            failures.append(f"{url}: {_reason(e)}")
            continue
        return dest
    raise DataError(
        f"could not download {remote.filename} ({'; '.join(failures) or 'no mirror known'}); "
        + _manual_hint(remote, folder)
    )


def ensure_file(remote: Remote, folder: Path, *, allow_download: bool = True) -> Path:
    """The verified local copy of ``remote`` in ``folder``, downloading it if missing."""
    path = folder / remote.filename
    if path.is_file():
        if not verify_md5(path, remote.md5):
            raise DataError(
                f"{path} does not match its published MD5 {remote.md5}; delete it to "
                f"download again, or {_manual_hint(remote, folder)}"
            )
        return path
    if not allow_download:
        raise DataError(f"{remote.filename} not found; " + _manual_hint(remote, folder))
    return download(remote, folder)

