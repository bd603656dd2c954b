"""The desk's part of a show file: which desk, where, and which JACK port feeds which desk channel.

A show file is one TOML per gig. Its ``[show]``, ``[desk]`` and
``[[channel]]`` tables are read here; the bridge reads its own tables
(``[policy]``, ``[mqtt]``) from the same file (``ailive.bridge.show``).
Written by people under time pressure, so every mistake is reported with the
file, the key, what was expected and what was found.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ProfileError, ShowFileError
from .profile import Profile, get_profile
from .tomlschema import TableReader, read_toml

CHANNEL_MODES = ("auto", "manual", "excluded")


@dataclass(frozen=True)
class DeskAddress:
    """Where the desk is and how it is reached."""

    host: str
    port: int  # the UDP port the desk receives on
    receive_port: int | None = None  # the port this machine hears a desk that sends to a set port (DiGiCo); None: the profile's
    poll_period_s: float | None = None  # query every mapped fader this often; None: the profile's period

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ChannelMap:
    """One tapped input: the JACK port that carries it and the desk channel whose fader it rides."""

    desk_channel: int
    port: str
    name: str
    mode: str = "auto"
    bias_db: float = 0.0
    group: str = ""  # channels sharing a group (a stereo pair) get one gain


@dataclass(frozen=True)
class ShowDesk:
    """What the desk side needs of a show: its name, the desk's profile and address, and the channel map."""

    path: str
    name: str
    profile: Profile
    desk: DeskAddress
    allow_trim: bool
    channels: tuple[ChannelMap, ...]

    @property
    def desk_channels(self) -> list[int]:
        return [c.desk_channel for c in self.channels]

    def with_desk(self, desk: DeskAddress) -> "ShowDesk":
        """The same show pointed at another desk (a simulator, a spare); receive port and poll period are kept unless given."""
        desk = DeskAddress(desk.host, desk.port,
                           self.desk.receive_port if desk.receive_port is None else desk.receive_port,
                           self.desk.poll_period_s if desk.poll_period_s is None else desk.poll_period_s)
        return replace(self, desk=desk)


def split_host_port(text: str, default_port: int, what: str = "address") -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) into host and port, with a clear error naming ``what``."""
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host.strip():
        raise ValueError(f"{what} {text!r} has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{what} {text!r}: port must be 1..65535")
    return host, int(port_text)


def parse_address(text: str, default_port: int) -> DeskAddress:
    """``HOST[:PORT]`` of a desk, with a clear error."""
    return DeskAddress(*split_host_port(text, default_port, "desk address"))


def _parse_channels(top: TableReader, profile: Profile) -> tuple[ChannelMap, ...]:
    readers = top.tables("channel")
    if not readers:
        raise top.fail("channel", "at least one [[channel]] table mapping a JACK port to a desk channel")
    channels: list[ChannelMap] = []
    seen_desk: dict[int, str] = {}
    seen_port: dict[str, str] = {}
    for reader in readers:
        desk_channel = reader.get(
            "desk", int, expected=f"a desk channel 1..{profile.channels} ({profile.name})",
            check=lambda v: 1 <= v <= profile.channels,
        )
        port = reader.get("port", str, expected="a JACK port name such as 'system:capture_1'", check=lambda v: bool(v.strip()))
        if desk_channel in seen_desk:
            raise reader.fail("desk", f"a desk channel not already mapped by {seen_desk[desk_channel]}", desk_channel)
        if port in seen_port:
            raise reader.fail("port", f"a JACK port not already mapped by {seen_port[port]}", port)
        seen_desk[desk_channel] = seen_port[port] = reader.prefix
        channels.append(ChannelMap(
            desk_channel=desk_channel,
            port=port,
            name=reader.get("name", str, f"Ch {desk_channel}"),
            mode=reader.choice("mode", CHANNEL_MODES, "auto"),
            bias_db=reader.number("bias_db", 0.0, low=-40.0, high=40.0),
            group=reader.get("group", str, ""),
        ))
        reader.finish()
    return tuple(channels)


def read_show_file(path: str | Path) -> TableReader:
    """The show file's top table, for each owner to read its own tables from; a file that is no TOML is a :class:`ShowFileError`."""
    return TableReader(read_toml(Path(path), ShowFileError), str(path), "", ShowFileError)


def read_show_desk(top: TableReader, profile_dirs: list[Path] | None = None) -> ShowDesk:
    """``[show]``, ``[desk]`` and ``[[channel]]`` of a show file; every problem is a :class:`ShowFileError` naming the key."""
    path = Path(top.path)
    show_table = top.table("show")
    show_name = path.stem
    if show_table is not None:
        show_name = show_table.get("name", str, show_name, expected="a show name",
                                   check=lambda v: bool(v) and "/" not in v and "+" not in v and "#" not in v)
        show_table.finish()
    desk = top.table("desk", required=True)
    assert desk is not None
    profile_name = desk.get("profile", str, expected="a desk profile name such as 'x32'")
    try:
        profile = get_profile(profile_name, profile_dirs)
    except ProfileError as exc:
        raise desk.fail("profile", f"a known desk profile ({exc})", profile_name) from None
    host = desk.get("host", str, expected="the desk's IP address or host name", check=lambda v: bool(v.strip()))
    port = desk.integer("port", profile.port, low=1, high=65535)
    receive_port = desk.integer("receive_port", profile.receive_port, low=0, high=65535)
    poll_period_s = desk.number("poll_period_s", None, low=0.0 if profile.pushes_hand_moves else 0.01, high=60.0)
    allow_trim = desk.get("allow_trim", bool, False)
    if allow_trim and profile.trim is None:
        raise desk.fail("allow_trim", f"false: {profile.name} has no input trim the bridge can write", True)
    subscribe = desk.get("subscribe", bool, profile.subscribe)
    if not subscribe and (profile.poll_period_s if poll_period_s is None else poll_period_s) <= 0:
        raise desk.fail("poll_period_s", "a period > 0: with subscribe = false only polling follows the desk")
    profile = profile if subscribe == profile.subscribe else replace(profile, subscribe=subscribe)
    desk.finish()
    return ShowDesk(
        path=str(path),
        name=show_name,
        profile=profile,
        desk=DeskAddress(host, port, receive_port, poll_period_s),
        allow_trim=allow_trim,
        channels=_parse_channels(top, profile),
    )
