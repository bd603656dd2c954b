"""The bridge in this process on real parts: engine, OSC driver and journal against a desk simulator over loopback UDP.

The simulator records every fader value it holds, who sent it and when, so a
test can hold the journal against what the desk really did: every change at
the desk must be explained by a journal record, and the journal's last word
on each fader must be where the fader is.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, AsyncIterator

from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, read_records
from ailive.bridge.show import Show, load_show
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.profile import Profile, get_profile
from ailive.consoles.show import DeskAddress
from ailive.consoles.sim import DeskSimulator
from ailive.models.base import GainModel
from ailive.models.registry import load_model

from .audio import SyntheticSource

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "x32-demo.toml"
#: Input levels of the example show's eight channels: kick 12 dB hot, talkback (excluded) quiet.
HOT_KICK = [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0]
Peer = tuple[str, int]
#: Who set the faders of a desk that reset to its power-on state.
POWER_ON: Peer = ("power-on", 0)


@dataclass(frozen=True)
class DeskChange:
    """One fader value the desk was sent or moved to."""

    time_s: float  # the desk's loop time
    channel: int
    step: int  # the law's step the desk holds afterwards
    db: float
    by: Peer | None  # None: the engineer's hand on the desk; POWER_ON: the desk reset itself
    accepted: bool  # False: a hand held the fader and the write did not move it


class RecordingDesk(DeskSimulator):
    """A :class:`DeskSimulator` that keeps the history of every fader it held."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.history: list[DeskChange] = []
        super().__init__(*args, **kwargs)

    def reset_state(self) -> None:
        super().reset_state()
        law = self.profile.law
        for ch in range(1, self.channels + 1):
            value = self.fader(ch)
            self.history.append(DeskChange(self._now(), ch, law.step_of(value), law.to_db(value), POWER_ON, True))

    def _set(self, address: str, value: Any, writer: Peer | None) -> None:
        param = self.params.get(address)
        held_before = self.stats.held_by_hand
        super()._set(address, value, writer)
        if param is not None and param.kind == "fader":
            law = self.profile.law
            self.history.append(DeskChange(self._now(), param.channel, law.step_of(float(param.value)),
                                           law.to_db(float(param.value)), writer, self.stats.held_by_hand == held_before))

    def writes_by(self, peer: Peer | None, channel: int | None = None) -> list[DeskChange]:
        return [c for c in self.history if c.by == peer and (channel is None or c.channel == channel)]


def example_show(port: int, *, poll_period_s: float | None = None, liveness_timeout_s: float | None = None,
                 **policy: Any) -> Show:
    """The example show on a simulator; a faster poll and liveness timeout keep fault tests short."""
    show = load_show(EXAMPLE).with_desk(DeskAddress("127.0.0.1", port, poll_period_s=poll_period_s))
    if liveness_timeout_s is not None:
        show = replace(show, profile=replace(show.profile, liveness_timeout_s=liveness_timeout_s))
    return replace(show, policy=replace(show.policy, **policy))


@dataclass
class StepMark:
    """One control step as the engine saw it (loop time), for checks on the audio clock."""

    now_s: float
    audio_time_s: float
    hold: str
    moves: int


@dataclass
class Bridge:
    engine: Engine
    driver: OscDeskDriver
    desk: RecordingDesk
    source: SyntheticSource
    show: Show
    journal_path: Path
    peer: Peer  # the driver's socket: where the bridge's writes come from
    # Every record as a listener saw it, with the loop time it was made at and the time of the newest audio then.
    records: list[dict[str, Any]] = field(default_factory=list)

    def journal(self) -> list[dict[str, Any]]:
        return read_records(self.journal_path)


@contextlib.asynccontextmanager
async def recording_desk(profile: Profile | str = "x32", **kwargs: Any) -> AsyncIterator[RecordingDesk]:
    desk = RecordingDesk(get_profile(profile) if isinstance(profile, str) else profile, port=0, seed=7, **kwargs)
    async with desk:
        yield desk


@contextlib.asynccontextmanager
async def running_bridge(desk: RecordingDesk, tmp_path: Path, *, levels_db: list[float] | None = None,
                         model: GainModel | str = "loudness", arm_after_s: float | None = 0.3,
                         source: SyntheticSource | None = None, show: Show | None = None,
                         poll_period_s: float | None = None, liveness_timeout_s: float | None = None,
                         **policy: Any) -> AsyncIterator[Bridge]:
    """Engine, driver and journal for the example show on ``desk``; stopped and closed on leaving the block."""
    show = show or example_show(desk.port, poll_period_s=poll_period_s, liveness_timeout_s=liveness_timeout_s, **policy)
    source = source or SyntheticSource(levels_db or HOT_KICK)
    await source.start()
    driver = OscDeskDriver.for_show(show)
    await driver.connect()
    journal = Journal(tmp_path / "journal", show.name)
    journal.open()
    gains = load_model(model) if isinstance(model, str) else model
    engine = Engine(show, source, driver, gains, journal)
    peer = driver.local_address
    assert peer is not None
    bridge = Bridge(engine, driver, desk, source, show, journal.path, peer)
    loop = asyncio.get_running_loop()
    engine.add_listener(lambda record: bridge.records.append(
        {**record, "loop_s": loop.time(), "audio_s": engine._audio_time_s}))
    task = asyncio.create_task(engine.run(arm_after_s=arm_after_s))
    try:
        yield bridge
    finally:
        engine.stop()
        try:
            await task
        finally:
            journal.close()
            await driver.close()
            await source.stop()


def is_finite(db: float) -> bool:
    return not math.isnan(db)
