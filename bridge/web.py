"""The web control surface: one static page and a WebSocket, for a tablet or phone at front of house.

aiohttp, because the bridge is one asyncio loop: the server runs as a few
tasks beside the control loop, reads the engine's state directly and hands
commands to the engine's own entry points, with no thread, no second loop
and no ASGI server to start and stop. ``docs/web.md`` has the protocol.

The WebSocket sends the live state at most every ``period_s`` (sampled: a
slow client gets fewer updates, never older ones) and takes commands, which
pass the same gate as MQTT commands (``bridge.commands``) and are answered
on the same socket. Nothing here can stall the control loop: the engine's
listener only marks a flag, and every send happens in the client's own task.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from ailive.consoles.errors import AiliveError
from ailive.consoles.show import split_host_port

from .commands import MAX_COMMAND_BYTES, PAYLOAD_VERSION, CommandGate
from .engine import Engine
from .webstate import LinkWatch, state_payload

log = logging.getLogger(__name__)

#: ``--web PORT`` without a host listens here: only this machine can reach it.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: The live state goes out at most this often (10 Hz).
STATE_PERIOD_S = 0.1
#: Browsers at once; a further one is turned away (each costs an encode and a send per update).
MAX_CLIENTS = 16
#: Answers waiting for a browser that does not read; the oldest are dropped beyond this.
UNREAD_ANSWERS = 64
#: The page and its two files, by URL path: (file under static/, content type).
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
STATIC_DIR = Path(__file__).resolve().parent / "static"
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # no other page can frame the KILL button and click it for you
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


class WebError(AiliveError):
    """The web surface cannot start as asked."""


@dataclass(frozen=True)
class WebAddress:
    host: str
    port: int  # 0: any free port

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_web_address(text: str) -> WebAddress:
    """``PORT``, ``HOST:PORT`` or ``HOST`` (``[v6]:PORT`` for IPv6); a bare port listens on loopback, 0 on a free port."""
    text = text.strip()
    if text.isdigit():
        text = f"{DEFAULT_HOST}:{text}"
    base, colon, last = text.rpartition(":")
    if colon and last == "0" and (base.endswith("]") or ":" not in base):
        return WebAddress(split_host_port(base, 0, "web address")[0], 0)
    return WebAddress(*split_host_port(text, DEFAULT_PORT, "web address"))


def listen(address: WebAddress) -> socket.socket:
    """Bind the listening socket now, so a port in use is one clear error before anything starts."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise WebError(f"web surface: cannot listen on {address}: {exc.strerror}") from None
    family, kind, proto, _, where = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop binds at once
        sock.bind(where)
        sock.listen(64)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise WebError(f"web surface: cannot listen on {address}: {exc.strerror or exc}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """The page's URL; an any-address bind says so, since the tablet needs this machine's own address."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        return f"http://<this machine's address>:{port}/ (listening on every interface)"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@dataclass
class WebStats:
    clients: int = 0
    states_sent: int = 0
    commands_queued: int = 0
    commands_refused: int = 0
    turned_away: int = 0  # connections refused: foreign origin or host, or too many clients


@dataclass(eq=False)
class _Client:
    """One browser: the newest state not yet sent, and its command answers, in order."""

    ws: web.WebSocketResponse
    peer: str
    state: str | None = None
    answers: deque[str] = field(default_factory=lambda: deque(maxlen=UNREAD_ANSWERS))  # a client that never reads cannot grow it
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def answer(self, result: dict[str, Any]) -> None:
        self.answers.append(json.dumps({"type": "result", **result}, separators=(",", ":")))
        self.ready.set()


class WebSurface:
    """Serves the page and the live WebSocket for one engine on an already bound socket.

    ``start()`` returns once it serves; ``close()`` answers the commands still
    waiting, closes every socket and stops, in bounded time.
    """

    def __init__(self, engine: Engine, sock: socket.socket, *, token: str = "", period_s: float = STATE_PERIOD_S,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.engine = engine
        self.sock = sock
        self.period_s = period_s
        self.max_clients = max_clients
        self.stats = WebStats()
        self.url = url_of(sock)
        host, port = sock.getsockname()[:2]
        self.address = WebAddress(host, port)
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._clients: set[_Client] = set()
        self._gate = CommandGate(engine, origin="web", token=token, counters=self.stats, wake=self._wake.set)
        self._watch = LinkWatch()
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._files = {path: ((STATIC_DIR / name).read_bytes(), kind) for path, (name, kind) in PAGES.items()}

    @property
    def token_required(self) -> bool:
        return self._gate.token_required

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._socket)
        for path in PAGES:
            app.router.add_get(path, self._page)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock).start()
        self._task = asyncio.create_task(self._updates(), name="web surface")
        where = "this machine only" if self.address.loopback else "the network: anyone who reaches it can steer"
        log.info("web: serving %s (%s)%s", self.url, where, ", token required" if self.token_required else "")
        if not self.address.loopback and not self.token_required:
            log.warning("web: the surface listens on %s without a token: anyone on that network can arm and kill; "
                        "set [mqtt] token in the show file or AILIVE_WEB_TOKEN", self.address)

    async def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._gate.settle(final=True)
        for client in list(self._clients):
            client.ready.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(code=1001, message=b"bridge stopped"), 1.0)
        if self._runner is not None:
            await self._runner.cleanup()
        self.sock.close()

    # ----- HTTP ---------------------------------------------------------------------------

    def _foreign(self, request: web.Request) -> str:
        """Why a request comes from somewhere it must not (another site's page, a rebound DNS name), or ''."""
        host = _host_name(request.host or "")
        if self.address.loopback and host not in ("127.0.0.1", "localhost", "::1", self.address.host):
            return f"host {request.host!r} is not this machine's loopback name"
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            return f"origin {origin!r} is not this page"
        return ""

    async def _page(self, request: web.Request) -> web.Response:
        why = self._foreign(request)
        if why:
            self.stats.turned_away += 1
            raise web.HTTPForbidden(text=f"ailive web surface: {why}\n")
        body, kind = self._files[request.path]
        return web.Response(body=body, headers={**_HEADERS, "Content-Type": kind})

    # ----- the WebSocket ------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        why = self._foreign(request)
        if not why and len(self._clients) >= self.max_clients:
            why = f"{self.max_clients} clients are connected already"
        if why or self._closing.is_set():
            self.stats.turned_away += 1
            log.warning("web: turned away %s: %s", request.remote, why or "the bridge is stopping")
            raise web.HTTPForbidden(text=f"ailive web surface: {why or 'the bridge is stopping'}\n")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4 * MAX_COMMAND_BYTES)
        await ws.prepare(request)
        client = _Client(ws, str(request.remote))
        self._clients.add(client)
        self.stats.clients = len(self._clients)
        hello = {"type": "hello", "v": PAYLOAD_VERSION, "show": self.engine.show.name,
                 "token_required": self.token_required, "period_s": self.period_s}
        await ws.send_str(json.dumps(hello))
        sender = asyncio.create_task(self._send(client))
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._gate.take(None, message.data, client.answer)
                    self._wake.set()
        finally:
            self._clients.discard(client)
            self.stats.clients = len(self._clients)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    async def _send(self, client: _Client) -> None:
        """Answers first, then the newest state; a slow browser skips states, never answers."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not client.ws.closed:
                await client.ready.wait()
                client.ready.clear()
                while client.answers:
                    await client.ws.send_str(client.answers.popleft())
                if client.state is not None:
                    state, client.state = client.state, None
                    await client.ws.send_str(state)
                    self.stats.states_sent += 1
                if self._closing.is_set():
                    return

    async def _updates(self) -> None:
        """Settle answers whenever a control step may have applied a command; sample the state every period."""
        loop = asyncio.get_running_loop()
        next_state = loop.time()
        while not self._closing.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_state - loop.time()))
            self._wake.clear()
            self._gate.settle()
            if loop.time() < next_state:
                continue
            next_state = loop.time() + self.period_s
            if not self._clients:
                continue
            self._seq += 1
            text = json.dumps(state_payload(self.engine, self._watch, self._seq, now_s=time.monotonic()),
                              separators=(",", ":"), allow_nan=False)
            for client in self._clients:
                client.state = text
                client.ready.set()


def _host_name(host_header: str) -> str:
    """``HOST[:PORT]`` or ``[v6][:PORT]`` from a Host header, without the port."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


@contextlib.asynccontextmanager
async def serving(engine: Engine, sock: socket.socket, **options: Any):
    """A started surface for the length of a ``with`` block."""
    surface = WebSurface(engine, sock, **options)
    await surface.start()
    try:
        yield surface
    finally:
        await surface.close()
