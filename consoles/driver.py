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
Which fader reports are our own writes and which show a write lost is
the pure :class:`~.writes.WriteLedger`'s call; the socket and its one
reader live in :mod:`.link`.

Writes are dated on the driver's clock (the engine's, when it runs on a
virtual one); the link's own timing (liveness, poll round trips,
reconnects) stays on the event loop's clock, because it is about the wire.
The driver paces writes only by the desk's hard cap (the profile's
``max_writes_per_s``): the policy paces its decisions itself.

Over 400 lines: one class that keeps the desk's state, the connection's
lifecycle and the parsing of the desk's reports together, because each
of them reads and changes the same view; the pure parts live apart.
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import osc
from .errors import DeskError, DeskIdentityError, DeskUnreachableError, OscDecodeError, ProfileError
from .events import DeskConnected, DeskEvent, DeskLost, FaderMoved, MuteChanged, NameChanged, PacketRejected, Source
from .faderlaw import clamp_to_range
from .link import DeskSocket, Peer
from .pacer import PollRota, QueryPacer
from .profile import Profile
from .writes import LedgerStats, Verdict, WriteLedger

if TYPE_CHECKING:
    from .show import Show

log = logging.getLogger(__name__)

Listener = Callable[[DeskEvent], None]

#: Backoff between reconnect attempts, seconds; the last value repeats.
RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)
#: An engineer's move that arrives this soon after one of our writes to the same
#: fader (or one round trip to the desk, when that is longer) may have been
#: overwritten by that write at the desk: its event says so, and the bridge may
#: send it back once (within the policy's bounds), so the engineer wins the race.
ENGINEER_WINS_WINDOW_S = 0.25
#: Refusals of the desk's port (ICMP port unreachable) in a row, with nothing from the desk between, that mean
#: the desk is restarting: one alone may be forged or stray, and the probe it triggers settles it.
REFUSALS_FOR_LOST = 2
#: Least wait before a write a poll's answer shows lost goes again (longer: the recent round trip), seconds.
RESEND_GRACE_S = 0.02
#: How often the kernel's count of dropped datagrams is read (``read_queued``).
DROPS_READ_PERIOD_S = 1.0
#: Two writes to one fader this close on the driver's clock count as one slot of the desk's cap (float noise).
_CAP_SLACK_S = 1e-6


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
    """One mapped channel: what the desk last reported, and the bridge's best belief of what it holds now.

    ``fader``/``fader_db`` are the belief: the desk's report, or our latest
    write while the desk has not shown it back (``pending_db``, NaN when
    none). ``reported_fader``/``reported_db`` are only ever the desk's word.
    """

    channel: int
    fader: float = math.nan  # wire value, believed
    muted: bool | None = None
    name: str = ""
    fader_db: float = math.nan  # believed
    reported_fader: float = math.nan  # wire value, as the desk last reported it
    reported_db: float = math.nan
    pending_db: float = math.nan  # our write the desk has not confirmed yet

    @property
    def confirmed(self) -> bool:
        """Whether the believed fader level is the desk's own word (no write of ours awaits confirmation)."""
        return math.isnan(self.pending_db)


@dataclass
class DriverStats(LedgerStats):
    """The link's counts; the write ledger's (own echoes, resends, crossings) are kept in the same object."""

    sent: int = 0
    writes: int = 0
    skipped_equal: int = 0  # writes not sent because the desk already holds that step
    deferred: int = 0  # writes delayed by the per-address rate limit
    cancelled: int = 0  # delayed writes dropped because the desk's fader moved meanwhile
    received: int = 0
    rejected: int = 0  # garbage, wrong type, foreign source
    unmutes_checked: int = 0  # pushed unmutes asked back before they were believed
    reconnects: int = 0
    clamped: int = 0  # fader values the desk reported outside the law's range (clamped, logged)
    refused: int = 0  # ICMP port unreachable: nothing listens at the desk's port
    filtered_in_kernel: bool = False  # a socket filter keeps everything but the desk out (see udpfilter)
    dropped_in_kernel: int = 0  # datagrams that filter (or a full receive buffer) dropped, also in ``rejected``
    listener_failures: int = 0  # events a listener raised on (logged once per listener)
    shutdown_failures: int = 0  # tasks that ended with an error while the driver closed (logged)


@dataclass
class _PendingWrite:
    value: float
    handle: asyncio.TimerHandle
    resend: bool = False  # a level the desk held before (a hand's, sent back): it opens no crossing window


@dataclass
class _Address:
    kind: str  # fader, mute, name
    channel: int


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
        self._failed_listeners: set[int] = set()
        self._waiters: dict[str, list[asyncio.Future[osc.OscMessage]]] = {}
        self.ledger = WriteLedger(stats=self.stats)
        self._last_write_at: dict[str, float] = {}  # on the driver's clock: the desk's hard cap
        self._wire_write_at: dict[str, float] = {}  # on the loop's clock: is a poll answer older than our write
        self._polls: dict[str, float] = {}  # fader (or mute being verified) address -> when its query went out
        self._answered_round: float | None = None  # when the poll now being answered went out
        self.rtt_s = 0.0  # the longest recent round trip to the desk (query to answer), decaying
        self._pending: dict[str, _PendingWrite] = {}
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

    def set_fader_db(self, channel: int, db: float, *, always: bool = False) -> float:
        """Move a fader to ``db``; returns the level the desk will hold. Rate-limited, deduplicated.

        ``always`` sends it even when the desk is last seen holding that step
        (sending a hand's level back, which one of our writes may have overwritten).
        """
        law = self.profile.law
        return law.to_db(self.set_fader(channel, law.from_db(db), always=always))

    def set_fader(self, channel: int, value: float, *, always: bool = False) -> float:
        """Move a fader to a wire value; returns the quantized value the desk will hold.

        Held back only by the desk's hard cap (the profile's ``max_writes_per_s``
        per fader, on the driver's clock): a write due later waits, and a newer
        decision replaces it there, so nothing older is ever sent after it.
        """
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
        now = self._write_now()
        due = self._last_write_at.get(address, -math.inf) + 1.0 / self.profile.max_writes_per_s - _CAP_SLACK_S
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
        queries = [asyncio.ensure_future(self.query(a)) for a in addresses]
        try:
            replies = await asyncio.gather(*queries)
        except BaseException:
            for query in queries:  # the first that failed ends the sweep: the others stop asking too
                query.cancel()
            await asyncio.gather(*queries, return_exceptions=True)
            raise
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
        if self._wire_write_at.get(address, -math.inf) >= asked_at:
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
        self.ledger.forget()  # the reconnect sweep reads every fader again
        self._polls.clear()
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
        """The loop's time: the wire's own timing (liveness, round trips, poll answers)."""
        return self._loop.time() if self._loop is not None else 0.0

    def _write_now(self) -> float:
        """The driver's clock: when writes are decided, and when a hand's move crossed one."""
        return self._clock() if self._clock is not None else self._now()

    def _send(self, address: str, tags: str = "", args: tuple[osc.OscArg, ...] = ()) -> None:
        if self._link is None or self._peer is None:
            return
        if args and address not in self._write_addresses:
            raise DeskError(f"refusing to write {address}: not in the profile's write table", self.host, self.port)
        self._link.send(osc.encode(address, tags, args), self._peer)
        self.stats.sent += 1

    def _write(self, address: str, held: float, *, resend: bool = False) -> None:
        """Send a fader level. A resend (a lost write again, a hand's level sent back) is no new decision of ours:
        it is not remembered as unconfirmed and opens no window in which a hand's move counts as crossed."""
        self._send(address, self.profile.fader.type, (held,))
        if not self.connected:  # the send itself found the desk's port closed: nothing to remember, all to re-read
            return
        law = self.profile.law
        now = self._write_now()
        target = self._by_address.get(address)
        view = self.view[target.channel] if target is not None else None
        before = None if view is None or math.isnan(view.fader) else law.step_of(view.fader)
        self.ledger.sent(address, law.step_of(held), before, now, resend=resend or view is None)
        self._last_write_at[address] = now
        self._wire_write_at[address] = self._now()
        self.stats.writes += 1
        if view is not None:
            view.fader, view.fader_db = held, law.to_db(held)
            view.pending_db = view.fader_db

    def stand_down(self, channels: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """Send nothing more that was decided before now for these faders (all when None).

        Writes still waiting for the desk's cap are dropped, and writes the
        desk has not shown back are no longer resent if a poll finds them lost:
        the bridge disarmed, was killed, stopped riding a channel, or the
        channel was muted, so the level the desk holds is the engineer's.
        Returns the writes it dropped, as (channel, dB), for the journal.
        """
        dropped = []
        for ch in self.channels if channels is None else channels:
            address = self.profile.fader.address_of(ch)
            pending = self._pending.get(address)
            if pending is not None:
                dropped.append((ch, self.profile.law.to_db(pending.value)))
            self._cancel_pending(address)
            self.ledger.stand_down(address)
        return dropped

    def _resend_later(self, address: str, value: float) -> None:
        """Send a write our poll's answer shows lost again, once the answer's round trip has passed.

        A change the desk pushed while our poll was on its way (a scene recall
        back to the level from before our write) reads just like that answer,
        and the real answer follows it within one round trip: that second
        report cancels the resend (see :meth:`_cancel_pending`), so the recall
        is not fought. A newer decision already waiting for the cap goes instead.
        """
        if address in self._pending:
            return
        assert self._loop is not None
        handle = self._loop.call_later(max(RESEND_GRACE_S, self.rtt_s), self._flush, address)
        self._pending[address] = _PendingWrite(value, handle, resend=True)

    def _cancel_pending(self, address: str) -> None:
        """A hand (or a scene recall) beats a write still waiting for the rate limit: it was decided before."""
        pending = self._pending.pop(address, None)
        if pending is not None:
            pending.handle.cancel()
            self.stats.cancelled += 1

    def _flush(self, address: str) -> None:
        """Send a write that waited for the desk's cap, unless what the desk said meanwhile cancels it.

        A hand's move can sit unread in the socket when the timer fires;
        reading first lets it cancel the write, which was decided before it.
        """
        if address not in self._pending:
            return
        self.read_queued()
        pending = self._pending.pop(address, None)
        if pending is not None and self.connected:
            self._write(address, pending.value, resend=pending.resend)

    def _on_socket_error(self, exc: Exception) -> None:
        """Count a refusal (nothing listens at the desk's port) and empty the socket's error queue."""
        if isinstance(exc, ConnectionRefusedError):
            self.stats.refused += 1
            self._refusals_in_a_row += 1
            if self.connected and self._refusals_in_a_row >= REFUSALS_FOR_LOST:
                # The desk's port closed under us: its OSC service (or the desk) is restarting.
                self._lost("the desk's OSC port refused our datagrams (the desk restarting?): reading it again "
                           "once it answers")
            elif self.connected and self.profile.identify.probe:
                # One refusal may be forged (an ICMP error is easy to fake): ask the desk; an answer clears it.
                self._send_paced(self.profile.identify.probe)
        log.debug("socket error from desk: %s", exc)
        if self._link is not None:
            self._link.clear_errors()

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
        return 0 if self._link is None else self._link.drain()

    def _report_kernel_drops(self) -> None:
        """Once a second, count and report the datagrams the socket's filter (or a full buffer) dropped."""
        now = self._now()
        if self._link is None or now - self._drops_read_at < DROPS_READ_PERIOD_S:
            return
        self._drops_read_at = now
        total = self._link.dropped()
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
        self._refusals_in_a_row = 0
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
            view.reported_fader, view.reported_db = held, p.law.to_db(held)
            if source == "external" and self._is_own_or_lost_write(message.address, view, held, answer):
                return
            changed = math.isnan(view.fader) or p.law.step_of(view.fader) != p.law.step_of(held)
            if changed and source == "external":
                self.ledger.moved_on(message.address)  # the desk moved on from our last write
                self._cancel_pending(message.address)
            view.fader, view.fader_db, view.pending_db = held, view.reported_db, math.nan
            # A clamped report is never offered back to the desk: the desk cannot have held that level.
            crossed = (changed and source == "external" and not clamped
                       and self.ledger.crossed(message.address, self._write_now(), max(ENGINEER_WINS_WINDOW_S, self.rtt_s)))
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
                if muted:  # a write still waiting, or a lost one, must not land on a muted channel
                    self.stand_down([target.channel])
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

    def _is_own_or_lost_write(self, address: str, view: ChannelView, held: float, answer: bool) -> bool:
        """Whether a reported level is ours (echoed, polled back, or a lost write now sent again); see
        :meth:`.WriteLedger.judge`. Several faders in one poll round showing levels none of our writes left
        there mean the desk changed wholesale behind us (a restart with no push, an unannounced scene recall):
        it counts as lost and is read again, whole, before the next write."""
        law = self.profile.law
        judgement = self.ledger.judge(address, law.step_of(held), answer=answer, round_s=self._answered_round)
        if judgement.verdict is Verdict.RESEND:
            assert judgement.resend_step is not None
            self._resend_later(address, law.value_of_step(judgement.resend_step))
            return True
        if judgement.verdict is Verdict.OURS:
            if judgement.confirmed:
                view.pending_db = math.nan
            return True
        if judgement.wholesale and self.connected:
            self._lost(f"{judgement.wholesale} faders answered our poll with levels none of our writes left there "
                       f"(a desk restart or an unannounced scene recall): reading the desk again")
        return False

    def _emit(self, event: DeskEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the desk link: counted, logged once per listener
                self.stats.listener_failures += 1
                if id(listener) not in self._failed_listeners:
                    self._failed_listeners.add(id(listener))
                    log.exception("desk event listener failed on %r (further failures are only counted)", event)
