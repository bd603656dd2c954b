"""A seeded random show on a virtual clock: an engineer, mutes, channel dropouts, desk restarts, stalls.

It runs inside the engine's ``on_step`` (between control steps, as desk
pushes and keyboard commands arrive in a live show) and keeps only
counters, so an hour of show leaves nothing behind in memory but the
bridge's own state.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from ailive.bridge.engine import Engine

from .audio import SyntheticSource
from .virtualdesk import VirtualDesk

#: Mean seconds between events of each kind (a busy show: the engineer touches a fader every 20 s).
EVERY_S = {
    "engineer": 20.0, "mute": 45.0, "dropout": 60.0, "section": 30.0, "restart": 360.0,
    "stall": 600.0, "manual": 480.0, "broken": 300.0,
}


@dataclass
class Timer:
    """Something to undo at a time: unmute, end a dropout, bring the desk back."""

    at_s: float
    what: str
    channel: int = 0
    value: object = None


@dataclass
class ShowScript:
    desk: VirtualDesk
    source: SyntheticSource
    engine: Engine
    seed: int = 1
    kill_at_s: float | None = None  # kill (every fader back to the snapshot), then arm again 10 s later
    done: Counter[str] = field(default_factory=Counter)
    _timers: list[Timer] = field(default_factory=list)
    _away: bool = False
    _now: float = 0.0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._auto = [c.desk_channel for c in self.engine.show.channels if c.mode == "auto"]
        self._channels = [c.desk_channel for c in self.engine.show.channels]

    async def __call__(self, elapsed_s: float) -> None:
        """One control step has run; play what happens before the next."""
        now = self._now = self.source.now_s
        for timer in [t for t in self._timers if t.at_s <= now]:
            self._timers.remove(timer)
            self._undo(timer)
        if self.kill_at_s is not None and elapsed_s >= self.kill_at_s and self.engine.state.armed:
            self.engine.kill()
            self.done["kill"] += 1
            self.kill_at_s = None
            self._timers.append(Timer(now + 10.0, "arm"))
        for kind, every_s in EVERY_S.items():
            if self._random.random() < 0.05 / every_s:
                self._start(kind, now)

    def _start(self, kind: str, now: float) -> None:
        r = self._random
        if kind == "engineer":
            self.desk.move(r.choice(self._channels), r.uniform(-30.0, 6.0))  # a hand may go above the ceiling
        elif kind == "mute":
            ch = r.choice(self._channels)
            if not self.desk.muted[ch]:
                self.desk.set_mute(ch, True)
                self._timers.append(Timer(now + r.uniform(5.0, 20.0), "unmute", ch))
        elif kind == "dropout":
            ch = r.randrange(len(self._channels))
            self.source.generators[ch].kind = "silence"
            self._timers.append(Timer(now + r.uniform(5.0, 30.0), "signal", ch, "noise"))
        elif kind == "broken":
            ch = r.randrange(len(self._channels))
            self.source.generators[ch].kind = r.choice(["dc", "clip"])
            self._timers.append(Timer(now + r.uniform(5.0, 20.0), "signal", ch, "noise"))
        elif kind == "section":
            for g in self.source.generators:
                g.level_db = r.uniform(-35.0, -5.0)
        elif kind == "restart" and not self._away:
            self._away = True
            self.desk.go_away()
            self._timers.append(Timer(now + r.uniform(1.0, 5.0), "back", value=r.random() < 0.5))
        elif kind == "stall" and not self.source.stalled:
            self.source.stalled = True
            self._timers.append(Timer(now + r.uniform(0.3, 1.5), "unstall"))
        elif kind == "manual":
            ch = r.choice(self._auto)
            if self.engine.state.channel(ch).mode == "auto":
                self.engine.set_mode(ch, "manual", origin="mqtt")
                self._timers.append(Timer(now + r.uniform(60.0, 180.0), "auto", ch))
        else:
            return
        self.done[kind] += 1

    def _undo(self, timer: Timer) -> None:
        if timer.what == "unmute":
            self.desk.set_mute(timer.channel, False)
        elif timer.what == "signal":
            self.source.generators[timer.channel].kind = str(timer.value)
        elif timer.what == "back":
            self.desk.come_back(reset=bool(timer.value))
            self._away = False
        elif timer.what == "unstall":
            self.source.stalled = False
        elif timer.what == "auto":
            self.engine.set_mode(timer.channel, "auto", origin="mqtt")
        elif timer.what == "arm":
            if self.desk.connected:
                self.engine.arm()
            else:  # arm is refused while the desk is away: the engineer tries again
                self._timers.append(Timer(self._now + 2.0, "arm"))
