"""A commented show file from a plan, written so that ``load_show`` reads back what was meant.

Default numbers come from the show dataclasses (``PolicySettings``,
``MqttSettings``), never from here, so the file ``ailive init`` writes and
the loader can never disagree about a default. The file is read back with
``load_show`` before it takes the place of anything, and an existing file
is only replaced when asked.
"""
from __future__ import annotations

import os
import re
import shlex
import textwrap
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ailive.consoles.errors import AiliveError, ShowFileError
from ailive.consoles.profile import Profile, dump_toml

from ..policy_settings import PolicySettings
from ..remote.mqtt_settings import MqttSettings
from ..show import load_show
from .showplan import PlannedChannel

#: What each policy number does, written beside it.
POLICY_NOTES = {
    "mapping": "model: fader = model gain + bias; keep: hold the balance the engineer armed with",
    "window_db": "a fader never moves further than this from where it was at arm",
    "ceiling_db": "no fader ever goes above this",
    "total_gain_cap_db": "feedback protection: summed gain vs. arm time",
    "slew_up_db_per_s": "rides up slowly ...",
    "slew_down_db_per_s": "... and comes down faster",
    "override_hold_s": "after a hand on a fader the bridge leaves it alone this long",
    "after_override": "auto: then resume, keeping the engineer's position; manual: stay hands-off",
    "silence_db": "quieter inputs hold their fader (never ride up on noise)",
    "stale_audio_s": "no audio for this long holds every fader",
    "max_writes_per_s": "per fader: every write moves a motor",
    "deadband_db": "a fader starts moving only when its target is this far away",
    "min_step_db": "smallest move sent while riding: fewer, purposeful motor moves",
    "settle_s": "mapping = \"keep\": seconds after arm before the balance is learned",
}
#: The ``[mqtt]`` keys shown (commented out) with their defaults, and what they do.
MQTT_NOTES = {
    "host": "the broker's address",
    "port": "1883 (8883 with tls = true)",
    "topic_prefix": "topics are <topic_prefix>/<show name>/...",
}
_COMMENT_COLUMN = 34


class ShowWriteError(AiliveError):
    """The show file cannot be written where it was asked for."""


@dataclass(frozen=True)
class ShowDraft:
    """Everything the show file says, with what the comments need to explain it."""

    path: Path
    profile: Profile
    host: str
    port: int
    desk_line: str  # who answered: model, name, firmware
    jack_line: str  # where the ports came from
    channels: list[PlannedChannel]
    profile_dirs: tuple[Path, ...] = ()
    jack_ports: tuple[str, ...] = ()  # every audio output the JACK server offered, to choose from when editing


def toml_value(value: Any) -> str:
    """A value as TOML, through the one TOML writer the profiles use."""
    return dump_toml({"v": value}).split(" = ", 1)[1].rstrip("\n")


def show_name_for(path: Path) -> str:
    """A show name from the file name: journal and MQTT topics use it, so no '/', '+', '#'."""
    return re.sub(r"[/+#\s]+", "-", path.stem).strip("-") or "show"


def _line(key: str, value: Any, note: str = "", commented: bool = False) -> str:
    text = ("# " if commented else "") + f"{key} = {toml_value(value)}"
    return f"{text.ljust(_COMMENT_COLUMN - 1)} # {note}" if note else text


def render_show(draft: ShowDraft) -> str:
    """The show file's text: every setting explained, every channel's mode and port with its reason."""
    p = draft.profile
    check = shlex.join(["ailive", "check", str(draft.path), *(a for d in draft.profile_dirs for a in ("--profiles", str(d)))])
    about = (f"Show file written by 'ailive init' from the desk at {draft.host}:{draft.port}: {draft.desk_line} "
             f"(profile {p.name}, {p.vendor}). {draft.jack_line}")
    offered = "JACK ports to choose from: " + ", ".join(draft.jack_ports) if draft.jack_ports else ""
    out = [
        *(f"# {line}" for line in textwrap.wrap(about, 110)),
        *(f"# {line}" for line in textwrap.wrap(offered, 110, break_on_hyphens=False)),
        "# Channel modes: auto (the bridge rides the fader), manual (the engineer's; the model still hears it),",
        "# excluded (never analysed, never written). Check every channel, then:",
        f"#   {check}",
        "",
        "[show]",
        _line("name", show_name_for(draft.path), "used in journal and MQTT topics"),
        "",
        "[desk]",
        _line("profile", p.name, "'ailive profiles' lists the choices"),
        _line("host", draft.host, "the desk's IP address or host name"),
        _line("port", draft.port, f"the UDP port the desk receives on ({p.port} for {p.name})"),
        _line("allow_trim", False, "never touch input trim (it changes every monitor mix)"),
    ]
    if not p.replies_to_sender:
        out.append(_line("receive_port", p.receive_port, "the desk sends to this port of this machine",
                         commented=True))
    defaults = PolicySettings()
    out += ["", "# The safety policy at its safe defaults.", "[policy]"]
    out += [_line(f.name, getattr(defaults, f.name), POLICY_NOTES[f.name]) for f in fields(PolicySettings)]
    mqtt = MqttSettings()
    out += ["", "# Telemetry and remote control (docs/mqtt.md): uncomment to publish to a broker.",
            "# [mqtt]"]
    out += [_line(key, getattr(mqtt, key), note, commented=True) for key, note in MQTT_NOTES.items()]
    for channel in draft.channels:
        out += [""] + _channel_lines(channel)
    return "\n".join(out) + "\n"


def _channel_lines(channel: PlannedChannel) -> list[str]:
    if channel.port is None:
        label = f" ({channel.name})" if channel.name else ""
        return [f"# desk channel {channel.desk}{label}: no JACK port left for it, not tapped"]
    lines = ["[[channel]]", _line("desk", channel.desk), _line("port", channel.port, channel.port_reason)]
    if channel.name:
        lines.append(_line("name", channel.name))
    lines.append(_line("mode", channel.mode, channel.mode_reason))
    if channel.group:
        lines.append(_line("group", channel.group, "a stereo pair gets one gain"))
    return lines


def write_show(path: Path, text: str, *, force: bool = False, profile_dirs: list[Path] | None = None) -> None:
    """Write a show file, read back with ``load_show`` first; never replaces a file unless ``force``."""
    if path.is_dir():
        raise ShowWriteError(f"{path} is a folder; give the show file's name")
    if path.exists() and not force:
        raise ShowWriteError(f"{path} exists; --force replaces it")
    draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        draft.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ShowWriteError(f"cannot write {path}: {exc.strerror}") from None
    try:
        load_show(draft, profile_dirs)
        if force:
            os.replace(draft, path)
        else:
            _create(path, draft, text)
    except ShowFileError as exc:
        raise ShowWriteError(f"the show file for {path} does not read back ({exc}); nothing was written") from None
    except FileExistsError:
        raise ShowWriteError(f"{path} exists; --force replaces it") from None
    except OSError as exc:
        raise ShowWriteError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        draft.unlink(missing_ok=True)


def _create(path: Path, draft: Path, text: str) -> None:
    """Put the draft in place only if nothing is there: a file that appeared meanwhile is never overwritten."""
    try:
        os.link(draft, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
