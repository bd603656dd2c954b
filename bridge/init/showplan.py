"""What ``ailive init`` proposes for each desk channel: its JACK port, its mode, its stereo group.

Pure functions of what the desk and the JACK server reported, so the
proposal is testable without either. The engineer edits the result; the
rules only have to be safe: a channel the bridge does not know what to do
with is ``excluded`` (never analysed, never written).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace

#: Words in a channel name that mean the channel is not a source to mix: talkback, playback, spares.
EXCLUDED_WORDS = frozenset({
    "talkback", "tb", "comms", "com",  # the engineer's and the stage's talkback
    "playback", "pb", "tracks", "bgm", "walkin",  # recorded material: its level is set, not ridden
    "spare", "spr", "unused", "click",  # nothing, or the drummer's click
})
#: Names a desk gives a channel nobody named ("Ch 1", "CH01", "Input 12", "In 3"): unnamed.
DEFAULT_NAME = re.compile(r"(ch|chan|channel|in|input|inp)\s*[-_.]?\s*\d+", re.IGNORECASE)
#: The side of a stereo pair a name ends with ("Keys L", "OH-R", "Piano Left").
_SIDE = re.compile(r"^(?P<stem>.*?\S)[\s_.-]*(?P<side>l|r|left|right)$", re.IGNORECASE)
#: Names this short match too many ports by accident ("A" is in "capture_A1").
_MIN_MATCH_CHARS = 2


@dataclass(frozen=True)
class DeskChannel:
    """A channel as the desk reports it."""

    number: int
    name: str  # "" when the desk holds no name


@dataclass(frozen=True)
class PlannedChannel:
    """One ``[[channel]]`` of the show file to be, with the reasons behind it for the comments."""

    desk: int
    name: str  # "" for an unnamed channel (the show file's default name applies)
    mode: str
    mode_reason: str
    port: str | None  # None: no JACK port was left for it (it is not tapped)
    port_reason: str
    group: str = ""


def normalized(text: str) -> str:
    """Lower-case letters and digits only: how names are compared."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def is_unnamed(name: str) -> bool:
    return not normalized(name) or DEFAULT_NAME.fullmatch(name.strip()) is not None


def _words(name: str) -> list[str]:
    """Words of a name, split at spaces, punctuation, digits and lower-to-upper case changes ("TalkBack2" -> talk, back)."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [w.lower() for w in re.split(r"[^A-Za-z]+", spaced) if w]


def mode_for(name: str) -> tuple[str, str]:
    """The safe mode for a desk channel and why: named ones ``auto``; unnamed and talkback-like ones ``excluded``."""
    if is_unnamed(name):
        return "excluded", "unnamed on the desk"
    words = _words(name)
    joined = "".join(words)
    hits = [w for w in words if w in EXCLUDED_WORDS] + [w for w in ("talkback", "playback") if w in joined]
    if hits:
        return "excluded", f"{name!r} reads as talkback, playback or a spare"
    return "auto", "named on the desk"


def _short(port: str) -> str:
    """A JACK port's name without its client ("system:capture_1" -> "capture_1")."""
    return port.split(":", 1)[-1]


def match_by_name(channels: list[DeskChannel], ports: list[str]) -> dict[int, str]:
    """Ports whose names carry a named channel's name: desk channel -> port.

    Each port goes to the channel with the longest name it contains ("Kick In"
    before "Kick"); a channel two ports claim, or a port two channels tie for,
    is left to the mapping by order.
    """
    named = [(c.number, normalized(c.name)) for c in channels if not is_unnamed(c.name)]
    named = [(n, key) for n, key in named if len(key) >= _MIN_MATCH_CHARS]
    claims: dict[int, list[str]] = {}
    for port in ports:
        short = normalized(_short(port))
        found = [(len(key), n) for n, key in named if key in short]
        if not found:
            continue
        longest = max(length for length, _ in found)
        best = [n for length, n in found if length == longest]
        if len(best) == 1:
            claims.setdefault(best[0], []).append(port)
    return {n: found[0] for n, found in claims.items() if len(found) == 1}


def stereo_groups(channels: list[DeskChannel]) -> dict[int, str]:
    """Adjacent channels named "<stem> L" and "<stem> R" (left first): desk channel -> group name."""
    by_number = {c.number: c for c in channels}
    groups: dict[int, str] = {}
    for left in channels:
        right = by_number.get(left.number + 1)
        a, b = _SIDE.match(left.name.strip()), right and _SIDE.match(right.name.strip())
        if not a or not b or normalized(a["stem"]) != normalized(b["stem"]):
            continue
        if a["side"][0].lower() == "l" and b["side"][0].lower() == "r" and left.number not in groups:
            groups[left.number] = groups[left.number + 1] = normalized(a["stem"])
    return groups


def guessed_port(channel: int) -> str:
    """The port a desk channel arrives on with no JACK server to ask: the Nth capture port of the sound card."""
    return f"system:capture_{channel}"


def in_order(ports: list[str]) -> list[str]:
    """The ports handed out in order: the sound card's capture ports, or every port when none is called so."""
    return [p for p in ports if "capture" in _short(p)] or list(ports)


def plan_channels(channels: list[DeskChannel], ports: list[str] | None) -> list[PlannedChannel]:
    """Port, mode and group for every desk channel.

    ``ports`` None: no JACK server ran, so desk channel N gets ``system:capture_N``.
    Otherwise a port whose name carries a channel's name goes to that channel,
    and the capture ports left go in order: the first free one to the lowest
    channel still without a port. Channels left over get ``port`` None.
    """
    by_name = match_by_name(channels, ports) if ports else {}
    taken = set(by_name.values())
    free = iter([p for p in in_order(ports or []) if p not in taken])
    groups = stereo_groups(channels)
    planned = []
    for channel in channels:
        mode, mode_reason = mode_for(channel.name)
        if ports is None:
            port, port_reason = guessed_port(channel.number), "guessed: no JACK server was running"
        elif channel.number in by_name:
            port, port_reason = by_name[channel.number], "its name matches the channel's"
        else:
            port, port_reason = next(free, None), "in order"
        group = groups.get(channel.number, "") if mode == "auto" else ""
        planned.append(PlannedChannel(channel.number, "" if is_unnamed(channel.name) else channel.name, mode, mode_reason,
                                      port, port_reason, group))
    return _whole_groups(planned)


def _whole_groups(planned: list[PlannedChannel]) -> list[PlannedChannel]:
    """A pair that loses a member (excluded, or left without a port) is no group."""
    members = Counter(p.group for p in planned if p.group and p.port is not None)
    return [p if not p.group or members[p.group] == 2 else replace(p, group="") for p in planned]
