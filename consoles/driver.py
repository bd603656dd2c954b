"""The async OSC desk driver: one generic class that speaks any profile's dialect.

One UDP socket (desks answer to the sender's port; a desk that sends to a
configured port instead is heard on that port, bound as ``local_port``),
identification before anything else, subscription renewal, a full sweep of
the mapped channels on connect and after every reconnect, pushed changes
parsed into typed events with the engineer's moves marked ``external``,
mapped faders and mutes polled every ``poll_period_s`` (a desk that never
pushes hand moves, or a subscription another client took), writes
rate-limited per address and skipped when the desk already holds the
quantized value, and
loss of the desk noticed within the profile's liveness timeout.
Only addresses rendered from the profile's write table are ever sent a value.
Every dialect difference (query form, answer shape, identification layout,
echoes) is a profile setting read here; nothing asks which desk this is.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from . import osc, udpfilter
from .errors import DeskError, DeskIdentityError, DeskUnreachableError, OscDecodeError, ProfileError
from .events import DeskConnected, DeskEvent, DeskLost, FaderMoved, MuteChanged, NameChanged, PacketRejected, Source
from .faderlaw import clamp_to_range
from .pacer import PollRota, QueryPacer
from .profile import Profile

if TYPE_CHECKING:
    from .show import Show

log = logging.getLogger(__name__)

Peer = tuple[str, int]
Listener = Callable[[DeskEvent], None]

#: Backoff between reconnect attempts, seconds; the last value repeats.
RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)
#: An engineer's move that arrives this soon after one of our writes to the same
#: fader (or one round trip to the desk, when that is longer) may have been
#: overwritten by that write at the desk: its event says so, and the bridge may
#: send it back once (within the policy's bounds), so the engineer wins the race.
ENGINEER_WINS_WINDOW_S = 0.25
#: How often a write the desk's answers show was lost is sent again before the
#: desk's level counts as somebody else's (a desk that refuses our writes).
MAX_RESENDS = 3
#: Earlier unconfirmed writes remembered per fader (a desk that is slow to answer).
MAX_UNCONFIRMED_STEPS = 64
#: Faders whose answers to one round of polls all contradict our writes before the desk counts as changed wholesale.
WHOLESALE_CHANGE_FADERS = 2
#: How often the kernel's count of dropped datagrams is read (``read_queued``).
DROPS_READ_PERIOD_S = 1.0
#: Most datagrams one ``read_queued`` call handles (a flood must not stall a control step).
MAX_QUEUED_READ = 256
#: Largest datagram read (OSC over UDP; a desk's biggest answer is a few kB).
MAX_DATAGRAM_BYTES = 65535
#: Linux reports ICMP "port unreachable" on an unconnected UDP socket only with
#: IP_RECVERR (IPV6_RECVERR); it tells "nothing listens at the desk's port" from
#: "the desk says nothing back". Python does not name these options.
_RECVERR = {socket.AF_INET: (socket.IPPROTO_IP, 11), socket.AF_INET6: (socket.IPPROTO_IPV6, 25)}


class DeskOfflineError(DeskError):
    """A write was asked for while the desk is not connected."""


@dataclass(frozen=True)
class DeskIdentity:
    model: str
    firmware: str
    name: str
    replies: dict[str, tuple[osc.OscArg, ...]]


@dataclass
class ChannelView:
    """What the desk holds for one mapped channel, as last reported by the desk."""

    channel: int
    fader: float = math.nan  # wire value
    muted: bool | None = None
    name: str = ""
    fader_db: float = math.nan


@dataclass
class DriverStats:
    sent: int = 0
    writes: int = 0
    skipped_equal: int = 0  # writes not sent because the desk already holds that step
    deferred: int = 0  # writes delayed by the per-address rate limit
    cancelled: int = 0  # delayed writes dropped because the desk's fader moved meanwhile
    received: int = 0
    rejected: int = 0  # garbage, wrong type, foreign source
    own_echoes: int = 0
    resent: int = 0  # writes sent again because the desk still showed the value from before them
    unmutes_checked: int = 0  # pushed unmutes asked back before they were believed
    crossed: int = 0  # external moves one of our writes may have crossed on the network (reported, never written back here)
    reconnects: int = 0
    clamped: int = 0  # fader values the desk reported outside the law's range (clamped, logged)
    refused: int = 0  # ICMP port unreachable: nothing listens at the desk's port
    filtered_in_kernel: bool = False  # a socket filter keeps everything but the desk out (see udpfilter)
    dropped_in_kernel: int = 0  # datagrams that filter (or a full receive buffer) dropped, also in ``rejected``


@dataclass
class _Unconfirmed:
    """Fader writes the desk has not yet shown back, and so the levels it may still hold if they were lost."""

    before_step: int  # what the desk held before the first of them
    sent_step: int  # the latest
    earlier_steps: frozenset[int] = frozenset()  # the ones before it, lost or overtaken
    resends: int = 0


@dataclass
class _PendingWrite:
    value: float
    handle: asyncio.TimerHandle
    resend: bool = False  # a level the desk held before (a hand's, sent back): it opens no crossing window


@dataclass
class _Address:
    kind: str  # fader, mute, name
    channel: int


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, driver: "OscDeskDriver") -> None:
        self.driver = driver

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.driver._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: nothing listens at the desk address; liveness will notice.
        self.driver._on_socket_error(exc)


class OscDeskDriver:
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
    ) -> None:
        self.profile = profile
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
        self.identity: DeskIdentity | None = None
        self.stats = DriverStats()
        self.connected = False
        self._write_addresses = profile.write_addresses(self.channels, allow_trim=allow_trim)
        self._by_address: dict[str, _Address] = {}
        for ch in self.channels:
            self._by_address[profile.fader.address_of(ch)] = _Address("fader", ch)
            self._by_address[profile.mute.address_of(ch)] = _Address("mute", ch)
            self._by_address[profile.name_param.address_of(ch)] = _Address("name", ch)
        self._listeners: list[Listener] = []
        self._waiters: dict[str, list[asyncio.Future[osc.OscMessage]]] = {}
        self._last_sent: dict[str, int] = {}  # address -> step the bridge last sent
        self._unconfirmed: dict[str, _Unconfirmed] = {}
        self._last_write_at: dict[str, float] = {}
        self._bridge_write_at: dict[str, float] = {}  # writes the bridge chose (not resends)
        self._polls: dict[str, float] = {}  # fader (or mute being verified) address -> when its query went out
        self._answered_round: float | None = None  # when the poll now being answered went out
        self._contradictions: dict[float, set[str]] = {}  # poll round -> faders its answers showed changed behind us
        self.rtt_s = 0.0  # the longest recent round trip to the desk (query to answer), decaying
        self._pending: dict[str, _PendingWrite] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._socket: socket.socket | None = None
        self._clamping: dict[str, float] = {}  # address -> the bound its out-of-range reports were clamped to (logged once)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peer: Peer | None = None
        self._last_rx = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self._dropped_at_start = 0
        self._drops_read_at = -math.inf

    @classmethod
    def for_show(cls, show: "Show", **overrides: Any) -> "OscDeskDriver":
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

    # ----- public API --------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every :class:`DeskEvent` (on the event loop, never blocking it)."""
        self._listeners.append(listener)

    @property
    def desk_address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def local_address(self) -> Peer | None:
        """The driver's own socket address (where the desk sends its answers)."""
        if self._transport is None:
            return None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return (host, port)

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
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if sys.platform.startswith("linux"):
                sock.setsockopt(*_RECVERR[family], 1)
            sock.bind((bind_host, self.local_port))
            desk_port = self._peer[1] if self.profile.replies_to_sender else None
            self.stats.filtered_in_kernel = udpfilter.accept_only_from(sock, self._peer[0], desk_port)
            self._dropped_at_start = udpfilter.dropped(sock) or 0
            transport, _ = await self._loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        except OSError as exc:
            sock.close()
            hint = "" if self.profile.replies_to_sender else \
                f" (the port this machine hears the desk on; is it the desk's own receive port {self.port}, or taken by another app?)"
            raise DeskError(f"cannot open a UDP socket on local port {self.local_port}: {exc.strerror}{hint}",
                            self.host, self.port) from None
        self._socket = sock
        self._transport = transport
        try:
            identity = await self._handshake()
        except BaseException:
            await self.close()
            raise
        self._emit(DeskConnected(identity.model, identity.firmware, identity.name, self._now(), reconnect=False))
        self._tasks = [asyncio.create_task(self._keepalive_loop(), name="desk-keepalive")]
        return identity

    async def close(self) -> None:
        """Stop every task and close the socket. Pending rate-limited writes are dropped."""
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
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        self._reconnecting = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self._socket = None
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

    def fader_db(self, channel: int) -> float:
        return self.view[channel].fader_db

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

    def set_fader_db(self, channel: int, db: float, *, always: bool = False) -> float:
        """Move a fader to ``db``; returns the level the desk will hold. Rate-limited, deduplicated.

        ``always`` sends it even when the desk is last seen holding that step
        (sending a hand's level back, which one of our writes may have overwritten).
        """
        law = self.profile.law
        return law.to_db(self.set_fader(channel, law.from_db(db), always=always))

    def set_fader(self, channel: int, value: float, *, always: bool = False) -> float:
        """Move a fader to a wire value; returns the quantized value the desk will hold."""
        if not self.connected:
            raise DeskOfflineError("desk is not connected; the write was not sent", self.host, self.port)
        if not math.isfinite(value):
            raise ValueError(f"fader value for channel {channel} is not finite: {value}")
        address = self.profile.fader.address_of(channel)
        law = self.profile.law
        held = law.quantize(value)
        step = law.step_of(held)
        pending = self._pending.pop(address, None)
        if pending is not None:
            pending.handle.cancel()
        current = self.view[channel].fader if channel in self.view else math.nan
        if pending is None and not always and not math.isnan(current) and law.step_of(current) == step:
            self.stats.skipped_equal += 1
            return held
        now = self._now()
        due = self._last_write_at.get(address, -math.inf) + 1.0 / self.profile.max_writes_per_s
        if now >= due:
            self._write(address, held, resend=always)
        else:
            self.stats.deferred += 1
            assert self._loop is not None
            handle = self._loop.call_later(due - now, self._flush, address)
            self._pending[address] = _PendingWrite(held, handle, resend=always)
        return held

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

    # ----- handshake, sweep, keep-alive ------------------------------------------------

    async def _resolve(self) -> Peer:
        assert self._loop is not None
        try:
            infos = await self._loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise DeskUnreachableError(f"cannot resolve desk host {self.host!r}: {exc.strerror}", self.host, self.port) from None
        return (infos[0][4][0], infos[0][4][1])

    async def _identify(self) -> DeskIdentity:
        ident = self.profile.identify
        replies: dict[str, tuple[osc.OscArg, ...]] = {}
        refused_before = self.stats.refused
        try:
            first = await self.query(ident.queries[0])
        except DeskUnreachableError:
            raise DeskUnreachableError(self._silence_reason(ident.queries[0], self.stats.refused > refused_before),
                                       self.host, self.port) from None
        replies[first.address] = first.args
        fields = ident.fields(first.args)
        needed = ident.needed_fields
        if len(fields) < needed:
            raise DeskIdentityError(
                f"the desk's answer to {first.address} has {len(fields)} fields, a {self.profile.name} answers with {needed}",
                self.host, self.port,
            )
        model = fields[ident.model_arg]
        if not self.profile.is_model(model):
            raise DeskIdentityError(
                f"the desk says it is a {model!r}, not one of the {self.profile.name} family ({', '.join(self.profile.models)})",
                self.host, self.port,
            )
        for extra in ident.queries[1:]:
            try:
                replies[extra] = (await self.query(extra)).args
            except DeskUnreachableError:
                log.info("desk did not answer %s; identification continues without it", extra)

        def field_at(index: int | None) -> str:
            return "" if index is None else fields[index]

        return DeskIdentity(model, field_at(ident.firmware_arg), field_at(ident.name_arg), replies)

    def _silence_reason(self, query: str, refused: bool) -> str:
        """Why nothing answered, saying which side is silent where the socket can tell."""
        p = self.profile
        waited = f"{self.retries} x {self.reply_timeout_s:g} s"
        if p.replies_to_sender:
            where = f"nothing listens on UDP {self.port} at {self.host} (the host refused it); " if refused else ""
            return (f"no {p.name} answered {query} within {waited}: {where}"
                    f"check the desk's IP address, its OSC port ({p.port} for {p.name}) and the network")
        local = self.local_address[1] if self.local_address else self.local_port
        if refused:
            return (f"no {p.name} answered {query} within {waited}: the desk's receive side is silent: nothing listens "
                    f"on UDP {self.port} at {self.host} (the host refused it); set [desk] port to the port the desk's "
                    f"External Control receives on")
        return (f"no {p.name} answered {query} within {waited}: the desk's send side is silent: nothing came back to "
                f"this machine's UDP port {local}, though nothing refused the query sent to {self.host}:{self.port}; "
                f"set the desk's External Control to send to this machine on port {local} ([desk] receive_port), "
                f"and check that it receives on port {self.port} ([desk] port)"
                + ("; the desk feeds back one device at a time: another one may hold it"
                   if p.feedback is not None and p.feedback.clients == 1 else ""))

    async def _handshake(self) -> DeskIdentity:
        identity = await self._identify()
        self._subscribe()
        await self._sweep()
        self.identity = identity
        self.connected = True
        self._last_rx = self._now()
        return identity

    def _subscribe(self) -> None:
        if self.subscribes:
            assert self.profile.subscription is not None
            self._send(self.profile.subscription.address)

    async def _sweep(self) -> None:
        """Read fader, mute and name of every mapped channel, ridden ones first; differences become events."""
        p = self.profile
        order = self.ridden + [ch for ch in self.channels if ch not in self.ridden]
        addresses = [t.address_of(ch) for ch in order for t in (p.fader, p.mute, p.name_param)]
        replies = await asyncio.gather(*(self.query(a) for a in addresses))
        for reply in replies:
            self._apply(reply, "sweep")

    async def _keepalive_loop(self) -> None:
        """Renew the subscription, probe a quiet desk, and declare it lost after the timeout."""
        p = self.profile
        renew_s = p.subscription.renew_s if p.subscription and self.subscribes else math.inf
        last_renew = self._now()
        last_probe = -math.inf
        last_poll = self._now()
        poll_period_s = self.poll_period_s
        tick_s = min(0.25, p.liveness_timeout_s / 6, poll_period_s / 2 if poll_period_s else math.inf)
        woke = self._last_rx  # the handshake's end: a loop busy since then has not been listening either
        while not self._closed:
            await asyncio.sleep(tick_s)
            now = self._now()
            stalled_s = now - woke - 2 * tick_s
            woke = now
            if not self.connected:
                continue
            if stalled_s > 0:  # our own loop stood still (a busy or suspended process): not the desk's silence
                self._last_rx = min(now, self._last_rx + stalled_s)
            self._report_kernel_drops()
            if now - last_renew >= renew_s:
                self._subscribe()
                last_renew = now
            if poll_period_s and now - last_poll >= poll_period_s:
                self._poll_faders(now)
                last_poll = now
            silent_s = now - self._last_rx
            if silent_s > p.liveness_timeout_s / 3:
                self.read_queued()  # a loop that was busy is not a silent desk: read what waits first
                silent_s = now - self._last_rx
            if silent_s > p.liveness_timeout_s:
                self._lost(f"no answer from the desk for {silent_s:.1f} s")
                continue
            if silent_s > p.liveness_timeout_s / 3 and now - last_probe >= p.liveness_timeout_s / 6:
                self._send_paced(p.identify.probe)  # in the query form: a desk may not answer a bare address
                last_probe = now

    def _poll_faders(self, now: float) -> None:
        """Query mapped faders and mutes; the answers are handled like pushes (see :meth:`_poll_answer`).

        Mutes too: a lapsed or refused subscription (the X32 takes four
        clients) must not hide a mute, or the bridge would ride a muted channel.
        A paced desk gets what its query budget allows in one period: the
        ridden channels first, the others in turns over the following periods.
        """
        for address in self._poll_rota.round(self._pacer.per_period(self.poll_period_s)):
            if address in self._poll_scheduled:
                continue  # still waiting for its slot from the round before
            if self._by_address[address].kind == "fader":
                self._polls[address] = now
            self._send_paced(address, poll=True)

    def _poll_addresses(self, channels: list[int]) -> list[str]:
        return [t.address_of(ch) for ch in channels for t in (self.profile.fader, self.profile.mute)]

    def _send_paced(self, address: str, *, poll: bool = False) -> None:
        """Send ``address``'s query now, or at its turn when the desk's queries are paced."""
        if self._loop is None or not self._pacer.paced:
            self._send(self.profile.query_of(address))
            return
        if poll:
            self._poll_scheduled.add(address)
        self._pacer.submit(self._loop, lambda: self._send_scheduled(address))

    def _send_scheduled(self, address: str) -> bool:
        self._poll_scheduled.discard(address)
        self._send(self.profile.query_of(address))
        return True

    def _poll_answer(self, address: str, now: float) -> bool | None:
        """Whether a message answers our poll (True), was pushed (False), or is an answer that is old news (None).

        A poll answer may have left the desk before our latest write arrived.
        Only an answer to our own question can show that a write was lost: a
        pushed level is always somebody else's change (a hand, a scene recall).
        """
        asked_at = self._polls.pop(address, None)
        if asked_at is None:
            return False
        self._answered_round = asked_at
        self._note_round_trip(now - asked_at)
        if self._last_write_at.get(address, -math.inf) >= asked_at:
            return None
        return True

    def _note_round_trip(self, took_s: float) -> None:
        """Keep the longest recent round trip; it decays so one slow answer is forgotten."""
        self.rtt_s = max(took_s, self.rtt_s * 0.9)

    def _lost(self, reason: str) -> None:
        self.connected = False
        for pending in self._pending.values():
            pending.handle.cancel()
        self._pending.clear()
        self._unconfirmed.clear()  # the reconnect sweep reads every fader again
        self._last_sent.clear()
        self._polls.clear()
        self._contradictions.clear()
        self._emit(DeskLost(reason, self._now()))
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self._reconnect_loop(), name="desk-reconnect")

    async def _reconnect_loop(self) -> None:
        attempt = 0
        while not self._closed:
            await asyncio.sleep(RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)])
            attempt += 1
            try:
                identity = await self._handshake()
            except DeskError as exc:
                log.info("reconnect attempt %d failed: %s", attempt, exc)
                continue
            self.stats.reconnects += 1
            self._emit(DeskConnected(identity.model, identity.firmware, identity.name, self._now(), reconnect=True))
            return

    # ----- wire ------------------------------------------------------------------------

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _send(self, address: str, tags: str = "", args: tuple[osc.OscArg, ...] = ()) -> None:
        if self._transport is None or self._peer is None:
            return
        if args and address not in self._write_addresses:
            raise DeskError(f"refusing to write {address}: not in the profile's write table", self.host, self.port)
        self._transport.sendto(osc.encode(address, tags, args), self._peer)
        self.stats.sent += 1

    def _write(self, address: str, held: float, *, resend: bool = False) -> None:
        """Send a fader level. A resend (a lost write again, a hand's level sent back) is no new decision of ours:
        it is not remembered as unconfirmed and opens no window in which a hand's move counts as crossed."""
        self._send(address, self.profile.fader.type, (held,))
        if not self.connected:  # the send itself found the desk's port closed: nothing to remember, all to re-read
            return
        law = self.profile.law
        target = self._by_address.get(address)
        if target is not None and not resend:
            self._remember_unconfirmed(address, self.view[target.channel].fader, law.step_of(held))
        self._last_sent[address] = law.step_of(held)
        if not resend:
            self._bridge_write_at[address] = self._now()
        self._last_write_at[address] = self._now()
        self.stats.writes += 1
        target = self._by_address.get(address)
        if target is not None:
            self._store_fader(self.view[target.channel], held)

    def _remember_unconfirmed(self, address: str, before: float, sent_step: int) -> None:
        prior = self._unconfirmed.get(address)
        if prior is not None:
            earlier = sorted(prior.earlier_steps | {prior.sent_step})[-MAX_UNCONFIRMED_STEPS:]
            self._unconfirmed[address] = _Unconfirmed(prior.before_step, sent_step, frozenset(earlier))
        elif not math.isnan(before):
            self._unconfirmed[address] = _Unconfirmed(self.profile.law.step_of(before), sent_step)

    def _cancel_pending(self, address: str) -> None:
        """A hand (or a scene recall) beats a write still waiting for the rate limit: it was decided before."""
        pending = self._pending.pop(address, None)
        if pending is not None:
            pending.handle.cancel()
            self.stats.cancelled += 1

    def _flush(self, address: str) -> None:
        pending = self._pending.pop(address, None)
        if pending is not None and self.connected:
            self._write(address, pending.value, resend=pending.resend)

    def _on_socket_error(self, exc: Exception) -> None:
        """Count a refusal (nothing listens at the desk's port) and empty the socket's error queue."""
        if isinstance(exc, ConnectionRefusedError):
            self.stats.refused += 1
            if self.connected:  # the desk's port closed under us: its OSC service (or the desk) is restarting
                self._lost("the desk's OSC port refused our datagrams (the desk restarting?): reading it again "
                           "once it answers")
        log.debug("socket error from desk: %s", exc)
        flag = getattr(socket, "MSG_ERRQUEUE", 0)
        while flag and self._socket is not None:  # queued ICMP reports hold receive-buffer memory until read
            try:
                self._socket.recvmsg(1, 1024, flag)
            except OSError:
                break

    def _from_desk(self, peer: Peer) -> bool:
        """A desk that answers the sender answers from its port; one that sends to a set port, from any of its ports."""
        assert self._peer is not None
        if self.profile.replies_to_sender:
            return peer == self._peer
        return ipaddress.ip_address(peer[0]) == ipaddress.ip_address(self._peer[0])

    def read_queued(self) -> int:
        """Handle every datagram already waiting in the socket, now; how many there were.

        The event loop hands datagrams over one per turn, and a control step
        with its writes can run between two of them. Called right before
        deciding on writes, it makes the decision see all the desk sent until
        then: a hand's move, or a network's second copy of a poll answer,
        which read after our write would show the level from before it and
        pass for a hand pulling the fader back.
        """
        self._report_kernel_drops()
        count = 0
        for _ in range(MAX_QUEUED_READ):
            if self._socket is None:
                break
            try:
                data, addr = self._socket.recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # an ICMP report queued by IP_RECVERR surfaces as an error of the next read
                self._on_socket_error(exc)
                continue
            count += 1
            self._on_datagram(data, (addr[0], addr[1]))
        return count

    def _report_kernel_drops(self) -> None:
        """Once a second, count and report the datagrams the socket's filter (or a full buffer) dropped."""
        now = self._now()
        if self._socket is None or now - self._drops_read_at < DROPS_READ_PERIOD_S:
            return
        self._drops_read_at = now
        total = udpfilter.dropped(self._socket)
        if total is None or total <= self._dropped_at_start + self.stats.dropped_in_kernel:
            return
        new = total - self._dropped_at_start - self.stats.dropped_in_kernel
        self.stats.dropped_in_kernel += new
        self.stats.rejected += new
        self._emit(PacketRejected("datagrams from a source that is not the desk (or beyond a full receive buffer), "
                                  "dropped in the kernel", "not the desk", now, count=new))

    def _on_datagram(self, data: bytes, peer: Peer) -> None:
        now = self._now()
        if self._peer is None or not self._from_desk(peer):
            self.stats.rejected += 1
            self._emit(PacketRejected("datagram from a source that is not the desk", f"{peer[0]}:{peer[1]}", now))
            return
        try:
            message = osc.decode(data)
        except OscDecodeError as exc:
            self.stats.rejected += 1
            self._emit(PacketRejected(str(exc), f"{peer[0]}:{peer[1]}", now))
            return
        self.stats.received += 1
        self._last_rx = now
        for fut in self._waiters.pop(message.address, []):
            if not fut.done():
                fut.set_result(message)
        if self.connected:
            answer = self._poll_answer(message.address, now)
            if answer is not None:
                self._apply(message, "external", answer=answer)

    def _apply(self, message: osc.OscMessage, source: Source, *, answer: bool = False) -> None:
        """Update the view from a desk message; report changes as events."""
        target = self._by_address.get(message.address)
        if target is None or not message.args:
            return
        view = self.view[target.channel]
        now = self._now()
        p = self.profile
        if target.kind == "fader":
            number = osc.as_finite_float(p.fader.value_in(message.tags, message.args))  # type: ignore[arg-type]
            if number is None:
                self.stats.rejected += 1
                return
            number, clamped = self._in_range(message.address, number)
            held = p.law.quantize(number)
            step = p.law.step_of(held)
            if source == "external" and self._is_own_or_lost_write(message.address, step, answer):
                return
            changed = math.isnan(view.fader) or p.law.step_of(view.fader) != step
            if changed and source == "external":
                self._last_sent.pop(message.address, None)  # the desk moved on from our last write
                self._cancel_pending(message.address)
            self._store_fader(view, held)
            # A clamped report is never offered back to the desk: the desk cannot have held that level.
            crossed = changed and source == "external" and not clamped and self._crossed(message.address, now)
            if changed:
                self._emit(FaderMoved(target.channel, held, view.fader_db, source, now, crossed=crossed))
            return
        shape = p.mute if target.kind == "mute" else p.name_param
        value = shape.value_in(message.tags, message.args)
        if value is None and len(message.args) == 1:
            value = message.args[0]  # a mute as ,i or ,f: either states it
        if value is None:
            self.stats.rejected += 1
        elif target.kind == "mute":
            number = osc.as_finite_float(value)
            if number is None:
                self.stats.rejected += 1
                return
            muted = number == p.mute.muted_value
            if view.muted and not muted and source == "external" and not answer:
                self._verify_unmute(message.address, now)
            elif view.muted != muted:
                view.muted = muted
                self._emit(MuteChanged(target.channel, muted, source, now))
        elif target.kind == "name" and isinstance(value, str):
            if view.name != value:
                view.name = value
                self._emit(NameChanged(target.channel, value, source, now))

    def _verify_unmute(self, address: str, now: float) -> None:
        """A pushed unmute is believed only once the desk answers our own question with it.

        A muted channel is never ridden; a forged or stray "unmuted" would
        start the bridge writing a channel the engineer muted. The answer to
        the query counts as an answer (see :meth:`_poll_answer`).
        """
        self.stats.unmutes_checked += 1
        self._polls[address] = now
        self._send(self.profile.query_of(address))

    def _in_range(self, address: str, number: float) -> tuple[float, bool]:
        """A fader value the desk cannot hold is clamped into the law's range and logged (once per excursion)."""
        clamped = clamp_to_range(self.profile.law, number)
        if clamped == number:
            self._clamping.pop(address, None)
            return number, False
        self.stats.clamped += 1
        if self._clamping.get(address) != clamped:
            self._clamping[address] = clamped
            low, high = self.profile.law.wire_range
            log.warning("desk %s reported %s = %g, outside %g..%g: taken as %g", self.desk_address, address, number,
                        low, high, clamped)
        return clamped, True

    def _is_own_or_lost_write(self, address: str, step: int, answer: bool) -> bool:
        """Tell our own writes (echoed or polled back) and lost writes from engineer moves.

        The desk showing the step we sent confirms the write. An answer to our
        poll that still shows a level from before our latest write (the one
        before them all, or one of ours it overtook) means the write was lost
        on the way: it is sent again, up to :data:`MAX_RESENDS` times, instead
        of being taken for a hand on the fader. A pushed level is somebody
        else's move, unless it is one of the writes we still remember sending
        (an echo, whether or not the profile expects the desk to echo).
        """
        pending = self._unconfirmed.get(address)
        if pending is None:
            if self._last_sent.get(address) == step:
                self.stats.own_echoes += 1
                return True
            if answer and address in self._last_sent:
                self._contradicted(address)
            return False
        if step == pending.sent_step:
            del self._unconfirmed[address]
            self.stats.own_echoes += 1
            return True
        if not answer:
            # An echo of one of our earlier writes, overtaken by later ones (a round trip longer than the write
            # interval), is ours whatever the profile says of echoes: some firmwares echo sets, some do not.
            if step in pending.earlier_steps:
                self.stats.own_echoes += 1
                return True
            del self._unconfirmed[address]
            return False
        if (step == pending.before_step or step in pending.earlier_steps) and pending.resends < MAX_RESENDS:
            pending.resends += 1
            self.stats.resent += 1
            self._write(address, self.profile.law.value_of_step(pending.sent_step), resend=True)
            return True
        del self._unconfirmed[address]
        if answer:
            self._contradicted(address)
        return False

    def _contradicted(self, address: str) -> None:
        """An answer to our poll shows a level none of our writes left there (nor the level before them).

        One such fader is a hand. Several in one round of polls mean the
        desk's faders changed wholesale behind our back: a desk that restarted
        (with no push: its subscriptions are gone) faster than the liveness
        timeout, or a scene recall nobody pushed. Either way the picture the
        bridge writes from is wrong, so the desk counts as lost and is read
        again, whole, before the next write.
        """
        round_s = self._answered_round
        if round_s is None:
            return
        contradicted = self._contradictions.setdefault(round_s, set())
        contradicted.add(address)
        for old in [t for t in self._contradictions if t < round_s]:
            del self._contradictions[old]
        if len(contradicted) >= WHOLESALE_CHANGE_FADERS and self.connected:
            self._lost(f"{len(contradicted)} faders answered our poll with levels none of our writes left there "
                       f"(a desk restart or an unannounced scene recall): reading the desk again")

    def _crossed(self, address: str, now: float) -> bool:
        """Whether our last write to a fader went out so shortly before this move that it may have overwritten it.

        The driver never writes the move back itself: the event says so, and
        the bridge's policy decides whether sending it back is within bounds.
        """
        crossed = now - self._bridge_write_at.pop(address, -math.inf) < max(ENGINEER_WINS_WINDOW_S, self.rtt_s)
        self.stats.crossed += crossed
        return crossed

    def _store_fader(self, view: ChannelView, held: float) -> None:
        view.fader = held
        view.fader_db = self.profile.law.to_db(held)

    def _emit(self, event: DeskEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the desk link
                log.exception("desk event listener failed on %r", event)
