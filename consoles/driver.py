"""The async OSC desk driver: one generic class that speaks any profile's dialect.

One UDP socket (desks answer to the sender's port; a desk that sends to a
configured port instead is heard on that port, bound as ``local_port``) and
one object that keeps the desk's state. Its parts each hold one idea and
share that state (:mod:`.driver_core`): the connection's lifecycle
(:mod:`.driver_connection`: identify, subscribe, sweep, poll, keep alive,
reconnect), the reading of the desk's reports into the view
(:mod:`.driver_reports`) and the fader writes (:mod:`.driver_writes`). Which
fader reports are our own writes and which show a write lost is the pure
:class:`~.writes.WriteLedger`'s call; the socket and its one reader live in
:mod:`.link`. This module is the driver's public face: building it,
connecting, closing, reading and querying the desk.

Writes are dated on the driver's clock (the engine's, when it runs on a
virtual one); the link's own timing (liveness, poll round trips,
reconnects) stays on the event loop's clock, because it is about the wire.
Every dialect difference (query form, answer shape, identification layout,
echoes) is a profile setting read here; nothing asks which desk this is.
"""
from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
from typing import TYPE_CHECKING, Any, Callable

from . import osc
from .driver_connection import DROPS_READ_PERIOD_S, RECONNECT_BACKOFF_S, REFUSALS_FOR_LOST, DeskConnection
from .driver_core import (ChannelView, DeskIdentity, DeskOfflineError, DriverStats, Listener, ParamAddress, PendingWrite,
                          log)
from .driver_reports import ENGINEER_WINS_WINDOW_S, DeskReports
from .driver_writes import RESEND_GRACE_S, FaderWrites
from .errors import DeskError, DeskUnreachableError, ProfileError
from .events import DeskConnected
from .faderlaw import clamp_to_range
from .link import DeskSocket, Peer
from .pacer import PollRota, QueryPacer
from .profile import Profile
from .writes import WriteLedger

if TYPE_CHECKING:
    from .show import ShowDesk

__all__ = [
    "CLOSE_DRAIN_S", "DROPS_READ_PERIOD_S", "ENGINEER_WINS_WINDOW_S", "RECONNECT_BACKOFF_S", "REFUSALS_FOR_LOST",
    "RESEND_GRACE_S", "ChannelView", "DeskIdentity", "DeskOfflineError", "DriverStats", "Listener", "OscDeskDriver",
]

#: How long :meth:`OscDeskDriver.close` waits, at most, for the writes the desk's cap still holds back.
CLOSE_DRAIN_S = 0.5
#: Shortest wait between two looks at the writes still held back, while draining.
_DRAIN_TICK_S = 0.001


class OscDeskDriver(DeskConnection, DeskReports, FaderWrites):
    """Talk to one desk described by ``profile`` at ``host:port`` about ``channels``."""

    def __init__(
        self,
        profile: Profile,
        host: str,
        port: int | None = None,
        channels: list[int] | None = None,
        *,
        allow_trim: bool = False,
        local_port: int = 0,
        reply_timeout_s: float = 0.5,
        retries: int = 3,
        poll_period_s: float | None = None,
        subscribe: bool | None = None,
        ridden: list[int] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.profile = profile
        self._clock = clock
        self.host = host
        self.port = profile.port if port is None else port
        self.channels = list(channels) if channels else list(range(1, profile.channels + 1))
        for ch in self.channels:
            profile.check_channel(ch)
        self.local_port = local_port
        #: Every mapped fader is queried this often (0: never); the profile's period unless overridden.
        self.poll_period_s = profile.poll_period_s if poll_period_s is None else poll_period_s
        if self.poll_period_s < 0 or (not profile.pushes_hand_moves and self.poll_period_s <= 0):
            raise ProfileError(f"{profile.name} does not push hand moves: the poll period must be > 0, "
                               f"not {self.poll_period_s:g} s")
        #: Whether the driver subscribes (False: poll only, leaving a one-subscriber desk to another app).
        self.subscribes = profile.subscribes if subscribe is None else subscribe and profile.subscription is not None
        if not self.subscribes and profile.subscription is not None and self.poll_period_s <= 0:
            raise ProfileError(f"{profile.name} without a subscription is followed by polling alone: the poll period "
                               f"must be > 0, not {self.poll_period_s:g} s")
        self.reply_timeout_s = reply_timeout_s
        self.retries = retries
        self.view: dict[int, ChannelView] = {ch: ChannelView(ch) for ch in self.channels}
        #: Channels the bridge rides: swept and polled before the others when queries are paced.
        self.ridden = [ch for ch in (ridden if ridden is not None else self.channels) if ch in self.view]
        others = [ch for ch in self.channels if ch not in self.ridden]
        self._pacer = QueryPacer(profile.max_queries_per_s)
        self._poll_rota = PollRota(self._poll_addresses(self.ridden), self._poll_addresses(others))
        self._poll_scheduled: set[str] = set()  # paced poll queries waiting for their slot
        self._sweep_waiting: set[str] | None = None  # while a sweep runs: the addresses it still waits to hear
        self.identity: DeskIdentity | None = None
        self.stats = DriverStats()
        self.connected = False
        self._write_addresses = profile.write_addresses(self.channels, allow_trim=allow_trim)
        self._by_address: dict[str, ParamAddress] = {}
        for ch in self.channels:
            self._by_address[profile.fader.address_of(ch)] = ParamAddress("fader", ch)
            self._by_address[profile.mute.address_of(ch)] = ParamAddress("mute", ch)
            self._by_address[profile.name_param.address_of(ch)] = ParamAddress("name", ch)
        self._listeners: list[Listener] = []
        self._failed_listeners: set[int] = set()
        self._waiters: dict[str, list[asyncio.Future[osc.OscMessage]]] = {}
        self.ledger = WriteLedger(stats=self.stats)
        self._last_write_at: dict[str, float] = {}  # on the driver's clock: the desk's hard cap
        self._wire_write_at: dict[str, float] = {}  # on the loop's clock: is a poll answer older than our write
        self._polls: dict[str, float] = {}  # fader (or mute being verified) address -> when its query went out
        self._answered_round: float | None = None  # when the poll now being answered went out
        self.rtt_s = 0.0  # the longest recent round trip to the desk (query to answer), decaying
        self._pending: dict[str, PendingWrite] = {}
        self._link: DeskSocket | None = None
        self._clamping: dict[str, float] = {}  # address -> the bound its out-of-range reports were clamped to (logged once)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peer: Peer | None = None
        self._last_rx = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self._dropped_at_start = 0
        self._refusals_in_a_row = 0  # ICMP refusals since the desk last said anything
        self._drops_read_at = -math.inf

    @classmethod
    def for_show(cls, show: "ShowDesk", **overrides: Any) -> "OscDeskDriver":
        """The driver a show file asks for: its profile, desk address, mapped channels, trim permission,
        the port a desk that does not answer the sender sends to, and the poll period.

        ``overrides`` are constructor keywords that win (``reply_timeout_s``, ``channels``, ``profile`` ...).
        """
        profile = overrides.pop("profile", show.profile)
        desk = show.desk
        local_port = desk.receive_port
        if local_port is None:
            local_port = 0 if profile.replies_to_sender else (profile.receive_port or 0)
        kwargs: dict[str, Any] = {
            "host": desk.host,
            "port": desk.port,
            "channels": show.desk_channels,
            "allow_trim": show.allow_trim,
            "local_port": local_port,
            "poll_period_s": desk.poll_period_s,
            "ridden": [c.desk_channel for c in show.channels if c.mode == "auto"],
        }
        kwargs.update(overrides)
        return cls(profile, **kwargs)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every :class:`DeskEvent` (on the event loop, never blocking it)."""
        self._listeners.append(listener)

    @property
    def desk_address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def local_address(self) -> Peer | None:
        """The driver's own socket address (where the desk sends its answers)."""
        return None if self._link is None else self._link.address

    def use_clock(self, clock: Callable[[], float] | None) -> None:
        """Date writes on ``clock`` (the engine's, on a virtual clock); None: the event loop's time."""
        self._clock = clock

    async def connect(self) -> DeskIdentity:
        """Open the socket, identify the desk, subscribe and sweep; raise a clear error otherwise."""
        self._loop = asyncio.get_running_loop()
        self._peer = await self._resolve()
        desk_ip = ipaddress.ip_address(self._peer[0])
        family = socket.AF_INET6 if desk_ip.version == 6 else socket.AF_INET
        if desk_ip.is_loopback:  # a simulator on this machine: stay off the network
            bind_host = str(desk_ip)
        else:
            bind_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
        desk_port = self._peer[1] if self.profile.replies_to_sender else None
        try:
            self._link, self.stats.filtered_in_kernel = DeskSocket.open(
                self._loop, (bind_host, self.local_port), family, self._peer[0], desk_port,
                self._on_datagram, self._on_socket_error)
        except OSError as exc:
            hint = "" if self.profile.replies_to_sender else \
                f" (the port this machine hears the desk on; is it the desk's own receive port {self.port}, or taken by another app?)"
            raise DeskError(f"cannot open a UDP socket on local port {self.local_port}: {exc.strerror}{hint}",
                            self.host, self.port) from None
        self._dropped_at_start = self._link.dropped() or 0
        try:
            identity = await self._handshake()
        except BaseException:
            await self.close()
            raise
        self._emit(DeskConnected(identity.model, identity.firmware, identity.name, self._now(), reconnect=False))
        self._tasks = [asyncio.create_task(self._keepalive_loop(), name="desk-keepalive")]
        return identity

    async def close(self, drain_s: float = CLOSE_DRAIN_S) -> None:
        """Let the writes held back by the desk's cap go out (for up to ``drain_s``), then stop every task and
        close the socket. What is still waiting then is dropped."""
        if self.connected and not self._closed:
            await self.drain(drain_s)
        self._closed = True
        self.connected = False
        for pending in self._pending.values():
            pending.handle.cancel()
        self._pending.clear()
        tasks = self._tasks + ([self._reconnecting] if self._reconnecting else [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # the task's own failure, seen only now: counted and logged, the close goes on
                self.stats.shutdown_failures += 1
                log.exception("desk task %s failed before the driver closed", task.get_name())
        self._tasks = []
        self._reconnecting = None
        self._pacer.close()
        if self._link is not None:
            self._link.close()
            self._link = None
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        self._waiters.clear()

    async def __aenter__(self) -> "OscDeskDriver":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def read_fader(self, channel: int) -> float:
        """Ask the desk for a fader now; the wire value it holds (quantized, inside the law's range)."""
        fader = self.profile.fader
        reply = await self.query(fader.address_of(channel))
        number = osc.as_finite_float(fader.value_in(reply.tags, reply.args))  # type: ignore[arg-type]
        if number is None:
            raise DeskError(f"the desk answered {reply.address} with ,{reply.tags}, not a fader value", self.host, self.port)
        return self.profile.law.quantize(clamp_to_range(self.profile.law, number))

    async def read_fader_db(self, channel: int) -> float:
        """Ask the desk for a fader now, in dB (``-inf`` when off)."""
        return self.profile.law.to_db(await self.read_fader(channel))

    async def drain(self, timeout_s: float = CLOSE_DRAIN_S) -> bool:
        """Wait until no write is held back by the desk's cap any more (or ``timeout_s`` passed, or the desk is
        gone); whether none is left. The desk has them in flight then, not necessarily handled: see :meth:`sync`."""
        assert self._loop is not None
        deadline = self._loop.time() + timeout_s
        while self._pending and self.connected:
            now = self._loop.time()
            if now >= deadline:
                break
            due = min(pending.handle.when() for pending in self._pending.values())
            await asyncio.sleep(min(max(due - now, _DRAIN_TICK_S), deadline - now))
        return not self._pending

    async def sync(self) -> None:
        """Wait until the desk has handled everything sent so far, and we have read all it sent before.

        One round trip of the liveness probe: datagrams on one path arrive in
        order, so its answer comes after every earlier write and push. Runs on a
        virtual clock use it to keep the desk in step with the audio.
        """
        await self.query(self.profile.identify.probe)

    async def query(self, address: str, timeout_s: float | None = None) -> osc.OscMessage:
        """Ask the desk for one node's value (in the profile's query form) and wait for the matching reply (retried)."""
        timeout_s = self.reply_timeout_s if timeout_s is None else timeout_s
        assert self._loop is not None
        for _ in range(self.retries):
            await self._pacer.turn(self._loop)  # a paced desk: the answer is waited for from when the query goes out
            fut: asyncio.Future[osc.OscMessage] = self._loop.create_future()
            self._waiters.setdefault(address, []).append(fut)
            self._send(self.profile.query_of(address))
            try:
                return await asyncio.wait_for(fut, timeout_s)
            except asyncio.TimeoutError:
                continue
            finally:
                waiters = self._waiters.get(address, [])
                if fut in waiters:
                    waiters.remove(fut)
        raise DeskUnreachableError(f"no answer to {address} after {self.retries} tries", self.host, self.port)
