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

Whoever reaches the port is a stranger until the token says otherwise. A
page holding the token offers it in the WebSocket handshake (a subprotocol)
and takes one of its own slots, which strangers cannot fill; sockets without
it share fewer slots and are closed when they stop answering pings. Off
loopback the token is always required, and a request must name the bridge
by an address or name it was started with (no DNS rebinding). Refusals are
counted, and logged at most once a second per peer (``bridge.refusals``).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from aiohttp import WSMsgType, hdrs, web

from ..engine import Engine
from .commands import MAX_COMMAND_BYTES, PAYLOAD_VERSION, CommandGate
from .refusals import RefusalLog, printable, quoted
from .webaddress import DEFAULT_HOST, DEFAULT_PORT, HostCheck, WebAddress, WebError, listen, parse_web_address, url_of
from .webstate import LinkWatch, state_payload

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "PAGES", "STATIC_DIR", "WebAddress", "WebError", "WebSurface", "listen",
           "parse_web_address", "serving", "url_of"]

log = logging.getLogger(__name__)

#: The live state goes out at most this often (10 Hz).
STATE_PERIOD_S = 0.1
#: Browsers holding the token at once (every browser, when no token is set); a further one is turned away.
MAX_CLIENTS = 16
#: Sockets without the token at once, when one is set (watchers, scripts): slots of their own, never a token holder's.
MAX_GUESTS = 8
#: Pings: a socket that sends nothing for this long is pinged, and closed unless it answers within half of it.
HEARTBEAT_S = 10.0
GUEST_HEARTBEAT_S = 4.0  # without the token: an idle socket is closed within 6 s
#: The WebSocket subprotocol of the page; ``ailive-token.<the token in hex>`` beside it hands over the token.
PROTOCOL = "ailive"
TOKEN_PROTOCOL = "ailive-token."
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


def offered_token(request: web.Request) -> str | None:
    """The token a client offers among its WebSocket subprotocols (``ailive-token.<hex>``); None when it offers none."""
    for item in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(","):
        item = item.strip()
        if item.startswith(TOKEN_PROTOCOL):
            try:
                return bytes.fromhex(item[len(TOKEN_PROTOCOL):]).decode("utf-8")
            except ValueError:
                return ""
    return None


@dataclass
class WebStats:
    clients: int = 0
    states_sent: int = 0
    commands_queued: int = 0
    commands_refused: int = 0
    turned_away: int = 0  # connections refused: foreign origin or host, or too many clients
    guests: int = 0  # sockets without the token now


@dataclass(eq=False)
class _Client:
    """One browser: the newest state not yet sent, and its command answers, in order."""

    ws: web.WebSocketResponse
    peer: str
    member: bool  # holds the token (or none is set): a slot of its own
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
                 max_clients: int = MAX_CLIENTS, max_guests: int = MAX_GUESTS, hosts: Iterable[str] = (),
                 guest_heartbeat_s: float = GUEST_HEARTBEAT_S) -> None:
        self.engine = engine
        self.sock = sock
        self.period_s = period_s
        self.max_clients = max_clients
        self.max_guests = max_guests
        self.guest_heartbeat_s = guest_heartbeat_s
        self.stats = WebStats()
        host, port = sock.getsockname()[:2]
        self.address = WebAddress(host, port)
        # Off loopback a command always needs a token: without one from the show, this run makes its own,
        # handed over in the printed URL's fragment (which never reaches a server or its logs).
        self.made_token = not token and not self.address.loopback
        token = secrets.token_urlsafe(16) if self.made_token else token
        self.url = url_of(sock, f"#token={token}" if self.made_token else "")
        self._hosts = HostCheck.of(self.address, hosts)
        self._refusals = RefusalLog(log, "connections")
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
        where = "this machine only" if self.address.loopback else "the network"
        log.info("web: serving %s (%s)%s", url_of(self.sock), where, ", token required" if self.token_required else "")
        if self.made_token:
            log.warning("web: the surface listens on %s and no command token is set: commands need this run's token, "
                        "in the URL printed at start (set [mqtt] token in the show file or AILIVE_WEB_TOKEN to choose one)",
                        self.address)

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
        self._refusals.flush(final=True)
        self.sock.close()

    # ----- HTTP ---------------------------------------------------------------------------

    def _foreign(self, request: web.Request) -> str:
        """Why a request comes from somewhere it must not (another site's page, a rebound DNS name), or ''."""
        local = request.transport.get_extra_info("sockname") if request.transport is not None else None
        if not self._hosts.allows(request.host or "", str(local[0]) if local else None):
            where = "this machine's loopback name" if self.address.loopback else "a name or address of this bridge"
            return f"host {quoted(request.host)} is not {where}"
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            return f"origin {quoted(origin)} is not this page"
        return ""

    def _turn_away(self, request: web.Request, code: str, why: str) -> web.HTTPForbidden:
        self.stats.turned_away += 1
        peer = str(request.remote)
        self._refusals.refused(f"web {peer}", code, f"web: turned away {peer} [{code}]: {printable(why, 300)}")
        return web.HTTPForbidden(text=f"ailive web surface: {why}\n")

    async def _page(self, request: web.Request) -> web.Response:
        why = self._foreign(request)
        if why:
            raise self._turn_away(request, "foreign", why)
        body, kind = self._files[request.path]
        return web.Response(body=body, headers={**_HEADERS, "Content-Type": kind})

    # ----- the WebSocket ------------------------------------------------------------------

    def _member(self, request: web.Request) -> bool:
        """Whether a socket holds the token (offered in its handshake), or no token is set."""
        if not self.token_required:
            return True
        offered = offered_token(request)
        if offered is None:
            return False
        if self._gate.authorised(offered):
            return True
        peer = str(request.remote)
        self._refusals.refused(f"web {peer}", "unauthorised",
                               f"web: {peer} offered a wrong token; let in without it (watching only)")
        return False

    def _admission(self, request: web.Request, member: bool) -> tuple[str, str]:
        """``(code, why)`` a WebSocket is turned away, or ``("", "")``."""
        why = self._foreign(request)
        if why:
            return "foreign", why
        if self._closing.is_set():
            return "stopping", "the bridge is stopping"
        offered = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL)
        if offered is not None and PROTOCOL not in (p.strip() for p in offered.split(",")):
            return "protocol", f"subprotocols {quoted(offered)} do not include {PROTOCOL!r}"
        members = sum(1 for c in self._clients if c.member)
        if member and members >= self.max_clients:
            return "full", f"{self.max_clients} clients are connected already"
        if not member and len(self._clients) - members >= self.max_guests:
            return "full", (f"{self.max_guests} clients without the command token are connected already "
                            "(a page opened with the token still gets in)")
        return "", ""

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        member = self._member(request)
        code, why = self._admission(request, member)
        if code:
            raise self._turn_away(request, code, why)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S if member else self.guest_heartbeat_s, protocols=(PROTOCOL,),
                                   max_msg_size=4 * MAX_COMMAND_BYTES)
        client = _Client(ws, str(request.remote), member)
        self._count(client, add=True)  # before the handshake's await: a burst of handshakes cannot overfill the slots
        sender: asyncio.Task[None] | None = None
        try:
            await ws.prepare(request)
            hello = {"type": "hello", "v": PAYLOAD_VERSION, "show": self.engine.show.name,
                     "token_required": self.token_required, "authenticated": member, "period_s": self.period_s}
            await ws.send_str(json.dumps(hello))
            sender = asyncio.create_task(self._send(client))
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._gate.take(None, message.data, client.answer, source=client.peer)
                    self._wake.set()
        finally:
            self._count(client, add=False)
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        return ws

    def _count(self, client: _Client, *, add: bool) -> None:
        if add:
            self._clients.add(client)
        else:
            self._clients.discard(client)
        self.stats.clients = len(self._clients)
        self.stats.guests = sum(1 for c in self._clients if not c.member)

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
            self._refusals.flush()
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


@contextlib.asynccontextmanager
async def serving(engine: Engine, sock: socket.socket, **options: Any):
    """A started surface for the length of a ``with`` block."""
    surface = WebSurface(engine, sock, **options)
    await surface.start()
    try:
        yield surface
    finally:
        await surface.close()
