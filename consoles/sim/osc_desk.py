"""A desk simulator for any OSC desk profile: the desk of every integration test.

It speaks the profile's dialect on a loopback UDP socket and enforces the
desk's rules: quantization by the fader law, subscription leases and their
client limit (the client past the limit gets nothing, or takes over from the
oldest where the profile says so), pushes to the other subscribers but never
back to the writer (unless the profile says the desk echoes: then only a
change or a clamped value comes back), exact type tags (a ``,i`` where ``,f``
belongs is dropped), the profile's query form and answer shape, and meters.
A desk without a subscription feeds back to its one configured device
(``send_to``), or, with none configured, to the first client that talks to it;
other clients get nothing. A Python API injects engineer moves, packet loss,
delay, duplicates, reordering and restarts; :attr:`DeskSimulator.echo` says whether a
client's own sets come back to it (never, on a change, or always). Garbage never changes
state: it is counted in :attr:`DeskSimulator.stats`.

Over 400 lines: one desk, whose rules (who hears a change, who gets an
answer, which writes a hand or a link overrides, what is echoed) all read
and change the same parameters, leases and feedback devices; the pure parts
(the codec, fader laws, meter codecs, profiles) live apart.
"""
from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import osc
from ..errors import OscDecodeError
from ..faderlaw import X32Law, position_of
from ..meters import METER_CODECS, SILENCE_DB
from ..profile import ChannelParam, Profile

Peer = tuple[str, int]
Value = int | float | str
#: Whether a client's own set comes back to it: never (the X32 emulator), when it changed or
#: was clamped (DiGiCo), or every accepted set (Behringer's protocol notes: "the server echoes").
ECHO_MODES = ("none", "changes", "all")
#: Queries remembered with their arrival time (loop clock), newest last.
QUERY_LOG_SIZE = 8192


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
    reordered: int = 0  # datagrams held back by the reorder fault, either way
    refused_subscriptions: int = 0
    taken_over: int = 0  # subscriptions handed to a newer client (one-subscriber desks)
    held_by_hand: int = 0  # fader writes that did not move a fader the engineer's hand holds
    unanswered: int = 0  # queries from a client that is not the desk's device (single-client rule)
    send_errors: int = 0  # ICMP errors: nothing listens where the desk sends
    echoed: int = 0  # a client's own sets sent back to it
    queries: int = 0  # datagrams in the query form, answered or not
    writes: dict[str, int] = field(default_factory=dict)  # address -> accepted sets
    #: (arrival time on the loop clock, queried address) of the latest queries
    query_log: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=QUERY_LOG_SIZE))

    def total_writes(self) -> int:
        return sum(self.writes.values())


@dataclass
class Faults:
    """Injected network faults."""

    loss_in: float = 0.0  # probability a datagram to the desk is dropped
    loss_out: float = 0.0  # probability a datagram from the desk is dropped
    delay_s: float = 0.0  # added to every datagram the desk sends
    delay_in_s: float = 0.0  # added to every datagram sent to the desk (with delay_s: the round trip)
    duplicate: float = 0.0  # probability a sent datagram goes out twice
    reorder: float = 0.0  # probability a datagram, either way, is held back so later ones overtake it
    reorder_s: float = 0.03  # how long a held-back datagram waits

    def set_loss(self, probability: float) -> None:
        """The same loss both ways, as on a bad network link."""
        self.loss_in = self.loss_out = probability


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, sim: "DeskSimulator") -> None:
        self.sim = sim

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sim._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: a vanished client, a wrong send_to
        self.sim.stats.send_errors += 1


class DeskSimulator:
    """An OSC desk on a UDP socket, built from a :class:`Profile`.

    Use as an async context manager, or call :meth:`start` / :meth:`stop`.
    ``port=0`` picks a free port; :attr:`address` tells which. ``send_to`` is
    where a desk that does not answer to the sender sends everything (DiGiCo's
    External Control destination); without it, such a desk answers the sender.
    """

    def __init__(
        self,
        profile: Profile,
        host: str = "127.0.0.1",
        port: int | None = None,
        channels: int | None = None,
        *,
        seed: int | None = None,
        send_to: Peer | None = None,
        echo: str | None = None,
    ) -> None:
        self.profile = profile
        self.host = host
        self.port = profile.port if port is None else port
        self.send_to = send_to if not profile.replies_to_sender else None
        self.channels = min(channels or profile.channels, profile.channels)
        if self.channels < 1:
            raise ValueError("a simulator needs at least one channel")
        self.faults = Faults()
        self.stats = SimStats()
        self._echo = "changes" if profile.echoes_own_writes else "none"
        if echo is not None:
            self.echo = echo
        self._random = random.Random(seed)
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._leases: dict[Peer, float] = {}  # subscriber -> lease end (loop time)
        self._devices: dict[Peer, float] = {}  # feedback desks: device -> when it was last heard
        self._hands: dict[str, float] = {}  # fader address -> until when the engineer's hand holds it
        self._meter_leases: dict[Peer, tuple[float, float]] = {}  # subscriber -> (lease end, period)
        self._meter_task: asyncio.Task[None] | None = None
        self._levels_db: list[float] = [SILENCE_DB] * self.channels
        self.params: dict[str, Param] = {}
        #: Called with a parameter's address before the desk answers a query for it: a test changes the desk
        #: between two answers (a hand on a fader while a client reads the desk).
        self.before_answer: Callable[[str], None] | None = None
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
        """Clients the desk pushes changes to: running subscription leases, or a feedback desk's device."""
        now = self._now()
        if self.profile.feedback is not None:
            if self.send_to is not None:
                return [self.send_to]
            timeout_s = self.profile.sim.device_timeout_s
            return [peer for peer, heard in self._devices.items() if now - heard <= timeout_s]
        return [peer for peer, end in self._leases.items() if end > now]

    @property
    def address(self) -> Peer:
        return (self.host, self.port)

    @property
    def echo(self) -> str:
        """Whether a client's own sets come back to it: ``none``, ``changes`` (or clamps), ``all``.

        The default follows the profile (``echoes_own_writes``: ``changes``); set it to test a
        driver against a desk or firmware that echoes differently. Echoes travel with the
        delay fault like every datagram the desk sends.
        """
        return self._echo

    @echo.setter
    def echo(self, mode: str) -> None:
        if mode not in ECHO_MODES:
            raise ValueError(f"echo must be one of {', '.join(ECHO_MODES)}, not {mode!r}")
        self._echo = mode

    @property
    def running(self) -> bool:
        return self._transport is not None

    # ----- engineer and fault injection ------------------------------------------------------

    def move_fader(self, channel: int, value: float) -> None:
        """An engineer's hand on the fader: quantized, stored, pushed to every subscriber.

        The hand then stays on the fader for the profile's ``hand_hold_s``: remote writes do not move it meanwhile.
        """
        address = self.profile.fader.address_of(channel)
        if self.profile.sim.hand_hold_s > 0:
            self._hands[address] = self._now() + self.profile.sim.hand_hold_s
        self._set(address, value, writer=None)

    def release_fader(self, channel: int) -> None:
        """The engineer lets go of a fader."""
        self._hands.pop(self.profile.fader.address_of(channel), None)

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
        self._devices.clear()
        self._hands.clear()
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
        delay_s = self.faults.delay_in_s + (self.faults.reorder_s if self._held_back() else 0.0)
        if delay_s > 0 and self._loop is not None:
            self._loop.call_later(delay_s, self._receive, data, peer)
            return
        self._receive(data, peer)

    def _held_back(self) -> bool:
        """Whether the reorder fault holds this datagram back (counted)."""
        if self.faults.reorder and self._random.random() < self.faults.reorder:
            self.stats.reordered += 1
            return True
        return False

    def _receive(self, data: bytes, peer: Peer) -> None:
        if not self.running:
            return
        self.stats.received += 1
        try:
            message = osc.decode(data)
        except OscDecodeError:
            self.stats.rejected += 1
            return
        self._heard(peer)
        self._handle(message, peer)

    def _heard(self, peer: Peer) -> None:
        """A feedback desk gives its free place(s) to the first clients that talk to it."""
        feedback = self.profile.feedback
        if feedback is None or self.send_to is not None:
            return
        devices = self.subscribers()
        if peer in devices or len(devices) < feedback.clients:
            self._devices = {d: self._devices[d] for d in devices}
            self._devices[peer] = self._now()

    def _answer_to(self, peer: Peer) -> Peer | None:
        """Where the answer to ``peer``'s query goes: the sender, the configured destination, or nowhere."""
        if self.send_to is not None:
            return self.send_to
        if self.profile.feedback is not None and peer not in self.subscribers():
            self.stats.unanswered += 1
            return None  # one device at a time: the others get no feedback
        return peer

    def _is_device(self, writer: Peer) -> bool:
        """Whether a feedback desk takes ``writer`` for its device (by address, as the desk's panel does)."""
        if self.send_to is not None:
            return writer[0] == self.send_to[0]
        return writer in self.subscribers()

    def _handle(self, message: osc.OscMessage, peer: Peer) -> None:
        p = self.profile
        address = message.address
        queried = p.queried(address) if not message.args else None
        if queried is not None and (p.query_suffix or queried in p.sim.replies or queried in self.params):
            self.stats.queries += 1
            self.stats.query_log.append((self._now(), queried))
        if queried is not None and queried in p.sim.replies:
            self._send_reply(queried, peer)
        elif p.subscription is not None and address == p.subscription.address:
            self._subscribe(peer)
        elif p.meters is not None and address == p.meters.request:
            self._meter_request(message, peer)
        elif p.meters is not None and address == p.meters.renew:
            self._meter_renew(message, peer)
        elif queried is not None and queried in self.params:
            if self.before_answer is not None:
                self.before_answer(queried)
            answer_to = self._answer_to(peer)
            if answer_to is not None:
                self._send(self._answer(self.params[queried]), answer_to)
        elif address in self.params:
            param = self.params[address]
            if len(message.args) == 1 and message.tags == param.type:
                self._set(address, message.args[0], writer=peer)
            else:  # a wrong type tag, or a bare address where the desk wants its query form
                self.stats.rejected += 1
        else:
            self.stats.unknown_address += 1

    def _send_reply(self, address: str, peer: Peer) -> None:
        sim = self.profile.sim
        reply = sim.replies[address]
        fill = {"ip": self.host, "name": sim.desk_name, "model": sim.model, "firmware": sim.firmware, "serial": sim.serial}
        args = tuple(_typed(tag, template.format(**fill)) for tag, template in zip(reply.type, reply.args))
        answer_to = self._answer_to(peer)
        if answer_to is not None:
            self._send(osc.encode(address, reply.type, args), answer_to)

    def _shape(self, param: Param) -> ChannelParam | None:
        p = self.profile
        return {"fader": p.fader, "mute": p.mute, "name": p.name_param, "trim": p.trim}.get(param.kind)

    def _answer(self, param: Param) -> bytes:
        """The answer to a query, in the profile's shape (WING's fader: text, position, dB)."""
        shape = self._shape(param)
        if shape is None or shape.reply == ("value",):
            return osc.encode(param.address, param.type, (param.value,))
        law = self.profile.law if param.kind == "fader" else None
        fields: list[Value] = []
        for name in shape.reply:
            if name == "value":
                fields.append(param.value)
            elif name == "position":
                fields.append(self._position(float(param.value)) if law else _as_float(param.value))
            elif law is not None:
                db = law.to_db(float(param.value))
                fields.append("-oo" if db == float("-inf") else f"{db:.1f}")
            else:
                fields.append(str(param.value))
        return osc.encode(param.address, shape.reply_tags, tuple(fields))

    def _position(self, value: float) -> float:
        """The 0..1 position a dB desk reports beside a fader's dB, on the profile's position curve."""
        law = self.profile.law
        if self.profile.fader.position_law == "x32":
            return _X32_CURVE.from_db(law.to_db(value))
        return position_of(law, value)

    def _subscribe(self, peer: Peer) -> None:
        sub = self.profile.subscription
        assert sub is not None
        now = self._now()
        active = self.subscribers()
        self._leases = {c: self._leases[c] for c in active}
        if peer not in active and len(active) >= sub.max_clients:
            if sub.takeover != "last_wins":
                self.stats.refused_subscriptions += 1
                return
            oldest = min(active, key=lambda c: self._leases[c])
            del self._leases[oldest]
            self.stats.taken_over += 1
        self._leases[peer] = now + sub.lease_s

    def _set(self, address: str, value: Value, writer: Peer | None) -> None:
        """Store a value as the desk would hold it and push it to the subscribers."""
        param = self.params[address]
        stored = self._as_held(param, value)
        if stored is None:
            self.stats.rejected += 1
            return
        if writer is not None and self._hands.get(address, -1.0) > self._now():
            self._held_by_hand(param, stored, writer)
            return
        if writer is not None:
            self.stats.writes[address] = self.stats.writes.get(address, 0) + 1
        changed = stored != param.value
        clamped = param.kind == "fader" and not _within(self.profile.law.wire_range, float(value))  # type: ignore[arg-type]
        param.value = stored
        self._push(address, param, writer, echo=changed or clamped)
        for partner in self._linked_partners(param):
            partner.value = stored
            self._push(partner.address, partner, None, echo=False)

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

    def _held_by_hand(self, param: Param, wanted: Value, writer: Peer) -> None:
        """A remote write to a fader under the engineer's hand: the fader stays; an echoing desk says where."""
        self.stats.held_by_hand += 1
        if self.echo == "all" or (wanted != param.value and self.echo == "changes"):
            self._echo_to(writer, osc.encode(param.address, param.type, (param.value,)))

    def _writes_for(self, writer: Peer | None, peer: Peer) -> bool:
        """Whether ``peer`` is where ``writer``'s own feedback lands (itself, or the destination of its desk's device)."""
        if writer is None:
            return False
        return peer == writer or (self.send_to is not None and self._is_device(writer))

    def _hand_move_hidden(self, param: Param, writer: Peer | None) -> bool:
        """A desk that does not push hand moves keeps quiet about fader changes its device did not make."""
        if self.profile.pushes_hand_moves or param.kind != "fader":
            return False
        return writer is None or not self._is_device(writer)

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

    def _push(self, address: str, param: Param, writer: Peer | None, *, echo: bool) -> None:
        """Send a change to the subscribers: never back to its writer, unless the desk echoes a change or a clamp."""
        if not self.running:
            return
        data = osc.encode(address, param.type, (param.value,))
        hidden = self._hand_move_hidden(param, writer)
        for peer in self.subscribers():
            if not self._writes_for(writer, peer) and not hidden:
                self._send(data, peer)
        if writer is not None and (self.echo == "all" or (echo and self.echo == "changes")):
            self._echo_to(writer, data)

    def _echo_to(self, writer: Peer, data: bytes) -> None:
        """A client's own set sent back: to a subscriber (or its desk's device); ``all``: to any writer."""
        targets = [peer for peer in self.subscribers() if self._writes_for(writer, peer)]
        if not targets and self.echo == "all":
            target = self._answer_to(writer)
            targets = [target] if target is not None else []
        for peer in targets:
            self.stats.echoed += 1
            self._send(data, peer)

    def _send(self, data: bytes, peer: Peer) -> None:
        if self._transport is None:
            return
        if self.faults.loss_out and self._random.random() < self.faults.loss_out:
            self.stats.dropped_by_loss += 1
            return
        copies = 2 if self.faults.duplicate and self._random.random() < self.faults.duplicate else 1
        for _ in range(copies):
            delay_s = self.faults.delay_s + (self.faults.reorder_s if self._held_back() else 0.0)
            if delay_s > 0 and self._loop is not None:
                self._loop.call_later(delay_s, self._send_now, data, peer)
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
        factor = message.args[1] if message.tags[1:2] == "i" and meters.request_arg == "time_factor" else 1
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


#: The X32's piecewise fader curve, for desks whose reported position follows it.
_X32_CURVE = X32Law()


def _within(bounds: tuple[float, float], value: float) -> bool:
    return bounds[0] <= value <= bounds[1]


def _as_float(value: Value) -> float:
    return 0.0 if isinstance(value, str) else float(value)


def _typed(tag: str, value: Any) -> Value:
    if tag == "i":
        return int(value)
    if tag == "f":
        return float(value)
    return str(value)
