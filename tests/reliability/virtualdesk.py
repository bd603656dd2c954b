"""A desk and its driver in one object, on the show's virtual clock: an hour of show in seconds.

The engine talks to it as to an :class:`~ailive.consoles.driver.OscDeskDriver`
(``connected``, ``view``, ``set_fader_db``, ``add_listener``); a test plays
the engineer, the mutes and the restarts on it, and sees every write the
bridge makes the moment it is made, so it can check each one against what the
desk held then.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable

from ailive.consoles.driver import ChannelView, DeskOfflineError
from ailive.consoles.events import DeskConnected, DeskEvent, DeskLost, FaderMoved, MuteChanged
from ailive.consoles.profile import Profile

WriteCheck = Callable[[float, int, float], None]  # time, channel, level the desk holds after the write


class VirtualDesk:
    """The desk's state (quantized by the profile's law) and the driver's view of it, kept in step."""

    def __init__(self, profile: Profile, channels: list[int], clock: Callable[[], float]) -> None:
        self.profile = profile
        self.law = profile.law
        self.channels = list(channels)
        self.connected = True
        self._clock = clock
        self.power_on = self.law.quantize(self.law.from_db(0.0))
        self.faders = {ch: self.power_on for ch in channels}  # wire values the desk holds
        self.muted = {ch: False for ch in channels}
        self.view = {ch: ChannelView(ch, self.power_on, False, "", self.law.to_db(self.power_on)) for ch in channels}
        self.writes: Counter[int] = Counter()
        self.on_write: WriteCheck | None = None
        self._listeners: list[Callable[[DeskEvent], None]] = []

    def stand_down(self, channels: object = None) -> list[tuple[int, float]]:
        """Nothing waits or is resent here: every write lands at once."""
        return []

    def use_clock(self, clock: Callable[[], float] | None) -> None:
        """The engine's clock: this desk already runs on the one it was given."""

    def read_queued(self) -> int:
        return 0  # its events reach the engine as they happen: nothing ever waits

    def add_listener(self, listener: Callable[[DeskEvent], None]) -> None:
        self._listeners.append(listener)

    def fader_db(self, channel: int) -> float:
        return self.law.to_db(self.faders[channel])

    # ----- the bridge's side ---------------------------------------------------------------------

    def set_fader_db(self, channel: int, db: float, *, always: bool = False) -> float:
        """A write lands at once; ``always`` (a level sent back) changes nothing here: nothing is ever skipped."""
        if not self.connected:
            raise DeskOfflineError("desk is not connected; the write was not sent", "virtual", 0)
        if not math.isfinite(db) and db != -math.inf:
            raise ValueError(f"fader value for channel {channel} is not finite: {db}")
        value = self.law.quantize(self.law.from_db(db))
        self.faders[channel] = value
        self._see(channel, value)
        self.writes[channel] += 1
        if self.on_write is not None:
            self.on_write(self._clock(), channel, self.law.to_db(value))
        return self.law.to_db(value)

    # ----- the engineer's side -------------------------------------------------------------------

    def move(self, channel: int, db: float) -> None:
        """A hand on a fader (or a scene recall, another app): pushed to the bridge at once."""
        value = self.law.quantize(self.law.from_db(db))
        self.faders[channel] = value
        if self.connected and self._see(channel, value):
            self._emit(FaderMoved(channel, value, self.law.to_db(value), "external", self._clock()))

    def set_mute(self, channel: int, muted: bool) -> None:
        self.muted[channel] = muted
        if self.connected and self.view[channel].muted != muted:
            self.view[channel].muted = muted
            self._emit(MuteChanged(channel, muted, "external", self._clock()))

    def go_away(self, reason: str = "no answer from the desk") -> None:
        """The desk vanishes (power, cable); the driver has noticed."""
        self.connected = False
        self._emit(DeskLost(reason, self._clock()))

    def come_back(self, *, reset: bool) -> None:
        """The desk answers again, at power-on state or as it was; the driver's sweep reports every difference."""
        if reset:
            self.faders = {ch: self.power_on for ch in self.channels}
            self.muted = {ch: False for ch in self.channels}
        now = self._clock()
        for ch in self.channels:
            if self._see(ch, self.faders[ch]):
                self._emit(FaderMoved(ch, self.faders[ch], self.law.to_db(self.faders[ch]), "sweep", now))
            if self.view[ch].muted != self.muted[ch]:
                self.view[ch].muted = self.muted[ch]
                self._emit(MuteChanged(ch, self.muted[ch], "sweep", now))
        self.connected = True
        self._emit(DeskConnected("X32", "4.06", "virtual", now, reconnect=True))

    def _see(self, channel: int, value: float) -> bool:
        """Update the driver's view; whether it changed."""
        view = self.view[channel]
        if view.fader == value:
            return False
        view.fader = value
        view.fader_db = self.law.to_db(value)
        return True

    def _emit(self, event: DeskEvent) -> None:
        for listener in list(self._listeners):
            listener(event)
