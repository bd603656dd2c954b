"""The desk profile as data: the typed, frozen description the driver and the simulator read.

:mod:`.profile_parser` builds it from a TOML table; :mod:`.profile` finds
the files and resolves ``extends``. What each setting means is told in
:mod:`.profile`'s docstring and docs/profiles.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ProfileError
from .faderlaw import FaderLaw, LinearDbLaw

SCHEMA_VERSION = 1
OSC_TYPES = ("i", "f", "s")
#: Fields a desk may put in the answer to a query, with their OSC types: the
#: value itself (the parameter's own type), its text as the desk shows it, and
#: its 0..1 position (WING answers ``/ch/N/fdr`` with ``,sff``: text, position, dB).
REPLY_FIELDS = {"text": "s", "position": "f", "value": ""}
#: What a desk does when one more client subscribes than it takes.
TAKEOVER_RULES = ("refuse", "last_wins")
#: How a reported model name is compared with the profile's ``models``.
MODEL_MATCH = ("exact", "prefix")
#: The curve of the 0..1 position a dB desk reports beside the dB: evenly spread over the law's
#: steps, or the X32's piecewise curve (which public WING clients apply to the WING's fader).
POSITION_LAWS = ("steps", "x32")
#: What the int of a meter request means: a time factor (X32: updates every 50 ms x factor), or
#: which meter set (X-Air: a channel id for the per-channel banks; updates every 50 ms).
METER_REQUEST_ARGS = ("time_factor", "meter_id")
#: Optional tables a profile may set to ``false``: the desk has no such thing.
REMOVABLE_TABLES = ("trim", "meters", "subscription", "nodes")
#: Where a profile was found: shipped with the bridge, the user's config folder, a named folder.


def _render(template: str, **values: int) -> str:
    return template.format(**values)


@dataclass(frozen=True)
class ChannelParam:
    """One per-channel parameter: an address template with ``{ch}`` and its OSC type tag."""

    address: str
    type: str
    reply: tuple[str, ...] = ("value",)  # fields of the answer to a query (REPLY_FIELDS), in order

    def address_of(self, channel: int) -> str:
        return _render(self.address, ch=channel)

    @property
    def reply_tags(self) -> str:
        """The OSC type tags of the answer to a query."""
        return "".join(REPLY_FIELDS[f] or self.type for f in self.reply)

    def value_in(self, tags: str, args: tuple[Any, ...]) -> Any | None:
        """The value a desk message carries: a plain ``,<type>`` push or set, or a query answer shaped as ``reply``.

        None when the message has neither shape (a wrong type tag is never guessed at).
        """
        if tags == self.type and len(args) == 1:
            return args[0]
        if len(self.reply) > 1 and tags == self.reply_tags:
            return args[self.reply.index("value")]
        return None


@dataclass(frozen=True)
class FaderParam(ChannelParam):
    law: FaderLaw = field(default=None)  # type: ignore[assignment]
    position_law: str = "steps"  # the curve of the 0..1 position in a query's answer (POSITION_LAWS)


@dataclass(frozen=True)
class MuteParam(ChannelParam):
    muted_value: int | float = 1


@dataclass(frozen=True)
class NameParam(ChannelParam):
    max_length: int = 12


@dataclass(frozen=True)
class TrimParam(ChannelParam):
    law: LinearDbLaw = field(default=None)  # type: ignore[assignment]


@dataclass(frozen=True)
class Identify:
    queries: tuple[str, ...]  # addresses as the desk answers them (the profile's query form is applied on sending)
    model_arg: int
    name_arg: int | None  # None: the desk does not report it
    firmware_arg: int | None
    probe: str
    split: str = ""  # the answer is one string of fields joined by this (WING: ","); "": one field per argument
    model_match: str = "exact"  # exact: the model is one of ``models``; prefix: it starts with one of them

    def fields(self, args: tuple[Any, ...]) -> list[str]:
        """The identification fields of the answer to the first query."""
        if self.split:
            return str(args[0]).split(self.split) if args and isinstance(args[0], str) else []
        return [str(a) for a in args]

    @property
    def needed_fields(self) -> int:
        return 1 + max(a for a in (self.model_arg, self.name_arg, self.firmware_arg) if a is not None)


@dataclass(frozen=True)
class Subscription:
    address: str
    renew_s: float
    lease_s: float
    max_clients: int
    echoes_own_writes: bool
    takeover: str = "refuse"  # one client too many: refuse it (X32), or it takes over from the oldest (WING)


@dataclass(frozen=True)
class Feedback:
    """A desk without a subscription: it sends every change to its one configured device, and nothing expires."""

    clients: int  # devices that get feedback at once; others get none (DiGiCo: 1)
    echoes_own_writes: bool


@dataclass(frozen=True)
class Meters:
    request: str
    renew: str
    bank: str
    decoder: str
    count: int
    lease_s: float
    request_arg: str = "time_factor"  # what the request's int means (METER_REQUEST_ARGS)


@dataclass(frozen=True)
class Node:
    """A read-only desk parameter a simulator holds (main fader, DCA, head-amp, links)."""

    key: str
    address: str
    type: str
    default: int | float | str
    count: int = 1
    start: int = 1
    pair: bool = False

    def addresses(self) -> list[str]:
        if "{" not in self.address:
            return [self.address]
        if self.pair:
            return [_render(self.address, n=2 * i - 1, m=2 * i) for i in range(self.start, self.start + self.count)]
        return [_render(self.address, n=i) for i in range(self.start, self.start + self.count)]


@dataclass(frozen=True)
class Reply:
    type: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class SimSettings:
    model: str
    firmware: str
    desk_name: str
    replies: dict[str, Reply]
    serial: str = ""
    device_timeout_s: float = 5.0  # a feedback desk's device that said nothing this long frees its place
    # How long an engineer's hand stays on a fader after moving it. Touch-sensitive
    # motor faders do not follow remote writes while held; the desk keeps the hand's level.
    hand_hold_s: float = 0.0


@dataclass(frozen=True)
class Profile:
    """A desk family: everything the OSC driver and simulator need to speak its dialect."""

    name: str
    vendor: str
    description: str
    transport: str
    port: int
    channels: int
    models: tuple[str, ...]
    replies_to_sender: bool
    max_writes_per_s: float
    liveness_timeout_s: float
    poll_period_s: float  # query every mapped fader this often (0: never); catches moves pushes miss
    identify: Identify
    subscription: Subscription | None
    fader: FaderParam
    mute: MuteParam
    name_param: NameParam
    trim: TrimParam | None
    meters: Meters | None
    nodes: tuple[Node, ...]
    sim: SimSettings
    source: str
    query_suffix: str = ""  # a query is the address plus this (DiGiCo: "/?"); the answer carries the bare address
    receive_port: int | None = None  # desks that answer to a configured port, not the sender's: the default one
    pushes_hand_moves: bool = True  # False: an engineer's fader move is never pushed; only polling finds it
    feedback: Feedback | None = None
    source_kind: str = "built-in"  # where it was found on the search path: built-in, user, dir (SOURCE_KINDS)
    model_prefixes: tuple[str, ...] = ()  # a reported model starting with one of these is of the family
    subscribe: bool = True  # False: never subscribe; polling alone follows the desk
    max_queries_per_s: float = 0.0  # the most queries a second the driver sends (0: not paced)

    @property
    def law(self) -> FaderLaw:
        return self.fader.law

    @property
    def echoes_own_writes(self) -> bool:
        """Whether the desk sends a client's own writes back to it (the driver then matches them)."""
        if self.subscription is not None:
            return self.subscription.echoes_own_writes
        return self.feedback is not None and self.feedback.echoes_own_writes

    def query_of(self, address: str) -> str:
        """The message that asks the desk for ``address``'s value."""
        return address + self.query_suffix

    def queried(self, address: str) -> str | None:
        """The address a query message asks about, or None when it is not in the query form."""
        if not self.query_suffix:
            return address
        if address.endswith(self.query_suffix) and len(address) > len(self.query_suffix):
            return address[: -len(self.query_suffix)]
        return None

    @property
    def subscribes(self) -> bool:
        """Whether the driver asks the desk for pushes (a subscription it has, and the profile allows)."""
        return self.subscribe and self.subscription is not None

    def is_model(self, model: str) -> bool:
        """Whether a reported model name belongs to this desk family: one of ``models``, or starting
        with one of ``model_prefixes`` (all of ``models`` with ``identify.model_match = "prefix"``).
        Case is ignored: firmwares spell one model differently (``WING-RACK``, ``wing-rack``)."""
        name = model.strip().lower()
        prefixes = self.model_prefixes + (self.models if self.identify.model_match == "prefix" else ())
        return name in (m.lower() for m in self.models) or any(name.startswith(p.lower()) for p in prefixes)

    def write_addresses(self, channels: list[int] | range, *, allow_trim: bool = False) -> frozenset[str]:
        """Every address the bridge may ever send a value to: faders (and trims when allowed).

        Trim allowed on a desk without one is an error, never a silent no-op.
        """
        addresses = {self.fader.address_of(ch) for ch in channels}
        if allow_trim:
            self.check_trim()
            assert self.trim is not None
            addresses |= {self.trim.address_of(ch) for ch in channels}
        return frozenset(addresses)

    def check_trim(self) -> None:
        """Raise when this desk has no input trim the bridge could write."""
        if self.trim is None:
            raise ProfileError(f"{self.name} has no input trim the bridge can write (its profile has no [trim]): "
                               f"set allow_trim = false")

    def check_channel(self, channel: int) -> None:
        if not 1 <= channel <= self.channels:
            raise ProfileError(f"{self.name} has channels 1..{self.channels}, not {channel}")
