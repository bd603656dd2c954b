"""Desk profiles: a desk family described as data, read from TOML.

A profile holds everything the generic OSC driver and simulator need:
address templates, type tags, the fader law, identification, subscription
and its lease, write-rate limit. Quirks are named settings, never name checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ProfileError, ProfileSchemaError
from .faderlaw import FaderLaw, LinearDbLaw, make_law
from .tomlschema import TableReader, read_toml

SCHEMA_VERSION = 1
OSC_TYPES = ("i", "f", "s")


def _render(template: str, **values: int) -> str:
    return template.format(**values)


@dataclass(frozen=True)
class ChannelParam:
    """One per-channel parameter: an address template with ``{ch}`` and its OSC type tag."""

    address: str
    type: str

    def address_of(self, channel: int) -> str:
        return _render(self.address, ch=channel)


@dataclass(frozen=True)
class FaderParam(ChannelParam):
    law: FaderLaw = field(default=None)  # type: ignore[assignment]


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
    queries: tuple[str, ...]
    model_arg: int
    name_arg: int
    firmware_arg: int
    probe: str


@dataclass(frozen=True)
class Subscription:
    address: str
    renew_s: float
    lease_s: float
    max_clients: int
    echoes_own_writes: bool


@dataclass(frozen=True)
class Meters:
    request: str
    renew: str
    bank: str
    decoder: str
    count: int
    lease_s: float


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

    @property
    def law(self) -> FaderLaw:
        return self.fader.law

    def write_addresses(self, channels: list[int] | range, *, allow_trim: bool = False) -> frozenset[str]:
        """Every address the bridge may ever send a value to: faders (and trims when allowed)."""
        addresses = {self.fader.address_of(ch) for ch in channels}
        if allow_trim and self.trim is not None:
            addresses |= {self.trim.address_of(ch) for ch in channels}
        return frozenset(addresses)

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
    if law_name == "x32":
        law = make_law("x32", steps=reader.integer("steps", 1024, low=2, high=1 << 20),
                       rule=reader.choice("quantize", ("int_1023_5", "round"), "int_1023_5"))
    else:
        law = make_law("db", min_db=reader.number("min_db"), max_db=reader.number("max_db"),
                       step_db=reader.number("step_db", 0.1, low=1e-6))
    reader.finish()
    return FaderParam(address, osc_type, law)


def _parse_identify(reader: TableReader) -> Identify:
    queries = reader.get("queries", list, expected="a list of OSC addresses",
                         check=lambda v: bool(v) and all(isinstance(q, str) and q.startswith("/") for q in v))
    result = Identify(
        queries=tuple(queries),
        model_arg=reader.integer("model_arg", low=0, high=16),
        name_arg=reader.integer("name_arg", low=0, high=16),
        firmware_arg=reader.integer("firmware_arg", low=0, high=16),
        probe=reader.get("probe", str, queries[0]),
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
    )
    if result.renew_s >= result.lease_s:
        raise reader.fail("renew_s", f"a period shorter than lease_s ({result.lease_s:g})", result.renew_s)
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
    subscription = top.table("subscription")
    fader = top.table("fader", required=True)
    mute = top.table("mute", required=True)
    name_table = top.table("channel_name", required=True)
    trim = top.table("trim")
    meters = top.table("meters")
    nodes = top.table("nodes")
    assert identify and fader and mute and name_table
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
    )
    top.finish()
    return profile


def _parse_mute(reader: TableReader) -> MuteParam:
    osc_type = reader.choice("type", ("i", "f"))
    result = MuteParam(_channel_template(reader, "address"), osc_type, reader.get("muted_value", (int, float), 1))
    reader.finish()
    return result


def _parse_name(reader: TableReader) -> NameParam:
    result = NameParam(_channel_template(reader, "address"), reader.choice("type", ("s",)),
                       reader.integer("max_length", 12, low=1, high=256))
    reader.finish()
    return result


def _parse_trim(reader: TableReader) -> TrimParam:
    address = _channel_template(reader, "address")
    osc_type = reader.choice("type", ("f",))
    reader.choice("law", ("linear",))
    law = LinearDbLaw(reader.number("min_db"), reader.number("max_db"), reader.number("step_db", low=1e-6))
    reader.finish()
    return TrimParam(address, osc_type, law)


def _parse_meters(reader: TableReader) -> Meters:
    result = Meters(
        request=reader.get("request", str),
        renew=reader.get("renew", str),
        bank=reader.get("bank", str),
        decoder=reader.choice("decoder", ("x32_blob", "xair_int16")),
        count=reader.integer("count", low=1, high=4096),
        lease_s=reader.number("lease_s", 10.0, low=0.5),
    )
    reader.finish()
    return result


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child keys win; tables merge key by key so a profile states only what differs."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def builtin_profile_dir() -> Path:
    return Path(str(resources.files("ailive.consoles") / "profiles"))


def _raw_profiles(dirs: list[Path]) -> dict[str, tuple[dict[str, Any], str]]:
    raw: dict[str, tuple[dict[str, Any], str]] = {}
    for directory in dirs:
        for path in sorted(directory.glob("*.toml")):
            data = read_toml(path, ProfileSchemaError)
            name = data.get("name", path.stem)
            if not isinstance(name, str):
                raise ProfileSchemaError(str(path), "name", "a string", name)
            raw[name] = (data, str(path))
    return raw


def _resolve(name: str, raw: dict[str, tuple[dict[str, Any], str]], chain: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in chain:
        raise ProfileError(f"profile {chain[0]!r}: 'extends' forms a cycle: {' -> '.join(chain + (name,))}")
    data, path = raw[name]
    parent = data.get("extends")
    if not parent:
        return data
    if parent not in raw:
        raise ProfileSchemaError(path, "extends", "the name of a known profile (" + ", ".join(sorted(raw)) + ")", parent)
    return _merge(_resolve(parent, raw, chain + (name,)), {k: v for k, v in data.items() if k != "extends"})


def load_profiles(extra_dirs: list[Path] | None = None) -> dict[str, Profile]:
    """All profiles by name: built-in first, later directories override by name."""
    raw = _raw_profiles([builtin_profile_dir(), *(extra_dirs or [])])
    return {name: parse_profile(_resolve(name, raw), raw[name][1]) for name in sorted(raw)}


def get_profile(name: str, extra_dirs: list[Path] | None = None) -> Profile:
    """One profile by name, or a clear error listing the known ones."""
    profiles = load_profiles(extra_dirs)
    try:
        return profiles[name.lower()]
    except KeyError:
        raise ProfileError(f"unknown desk {name!r}; known desks: {', '.join(sorted(profiles))}") from None
