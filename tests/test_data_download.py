"""Data root resolution (platformdirs) and the download path (pooch), against a loopback HTTP
server (no network)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest

from gankit.data import download as dl
from gankit.data.download import Remote, data_root, download, ensure_file
from gankit.errors import DataError
from gankit.fileio import current_umask

PAYLOAD = b"gankit test payload\n" * 1000
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    # /good/<name> serves the payload, /bad/<name> a corrupted copy, anything else is 404.
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.startswith("/good/"):
            body = PAYLOAD
        elif self.path.startswith("/bad/"):
            body = PAYLOAD[:-1] + b"!"
        elif self.path.startswith("/short/"):  # connection drops before the promised length
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) + 100))
            self.end_headers()
            self.wfile.write(PAYLOAD[:100])
            self.close_connection = True
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # keep pytest output clean


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("GANKIT_OFFLINE", raising=False)
    for var in ("no_proxy", "NO_PROXY"):  # a configured HTTP proxy must not see loopback traffic
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GANKIT_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data_root() == tmp_path / "home" / ".cache" / "gankit" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "gankit" / "data"
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GANKIT_CACHE", raising=False)
    assert dl.cache_root() == tmp_path / "xdg" / "gankit"
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "c"))
    assert dl.cache_root() == tmp_path / "c"


def test_download_success(server, tmp_path):
    remote = Remote("file.bin", PAYLOAD_MD5, (f"{server}/good/",))
    path = download(remote, tmp_path / "sub")
    assert path == tmp_path / "sub" / "file.bin"
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # not pooch's private 0600


def test_wrong_md5_rejected_and_not_left_behind(server, tmp_path):
    remote = Remote("file.bin", PAYLOAD_MD5, (f"{server}/bad/",))
    with pytest.raises(DataError) as err:
        download(remote, tmp_path)
    msg = str(err.value)
    assert "MD5 mismatch" in msg and "file.bin" in msg and str(tmp_path) in msg
    assert "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_mirror_fallback(server, tmp_path):
    mirrors = (f"{server}/missing/", f"{server}/short/", f"{server}/bad/", f"{server}/good/")
    path = download(Remote("file.bin", PAYLOAD_MD5, mirrors), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_dropped_connection_is_a_clean_failure(server, tmp_path):
    with pytest.raises(DataError, match=r"IncompleteRead\(100 bytes read"):
        download(Remote("file.bin", PAYLOAD_MD5, (f"{server}/short/",)), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_all_mirrors_fail_names_file_folder_and_url(server, tmp_path):
    remote = Remote("file.bin", PAYLOAD_MD5, (f"{server}/missing/", f"{server}/gone/"))
    with pytest.raises(DataError, match="404") as err:
        download(remote, tmp_path)
    msg = str(err.value)
    assert f"{server}/missing/file.bin" in msg and str(tmp_path) in msg


def test_offline_gives_manual_instructions(monkeypatch, server, tmp_path):
    monkeypatch.setenv("GANKIT_OFFLINE", "1")
    remote = Remote("file.bin", PAYLOAD_MD5, (f"{server}/good/",))
    with pytest.raises(DataError) as err:
        ensure_file(remote, tmp_path / "ds")
    msg = str(err.value)
    assert "GANKIT_OFFLINE" in msg and "file.bin" in msg
    assert str(tmp_path / "ds") in msg and f"{server}/good/file.bin" in msg
    assert not (tmp_path / "ds").exists()


def test_ensure_file_uses_existing_and_rejects_corrupt(monkeypatch, tmp_path):
    monkeypatch.setenv("GANKIT_OFFLINE", "1")
    remote = Remote("file.bin", PAYLOAD_MD5, ("http://127.0.0.1:9/",))
    (tmp_path / "file.bin").write_bytes(PAYLOAD)
    assert ensure_file(remote, tmp_path) == tmp_path / "file.bin"
    (tmp_path / "file.bin").write_bytes(b"something else")
    with pytest.raises(DataError, match="does not match its published MD5"):
        ensure_file(remote, tmp_path)


def test_a_file_replaced_with_the_same_size_and_time_is_checked_again(tmp_path):
    """The check reads the bytes every time: no memo keyed by size and modification time."""
    path = tmp_path / "file.bin"
    path.write_bytes(PAYLOAD)
    remote = Remote("file.bin", PAYLOAD_MD5, ())
    assert ensure_file(remote, tmp_path, allow_download=False) == path
    stamp = path.stat()
    path.write_bytes(PAYLOAD[:-1] + b"?")                     # same size
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same time
    with pytest.raises(DataError, match="does not match its published MD5"):
        ensure_file(remote, tmp_path, allow_download=False)


def _shared_data() -> Path | None:
    import os

    for candidate in (os.environ.get("GANKIT_DATA"),
                      Path(__file__).resolve().parents[1].parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate)
    return None


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_shared_files_match_published_md5(name):
    root = _shared_data()
    if root is None:
        pytest.skip("shared MNIST files not present")
    for remote in dl.REMOTES[name].values():
        path = root / name / remote.filename
        if not path.is_file():
            pytest.skip(f"{path} not present")
        assert dl.md5sum(path) == remote.md5, path
