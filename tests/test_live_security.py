"""The live server's security rules, one test each: loopback only, the token, the WebSocket
Origin, files outside the run folder, message size and rate caps (no trainer needed)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the live view needs the gankit[live] extra")

from gankit.live import server as live_server  # noqa: E402
from gankit.live.server import LiveServer  # noqa: E402


class Recorder:
    """Stands in for LiveControl: keeps what the server hands over."""

    def __init__(self):
        self.commands, self.last = [], {}

    def submit(self, command):
        self.commands.append(command)


@pytest.fixture
def served(tmp_path):
    run = tmp_path / "run"
    (run / "plots").mkdir(parents=True)
    (run / "plots" / "a.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "secret.txt").write_text("outside the run folder")
    (run / "link").symlink_to(tmp_path / "secret.txt")
    server = LiveServer(run)
    server.control = Recorder()
    url = server.start()
    yield server, url
    server.close()


def own_origin(server) -> str:
    return f"http://127.0.0.1:{server.port}"


async def status_of(url: str, **headers) -> int:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status


def run(coro):
    return asyncio.run(coro)


def raw_get(port: int, target: str, host: str | None = None) -> int:
    """The status of a GET sent as written (no client normalises the path)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
                     "Connection: close\r\n\r\n".encode())
        return int(sock.recv(4096).split(b" ", 2)[1])


def test_binds_loopback_only(served):
    server, url = served
    assert url.startswith(f"http://127.0.0.1:{server.port}/")
    assert [a[0] for a in server._runner.addresses] == ["127.0.0.1"]
    with pytest.raises(OSError):      # another loopback address: nothing listens there
        socket.create_connection(("127.0.0.2", server.port), timeout=5).close()


def test_wrong_or_missing_token_is_403(served):
    server, url = served
    base = f"http://127.0.0.1:{server.port}"
    assert run(status_of(url)) == 200
    assert run(status_of(url + "api/state")) == 200
    other = "y" if server.token.endswith("x") else "x"        # a last character it lacks
    for bad in ("/", "/x/", f"/{server.token[:-1]}{other}/", f"/{server.token}x/api/state",
                "/api/state", "/wrong/files/plots/a.png", "/static/live.js"):
        assert run(status_of(base + bad)) == 403, bad


def test_foreign_host_header_is_403(served):
    server, _ = served                                # DNS rebinding: evil.example -> 127.0.0.1
    assert raw_get(server.port, f"/{server.token}/", host=f"evil.example:{server.port}") == 403
    assert raw_get(server.port, f"/{server.token}/") == 200


def test_websocket_from_a_foreign_origin_is_refused(served):
    server, url = served

    async def connect(origin):
        async with aiohttp.ClientSession() as s:
            kwargs = {"origin": origin} if origin else {}
            async with s.ws_connect(url + "ws", **kwargs) as ws:
                await ws.send_str(json.dumps({"cmd": "pause"}))
                await asyncio.sleep(0.2)
        return True

    assert run(connect(own_origin(server)))
    for origin in ("http://evil.example", f"http://127.0.0.1:{server.port + 1}", None):
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            run(connect(origin))
        assert e.value.status == 403
    assert len(server.control.commands) == 1          # only the page's own pause


def test_no_file_outside_the_run_folder(served):
    server, url = served
    t = f"/{server.token}/files/"
    assert raw_get(server.port, t + "plots/a.png") == 200
    for escape in ("../secret.txt", "plots/../../secret.txt", "..%2fsecret.txt",
                   "%2e%2e/secret.txt", "link", "%2fetc/passwd", "/etc/passwd", "plots",
                   "missing.png", "plots/%00a.png"):
        assert raw_get(server.port, t + escape) == 404, escape


def test_message_size_is_capped(served):
    server, url = served

    async def send_big():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(url + "ws", origin=own_origin(server)) as ws:
                await ws.send_str("x" * (live_server.MAX_MESSAGE + 1))
                msg = await ws.receive(timeout=10)
                return msg.type, ws.close_code

    kind, code = run(send_big())
    assert kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert server.control.commands == []


def test_message_rate_is_capped(served):
    server, url = served
    n = 3 * live_server.BURST

    async def flood():
        errors = []
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(url + "ws", origin=own_origin(server)) as ws:
                t0 = time.monotonic()
                for _ in range(n):
                    await ws.send_str(json.dumps({"cmd": "slow", "seconds": 0}))
                msg = await ws.receive(timeout=10)
                errors.append(json.loads(msg.data))
                return time.monotonic() - t0, errors

    elapsed, errors = run(flood())
    assert errors[0]["type"] == "error" and "too many messages" in errors[0]["message"]
    time.sleep(0.2)
    allowed = live_server.BURST + live_server.RATE * (elapsed + 0.5)
    assert live_server.BURST <= len(server.control.commands) <= allowed < n


def test_commands_are_validated(served):
    server, url = served

    async def send(texts):
        replies = []
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(url + "ws", origin=own_origin(server)) as ws:
                for text in texts:
                    await ws.send_str(text)
                    replies.append(json.loads((await ws.receive(timeout=10)).data))
        return replies

    bad = ["not json", json.dumps({"cmd": "rm -rf"}), json.dumps({"cmd": "lr", "phase": "D",
           "value": -1}), json.dumps({"cmd": "k", "value": 10**9}),
           json.dumps({"cmd": "draw", "points": [[0.0, 0.0]] * 501})]
    replies = run(send(bad))
    assert all(r["type"] == "error" and r["message"].startswith("bad command") for r in replies)
    assert server.control.commands == []
