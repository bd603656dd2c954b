"""Every promise of the safety policy, checked at each move the moment it is made, with counters only.

The engine shows its listeners each record right after the move went to the
desk, so the desk's mutes and the policy's state are exactly what the move
was decided against. Nothing is kept per move: an hour of show costs no memory.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ailive.bridge.engine import Engine
from ailive.bridge.policy import MAX_STEP_S
from ailive.bridge.journal import decode_db
from ailive.consoles.events import DeskEvent, FaderMoved, MuteChanged, DeskConnected, DeskLost

from .virtualdesk import VirtualDesk

KILL = "kill: restore snapshot"


@dataclass
class Watch:
    """Counts moves and every broken promise; ``broken`` must stay empty."""

    engine: Engine
    desk: VirtualDesk
    clock: Any
    moves: int = 0
    kill_moves: int = 0
    touched_at: dict[int, float] = field(default_factory=dict)  # channel -> last time a hand (or a resync) moved it
    desk_events: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    broken: Counter[str] = field(default_factory=Counter)
    first_broken: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = self.engine.show.policy
        self.index = {c.desk_channel: i for i, c in enumerate(self.engine.show.channels)}
        # One write moves a fader at most the slew of the longest step, plus a fader step of quantization.
        self.max_step_db = max(self.settings.slew_up_db_per_s, self.settings.slew_down_db_per_s) * MAX_STEP_S + 1.0
        self.groups = {c.desk_channel: c.group for c in self.engine.show.channels}
        self.desk.add_listener(self.on_desk)
        self.engine.add_listener(self.on_record)

    def on_desk(self, event: DeskEvent) -> None:
        """The desk's side, as the driver reports it (the engine journals each one)."""
        if isinstance(event, FaderMoved):
            self.desk_events["fader"] += 1
            state = self.engine.state
            if not state.armed or state.channel(event.channel).mode != "auto":
                return  # a hand on a fader the bridge does not ride; handing it back keeps its level (no jump)
            for ch, group in self.groups.items():  # a linked partner backs off with it
                if ch == event.channel or (group and group == self.groups.get(event.channel)):
                    self.touched_at[ch] = event.time_s
        elif isinstance(event, MuteChanged):
            self.desk_events["mute"] += 1
        elif isinstance(event, DeskLost):
            self.desk_events["lost"] += 1
        elif isinstance(event, DeskConnected):
            self.desk_events["connected"] += 1

    def on_record(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        self.records[kind if kind != "desk" else f"desk {record['what']}"] += 1
        if kind != "move":
            return
        ch, to_db, now = record["ch"], decode_db(record["to"]), self.clock()
        s = self.engine.state.channel(ch)
        if record["reason"] == KILL:
            self.kill_moves += 1
            self.check(to_db == s.snapshot_db, "kill", f"kill put ch{ch} at {to_db}, not its snapshot {s.snapshot_db}")
            return
        self.moves += 1
        step_db = abs(to_db - decode_db(record["from"]))
        self.check(step_db <= self.max_step_db, "jump", f"moved ch{ch} by {step_db:.2f} dB in one write")
        self.check(s.mode == "auto", "mode", f"wrote ch{ch} in mode {s.mode}")
        self.check(not self.desk.muted[ch], "muted", f"wrote muted ch{ch}")
        self.check(to_db <= self.settings.ceiling_db + 1e-9, "ceiling", f"wrote ch{ch} to {to_db:+.2f} dB, above the ceiling")
        low, high = s.reference_db - self.settings.window_db, s.reference_db + self.settings.window_db
        self.check(low - 1e-9 <= to_db <= high + 1e-9, "window",
                   f"wrote ch{ch} to {to_db:+.2f} dB outside {low:+.2f}..{high:+.2f}")
        level_db = float(self.engine._levels_db[self.index[ch]])  # the frame this move was decided on
        rising = to_db > decode_db(record["from"])
        self.check(not (rising and level_db < self.settings.silence_db), "silence",
                   f"rode ch{ch} up to {to_db:+.2f} dB on a silent frame ({level_db:.0f} dBFS)")
        since = now - self.touched_at.get(ch, -math.inf)
        self.check(since >= self.settings.override_hold_s - 1e-9, "hold",
                   f"wrote ch{ch} {since:.2f} s after a hand moved it (hold {self.settings.override_hold_s} s)")

    def check(self, ok: bool, promise: str, detail: str) -> None:
        if not ok:
            self.broken[promise] += 1
            if len(self.first_broken) < 10:
                self.first_broken.append(detail)
