"""Telemetry and remote control over MQTT: watch and steer the bridge from a tablet or a show-control system.

Topics under ``<prefix>/<show>/`` (``docs/mqtt.md`` has the payloads):

- ``state``: retained; online, armed, hold, desk connected, model, xruns.
  Republished on every (re)connect; the last will sets ``online: false``.
- ``ch/<n>``: one per mapped desk channel, at most ``1 / channel_period_s``
  per second (level, proposed gain, fader, mode, last reason).
- ``events``: every record the engine journals (moves, policy events, desk
  changes, refusals), numbered by ``seq`` so a gap is visible.
- ``cmd/arm``, ``cmd/disarm``, ``cmd/kill``, ``cmd/ch/<n>/mode``: commands,
  answered on ``cmd/result`` with the request's ``id``.

Commands pass the same gate as the web surface's (``bridge.commands``) and
go through the engine's own entry points (the ones the keyboard uses), so
they are applied at the start of a control step and the policy may
still refuse them; the answer waits for that step. Nothing here can stall the
control loop: the engine's listener only appends to a bounded queue, channel
updates are sampled (the newest wins, nothing queues), and every network call
happens in this module's own task. A broker that is missing or dies costs
telemetry, never mixing: the task reconnects with backoff.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import ssl
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Callable

from ailive.consoles.errors import AiliveError
from ailive.consoles.show import split_host_port

from ..engine import Engine, EngineStatus
from ..jsonsafe import json_safe, payload_db
from .commands import COMMAND_TIMEOUT_S, MAX_COMMAND_BYTES, PAYLOAD_VERSION, CommandGate
from .mqtt_settings import MqttSettings

log = logging.getLogger(__name__)

#: Fastest per-channel update rate is 1 / CHANNEL_PERIOD_S.
CHANNEL_PERIOD_S = 0.1
#: An unchanged channel is still republished this often (a watcher sees it is alive).
CHANNEL_REFRESH_S = 1.0
#: The retained state is republished at least this often (its ``t`` says how fresh it is).
STATE_PERIOD_S = 5.0
#: Events waiting for the broker; the oldest are dropped (and counted) beyond this.
EVENT_QUEUE = 1024
#: Reconnect backoff: first wait, longest wait (doubling in between, with jitter).
BACKOFF_S = (0.5, 30.0)
#: The broker declares the bridge gone (last will) after 1.5 keepalives of silence.
KEEPALIVE_S = 10
#: Commands waiting to be read; further ones are dropped by the client (a flood cannot grow memory).
INCOMING_QUEUE = 64


class TelemetryError(AiliveError):
    """The MQTT settings cannot be used as given."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_broker(text: str, default_port: int) -> BrokerAddress:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) into a broker address, with a clear error."""
    return BrokerAddress(*split_host_port(text, default_port, "broker address"))


def with_broker(settings: MqttSettings, broker: BrokerAddress) -> MqttSettings:
    """The show's MQTT settings (credentials, TLS, token) pointed at another broker, enabled."""
    return replace(settings, enabled=True, host=broker.host, port=broker.port)


def topic_root(settings: MqttSettings, show_name: str) -> str:
    return f"{settings.topic_prefix}/{show_name}"


_db = payload_db


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(json_safe(payload), allow_nan=False, separators=(",", ":")).encode()


@dataclass
class TelemetryStats:
    connects: int = 0
    failed_connects: int = 0  # attempts refused or unanswered, and connections lost
    published: int = 0
    events_dropped: int = 0
    commands_queued: int = 0
    commands_refused: int = 0
    last_error: str = ""


class Telemetry:
    """Publishes one engine's state, channels and events to an MQTT broker and takes commands from it.

    ``start()`` returns at once; the bridge runs whether or not a broker ever
    answers. ``close()`` publishes the last events and ``online: false``, then
    disconnects.
    """

    def __init__(self, engine: Engine, settings: MqttSettings, *, channel_period_s: float = CHANNEL_PERIOD_S,
                 state_period_s: float = STATE_PERIOD_S, event_queue: int = EVENT_QUEUE,
                 max_command_bytes: int = MAX_COMMAND_BYTES, command_timeout_s: float = COMMAND_TIMEOUT_S,
                 backoff_s: tuple[float, float] = BACKOFF_S, keepalive_s: int = KEEPALIVE_S,
                 wall_clock: Callable[[], float] = time.time) -> None:
        name = engine.show.name
        if not name or any(c in name for c in "+#/\x00") or name.startswith("$"):
            raise TelemetryError(f"show name {name!r} cannot be an MQTT topic level (no +, #, / or leading $): "
                                 "set [show] name in the show file")
        self.engine = engine
        self.settings = settings
        self.root = topic_root(settings, name)
        self.channel_period_s = channel_period_s
        self.state_period_s = state_period_s
        self.backoff_s = backoff_s
        self.keepalive_s = keepalive_s
        self._wall_clock = wall_clock
        self._events: deque[dict[str, Any]] = deque(maxlen=event_queue)
        self._results: deque[dict[str, Any]] = deque(maxlen=INCOMING_QUEUE)
        self._seq = 0
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_channel: dict[int, tuple[tuple[Any, ...], float]] = {}
        self._last_state: tuple[tuple[Any, ...], float] | None = None
        self.connected = False
        self.stats = TelemetryStats()
        engine.add_listener(self._on_record)
        self._commands = CommandGate(engine, origin="mqtt", token=settings.token, where=f" under {self.topic('cmd/')}",
                                     max_command_bytes=max_command_bytes, command_timeout_s=command_timeout_s,
                                     counters=self.stats, wall_clock=wall_clock)

    # ----- topics ------------------------------------------------------------------------

    def topic(self, suffix: str) -> str:
        return f"{self.root}/{suffix}"

    @property
    def broker(self) -> BrokerAddress:
        return BrokerAddress(self.settings.host, self.settings.port)

    @property
    def events_queued(self) -> int:
        """Events waiting for the broker (at most ``event_queue``)."""
        return len(self._events)

    # ----- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt {self.root}")

    async def close(self, timeout_s: float = 2.0) -> None:
        """Flush, say offline, disconnect; never raises and never waits longer than ``timeout_s``."""
        self._closing.set()
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except asyncio.TimeoutError:
            log.warning("mqtt: %s did not take the goodbye within %.1f s; closing anyway", self.broker, timeout_s)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        except Exception:  # the task logs its own failures; close must not fail the bridge's shutdown
            log.exception("mqtt: telemetry task failed")
        self._commands.settle(final=True)  # the count of refusals not yet logged, even without a goodbye

    # ----- the engine's side: called on the control loop, must stay O(1) ------------------------

    def _on_record(self, record: dict[str, Any]) -> None:
        if len(self._events) == self._events.maxlen:
            self.stats.events_dropped += 1
        self._seq += 1
        self._events.append({"seq": self._seq, "t": round(self._wall_clock(), 3), **record})
        self._wake.set()

    # ----- the connection loop -----------------------------------------------------------

    def _client(self) -> Any:
        import aiomqtt  # imported when telemetry starts, not when the bridge is imported

        s = self.settings
        tls = None
        if s.tls:
            tls = aiomqtt.TLSParameters(ca_certs=s.ca_file or None, certfile=s.cert_file or None,
                                        keyfile=s.key_file or None, cert_reqs=ssl.CERT_REQUIRED)
        will = aiomqtt.Will(self.topic("state"), self._offline_payload("connection lost"), qos=1, retain=True)
        return aiomqtt.Client(
            s.host, s.port, username=s.username or None, password=s.password or None,
            identifier=f"ailive-{self.engine.show.name}-{secrets.token_hex(4)}", will=will, tls_params=tls,
            keepalive=self.keepalive_s, timeout=5.0, max_queued_incoming_messages=INCOMING_QUEUE,
            logger=logging.getLogger("ailive.bridge.remote.telemetry.client"),
        )

    async def _run(self) -> None:
        import aiomqtt

        failures = 0
        while not self._closing.is_set():
            try:
                async with self._client() as client:
                    failures = 0
                    await self._connected(client)
                    await self._serve(client)
                    await self._goodbye(client)
                    return
            except aiomqtt.MqttError as exc:
                self._lost(str(exc) or type(exc).__name__)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must never reach the control loop; log it and start over
                log.exception("mqtt: telemetry failed")
                self._lost(f"{type(exc).__name__}: {exc}")
            self.connected = False
            if self._closing.is_set():
                return
            first, longest = self.backoff_s
            delay = min(longest, first * 2 ** min(failures, 16)) * random.uniform(0.8, 1.2)
            failures += 1
            try:
                await asyncio.wait_for(self._closing.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _connected(self, client: Any) -> None:
        self.connected = True
        self.stats.connects += 1
        await client.subscribe(self.topic("cmd/#"), qos=1)
        self._last_state = None  # republish the retained state now
        self._last_channel.clear()
        await self._publish_state(client, force=True)
        again = " again" if self.stats.connects > 1 else ""
        log.info("mqtt: connected%s to %s, topics under %s/", again, self.broker, self.root)
        self.engine.status.last_events.append(f"mqtt connected{again}: {self.broker}")
        self.stats.last_error = ""

    def _lost(self, reason: str) -> None:
        """Log a lost or refused connection once per distinct reason (never the credentials: paho's texts carry none)."""
        self.stats.failed_connects += 1
        if reason != self.stats.last_error:
            was = "lost" if self.connected else "cannot reach"
            log.warning("mqtt: %s the broker %s (%s); the bridge keeps mixing and retries", was, self.broker, reason)
            self.engine.status.last_events.append(f"mqtt {was} {self.broker}: {reason}")
        self.stats.last_error = reason

    async def _serve(self, client: Any) -> None:
        """Publish and take commands until closing (returns) or the broker goes (raises MqttError)."""
        tasks = [asyncio.create_task(self._publish_loop(client)), asyncio.create_task(self._command_loop(client))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()

    async def _goodbye(self, client: Any) -> None:
        self._commands.settle(final=True)
        await self._flush(client)
        await client.publish(self.topic("state"), self._offline_payload("bridge stopped"), qos=1, retain=True, timeout=1.0)
        log.info("mqtt: said goodbye to %s", self.broker)

    # ----- publishing --------------------------------------------------------------------

    async def _publish_loop(self, client: Any) -> None:
        loop = asyncio.get_running_loop()
        next_channels = loop.time()
        while not self._closing.is_set():
            timeout = max(0.0, next_channels - loop.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            self._commands.settle()
            await self._flush(client)
            if loop.time() >= next_channels:
                next_channels = loop.time() + self.channel_period_s
                status = self.engine.refresh()
                await self._publish_state(client, status=status)
                await self._publish_channels(client, status)

    async def _flush(self, client: Any) -> None:
        """Command results, then queued events; each leaves the queue only once the client took it."""
        while self._results:
            await self._publish(client, self.topic("cmd/result"), self._results[0], qos=1)
            self._results.popleft()
        while self._events:
            await self._publish(client, self.topic("events"), {"v": PAYLOAD_VERSION, **self._events[0]})
            self._events.popleft()

    async def _publish(self, client: Any, topic: str, payload: dict[str, Any], *, qos: int = 0, retain: bool = False) -> None:
        await client.publish(topic, _encode(payload), qos=qos, retain=retain)
        self.stats.published += 1

    def _state_payload(self, status: EngineStatus) -> dict[str, Any]:
        return {
            "v": PAYLOAD_VERSION, "online": True, "show": status.show, "armed": status.armed, "hold": status.hold,
            "hold_code": status.hold_code,
            "connected": status.desk_connected, "desk": status.desk, "model": status.model, "xruns": status.xruns,
            "model_errors": status.model_errors, "moves": status.moves, "engineer_moves": status.engineer_moves,
            "audio_time_s": round(status.audio_time_s, 3), "events_dropped": self.stats.events_dropped,
            "t": round(self._wall_clock(), 3),
        }

    def _offline_payload(self, reason: str) -> bytes:
        return _encode({"v": PAYLOAD_VERSION, "online": False, "show": self.engine.show.name, "reason": reason})

    async def _publish_state(self, client: Any, *, status: EngineStatus | None = None, force: bool = False) -> None:
        status = status or self.engine.refresh()
        key = (status.armed, status.hold, status.desk_connected, status.model, status.xruns, status.model_errors,
               self.stats.events_dropped)
        now = time.monotonic()
        if not force and self._last_state is not None:
            last_key, last_s = self._last_state
            if key == last_key and now - last_s < self.state_period_s:
                return
        await self._publish(client, self.topic("state"), self._state_payload(status), qos=1, retain=True)
        self._last_state = (key, now)

    async def _publish_channels(self, client: Any, status: EngineStatus) -> None:
        """Each channel when it changed, else once per :data:`CHANNEL_REFRESH_S`; never more than one per period."""
        now = time.monotonic()
        for ch in status.channels:
            fields = {"ch": ch.channel, "name": ch.name, "level_db": _db(ch.level_db), "proposed_db": _db(ch.proposed_db),
                      "fader_db": _db(ch.fader_db), "mode": ch.mode, "muted": ch.muted, "reason": ch.reason}
            key = tuple(fields.values())
            last = self._last_channel.get(ch.channel)
            if last is not None and last[0] == key and now - last[1] < CHANNEL_REFRESH_S:
                continue
            await self._publish(client, self.topic(f"ch/{ch.channel}"),
                                {"v": PAYLOAD_VERSION, **fields, "t": round(self._wall_clock(), 3)})
            self._last_channel[ch.channel] = (key, now)

    # ----- commands ------------------------------------------------------------------------

    async def _command_loop(self, client: Any) -> None:
        prefix = self.topic("cmd/")
        async for message in client.messages:
            topic = str(message.topic)
            if not topic.startswith(prefix) or topic == self.topic("cmd/result"):
                continue
            # take() answers whatever arrives and never raises: no payload can cost the connection
            self._commands.take(topic[len(prefix):], message.payload, self._results.append, retained=bool(message.retain))
            self._wake.set()
