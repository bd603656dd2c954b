"""Soak: a 60-minute show on a virtual clock (in make test), and 10 minutes in real time (make soak).

The virtual show runs the whole engine (a synthetic band, the loudness
model, the policy, the journal) against a virtual desk on the audio's own
clock, with a seeded engineer who moves faders, mutes channels and switches
them to manual, channel dropouts, broken inputs (DC, clipping), desk
restarts (state kept or reset), audio stalls and one kill and re-arm. Every
move is checked the moment it is made; memory, the journal and the desk are
checked at the end.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, read_records
from ailive.models.registry import load_model

from .audio import SyntheticSource
from .ledger import journal_last
from .restless import RestlessModel
from .rig import HOT_KICK, example_show
from .showscript import ShowScript
from .virtualdesk import VirtualDesk
from .watch import Watch


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process, from /proc."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class SoakResult:
    minutes: float
    watch: Watch
    script: ShowScript
    desk: VirtualDesk
    journal: Path
    rss_warm: int
    rss_end: int
    steps: int
    model: str
    model_errors: int


async def run_virtual_show(tmp_path: Path, minutes: float, seed: int = 1, model: str = "restless") -> SoakResult:
    show = example_show(0)
    source = SyntheticSource(HOT_KICK, realtime=False, seed=seed)
    desk = VirtualDesk(show.profile, show.desk_channels, source.clock)
    journal = Journal(tmp_path / "journal", show.name, wall_clock=source.clock)
    journal.open()
    gains = RestlessModel(seed) if model == "restless" else load_model(model)
    engine = Engine(show, source, desk, gains, journal, clock=source.clock)
    watch = Watch(engine, desk, source.clock)
    script = ShowScript(desk, source, engine, seed=seed, kill_at_s=minutes * 60 * 0.75)
    warm: list[int] = []

    async def on_step(elapsed_s: float) -> None:
        await script(elapsed_s)
        if not warm and elapsed_s >= min(600.0, minutes * 60 / 6):  # warm: ten minutes in (a sixth of a short run)
            warm.append(rss_bytes())

    await source.start()
    try:
        status = await engine.run(duration_s=minutes * 60, arm_after_s=2.0, on_step=on_step)
    finally:
        journal.close()
    return SoakResult(minutes, watch, script, desk, journal.path, warm[0], rss_bytes(), status.steps, model,
                      status.model_errors)


def check_soak(result: SoakResult) -> None:
    watch, desk = result.watch, result.desk
    assert not watch.broken, (watch.broken, watch.first_broken)
    assert watch.moves > 1000 and result.script.done["engineer"] > 5 and result.script.done["restart"] >= 1
    assert watch.kill_moves > 0
    # the journal is complete: every move and every change the desk reported is in it, and its last word is the desk
    records = read_records(result.journal)
    counted = {kind: sum(1 for r in records if r["kind"] == kind) for kind in ("move", "unsent", "arm")}
    assert counted["move"] == watch.moves + watch.kill_moves == sum(desk.writes.values())
    assert counted["arm"] == 2
    for what in ("fader", "mute", "lost", "connected"):
        journaled = sum(1 for r in records if r["kind"] == "desk" and r["what"] == what)
        assert journaled == watch.desk_events[what], what
    last = journal_last(desk.law, records)
    assert last == {ch: desk.law.step_of(value) for ch, value in desk.faders.items()}
    assert records[-1]["kind"] == "stop"
    growth = (result.rss_end - result.rss_warm) / result.rss_warm
    print(f"\n{result.minutes:g} min on a virtual clock ({result.model}): {result.steps} steps, {watch.moves} moves "
          f"(+{watch.kill_moves} by kill), {dict(result.script.done)}, desk reported {dict(watch.desk_events)}, "
          f"{result.model_errors} model errors, promises broken {sum(watch.broken.values())}, "
          f"RSS {result.rss_warm / 2**20:.1f} -> {result.rss_end / 2**20:.1f} MiB ({growth:+.2%})")
    assert growth < 0.05


async def test_sixty_minutes_on_a_virtual_clock(tmp_path):
    check_soak(await run_virtual_show(tmp_path, 60.0))
