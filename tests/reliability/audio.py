"""A synthetic desk input for fault tests: noise per channel at set levels, and the faults a real input has.

Each channel is fed by a generator (noise at a level, silence, DC, clipping);
``route`` says which generator feeds which channel, so a repatch mid-show is
one assignment, and ``stalled`` stops the audio altogether (a dead card).
Blocks are paced by the event loop's clock when ``realtime``, else handed
out as fast as asked with their own frame clock, like a file source.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from ailive.bridge.audio import Block

#: Seconds of noise kept per generator and read cyclically (no allocation per block but the copy).
BANK_S = 1.0
#: Not realtime, a stall costs the waiting caller its timeout plus this: a control step is never free.
STEP_COST_S = 0.001


@dataclass
class Generator:
    kind: str = "noise"  # noise | silence | dc | clip
    level_db: float = -20.0  # RMS for noise; the value for dc (dBFS of the constant)


class SyntheticSource:
    """An :class:`~ailive.bridge.audio.AudioSource` whose channels a test rewires and breaks mid-show."""

    def __init__(self, levels_db: list[float], *, sample_rate: int = 16000, realtime: bool = True, seed: int = 0) -> None:
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.channel_names = [f"in{i + 1}" for i in range(len(levels_db))]
        self.generators = [Generator("noise", level) for level in levels_db]
        self.route = list(range(len(levels_db)))  # channel -> generator index
        self.stalled = False
        self.now_s = 0.0  # not realtime: the audio clock, the end of the newest block (a stall advances it too)
        self.blocks = 0
        self.last_block_loop_s = float("nan")  # loop time the newest block was handed out
        rng = np.random.default_rng(seed)
        bank_frames = int(BANK_S * sample_rate)
        raw = rng.standard_normal((len(levels_db), bank_frames))
        self._bank = (raw / np.sqrt(np.mean(raw ** 2, axis=1, keepdims=True))).astype(np.float32)  # unit RMS
        self._frame = 0
        self._started_s = 0.0

    @property
    def xruns(self) -> int:
        return 0

    @property
    def overruns(self) -> int:
        return 0

    async def start(self) -> None:
        self._started_s = asyncio.get_running_loop().time()
        self._frame = 0

    async def stop(self) -> None:
        return None

    def restart_clock(self) -> None:
        """After a stall in real time, carry on from now (audio lost while stalled is not caught up)."""
        loop_now = asyncio.get_running_loop().time()
        self._started_s = loop_now - self._frame / self.sample_rate

    def clock(self) -> float:
        """The audio clock of a source that is not realtime (an engine's ``clock``)."""
        return self.now_s

    async def next_block(self, frames: int, timeout_s: float) -> Block | None:
        loop = asyncio.get_running_loop()
        if self.stalled:
            if self.realtime:
                await asyncio.sleep(timeout_s)
            else:
                self.now_s += timeout_s + STEP_COST_S  # waited that long for audio that never came
            return None
        if self.realtime:
            wait_s = self._started_s + (self._frame + frames) / self.sample_rate - loop.time()
            if wait_s > timeout_s:
                await asyncio.sleep(timeout_s)
                return None
            if wait_s > 0:
                await asyncio.sleep(wait_s)
        samples = self._render(frames)
        block = Block(samples, self._frame, self.sample_rate)
        self._frame += frames
        self.now_s += frames / self.sample_rate
        self.blocks += 1
        self.last_block_loop_s = loop.time()
        return block

    def _render(self, frames: int) -> np.ndarray:
        """(channels, frames) float32 for the next block."""
        bank_frames = self._bank.shape[1]
        start = self._frame % bank_frames
        index = (np.arange(frames) + start) % bank_frames
        out = np.empty((len(self.route), frames), dtype=np.float32)
        for channel, source in enumerate(self.route):
            g = self.generators[source]
            gain = np.float32(10.0 ** (g.level_db / 20.0))
            if g.kind == "silence":
                out[channel] = 0.0
            elif g.kind == "dc":
                out[channel] = gain
            elif g.kind == "clip":
                np.clip(self._bank[source, index] * gain, -1.0, 1.0, out=out[channel])
            else:
                out[channel] = self._bank[source, index] * gain
        return out
