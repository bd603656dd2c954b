"""Hold the journal against what the desk did: explained changes, final positions, write rates, reversals."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from ailive.bridge.journal import decode_db
from ailive.consoles.faderlaw import FaderLaw

from .rig import DeskChange, Peer


def step_of(law: FaderLaw, db: float | str) -> int:
    return law.step_of(law.from_db(decode_db(db)))


def journal_steps(law: FaderLaw, records: Iterable[dict[str, Any]]) -> dict[int, set[int]]:
    """Per channel, every fader step the journal names: the bridge's moves and the desk's reported positions."""
    steps: dict[int, set[int]] = defaultdict(set)
    for r in records:
        if r["kind"] == "move":
            steps[r["ch"]].add(step_of(law, r["to"]))
        elif r["kind"] == "desk" and r.get("what") == "fader":
            steps[r["ch"]].add(step_of(law, r["db"]))
        elif r["kind"] == "arm":
            for ch, db in r["faders"].items():
                steps[int(ch)].add(step_of(law, db))
    return steps


def journal_last(law: FaderLaw, records: Iterable[dict[str, Any]]) -> dict[int, int]:
    """Per channel, the step the journal last said the fader holds (a move sent, or a position the desk reported)."""
    last: dict[int, int] = {}
    for r in records:
        if r["kind"] == "move":
            last[r["ch"]] = step_of(law, r["to"])
        elif r["kind"] == "desk" and r.get("what") == "fader":
            last[r["ch"]] = step_of(law, r["db"])
        elif r["kind"] == "arm":
            for ch, db in r["faders"].items():
                last.setdefault(int(ch), step_of(law, db))
    return last


@dataclass
class Ledger:
    """What a run did at the desk and whether the journal accounts for all of it."""

    bridge_writes: int = 0
    unexplained: list[DeskChange] = field(default_factory=list)  # bridge writes the journal never named
    mismatched: dict[int, tuple[int, int]] = field(default_factory=dict)  # channel -> (journal's last step, desk's step)
    max_writes_per_s: int = 0  # most bridge writes to one fader inside any one-second window
    reversals: dict[int, int] = field(default_factory=dict)  # channel -> direction changes of the bridge's writes
    channels_written: set[int] = field(default_factory=set)

    @property
    def moves_lost(self) -> int:
        """Faders where the journal's last word is not what the desk holds."""
        return len(self.mismatched)


def audit(law: FaderLaw, records: list[dict[str, Any]], history: list[DeskChange], bridge: Peer,
          desk_steps: dict[int, int]) -> Ledger:
    named = journal_steps(law, records)
    ledger = Ledger()
    per_channel: dict[int, list[DeskChange]] = defaultdict(list)
    for change in history:
        if change.by != bridge:
            continue
        ledger.bridge_writes += 1
        ledger.channels_written.add(change.channel)
        per_channel[change.channel].append(change)
        if change.step not in named.get(change.channel, set()):
            ledger.unexplained.append(change)
    for ch, step in journal_last(law, records).items():
        if ch in desk_steps and desk_steps[ch] != step:
            ledger.mismatched[ch] = (step, desk_steps[ch])
    for ch, changes in per_channel.items():
        times = [c.time_s for c in changes]
        first = 0
        for last, t in enumerate(times):
            while t - times[first] >= 1.0:
                first += 1
            ledger.max_writes_per_s = max(ledger.max_writes_per_s, last - first + 1)
        ledger.reversals[ch] = reversals([c.db for c in changes])
    return ledger


def reversals(levels: list[float]) -> int:
    """How often a sequence of fader levels changes direction."""
    deltas = [b - a for a, b in zip(levels, levels[1:]) if b != a and math.isfinite(a) and math.isfinite(b)]
    return sum(1 for a, b in zip(deltas, deltas[1:]) if (a > 0) != (b > 0))
