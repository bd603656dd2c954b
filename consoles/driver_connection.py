"""The desk driver's connection: find the desk, identify it, subscribe, sweep, keep it alive, notice it gone, reconnect.

Identification comes before anything else; every mapped channel is swept on
connect and after every reconnect; the subscription is renewed, mapped faders
and mutes are polled every ``poll_period_s`` (a desk that never pushes hand
moves, or a subscription another client took), and the desk counts as lost
after the profile's liveness timeout of silence, or two refusals of its port
in a row. This timing is about the wire, so it runs on the event loop's clock.
"""
from __future__ import annotations

import asyncio
import logging
import math
import socket

from . import osc
from .driver_core import DeskIdentity, DriverCore
from .errors import DeskError, DeskIdentityError, DeskUnreachableError
from .events import DeskConnected, DeskLost, PacketRejected
from .link import Peer

log = logging.getLogger("ailive.consoles.driver")

#: Backoff between reconnect attempts, seconds; the last value repeats.
RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Refusals of the desk's port (ICMP port unreachable) in a row, with nothing from the desk between, that mean
#: the desk is restarting: one alone may be forged or stray, and the probe it triggers settles it.
REFUSALS_FOR_LOST = 2
#: How often the kernel's count of dropped datagrams is read (``read_queued``).
DROPS_READ_PERIOD_S = 1.0


class DeskConnection(DriverCore):
    """The lifecycle of the link to the desk (a part of :class:`~.driver.OscDeskDriver`)."""

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
        """Read fader, mute and name of every mapped channel, ridden ones first; differences become events.

        Each answer is read into the view as it arrives, and so is a push
        meanwhile (see :meth:`_on_datagram`): a hand's move after its fader's
        answer is the newer word, and the sweep must not put the older one back.
        """
        p = self.profile
        order = self.ridden + [ch for ch in self.channels if ch not in self.ridden]
        addresses = [t.address_of(ch) for ch in order for t in (p.fader, p.mute, p.name_param)]
        self._sweep_waiting = set(addresses)
        queries = [asyncio.ensure_future(self.query(a)) for a in addresses]
        try:
            await asyncio.gather(*queries)
        except BaseException:
            for query in queries:  # the first that failed ends the sweep: the others stop asking too
                query.cancel()
            await asyncio.gather(*queries, return_exceptions=True)
            raise
        finally:
            self._sweep_waiting = None

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

    def ask_faders(self, channels: list[int]) -> None:
        """Query these faders now, out of the poll's turn; the answers are handled as poll answers.

        The bridge asks when it needs the desk's word on its own writes at
        once (arming): a desk that shows them back only when polled would
        otherwise keep them unconfirmed for up to a poll period.
        """
        now = self._now()
        for channel in channels:
            address = self.profile.fader.address_of(channel)
            if address in self._polls or address in self._poll_scheduled:
                continue  # asked already; its answer is on the way
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
