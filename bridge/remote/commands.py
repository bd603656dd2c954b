"""Remote commands (MQTT, the web surface): one gate, so every way in is checked and answered the same.

A command is a name (``arm``, ``disarm``, ``kill``, ``ch/<n>/mode``) and a
JSON object (``id``, ``token``, ``v``, and ``mode`` for a channel). The gate
refuses anything malformed, unauthorised or unknown with a reason, before the
engine sees it; a valid command becomes a typed command (``control.py``)
submitted to the engine with its origin, as the keyboard's are, and is
answered when the engine resolves its future: after the control step that
applied it, with the policy's verdict. ``docs/mqtt.md`` lists every refusal
and its code.

Everything here is a stranger's input until the token says otherwise: the
payload's size and nesting are bounded before it is parsed, a retained MQTT
message is never acted on, an ``id`` already acted on in this run is refused
as a replay, and refusals are counted and logged at most once a second per
source (``bridge.refusals``). No payload can raise out of :meth:`CommandGate.take`.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Callable, Protocol

from ..control import Arm, Command, Disarm, Kill, Mode, Outcome, SetMode
from ..engine import Engine
from .refusals import RefusalLog, printable, quoted

log = logging.getLogger(__name__)

#: The ``v`` field of every payload; bumped when a field changes meaning.
PAYLOAD_VERSION = 1
#: Commands longer than this are refused unread.
MAX_COMMAND_BYTES = 4096
#: Arrays and objects nested deeper than this are refused unparsed (a command is one flat object).
MAX_NESTING = 8
#: Command ids remembered per run to refuse a replay; the oldest is forgotten beyond this.
REMEMBERED_IDS = 4096
#: A command the control loop has not applied within this long is answered as failed.
COMMAND_TIMEOUT_S = 2.0
#: Commands waiting for the control loop; a flood beyond this is refused, never queued.
MAX_PENDING = 64
#: The command names, as a refusal lists them.
COMMAND_NAMES = "arm, disarm, kill, ch/<n>/mode"

_REQUEST_KEYS = frozenset({"v", "id", "token"})
_ID_MAX_CHARS = 128
_PLAIN_COMMANDS: dict[str, type[Arm] | type[Disarm] | type[Kill]] = {"arm": Arm, "disarm": Disarm, "kill": Kill}

RequestId = str | int | None
Reply = Callable[[dict[str, Any]], None]


class Refused(Exception):
    """A command is refused before it reaches the engine; the message is the reason sent back, ``code`` its short name."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.code = code


RETAINED = ("a retained command is never acted on (it would act again at every reconnect); "
            "publish commands without -r, and clear this one with an empty retained message")


class CommandCounters(Protocol):
    commands_queued: int
    commands_refused: int


@dataclass
class Counters:
    commands_queued: int = 0
    commands_refused: int = 0


@dataclass
class Request:
    """A command that passed the gate's checks, before it is submitted."""

    request_id: RequestId
    command: str  # as asked: arm, disarm, kill, ch/<n>/mode
    build: Callable[[str], Command]  # the typed command, given its origin


@dataclass
class Pending:
    """A command submitted to the engine, waiting for its outcome."""

    request_id: RequestId
    command: str  # as asked
    outcome: asyncio.Future[Outcome]  # resolved by the engine at the step that applied or refused it
    deadline_s: float
    reply: Reply
    channel: int | None = None


# A JSON string, or what is left of an unterminated one (never backtracks: linear in the payload).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting(raw: bytes) -> int:
    """How deep JSON text nests arrays and objects, counted without parsing it (brackets in strings do not count)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    opened = brackets.count(b"[") + brackets.count(b"{")
    if opened <= 1:
        return opened
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)))


def decode(payload: bytes | bytearray | str | None, max_bytes: int = MAX_COMMAND_BYTES,
           max_nesting: int = MAX_NESTING) -> dict[str, Any]:
    """A command's payload as a JSON object, or :class:`Refused` saying what is wrong with it.

    Size and nesting are checked before the parser runs: Python's parser
    recurses, and a few kilobytes of brackets would raise out of it.
    """
    raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload or b"")
    if len(raw) > max_bytes:
        raise Refused(f"payload of {len(raw)} bytes is over the {max_bytes}-byte limit", "too_large")
    depth = nesting(raw)
    if depth > max_nesting:
        raise Refused(f"nested {depth} levels deep, over the limit of {max_nesting}; "
                      "a command is one flat JSON object such as {\"id\": \"1\"}", "too_deep")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused("payload is not UTF-8 text; expected a JSON object such as {\"id\": \"1\"}", "malformed") from None
    except json.JSONDecodeError as exc:
        raise Refused(f"malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                      "expected a JSON object such as {\"id\": \"1\"}", "malformed") from None
    except (ValueError, RecursionError) as exc:  # a number too long to convert; recursion the scan did not foresee
        raise Refused(f"malformed JSON ({type(exc).__name__}); expected a JSON object such as {{\"id\": \"1\"}}",
                      "malformed") from None
    if not isinstance(body, dict):
        raise Refused(f"expected a JSON object, got {type(body).__name__ if body is not None else 'null'}", "malformed")
    return body


def request_id(body: dict[str, Any]) -> RequestId:
    """The ``id`` a client matches answers by: a short string or an integer."""
    value = body.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and len(value) > _ID_MAX_CHARS):
        raise Refused(f"id: expected a string of at most {_ID_MAX_CHARS} characters or an integer", "bad_id")
    return value


def _id_if_any(payload: bytes | bytearray | str | None) -> RequestId:
    """The ``id`` of a payload about to be refused anyway, for the answer; None when it has no readable one."""
    try:
        return request_id(decode(payload))
    except Refused:
        return None


class RecentIds:
    """The ids of the last ``size`` commands acted on in this run, to refuse a command sent again (a replay)."""

    def __init__(self, size: int = REMEMBERED_IDS) -> None:
        self.size = size
        self._ids: OrderedDict[tuple[str, RequestId], None] = OrderedDict()

    @staticmethod
    def _key(rid: RequestId) -> tuple[str, RequestId]:
        return (type(rid).__name__, rid)  # "1" and 1 are different ids

    def __contains__(self, rid: RequestId) -> bool:
        return self._key(rid) in self._ids

    def add(self, rid: RequestId) -> None:
        self._ids[self._key(rid)] = None
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


# One memory of ids per engine, shared by its gates: an id used over MQTT is a replay on the web surface too.
_RECENT_IDS: "weakref.WeakKeyDictionary[Engine, RecentIds]" = weakref.WeakKeyDictionary()


def recent_ids(engine: Engine) -> RecentIds:
    return _RECENT_IDS.setdefault(engine, RecentIds())


class CommandGate:
    """Validates commands from one front end (``origin``), hands them to the engine and answers each.

    ``settle()`` must be called now and then (each front end's own loop does):
    it answers every command whose control step has run, and logs the count
    of refusals held back since a source's last line. ``wake`` is called
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
        self.refusal_log = RefusalLog(log, "commands")
        self._token = token
        self._wake = wake
        self._wall_clock = wall_clock
        self._channels = {c.desk_channel: c for c in engine.show.channels}
        self._pending: list[Pending] = []
        self._recent = recent_ids(engine)

    @property
    def token_required(self) -> bool:
        return bool(self._token)

    @property
    def waiting(self) -> int:
        """Commands handed to the engine and not yet answered."""
        return len(self._pending)

    def authorised(self, given: object) -> bool:
        """Whether ``given`` is the command token (compared in constant time); always, when none is set."""
        if not self._token:
            return True
        return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8", "replace"), self._token.encode())

    # ----- taking a command --------------------------------------------------------------

    def take(self, command: str | None, payload: bytes | bytearray | str | None, reply: Reply, *,
             retained: bool = False, source: str = "") -> None:
        """Validate one command and hand it to the engine, or ``reply`` at once with the reason it is refused.

        ``command`` is the name from the transport (an MQTT topic); ``None``
        reads it from the payload's ``"command"`` key (the web surface).
        ``source`` names the sender in the log (a peer address), for its
        once-a-second limit. Never raises: whatever arrives is answered.
        """
        name = (command or "")[:100]
        rid: RequestId = None
        try:
            if retained:  # never parsed past its id: whatever it holds, it is not acted on
                rid = _id_if_any(payload)
                raise Refused(RETAINED, "retained")
            body = decode(payload, self.max_command_bytes)
            rid = request_id(body)
            if command is None:
                name = self._command_key(body)
            if not self.authorised(body.get("token")):
                raise Refused("unauthorised: this bridge wants the show's command token in \"token\"; "
                              + ("it is missing" if body.get("token") is None else "the one given is wrong"), "unauthorised")
            if "v" in body and (isinstance(body["v"], bool) or body["v"] != PAYLOAD_VERSION):
                raise Refused(f"v: this bridge speaks payload version {PAYLOAD_VERSION}, got {body['v']!r}", "bad_version")
            if rid is not None and rid in self._recent:
                raise Refused(f"replayed: id {rid!r} was already acted on in this run; give each command a new id",
                              "replayed")
            if len(self._pending) >= MAX_PENDING:
                raise Refused(f"busy: {MAX_PENDING} commands are already waiting for the control loop; try again", "busy")
            request = self._parse(name, body, rid)
        except Refused as exc:
            self.refuse(name if command is not None or name else None, rid, str(exc), reply, code=exc.code, source=source)
            return
        except Exception as exc:  # a payload no check foresaw: answered and counted, never out of the gate
            self.refuse(name or None, rid, f"the bridge could not read this command ({type(exc).__name__})", reply,
                        code="internal", source=source)
            return
        self._queue(request, reply)

    def _queue(self, request: Request, reply: Reply) -> None:
        if request.request_id is not None:
            self._recent.add(request.request_id)
        command = request.build(self.origin)
        outcome = self.engine.submit(command)
        channel = command.channel if isinstance(command, SetMode) else None
        self._pending.append(Pending(request.request_id, request.command, outcome,
                                     time.monotonic() + self.command_timeout_s, reply, channel))
        if self._wake is not None:
            wake = self._wake
            outcome.add_done_callback(lambda _: wake())
        self.counters.commands_queued += 1
        log.info("%s: command %s (id %s) queued", self.origin, request.command, quoted(request.request_id))

    @staticmethod
    def _command_key(body: dict[str, Any]) -> str:
        name = body.pop("command", None)
        if not isinstance(name, str) or not name:
            got = "it is missing" if name is None else f"got {name!r}"
            raise Refused(f"command: expected one of {COMMAND_NAMES}; {got}", "unknown_command")
        return name[:100]

    def _parse(self, command: str, body: dict[str, Any], rid: RequestId) -> Request:
        plain = _PLAIN_COMMANDS.get(command)
        if plain is not None:
            self._no_other_keys(body, set())
            return Request(rid, command, plain)
        parts = command.split("/")
        if len(parts) == 3 and parts[0] == "ch" and parts[2] == "mode":
            channel = self._channel(parts[1])
            self._no_other_keys(body, {"mode"})
            asked = body.get("mode")
            if not isinstance(asked, str) or asked not in Mode.__members__.values():
                got = "it is missing" if "mode" not in body else f"got {asked!r}"
                raise Refused(f"mode: expected one of {', '.join(Mode)}; {got}", "bad_mode")
            mode = Mode(asked)
            mapped = self._channels[channel]
            if mapped.mode == Mode.EXCLUDED and mode != Mode.EXCLUDED:
                raise Refused(f"desk channel {channel} ({mapped.name}) is excluded in the show file: it is never "
                              "analysed, so it stays excluded", "excluded")
            return Request(rid, command, lambda origin: SetMode(channel, mode, origin))
        raise Refused(f"unknown command {command!r}; the commands are {COMMAND_NAMES}{self.where}", "unknown_command")

    def _channel(self, text: str) -> int:
        mapped = ", ".join(str(ch) for ch in self._channels)
        if not text.isdigit() or str(int(text)) != text:
            raise Refused(f"channel {text!r}: expected a desk channel number mapped in the show ({mapped})", "bad_channel")
        channel = int(text)
        if channel not in self._channels:
            raise Refused(f"desk channel {channel} is not mapped in show {self.engine.show.name} (mapped: {mapped})",
                          "bad_channel")
        return channel

    @staticmethod
    def _no_other_keys(body: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(body) - _REQUEST_KEYS - allowed)
        if unknown:
            known = ", ".join(sorted(_REQUEST_KEYS | allowed))
            raise Refused(f"unknown key {unknown[0]!r} (known: {known})", "unknown_key")

    def refuse(self, command: str | None, rid: RequestId, reason: str, reply: Reply, *, code: str = "refused",
               source: str = "") -> None:
        """Answer a command with the reason it changed nothing; count it, and log it within the limit (never the token)."""
        self.counters.commands_refused += 1
        who = f"{self.origin} {source}" if source else self.origin
        self.refusal_log.refused(who, code, f"{who}: command {quoted(command)} (id {quoted(rid)}) refused [{code}]: "
                                            f"{printable(reason, 300)}")
        reply({"v": PAYLOAD_VERSION, "id": rid, "command": command, "ok": False, "code": code, "reason": reason,
               "t": round(self._wall_clock(), 3)})

    # ----- answering ---------------------------------------------------------------------

    def settle(self, final: bool = False) -> None:
        """Answer every command whose control step has run (or that waited too long, or all when ``final``)."""
        if self._pending:
            self._answer(final)
        self.refusal_log.flush(final)

    def _answer(self, final: bool) -> None:
        now = time.monotonic()
        waiting = []
        for p in self._pending:
            if p.outcome.done():
                self._reply(p, p.outcome.result())
            elif final or now > p.deadline_s:
                p.outcome.cancel()  # applied later, it is not answered twice
                self.refuse(p.command, p.request_id,
                            f"not applied: the control loop did not run within {self.command_timeout_s:g} s "
                            "(is the bridge stopping?)", p.reply, code="not_applied")
            else:
                waiting.append(p)
        self._pending = waiting

    def _reply(self, p: Pending, outcome: Outcome) -> None:
        if not outcome.applied:
            self.refuse(p.command, p.request_id, outcome.detail, p.reply, code="policy")
            return
        result: dict[str, Any] = {"v": PAYLOAD_VERSION, "id": p.request_id, "command": p.command, "ok": True,
                                  "armed": outcome.armed, "detail": outcome.detail, "t": round(self._wall_clock(), 3)}
        if p.channel is not None and outcome.mode is not None:
            result.update(ch=p.channel, mode=str(outcome.mode))
        p.reply(result)
