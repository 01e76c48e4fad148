"""Where data sets live, and how a missing file is fetched and verified.

Layout: ``<data root>/<data set folder>/<file>``, e.g. ``~/.cache/gankit/data/mnist/
train-images-idx3-ubyte.gz``. The original archives are kept as published (gzip IDX, the
CIFAR tarball) and checked against their published MD5, so a file copied in by hand works
exactly like a downloaded one.

Downloads stream into a temporary file in the destination folder, are hashed on the way and
are renamed into place only when the MD5 matches, so an interrupted or corrupted download never
leaves a file that looks valid. ``GANKIT_OFFLINE=1`` turns every download into an error that
says where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from gankit.errors import DataError

_CHUNK = 1 << 20
_TRUTHY = {"1", "true", "yes", "on"}


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
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``explicit`` > ``$GANKIT_DATA`` > ``<user cache>/gankit/data``."""
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
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# (resolved path, size, mtime_ns, expected md5) -> matched. Hashing 30 MB takes ~50 ms, so
# we do it once per process per file version rather than on every load.
_VERIFIED: dict[tuple[str, int, int, str], bool] = {}


def verify_md5(path: Path, md5: str) -> bool:
    """Whether ``path`` has MD5 ``md5``; remembered while the file's size and mtime hold."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, md5)
    if key not in _VERIFIED:
        _VERIFIED[key] = md5sum(path) == md5
    return _VERIFIED[key]


def _fetch(url: str, dest: Path, md5: str, timeout: float) -> None:
    """Stream ``url`` into a temp file beside ``dest``; rename into place if the MD5 matches."""
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            # disable=None: a bar on a terminal, silence in logs and CI.
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                      disable=None, leave=False) as bar:
                received = 0
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
        if total is not None and received != total:
            raise ValueError(f"connection closed after {received} of {total} bytes")
        got = digest.hexdigest()
        if got != md5:
            raise ValueError(f"MD5 mismatch (got {got}, expected {md5})")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a data file is meant to be shared
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _manual_hint(remote: Remote, folder: Path) -> str:
    urls = remote.urls()
    where = f"download it from {urls[0]} and " if urls else "get it and "
    return where + f"place it in {folder}"


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
        # URLError/HTTPError are OSErrors; a dropped connection is an HTTPException.
        except (OSError, ValueError, http.client.HTTPException) as e:
            failures.append(f"{url}: {e}")
            continue
        _VERIFIED.clear()  # a replaced file may reuse an old (size, mtime)
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
