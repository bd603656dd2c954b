"""A desk simulator for any OSC desk profile: the desk of every integration test.

It speaks the profile's dialect on a loopback UDP socket and enforces the
desk's rules: quantization by the fader law, subscription leases and their
client limit (the client past the limit gets nothing), pushes to the other
subscribers but never back to the writer (unless the profile says the desk
echoes), exact type tags (a ``,i`` where ``,f`` belongs is dropped), and meters.
A Python API injects engineer moves, packet loss, delay and restarts.
Garbage never changes state: it is counted in :attr:`DeskSimulator.stats`.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from .. import osc
from ..errors import OscDecodeError
from ..meters import METER_CODECS, SILENCE_DB
from ..profile import Profile

Peer = tuple[str, int]
Value = int | float | str


@dataclass
class Param:
    """One parameter the desk holds."""

    address: str
    type: str
    value: Value
    kind: str = "node"  # fader, mute, name, trim, node
    channel: int = 0


@dataclass
class SimStats:
    """What the simulator saw; tests read these to prove what did (not) happen."""

    received: int = 0
    rejected: int = 0  # not OSC, truncated, wrong type tag
    unknown_address: int = 0
    dropped_by_loss: int = 0
    refused_subscriptions: int = 0
    writes: dict[str, int] = field(default_factory=dict)  # address -> accepted sets

    def total_writes(self) -> int:
        return sum(self.writes.values())


@dataclass
class Faults:
    """Injected network faults."""

    loss_in: float = 0.0  # probability a datagram to the desk is dropped
    loss_out: float = 0.0  # probability a datagram from the desk is dropped
    delay_s: float = 0.0  # added to every datagram the desk sends
    duplicate: float = 0.0  # probability a sent datagram goes out twice

    def set_loss(self, probability: float) -> None:
        """The same loss both ways, as on a bad network link."""
        self.loss_in = self.loss_out = probability


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, sim: "DeskSimulator") -> None:
        self.sim = sim

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sim._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable from a vanished client
        pass


class DeskSimulator:
    """An OSC desk on a UDP socket, built from a :class:`Profile`.

    Use as an async context manager, or call :meth:`start` / :meth:`stop`.
    ``port=0`` picks a free port; :attr:`address` tells which.
    """

    def __init__(
        self,
        profile: Profile,
        host: str = "127.0.0.1",
        port: int | None = None,
        channels: int | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.profile = profile
        self.host = host
        self.port = profile.port if port is None else port
        self.channels = min(channels or profile.channels, profile.channels)
        if self.channels < 1:
            raise ValueError("a simulator needs at least one channel")
        self.faults = Faults()
        self.stats = SimStats()
        self._random = random.Random(seed)
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._leases: dict[Peer, float] = {}  # subscriber -> lease end (loop time)
        self._meter_leases: dict[Peer, tuple[float, float]] = {}  # subscriber -> (lease end, period)
        self._meter_task: asyncio.Task[None] | None = None
        self._levels_db: list[float] = [SILENCE_DB] * self.channels
        self.params: dict[str, Param] = {}
        self.reset_state()

    # ----- state -------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Every parameter back to its power-on value."""
        p = self.profile
        params: dict[str, Param] = {}
        for ch in range(1, self.channels + 1):
            params[p.fader.address_of(ch)] = Param(p.fader.address_of(ch), p.fader.type, p.law.quantize(p.law.from_db(0.0)), "fader", ch)
            unmuted = 1 - p.mute.muted_value if p.mute.muted_value in (0, 1) else 0
            params[p.mute.address_of(ch)] = Param(p.mute.address_of(ch), p.mute.type, _typed(p.mute.type, unmuted), "mute", ch)
            params[p.name_param.address_of(ch)] = Param(p.name_param.address_of(ch), "s", "", "name", ch)
            if p.trim is not None:
                params[p.trim.address_of(ch)] = Param(p.trim.address_of(ch), p.trim.type, p.trim.law.from_db(0.0), "trim", ch)
        for node in p.nodes:
            for address in node.addresses():
                params[address] = Param(address, node.type, node.default, "node")
        self.params = params

    def fader(self, channel: int) -> float:
        """The wire value the desk holds for a channel's fader."""
        return float(self.params[self.profile.fader.address_of(channel)].value)

    def fader_db(self, channel: int) -> float:
        return self.profile.law.to_db(self.fader(channel))

    def muted(self, channel: int) -> bool:
        return self.params[self.profile.mute.address_of(channel)].value == self.profile.mute.muted_value

    def name(self, channel: int) -> str:
        return str(self.params[self.profile.name_param.address_of(channel)].value)

    def subscribers(self) -> list[Peer]:
        """Clients whose subscription lease is still running."""
        now = self._now()
        return [peer for peer, end in self._leases.items() if end > now]

    @property
    def address(self) -> Peer:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return self._transport is not None

    # ----- engineer and fault injection ------------------------------------------------------

    def move_fader(self, channel: int, value: float) -> None:
        """An engineer's hand on the fader: quantized, stored, pushed to every subscriber."""
        self._set(self.profile.fader.address_of(channel), value, writer=None)

    def move_fader_db(self, channel: int, db: float) -> None:
        self.move_fader(channel, self.profile.law.from_db(db))

    def set_mute(self, channel: int, muted: bool) -> None:
        m = self.profile.mute
        value = m.muted_value if muted else (1 - m.muted_value if m.muted_value in (0, 1) else 0)
        self._set(m.address_of(channel), _typed(m.type, value), writer=None)

    def set_name(self, channel: int, name: str) -> None:
        self._set(self.profile.name_param.address_of(channel), name, writer=None)

    def set_link(self, odd_channel: int, linked: bool) -> None:
        """Link a stereo pair (odd, odd + 1) the way the desk's channel link does."""
        address = self._link_address(odd_channel)
        if address is None:
            raise ValueError(f"{self.profile.name} has no channel links, or {odd_channel} is not the odd channel of a pair")
        self._set(address, 1 if linked else 0, writer=None)

    def send_raw(self, data: bytes, peer: Peer) -> None:
        """Send arbitrary bytes from the desk's socket (a desk gone wrong, for hostile-input tests)."""
        self._send_now(data, peer)

    def feed_levels(self, levels_db: list[float]) -> None:
        """Input levels (dBFS per channel) that meter replies report."""
        self._levels_db = [float(v) for v in levels_db[: self.channels]] + [SILENCE_DB] * max(0, self.channels - len(levels_db))

    async def restart(self, *, keep_state: bool = True, downtime_s: float = 0.5) -> None:
        """Power-cycle: the socket closes, every lease is forgotten, state is kept or reset."""
        await self.stop()
        if not keep_state:
            self.reset_state()
        await asyncio.sleep(downtime_s)
        await self.start()

    # ----- lifecycle -----------------------------------------------------------------------

    async def start(self) -> Peer:
        self._loop = asyncio.get_running_loop()
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        self._meter_task = asyncio.create_task(self._meter_loop())
        return self.address

    async def stop(self) -> None:
        if self._meter_task is not None:
            self._meter_task.cancel()
            try:
                await self._meter_task
            except asyncio.CancelledError:
                pass
            self._meter_task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._leases.clear()
        self._meter_leases.clear()

    async def __aenter__(self) -> "DeskSimulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----- protocol ------------------------------------------------------------------------

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _on_datagram(self, data: bytes, peer: Peer) -> None:
        if self.faults.loss_in and self._random.random() < self.faults.loss_in:
            self.stats.dropped_by_loss += 1
            return
        self.stats.received += 1
        try:
            message = osc.decode(data)
        except OscDecodeError:
            self.stats.rejected += 1
            return
        self._handle(message, peer)

    def _handle(self, message: osc.OscMessage, peer: Peer) -> None:
        p = self.profile
        address = message.address
        if address in p.sim.replies and not message.args:
            self._send_reply(address, peer)
        elif p.subscription is not None and address == p.subscription.address:
            self._subscribe(peer)
        elif p.meters is not None and address == p.meters.request:
            self._meter_request(message, peer)
        elif p.meters is not None and address == p.meters.renew:
            self._meter_renew(message, peer)
        elif address in self.params:
            param = self.params[address]
            if not message.args:
                self._send(osc.encode(address, param.type, (param.value,)), peer)
            elif len(message.args) == 1 and message.tags == param.type:
                self._set(address, message.args[0], writer=peer)
            else:
                self.stats.rejected += 1
        else:
            self.stats.unknown_address += 1

    def _send_reply(self, address: str, peer: Peer) -> None:
        sim = self.profile.sim
        reply = sim.replies[address]
        fill = {"ip": self.host, "name": sim.desk_name, "model": sim.model, "firmware": sim.firmware}
        args = tuple(_typed(tag, template.format(**fill)) for tag, template in zip(reply.type, reply.args))
        self._send(osc.encode(address, reply.type, args), peer)

    def _subscribe(self, peer: Peer) -> None:
        sub = self.profile.subscription
        assert sub is not None
        now = self._now()
        active = self.subscribers()
        if peer in active or len(active) < sub.max_clients:
            self._leases = {c: self._leases[c] for c in active}
            self._leases[peer] = now + sub.lease_s
        else:
            self.stats.refused_subscriptions += 1

    def _set(self, address: str, value: Value, writer: Peer | None) -> None:
        """Store a value as the desk would hold it and push it to the subscribers."""
        param = self.params[address]
        stored = self._as_held(param, value)
        if stored is None:
            self.stats.rejected += 1
            return
        if writer is not None:
            self.stats.writes[address] = self.stats.writes.get(address, 0) + 1
        param.value = stored
        self._push(address, param, exclude=None if self._echoes() else writer)
        for partner in self._linked_partners(param):
            partner.value = stored
            self._push(partner.address, partner, exclude=None)

    def _as_held(self, param: Param, value: Value) -> Value | None:
        p = self.profile
        if param.kind == "fader":
            number = osc.as_finite_float(value)
            return None if number is None else p.law.quantize(number)
        if param.kind == "trim" and p.trim is not None:
            number = osc.as_finite_float(value)
            return None if number is None else p.trim.law.quantize(number)
        if param.kind == "name":
            return str(value)[: p.name_param.max_length]
        if param.type in ("i", "f"):
            number = osc.as_finite_float(value)
            return None if number is None else _typed(param.type, number)
        return value

    def _echoes(self) -> bool:
        return self.profile.subscription is not None and self.profile.subscription.echoes_own_writes

    def _link_address(self, odd_channel: int) -> str | None:
        for node in self.profile.nodes:
            if node.pair and odd_channel % 2 == 1:
                address = node.address.format(n=odd_channel, m=odd_channel + 1)
                if address in self.params:
                    return address
        return None

    def _linked_partners(self, param: Param) -> list[Param]:
        if param.kind not in ("fader", "mute") or param.channel < 1:
            return []
        odd = param.channel if param.channel % 2 else param.channel - 1
        link = self._link_address(odd)
        follow = next((n for n in self.profile.nodes if n.key == "link_fader_mute"), None)
        if link is None or self.params[link].value != 1:
            return []
        if follow is not None and self.params[follow.address].value != 1:
            return []
        partner = odd + 1 if param.channel == odd else odd
        if partner > self.channels:
            return []
        template = self.profile.fader if param.kind == "fader" else self.profile.mute
        return [self.params[template.address_of(partner)]]

    def _push(self, address: str, param: Param, exclude: Peer | None) -> None:
        if not self.running:
            return
        data = osc.encode(address, param.type, (param.value,))
        for peer in self.subscribers():
            if peer != exclude:
                self._send(data, peer)

    def _send(self, data: bytes, peer: Peer) -> None:
        if self._transport is None:
            return
        if self.faults.loss_out and self._random.random() < self.faults.loss_out:
            self.stats.dropped_by_loss += 1
            return
        copies = 2 if self.faults.duplicate and self._random.random() < self.faults.duplicate else 1
        for _ in range(copies):
            if self.faults.delay_s > 0 and self._loop is not None:
                self._loop.call_later(self.faults.delay_s, self._send_now, data, peer)
            else:
                self._send_now(data, peer)

    def _send_now(self, data: bytes, peer: Peer) -> None:
        if self._transport is not None:
            self._transport.sendto(data, peer)

    # ----- meters --------------------------------------------------------------------------

    def _meter_request(self, message: osc.OscMessage, peer: Peer) -> None:
        meters = self.profile.meters
        assert meters is not None
        if not message.tags.startswith("s") or message.args[0] != meters.bank:
            self.stats.rejected += 1
            return
        factor = message.args[1] if message.tags[1:2] == "i" else 1
        period_s = 0.05 * max(1, min(int(factor), 100))  # type: ignore[arg-type]
        self._meter_leases[peer] = (self._now() + meters.lease_s, period_s)

    def _meter_renew(self, message: osc.OscMessage, peer: Peer) -> None:
        meters = self.profile.meters
        assert meters is not None
        if message.tags == "s" and peer in self._meter_leases and f"/{message.args[0]}".replace("//", "/") == meters.bank:
            _, period_s = self._meter_leases[peer]
            self._meter_leases[peer] = (self._now() + meters.lease_s, period_s)
        else:
            self.stats.rejected += 1

    def meter_values(self) -> list[float]:
        """The levels a meter reply carries, in dBFS: inputs first, the rest of the bank silent."""
        meters = self.profile.meters
        count = meters.count if meters else self.channels
        return (self._levels_db + [SILENCE_DB] * count)[:count]

    async def _meter_loop(self) -> None:
        meters = self.profile.meters
        if meters is None:
            return
        codec = METER_CODECS[meters.decoder]
        next_due: dict[Peer, float] = {}
        while True:
            await asyncio.sleep(0.05)
            now = self._now()
            self._meter_leases = {p: v for p, v in self._meter_leases.items() if v[0] > now}
            for peer, (_, period_s) in self._meter_leases.items():
                if next_due.get(peer, 0.0) <= now:
                    next_due[peer] = now + period_s
                    self._send(osc.encode(meters.bank, "b", (codec.encode(self.meter_values()),)), peer)


def _typed(tag: str, value: Any) -> Value:
    if tag == "i":
        return int(value)
    if tag == "f":
        return float(value)
    return str(value)
