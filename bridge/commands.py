"""Remote commands (MQTT, the web surface): one gate, so every way in is checked and answered the same.

A command is a name (``arm``, ``disarm``, ``kill``, ``ch/<n>/mode``) and a
JSON object (``id``, ``token``, ``v``, and ``mode`` for a channel). The gate
refuses anything malformed, unauthorised or unknown with a reason, before the
engine sees it; a valid command goes to the engine's own entry points (the
ones the keyboard uses) with its origin, and is answered once the control step
that applied it has run, with the policy's verdict. ``docs/mqtt.md`` lists
every refusal.
"""
from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ailive.consoles.show import CHANNEL_MODES

from .engine import Engine

log = logging.getLogger(__name__)

#: The ``v`` field of every payload; bumped when a field changes meaning.
PAYLOAD_VERSION = 1
#: Commands longer than this are refused unread.
MAX_COMMAND_BYTES = 4096
#: A command the control loop has not applied within this long is answered as failed.
COMMAND_TIMEOUT_S = 2.0
#: Commands waiting for the control loop; a flood beyond this is refused, never queued.
MAX_PENDING = 64
#: The command names, as a refusal lists them.
COMMAND_NAMES = "arm, disarm, kill, ch/<n>/mode"

_REQUEST_KEYS = frozenset({"v", "id", "token"})
_ID_MAX_CHARS = 128
_EXPECTED_EVENT = {"arm": "armed", "disarm": "disarmed", "kill": "killed"}

RequestId = str | int | None
Reply = Callable[[dict[str, Any]], None]


class Refused(Exception):
    """A command is refused before it reaches the engine; the message is the reason sent back."""


class CommandCounters(Protocol):
    commands_queued: int
    commands_refused: int


@dataclass
class Counters:
    commands_queued: int = 0
    commands_refused: int = 0


@dataclass
class Pending:
    """A command handed to the engine, waiting for the control step that applies it."""

    request_id: RequestId
    command: str  # as asked: arm, disarm, kill, ch/<n>/mode
    engine_command: str  # as the engine journals it: arm, disarm, kill, mode
    after_step: int  # engine.status.steps when queued: applied once steps exceeds it
    deadline_s: float
    reply: Reply
    channel: int | None = None
    mode: str = ""  # ch/<n>/mode: the mode asked for
    expected_event: str = ""  # the policy event that shows it took effect
    refusal: str | None = None
    detail: str = ""


def decode(payload: bytes | bytearray | str | None, max_bytes: int = MAX_COMMAND_BYTES) -> dict[str, Any]:
    """A command's payload as a JSON object, or :class:`Refused` saying what is wrong with it."""
    raw = payload.encode() if isinstance(payload, str) else bytes(payload or b"")
    if len(raw) > max_bytes:
        raise Refused(f"payload of {len(raw)} bytes is over the {max_bytes}-byte limit")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused("payload is not UTF-8 text; expected a JSON object such as {\"id\": \"1\"}") from None
    except json.JSONDecodeError as exc:
        raise Refused(f"malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                      "expected a JSON object such as {\"id\": \"1\"}") from None
    if not isinstance(body, dict):
        raise Refused(f"expected a JSON object, got {type(body).__name__ if body is not None else 'null'}")
    return body


def request_id(body: dict[str, Any]) -> RequestId:
    """The ``id`` a client matches answers by: a short string or an integer."""
    value = body.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and len(value) > _ID_MAX_CHARS):
        raise Refused(f"id: expected a string of at most {_ID_MAX_CHARS} characters or an integer")
    return value


class CommandGate:
    """Validates commands from one front end (``origin``), hands them to the engine and answers each.

    ``settle()`` must be called now and then (each front end's own loop does):
    it answers every command whose control step has run. ``wake`` is called
    when a record may have settled a command, so the loop need not poll fast.
    """

    def __init__(self, engine: Engine, *, origin: str, token: str = "", where: str = "",
                 max_command_bytes: int = MAX_COMMAND_BYTES, command_timeout_s: float = COMMAND_TIMEOUT_S,
                 counters: CommandCounters | None = None, wake: Callable[[], None] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.origin = origin
        self.where = where
        self.max_command_bytes = max_command_bytes
        self.command_timeout_s = command_timeout_s
        self.counters: CommandCounters = counters if counters is not None else Counters()
        self._token = token
        self._wake = wake
        self._wall_clock = wall_clock
        self._channels = {c.desk_channel: c for c in engine.show.channels}
        self._pending: list[Pending] = []
        engine.add_listener(self._on_record)

    @property
    def token_required(self) -> bool:
        return bool(self._token)

    @property
    def waiting(self) -> int:
        """Commands handed to the engine and not yet answered."""
        return len(self._pending)

    # ----- taking a command --------------------------------------------------------------

    def take(self, command: str | None, payload: bytes | bytearray | str | None, reply: Reply, *,
             retained: bool = False) -> None:
        """Validate one command and hand it to the engine, or ``reply`` at once with the reason it is refused.

        ``command`` is the name from the transport (an MQTT topic); ``None``
        reads it from the payload's ``"command"`` key (the web surface).
        """
        name = (command or "")[:100]
        rid: RequestId = None
        try:
            body = decode(payload, self.max_command_bytes)
            rid = request_id(body)
            if command is None:
                name = self._command_key(body)
            if retained:
                raise Refused("a retained command is never acted on (it would act again at every reconnect); "
                              "publish commands without -r, and clear this one with an empty retained message")
            self._check_token(body)
            if "v" in body and (isinstance(body["v"], bool) or body["v"] != PAYLOAD_VERSION):
                raise Refused(f"v: this bridge speaks payload version {PAYLOAD_VERSION}, got {body['v']!r}")
            if len(self._pending) >= MAX_PENDING:
                raise Refused(f"busy: {MAX_PENDING} commands are already waiting for the control loop; try again")
            pending = self._parse(name, body, rid, reply)
        except Refused as exc:
            self.refuse(name if command is not None or name else None, rid, str(exc), reply)
            return
        self._pending.append(pending)
        self.counters.commands_queued += 1
        log.info("%s: command %s (id %r) queued", self.origin, name, rid)
        if pending.engine_command == "arm":
            self.engine.arm(origin=self.origin)
        elif pending.engine_command == "disarm":
            self.engine.disarm(origin=self.origin)
        elif pending.engine_command == "kill":
            self.engine.kill(origin=self.origin)
        else:
            assert pending.channel is not None
            self.engine.set_mode(pending.channel, pending.mode, origin=self.origin)

    @staticmethod
    def _command_key(body: dict[str, Any]) -> str:
        name = body.pop("command", None)
        if not isinstance(name, str) or not name:
            got = "it is missing" if name is None else f"got {name!r}"
            raise Refused(f"command: expected one of {COMMAND_NAMES}; {got}")
        return name[:100]

    def _check_token(self, body: dict[str, Any]) -> None:
        if not self._token:
            return
        given = body.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._token.encode()):
            raise Refused("unauthorised: this bridge wants the show's command token in \"token\"; "
                          + ("it is missing" if given is None else "the one given is wrong"))

    def _parse(self, command: str, body: dict[str, Any], rid: RequestId, reply: Reply) -> Pending:
        deadline = time.monotonic() + self.command_timeout_s
        step = self.engine.status.steps
        if command in _EXPECTED_EVENT:
            self._no_other_keys(body, set())
            return Pending(rid, command, command, step, deadline, reply, expected_event=_EXPECTED_EVENT[command])
        parts = command.split("/")
        if len(parts) == 3 and parts[0] == "ch" and parts[2] == "mode":
            channel = self._channel(parts[1])
            self._no_other_keys(body, {"mode"})
            mode = body.get("mode")
            if mode not in CHANNEL_MODES:
                got = "it is missing" if "mode" not in body else f"got {mode!r}"
                raise Refused(f"mode: expected one of {', '.join(CHANNEL_MODES)}; {got}")
            mapped = self._channels[channel]
            if mapped.mode == "excluded" and mode != "excluded":
                raise Refused(f"desk channel {channel} ({mapped.name}) is excluded in the show file: it is never "
                              "analysed, so it stays excluded")
            return Pending(rid, command, "mode", step, deadline, reply, channel=channel, mode=mode, expected_event="mode")
        raise Refused(f"unknown command {command!r}; the commands are {COMMAND_NAMES}{self.where}")

    def _channel(self, text: str) -> int:
        mapped = ", ".join(str(ch) for ch in self._channels)
        if not text.isdigit() or str(int(text)) != text:
            raise Refused(f"channel {text!r}: expected a desk channel number mapped in the show ({mapped})")
        channel = int(text)
        if channel not in self._channels:
            raise Refused(f"desk channel {channel} is not mapped in show {self.engine.show.name} (mapped: {mapped})")
        return channel

    @staticmethod
    def _no_other_keys(body: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(body) - _REQUEST_KEYS - allowed)
        if unknown:
            known = ", ".join(sorted(_REQUEST_KEYS | allowed))
            raise Refused(f"unknown key {unknown[0]!r} (known: {known})")

    def refuse(self, command: str | None, rid: RequestId, reason: str, reply: Reply) -> None:
        """Answer a command with the reason it changed nothing, and log it (never the token)."""
        self.counters.commands_refused += 1
        log.warning("%s: command %s (id %r) refused: %s", self.origin, command, rid, reason)
        reply({"v": PAYLOAD_VERSION, "id": rid, "command": command, "ok": False, "reason": reason,
               "t": round(self._wall_clock(), 3)})

    # ----- answering ---------------------------------------------------------------------

    def _on_record(self, record: dict[str, Any]) -> None:
        """Tie a refusal or a policy event of the step now running to the command it answers (on the control loop)."""
        if not self._pending:
            return
        step = self.engine.status.steps  # the running step increments it when it ends
        kind = record.get("kind")
        for pending in self._pending:
            if pending.after_step != step or pending.refusal is not None:
                continue
            if kind == "refused" and record.get("command") == pending.engine_command:
                pending.refusal = str(record.get("reason", "refused"))
                break
            if (kind == "event" and record.get("what") == pending.expected_event and not pending.detail
                    and (pending.channel is None or record.get("ch") == pending.channel)):
                pending.detail = str(record.get("detail") or record.get("what"))
                break
        if self._wake is not None:
            self._wake()

    def settle(self, final: bool = False) -> None:
        """Answer every command whose control step has run (or that waited too long, or all when ``final``)."""
        if not self._pending:
            return
        steps = self.engine.status.steps
        now = time.monotonic()
        waiting = []
        for p in self._pending:
            if p.refusal is not None:
                self.refuse(p.command, p.request_id, p.refusal, p.reply)
            elif steps > p.after_step:
                result: dict[str, Any] = {"v": PAYLOAD_VERSION, "id": p.request_id, "command": p.command, "ok": True,
                                          "armed": self.engine.state.armed, "detail": p.detail or "no change",
                                          "t": round(self._wall_clock(), 3)}
                if p.channel is not None:
                    result.update(ch=p.channel, mode=self.engine.state.channel(p.channel).mode)
                p.reply(result)
            elif final or now > p.deadline_s:
                self.refuse(p.command, p.request_id,
                            f"not applied: the control loop did not run within {self.command_timeout_s:g} s "
                            "(is the bridge stopping?)", p.reply)
            else:
                waiting.append(p)
        self._pending = waiting
