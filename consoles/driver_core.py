"""What every part of the desk driver shares: the view of the desk, the counts, and the primitives they all use.

The driver is one object (:class:`~.driver.OscDeskDriver`) built from parts
that each hold one idea: the connection's lifecycle
(:mod:`.driver_connection`), the reading of the desk's reports into the view
(:mod:`.driver_reports`) and the fader writes (:mod:`.driver_writes`). They
read and change the same state, declared here once with the few primitives
all of them use: sending a datagram, telling listeners of an event, and the
two clocks (the wire's, the loop's; the writes', the driver's).
"""
from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Callable

from . import osc
from .errors import DeskError
from .events import DeskEvent
from .link import DeskSocket, Peer
from .pacer import PollRota, QueryPacer
from .profile import Profile
from .writes import LedgerStats, WriteLedger

log = logging.getLogger("ailive.consoles.driver")

Listener = Callable[[DeskEvent], None]


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
class PendingWrite:
    value: float
    handle: asyncio.TimerHandle
    resend: bool = False  # a level the desk held before (a hand's, sent back): it opens no crossing window


@dataclass
class ParamAddress:
    kind: str  # fader, mute, name
    channel: int


class DriverCore:
    """The driver's shared state (set up by :class:`~.driver.OscDeskDriver`) and the primitives every part uses."""

    profile: Profile
    host: str
    port: int
    channels: list[int]
    ridden: list[int]
    local_port: int
    poll_period_s: float
    subscribes: bool
    reply_timeout_s: float
    retries: int
    view: dict[int, ChannelView]
    identity: DeskIdentity | None
    stats: DriverStats
    connected: bool
    ledger: WriteLedger
    rtt_s: float
    _clock: Callable[[], float] | None
    _loop: asyncio.AbstractEventLoop | None
    _peer: Peer | None
    _link: DeskSocket | None
    _pacer: QueryPacer
    _poll_rota: PollRota
    _poll_scheduled: set[str]
    _sweep_waiting: set[str] | None
    _write_addresses: frozenset[str]
    _by_address: dict[str, ParamAddress]
    _listeners: list[Listener]
    _failed_listeners: set[int]
    _waiters: dict[str, list[asyncio.Future[osc.OscMessage]]]
    _last_write_at: dict[str, float]
    _wire_write_at: dict[str, float]
    _polls: dict[str, float]
    _answered_round: float | None
    _pending: dict[str, PendingWrite]
    _clamping: dict[str, float]
    _last_rx: float
    _tasks: list[asyncio.Task[None]]
    _reconnecting: asyncio.Task[None] | None
    _closed: bool
    _dropped_at_start: int
    _refusals_in_a_row: int
    _drops_read_at: float

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

    def _emit(self, event: DeskEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the desk link: counted, logged once per listener
                self.stats.listener_failures += 1
                if id(listener) not in self._failed_listeners:
                    self._failed_listeners.add(id(listener))
                    log.exception("desk event listener failed on %r (further failures are only counted)", event)
