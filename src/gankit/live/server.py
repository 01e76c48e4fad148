"""The live view's web server: aiohttp in a thread beside the training loop.

Why aiohttp: one well-kept package gives the HTTP server, WebSockets (with a cap on message
size) and a client for the tests, with no ASGI server to add (Starlette would need uvicorn
and a WebSocket package beside it). It runs its own asyncio loop in a daemon thread; the
trainer's thread never waits for it (``publish`` hands a message over and returns).

Security (each point has a test in tests/test_live_security.py):

* it binds 127.0.0.1 only (no option to change it);
* every URL starts with a random token (``secrets.token_urlsafe``): ``/TOKEN/`` is the page,
  and a missing or wrong token gets 403 for pages, files, the API and the WebSocket; a
  ``Host`` header other than this server's own (DNS rebinding) gets 403 too;
* a WebSocket whose ``Origin`` is not this server's own page (http://127.0.0.1:PORT or
  http://localhost:PORT), or that has none, is refused with 403 before the upgrade;
* ``/TOKEN/files/PATH`` serves files inside the run folder only: a path that leaves it
  (``..``, an absolute path, a symbolic link out) gets 404;
* messages from a page are capped at ``MAX_MESSAGE`` bytes (a larger one closes the socket,
  code 1009) and at ``RATE`` a second with bursts of ``BURST`` (further ones are dropped with
  an error message; a page that keeps flooding is disconnected, code 1008); at most
  ``MAX_CLIENTS`` pages at once. Every message is validated (``control.parse_command``).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from importlib import resources
from pathlib import Path
from typing import Any

from gankit.errors import GankitError
from gankit.live.control import LiveControl, dumps, parse_command

try:
    from aiohttp import WSCloseCode, WSMsgType, web
except ImportError:                                   # pragma: no cover - the optional extra
    raise GankitError("the live view needs aiohttp: pip install 'gankit[live]'") from None

HOST = "127.0.0.1"
MAX_MESSAGE = 64 * 1024       # bytes of one message from a page (500 drawn points fit)
RATE, BURST = 30.0, 60        # messages a second, per page
MAX_DROPPED = 200             # dropped messages before a page is disconnected
MAX_CLIENTS = 8
STATIC = ("index.html", "live.js", "live.css")


class TokenBucket:
    """At most ``rate`` events a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.t = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Outbox:
    """What waits to go to one page: messages in order, and only the newest frame (a page
    that draws slower than the trainer publishes skips frames instead of falling behind)."""

    def __init__(self):
        self.frame: str | None = None
        self.others: deque[str] = deque()
        self.ready = asyncio.Event()

    def put(self, text: str, frame: bool) -> None:
        if frame:
            self.frame = text
        else:
            self.others.append(text)
        self.ready.set()

    async def next(self) -> str:
        while self.frame is None and not self.others:
            self.ready.clear()
            await self.ready.wait()
        if self.others:
            return self.others.popleft()
        text, self.frame = self.frame, None
        return text


class LiveServer:
    """Serves the live page of the run in ``root`` and relays between pages and ``control``.

    ``start()`` binds 127.0.0.1:``port`` (0: a free port) and returns the page's URL;
    ``publish(message)`` sends a message to every page (thread-safe); ``close()`` stops it.
    Raises GankitError when the port cannot be bound (importing this module: when aiohttp,
    the optional extra ``gankit[live]``, is missing)."""

    def __init__(self, root: Path, port: int = 0):
        self.root = Path(root).resolve()
        self.port = port
        self.token = secrets.token_urlsafe(24)
        self.control: LiveControl | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: dict[Any, Outbox] = {}
        self._thread: threading.Thread | None = None
        self._runner = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/{self.token}/"

    def origins(self) -> set[str]:
        return {f"http://{HOST}:{self.port}", f"http://localhost:{self.port}"}

    # ---- life cycle --------------------------------------------------------------------
    def start(self) -> str:
        """Start serving in a daemon thread; returns the URL with the token."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._start_site())
            except OSError as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=serve, name="gankit-live", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise GankitError(f"the live view cannot listen on {HOST}:{self.port}: "
                              f"{getattr(failure[0], 'strerror', None) or failure[0]}")
        return self.url

    async def _start_site(self) -> None:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_MESSAGE)
        app.router.add_get("/{token}/", self._page)
        app.router.add_get("/{token}/static/{name}", self._static)
        app.router.add_get("/{token}/api/state", self._state)
        app.router.add_get("/{token}/api/files", self._file_list)
        app.router.add_get("/{token}/files/{path:.*}", self._file)
        app.router.add_get("/{token}/ws", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        """Stop serving (pages see the connection close) and end the thread."""
        if self.loop is None or not self.loop.is_running():
            return

        async def stop():
            for ws in list(self.clients):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"training ended")
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    # ---- to the pages ------------------------------------------------------------------
    def publish(self, message: dict) -> None:
        """Send ``message`` to every page; a page that lags gets only the newest frame."""
        if self.loop is None or not self.clients:
            return
        text = dumps(message)
        self.loop.call_soon_threadsafe(self._enqueue, text, message.get("type") == "frame")

    def _enqueue(self, text: str, frame: bool) -> None:
        for box in self.clients.values():
            box.put(text, frame)

    # ---- requests ----------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request, handler):
        """403 unless the URL starts with the token and the Host is this server."""
        token = request.path.split("/", 2)[1] if request.path.count("/") >= 2 else ""
        if request.host not in {o.split("//")[1] for o in self.origins()} or \
                not secrets.compare_digest(token.encode(), self.token.encode()):
            return web.Response(status=403, text="forbidden: open the URL gankit printed")
        response = await handler(request)
        response.headers.update(headers(self.port))
        return response

    async def _page(self, request):
        return self._package_file("index.html")

    async def _static(self, request):
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return self._package_file(name)

    @staticmethod
    def _package_file(name: str):
        text = resources.files("gankit.live").joinpath("static", name).read_text()
        kind = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
        return web.Response(text=text, content_type=kind[name.rsplit(".", 1)[1]])

    async def _state(self, request):
        last = self.control.last if self.control is not None else {}
        return web.Response(text=dumps(last), content_type="application/json")

    async def _file_list(self, request):
        files = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                       if p.is_file() and p.suffix in (".png", ".jsonl", ".yaml", ".json"))
        return web.json_response(files)

    async def _file(self, request):
        """A file of the run folder; 404 for anything outside it."""
        path = inside(self.root, request.match_info["path"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def _socket(self, request):
        if request.headers.get("Origin") not in self.origins():
            return web.Response(status=403, text="forbidden: foreign origin")
        if len(self.clients) >= MAX_CLIENTS:
            return web.Response(status=503, text="too many pages open")
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=30)
        await ws.prepare(request)
        box = self.clients[ws] = Outbox()
        sender = asyncio.ensure_future(self._send(ws, box))
        try:
            if self.control is not None and self.control.last:
                box.put(dumps(self.control.last), frame=True)
            await self._receive(ws)
        finally:
            self.clients.pop(ws, None)
            sender.cancel()
        return ws

    @staticmethod
    async def _send(ws, box: "Outbox") -> None:
        try:
            while not ws.closed:
                await ws.send_str(await box.next())
        except (ConnectionError, RuntimeError):       # the page went away mid-message
            return

    async def _receive(self, ws) -> None:
        bucket, dropped = TokenBucket(RATE, BURST), 0
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            if not bucket.take():
                dropped += 1
                if dropped > MAX_DROPPED:
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"rate limit")
                    return
                if dropped == 1 or dropped % 50 == 0:
                    await ws.send_str(dumps({"type": "error", "message": "too many messages: "
                                             f"at most {RATE:g} a second; some were dropped"}))
                continue
            try:
                command = parse_command(msg.data)
            except GankitError as e:
                await ws.send_str(dumps({"type": "error", "message": str(e)}))
                continue
            if self.control is not None:
                self.control.submit(command)


def inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it is an existing file inside ``root`` after resolving
    ``..`` and symbolic links; None otherwise (absolute paths included)."""
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        return None
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def headers(port: int) -> dict[str, str]:
    """Headers of every answer: nothing leaves the page (no referrer, no other origin)."""
    own = f"ws://{HOST}:{port} ws://localhost:{port}"
    return {"Content-Security-Policy": f"default-src 'self'; img-src 'self' data:; "
                                       f"connect-src 'self' {own}; frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"}
