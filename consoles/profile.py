"""Desk profiles: a desk family described as data, read from TOML.

A profile holds everything the generic OSC driver and simulator need:
address templates, type tags, the fader law, identification, subscription
and its lease, write-rate limit. Quirks are named settings, never name checks:
``query_suffix`` (a query is the address plus it: DiGiCo "/?"), ``reply`` of a
channel parameter (the fields of a query's answer: WING's fader ``,sff``),
``identify.split`` (one comma-joined identity string), ``models`` and
``model_prefixes`` (a family of model names, compared without case),
``replies_to_sender`` with
``receive_port`` (a desk that sends to a configured port), ``subscription.takeover``
(one subscriber console-wide, the last requester takes it), ``[feedback]``
(no subscription: one device gets everything, nothing expires),
``echoes_own_writes``, ``pushes_hand_moves`` with ``poll_period_s``, ``subscribe``
(false: poll only, leaving a one-subscriber desk's subscription to another app),
``max_queries_per_s`` (a desk that wants its queries paced), ``[fader] position_law``
(the curve of the 0..1 position a dB desk reports), ``[meters] request_arg``. An
optional table set to ``false`` says the desk has none (``trim = false`` in a profile
that extends one with a trim).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ProfileError, ProfileSchemaError
from .faderlaw import FaderLaw, LinearDbLaw, make_law
from .tomlschema import TableReader, read_toml

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
SOURCE_KINDS = ("built-in", "user", "dir")
#: os.pathsep-separated folders of profiles, searched after the user's config folder.
PROFILES_ENV = "AILIVE_PROFILES"


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


def _channel_template(reader: TableReader, key: str) -> str:
    return reader.get(key, str, expected="an OSC address template containing {ch}", check=lambda v: v.startswith("/") and "{ch" in v)


def _osc_type(reader: TableReader, key: str = "type") -> str:
    return reader.choice(key, OSC_TYPES)


def _parse_fader(reader: TableReader) -> FaderParam:
    address = _channel_template(reader, "address")
    osc_type = reader.choice("type", ("f",))
    law_name = reader.choice("law", ("x32", "db"))
    position_law = "steps"
    if law_name == "x32":
        law = make_law("x32", steps=reader.integer("steps", 1024, low=2, high=1 << 20),
                       rule=reader.choice("quantize", ("int_1023_5", "round"), "int_1023_5"))
    else:
        law = make_law("db", min_db=reader.number("min_db"), max_db=reader.number("max_db"),
                       step_db=reader.number("step_db", 0.1, low=1e-6))
        position_law = reader.choice("position_law", POSITION_LAWS, "steps")
    reply = _reply_fields(reader)
    reader.finish()
    return FaderParam(address, osc_type, reply, law=law, position_law=position_law)


def _reply_fields(reader: TableReader) -> tuple[str, ...]:
    """``reply``: the fields of a query's answer; exactly one of them is the value."""
    fields = reader.get("reply", list, ["value"], expected="a list of " + ", ".join(REPLY_FIELDS) + " holding 'value' once",
                        check=lambda v: all(f in REPLY_FIELDS for f in v) and v.count("value") == 1)
    return tuple(fields)


def _parse_identify(reader: TableReader) -> Identify:
    queries = reader.get("queries", list, expected="a list of OSC addresses",
                         check=lambda v: bool(v) and all(isinstance(q, str) and q.startswith("/") for q in v))
    result = Identify(
        queries=tuple(queries),
        model_arg=reader.integer("model_arg", low=0, high=16),
        name_arg=reader.integer("name_arg", None, low=0, high=16),
        firmware_arg=reader.integer("firmware_arg", None, low=0, high=16),
        probe=reader.get("probe", str, queries[0], check=lambda v: v.startswith("/"), expected="an OSC address"),
        split=reader.get("split", str, ""),
        model_match=reader.choice("model_match", MODEL_MATCH, "exact"),
    )
    reader.finish()
    return result


def _parse_subscription(reader: TableReader) -> Subscription:
    result = Subscription(
        address=reader.get("address", str, check=lambda v: v.startswith("/"), expected="an OSC address"),
        renew_s=reader.number("renew_s", low=0.1),
        lease_s=reader.number("lease_s", low=0.1),
        max_clients=reader.integer("max_clients", low=1, high=1024),
        echoes_own_writes=reader.get("echoes_own_writes", bool, False),
        takeover=reader.choice("takeover", TAKEOVER_RULES, "refuse"),
    )
    if result.renew_s >= result.lease_s:
        raise reader.fail("renew_s", f"a period shorter than lease_s ({result.lease_s:g})", result.renew_s)
    reader.finish()
    return result


def _parse_feedback(reader: TableReader) -> Feedback:
    result = Feedback(
        clients=reader.integer("clients", 1, low=1, high=1024),
        echoes_own_writes=reader.get("echoes_own_writes", bool, False),
    )
    reader.finish()
    return result


def _parse_nodes(reader: TableReader) -> tuple[Node, ...]:
    nodes = []
    for key in list(reader.data):
        item = reader.table(key, required=True)
        assert item is not None
        osc_type = _osc_type(item)
        kinds = {"i": int, "f": float, "s": str}[osc_type]
        nodes.append(Node(
            key=key,
            address=item.get("address", str, check=lambda v: v.startswith("/"), expected="an OSC address"),
            type=osc_type,
            default=item.get("default", kinds),
            count=item.integer("count", 1, low=1, high=1024),
            start=item.integer("start", 1, low=0),
            pair=item.get("pair", bool, False),
        ))
        item.finish()
    reader.finish()
    return tuple(nodes)


def _parse_sim(reader: TableReader | None) -> SimSettings:
    if reader is None:
        return SimSettings(model="", firmware="", desk_name="ailive-sim", replies={})
    replies = {}
    replies_reader = reader.table("replies")
    if replies_reader is not None:
        for address in list(replies_reader.data):
            item = replies_reader.table(address, required=True)
            assert item is not None
            tags = item.get("type", str, check=lambda v: all(t in OSC_TYPES for t in v), expected="OSC type tags (i, f, s)")
            args = item.get("args", list, check=lambda v: len(v) == len(tags) and all(isinstance(a, str) for a in v),
                            expected=f"a list of {len(tags)} strings")
            replies[address] = Reply(tags, tuple(args))
            item.finish()
        replies_reader.finish()
    result = SimSettings(
        model=reader.get("model", str),
        firmware=reader.get("firmware", str, ""),
        desk_name=reader.get("desk_name", str, "ailive-sim"),
        replies=replies,
        serial=reader.get("serial", str, ""),
        device_timeout_s=reader.number("device_timeout_s", 5.0, low=0.1, high=3600.0),
        hand_hold_s=reader.number("hand_hold_s", 0.0, low=0.0, high=60.0),
    )
    reader.finish()
    return result


def parse_profile(data: dict[str, Any], path: str) -> Profile:
    """Validate a merged profile table into a :class:`Profile`."""
    top = TableReader(data, path, "", ProfileSchemaError)
    schema = top.integer("schema", low=1, high=SCHEMA_VERSION)
    top.get("extends", str, "")
    assert schema == SCHEMA_VERSION
    channels = top.integer("channels", low=1, high=256)
    identify = top.table("identify", required=True)
    subscription = _optional_table(top, "subscription")
    fader = top.table("fader", required=True)
    mute = top.table("mute", required=True)
    name_table = top.table("channel_name", required=True)
    trim = _optional_table(top, "trim")
    meters = _optional_table(top, "meters")
    nodes = _optional_table(top, "nodes")
    feedback = top.table("feedback")
    assert identify and fader and mute and name_table
    if subscription is not None and feedback is not None:
        raise top.fail("feedback", "either [subscription] or [feedback], not both (a desk feeds back one way)")
    profile = Profile(
        name=top.get("name", str, check=lambda v: v.isidentifier() or v.replace("-", "_").isidentifier(),
                      expected="a short name of letters, digits, - and _"),
        vendor=top.get("vendor", str),
        description=top.get("description", str, ""),
        transport=top.choice("transport", ("osc-udp",)),
        port=top.integer("port", low=1, high=65535),
        channels=channels,
        models=tuple(top.get("models", list, expected="a list of model names",
                             check=lambda v: bool(v) and all(isinstance(m, str) for m in v))),
        model_prefixes=tuple(top.get("model_prefixes", list, [], expected="a list of model name prefixes",
                                     check=lambda v: all(isinstance(m, str) and m for m in v))),
        subscribe=top.get("subscribe", bool, True),
        max_queries_per_s=top.number("max_queries_per_s", 0.0, low=0.0, high=10000.0),
        replies_to_sender=top.get("replies_to_sender", bool, True),
        max_writes_per_s=top.number("max_writes_per_s", 20.0, low=0.1, high=1000.0),
        liveness_timeout_s=top.number("liveness_timeout_s", 3.0, low=0.2, high=60.0),
        poll_period_s=top.number("poll_period_s", 0.0, low=0.0, high=60.0),
        identify=_parse_identify(identify),
        subscription=_parse_subscription(subscription) if subscription else None,
        fader=_parse_fader(fader),
        mute=_parse_mute(mute),
        name_param=_parse_name(name_table),
        trim=_parse_trim(trim) if trim else None,
        meters=_parse_meters(meters) if meters else None,
        nodes=_parse_nodes(nodes) if nodes else (),
        sim=_parse_sim(top.table("sim")),
        source=path,
        query_suffix=top.get("query_suffix", str, "", expected="an address suffix starting with '/' (or empty)",
                             check=lambda v: v == "" or (v.startswith("/") and len(v) > 1)),
        receive_port=top.integer("receive_port", None, low=1, high=65535),
        pushes_hand_moves=top.get("pushes_hand_moves", bool, True),
        feedback=_parse_feedback(feedback) if feedback else None,
    )
    if not profile.replies_to_sender and profile.receive_port is None:
        raise top.fail("receive_port", "the port the desk sends to (the desk does not answer to the sender's port)")
    if not profile.pushes_hand_moves and profile.poll_period_s <= 0:
        raise top.fail("poll_period_s", "a period > 0: the desk does not push hand moves, only polling finds them",
                       profile.poll_period_s)
    if not profile.subscribe and profile.poll_period_s <= 0:
        raise top.fail("poll_period_s", "a period > 0: with subscribe = false only polling follows the desk",
                       profile.poll_period_s)
    top.finish()
    return profile


def _optional_table(top: TableReader, name: str) -> TableReader | None:
    """An optional table, or None when it is absent or ``false`` (the desk has no such thing)."""
    if top.data.get(name) is False:
        top.get(name, bool)
        return None
    return top.table(name)


def _parse_mute(reader: TableReader) -> MuteParam:
    osc_type = reader.choice("type", ("i", "f"))
    result = MuteParam(_channel_template(reader, "address"), osc_type, _reply_fields(reader),
                       muted_value=reader.get("muted_value", (int, float), 1))
    reader.finish()
    return result


def _parse_name(reader: TableReader) -> NameParam:
    result = NameParam(_channel_template(reader, "address"), reader.choice("type", ("s",)), _reply_fields(reader),
                       max_length=reader.integer("max_length", 12, low=1, high=256))
    reader.finish()
    return result


def _parse_trim(reader: TableReader) -> TrimParam:
    address = _channel_template(reader, "address")
    osc_type = reader.choice("type", ("f",))
    reader.choice("law", ("linear",))
    law = LinearDbLaw(reader.number("min_db"), reader.number("max_db"), reader.number("step_db", low=1e-6))
    reader.finish()
    return TrimParam(address, osc_type, law=law)


def _parse_meters(reader: TableReader) -> Meters:
    result = Meters(
        request=reader.get("request", str),
        renew=reader.get("renew", str),
        bank=reader.get("bank", str),
        decoder=reader.choice("decoder", ("x32_blob", "xair_int16")),
        count=reader.integer("count", low=1, high=4096),
        lease_s=reader.number("lease_s", 10.0, low=0.5),
        request_arg=reader.choice("request_arg", METER_REQUEST_ARGS, "time_factor"),
    )
    reader.finish()
    return result


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child keys win; tables merge key by key so a profile states only what differs."""
    merged = dict(base)
    for key, value in child.items():
        if value is False and key in REMOVABLE_TABLES:  # the child has none of what its parent has
            merged[key] = False
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def builtin_profile_dir() -> Path:
    return Path(str(resources.files("ailive.consoles") / "profiles"))


def user_profile_dir() -> Path:
    """``$XDG_CONFIG_HOME/ailive/profiles`` (default ``~/.config/ailive/profiles``)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "ailive" / "profiles"


def profile_search_path(extra_dirs: list[Path] | None = None) -> list[tuple[str, Path]]:
    """Folders searched for profiles, in order, each with its source kind; later ones override earlier ones by name.

    Built-in, then the user's config folder, then ``$AILIVE_PROFILES`` (os.pathsep-separated), then ``extra_dirs``
    (``--profiles DIR``). A folder that does not exist holds no profiles.
    """
    path = [("built-in", builtin_profile_dir()), ("user", user_profile_dir())]
    path += [("dir", Path(d)) for d in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if d]
    path += [("dir", Path(d)) for d in extra_dirs or []]
    return path


#: name -> (raw table, file, source kind)
RawProfiles = dict[str, tuple[dict[str, Any], str, str]]


def _read_raw(path: Path) -> tuple[str, dict[str, Any]]:
    data = read_toml(path, ProfileSchemaError)
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise ProfileSchemaError(str(path), "name", "a string", name)
    return name, data


def _add_files(raw: RawProfiles, files: list[Path], kind: str) -> None:
    """Add profile files; two files with one name in one folder are an error naming both."""
    seen: dict[tuple[Path, str], Path] = {}
    for path in files:
        name, data = _read_raw(path)
        key = (path.resolve().parent, name)
        if key in seen:
            raise ProfileError(f"two profiles named {name!r} in one folder: {seen[key]} and {path}")
        seen[key] = path
        raw[name] = (data, str(path), kind)


def _raw_profiles(dirs: list[tuple[str, Path]]) -> RawProfiles:
    raw: RawProfiles = {}
    for kind, directory in dirs:
        if directory.is_dir():
            _add_files(raw, sorted(directory.glob("*.toml")), kind)
    return raw


def _resolve(name: str, raw: RawProfiles, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in chain:
        raise ProfileError(f"{raw[chain[0]][1]}: profile {chain[0]!r}: 'extends' forms a cycle: "
                           f"{' -> '.join(chain + (name,))}")
    data, path, _ = raw[name]
    parent = data.get("extends")
    if not parent:
        return data
    if parent not in raw:
        raise ProfileSchemaError(path, "extends", "the name of a known profile (" + ", ".join(sorted(raw)) + ")", parent)
    merged = _merge(_resolve(parent, raw, chain + (name,)), {k: v for k, v in data.items() if k != "extends"})
    return {k: v for k, v in merged.items() if not (v is False and k in REMOVABLE_TABLES)}


def _build(name: str, raw: RawProfiles) -> Profile:
    data, path, kind = raw[name]
    profile = parse_profile(_resolve(name, raw), path)
    return profile if kind == "built-in" else _with_kind(profile, kind)


def _with_kind(profile: Profile, kind: str) -> Profile:
    from dataclasses import replace

    return replace(profile, source_kind=kind)


def load_profiles(extra_dirs: list[Path] | None = None) -> dict[str, Profile]:
    """All profiles by name along :func:`profile_search_path`; later folders override earlier ones by name."""
    raw = _raw_profiles(profile_search_path(extra_dirs))
    return {name: _build(name, raw) for name in sorted(raw)}


def get_profile(name: str, extra_dirs: list[Path] | None = None) -> Profile:
    """One profile by name, or a clear error listing the known ones."""
    profiles = load_profiles(extra_dirs)
    try:
        return profiles[name] if name in profiles else profiles[name.lower()]
    except KeyError:
        raise ProfileError(f"unknown desk {name!r}; known desks: {', '.join(sorted(profiles))}") from None


def load_profile_files(files: list[Path], extra_dirs: list[Path] | None = None) -> list[tuple[Path, Profile | Exception]]:
    """Validate profile files against the search path (they may extend any known profile, or each other).

    Returns each file with its profile, or the :class:`ProfileError` that says what is wrong with it.
    """
    raw = _raw_profiles(profile_search_path(extra_dirs))
    results: list[tuple[Path, Profile | Exception]] = []
    named: list[tuple[Path, str]] = []
    seen: dict[tuple[Path, str], Path] = {}
    for path in files:
        try:
            name, data = _read_raw(path)
            key = (path.resolve().parent, name)
            if key in seen:
                raise ProfileError(f"two profiles named {name!r} in one folder: {seen[key]} and {path}")
            seen[key] = path
        except ProfileError as exc:
            results.append((path, exc))
            continue
        raw[name] = (data, str(path), "dir")
        named.append((path, name))
    for path, name in named:
        try:
            if raw[name][1] != str(path):
                raise ProfileError(f"{path}: its name {name!r} is taken by {raw[name][1]}")
            results.append((path, _build(name, raw)))
        except ProfileError as exc:
            results.append((path, exc))
    order = {p: i for i, p in enumerate(files)}
    return sorted(results, key=lambda r: order[r[0]])


def load_profile_file(path: Path, extra_dirs: list[Path] | None = None) -> Profile:
    """One profile file, resolved against the search path; raises its :class:`ProfileError`."""
    [(_, result)] = load_profile_files([path], extra_dirs)
    if isinstance(result, Exception):
        raise result
    return result


def resolved_table(name: str, extra_dirs: list[Path] | None = None) -> dict[str, Any]:
    """The fully merged TOML table of a profile (``extends`` applied and dropped), validated."""
    raw = _raw_profiles(profile_search_path(extra_dirs))
    if name not in raw:
        get_profile(name, extra_dirs)  # raises the error listing known desks
        name = name.lower()
    _build(name, raw)
    return _resolve(name, raw)


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "-_" for c in key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ("-" if value < 0 else "+") + "inf" if math.isinf(value) else "nan"
        return repr(value)
    if isinstance(value, str):
        out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{out}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A profile table as TOML text: plain keys first, then one ``[section]`` per table (nested ones inline)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
            lines += ["", f"[{name}]", dump_toml(value, name).rstrip("\n")]
    return "\n".join(line for line in lines) + "\n"
