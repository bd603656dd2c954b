"""Show files: one TOML per gig saying which desk, which JACK port feeds which channel, and the policy numbers.

Written by people under time pressure, so every mistake is reported with the
file, the key, what was expected and what was found.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ProfileError, ShowFileError
from .profile import Profile, get_profile
from .tomlschema import TableReader, read_toml

CHANNEL_MODES = ("auto", "manual", "excluded")
MAPPINGS = ("model", "keep")


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
class PolicySettings:
    """The safety policy's numbers; defaults are the safe ones."""

    mapping: str = "model"  # model: fader = gain + bias; keep: bias learned so the armed balance holds
    window_db: float = 6.0  # furthest a fader moves from its arm-time position
    ceiling_db: float = 5.0  # no fader ever goes above this
    total_gain_cap_db: float = 3.0  # sum of linear gains vs. reference: feedback protection
    slew_up_db_per_s: float = 3.0
    slew_down_db_per_s: float = 6.0
    override_hold_s: float = 10.0  # an engineer's hand stops writes for this long
    after_override: str = "auto"  # auto: resume with the engineer's taste kept; manual: stay hands-off
    silence_db: float = -60.0  # below this input level a channel holds its fader
    stale_audio_s: float = 0.25  # no audio for this long holds every fader
    max_writes_per_s: float = 20.0  # per fader
    deadband_db: float = 0.5  # a fader starts moving only when its target is this far away
    min_step_db: float = 0.3  # smallest move sent while riding (the last step to the target may be smaller)
    settle_s: float = 3.0  # mapping = "keep": how long after arm the model settles before its balance is learned


@dataclass(frozen=True)
class MqttSettings:
    """Telemetry and remote control (``[mqtt]``); secrets stay out of ``repr`` so they never reach a log."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883  # 8883 by default with TLS
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""  # TLS: the CA that signed the broker's certificate (default: the system's CAs)
    cert_file: str = ""  # TLS: a client certificate, for brokers that ask for one
    key_file: str = ""  # TLS: the client certificate's key (default: inside cert_file)
    token: str = field(default="", repr=False)  # commands must carry it when set
    topic_prefix: str = "ailive"  # topics are <topic_prefix>/<show name>/...


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
class Show:
    path: str
    name: str
    profile: Profile
    desk: DeskAddress
    allow_trim: bool
    channels: tuple[ChannelMap, ...]
    policy: PolicySettings = field(default_factory=PolicySettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)

    @property
    def desk_channels(self) -> list[int]:
        return [c.desk_channel for c in self.channels]

    def with_desk(self, desk: DeskAddress) -> "Show":
        """The same show pointed at another desk (a simulator, a spare); receive port and poll period are kept unless given."""
        desk = DeskAddress(desk.host, desk.port,
                           self.desk.receive_port if desk.receive_port is None else desk.receive_port,
                           self.desk.poll_period_s if desk.poll_period_s is None else desk.poll_period_s)
        return Show(self.path, self.name, self.profile, desk, self.allow_trim, self.channels, self.policy, self.mqtt)


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


def _parse_policy(reader: TableReader | None) -> PolicySettings:
    if reader is None:
        return PolicySettings()
    d = PolicySettings()
    policy = PolicySettings(
        mapping=reader.choice("mapping", MAPPINGS, d.mapping),
        window_db=reader.number("window_db", d.window_db, low=0.0, high=40.0),
        ceiling_db=reader.number("ceiling_db", d.ceiling_db, low=-90.0, high=10.0),
        total_gain_cap_db=reader.number("total_gain_cap_db", d.total_gain_cap_db, low=0.0, high=20.0),
        slew_up_db_per_s=reader.number("slew_up_db_per_s", d.slew_up_db_per_s, low=0.01, high=100.0),
        slew_down_db_per_s=reader.number("slew_down_db_per_s", d.slew_down_db_per_s, low=0.01, high=100.0),
        override_hold_s=reader.number("override_hold_s", d.override_hold_s, low=0.0, high=3600.0),
        after_override=reader.choice("after_override", ("auto", "manual"), d.after_override),
        silence_db=reader.number("silence_db", d.silence_db, low=-150.0, high=0.0),
        stale_audio_s=reader.number("stale_audio_s", d.stale_audio_s, low=0.05, high=10.0),
        max_writes_per_s=reader.number("max_writes_per_s", d.max_writes_per_s, low=0.1, high=100.0),
        deadband_db=reader.number("deadband_db", d.deadband_db, low=0.0, high=10.0),
        min_step_db=reader.number("min_step_db", d.min_step_db, low=0.0, high=6.0),
        settle_s=reader.number("settle_s", d.settle_s, low=0.0, high=60.0),
    )
    reader.finish()
    return policy


def _parse_mqtt(reader: TableReader | None) -> MqttSettings:
    if reader is None:
        return MqttSettings()
    d = MqttSettings()
    show_dir = Path(reader.path).parent

    def pem_file(name: str) -> str:
        """A PEM file, relative to the show file's folder, that exists now (not first at the venue)."""
        text = reader.get(name, str, "", expected="the path of an existing PEM file (relative to the show file)",
                          check=lambda v: (show_dir / v).is_file())
        return str(show_dir / text) if text else ""

    def secret(name: str, expected: str) -> str:
        """A password or token: a mistake is reported without echoing the value."""
        try:
            return reader.get(name, str, "", expected=expected, check=lambda v: bool(v.strip()))
        except reader.error:
            raise reader.fail(name, f"{expected}; the value is not shown") from None

    ca_file, cert_file, key_file = pem_file("ca_file"), pem_file("cert_file"), pem_file("key_file")
    if key_file and not cert_file:
        raise reader.fail("cert_file", "the client certificate that goes with key_file (the key is required when key_file is set)")
    tls = reader.get("tls", bool, bool(ca_file or cert_file))
    if not tls and (ca_file or cert_file):
        raise reader.fail("tls", "true when ca_file or cert_file is set", False)
    username = reader.get("username", str, "")
    password = secret("password", "a non-empty password (leave the key out for none)")
    if password and not username:
        raise reader.fail("username", "a user name to go with password (the key is required when password is set)")
    mqtt = MqttSettings(
        enabled=reader.get("enabled", bool, True),
        host=reader.get("host", str, d.host, expected="the broker's IP address or host name", check=lambda v: bool(v.strip())),
        port=reader.integer("port", 8883 if tls else d.port, low=1, high=65535),
        username=username,
        password=password,
        tls=tls,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        token=secret("token", "a non-empty command token (leave the key out for none)"),
        topic_prefix=reader.get("topic_prefix", str, d.topic_prefix,
                                expected="MQTT topic levels such as 'ailive' or 'venue/foh' (no +, #, $, empty levels)",
                                check=lambda v: bool(v) and not v.startswith("$") and "+" not in v and "#" not in v
                                and all(level for level in v.split("/"))),
    )
    reader.finish()
    return mqtt


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


def load_show(path: str | Path, profile_dirs: list[Path] | None = None) -> Show:
    """Read and validate a show file; every problem is a :class:`ShowFileError` naming the key."""
    path = Path(path)
    top = TableReader(read_toml(path, ShowFileError), str(path), "", ShowFileError)
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
    channels = _parse_channels(top, profile)
    show = Show(
        path=str(path),
        name=show_name,
        profile=profile,
        desk=DeskAddress(host, port, receive_port, poll_period_s),
        allow_trim=allow_trim,
        channels=channels,
        policy=_parse_policy(top.table("policy")),
        mqtt=_parse_mqtt(top.table("mqtt")),
    )
    top.finish()
    return show
