"""Typed events a desk driver reports: what changed on the desk, and who changed it.

``source = "external"`` means the bridge did not send it: a hand on a fader,
a scene recall, another app. That is the most important input the bridge
gets from a desk.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["external", "sweep", "poll"]


@dataclass(frozen=True)
class FaderMoved:
    channel: int
    value: float  # wire value as the desk holds it
    db: float  # -inf when off
    source: Source
    time_s: float
    #: One of the bridge's writes to this fader went out so shortly before that it may have crossed this move
    #: on the network and overwritten it at the desk: the bridge may send the move back (its policy decides).
    crossed: bool = False
    #: The level of one of the bridge's writes that was still waiting (for the desk's write cap, or to be resent)
    #: and that this move cancelled: it never reaches the desk, and the bridge's journal says so. None: none waited.
    cancelled_db: float | None = None


@dataclass(frozen=True)
class MuteChanged:
    channel: int
    muted: bool
    source: Source
    time_s: float


@dataclass(frozen=True)
class NameChanged:
    channel: int
    name: str
    source: Source
    time_s: float


@dataclass(frozen=True)
class DeskConnected:
    model: str
    firmware: str
    name: str
    time_s: float
    reconnect: bool


@dataclass(frozen=True)
class DeskLost:
    reason: str
    time_s: float


@dataclass(frozen=True)
class PacketRejected:
    """A datagram that was not a valid message from the desk: counted and reported, never acted on."""

    reason: str
    peer: str
    time_s: float
    count: int = 1  # datagrams this event stands for (the kernel's filter reports its drops in bulk)


DeskEvent = FaderMoved | MuteChanged | NameChanged | DeskConnected | DeskLost | PacketRejected
