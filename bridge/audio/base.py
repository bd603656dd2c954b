"""What every audio source hands the engine: consecutive stamped blocks, and the errors it may raise.

Both sources (files, JACK) hand out consecutive blocks of ``(channels, frames)``
float32 samples stamped with the source's own frame clock, so the engine reads
a live desk and a recorded multitrack the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ailive.consoles.errors import AiliveError

class AudioSourceError(AiliveError):
    """The audio tap cannot open: no JACK server, a port that is not there, an unreadable file."""


class EndOfSource(Exception):
    """A file source has played everything."""


@dataclass(frozen=True, eq=False)
class Block:
    """Consecutive frames of every channel, stamped with the source clock."""

    samples: np.ndarray  # (channels, frames) float32, a fresh array the caller owns
    start_frame: int  # index of the first frame since the source started
    sample_rate: int

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def time_s(self) -> float:
        """Start of the block on the source clock (not the wall clock)."""
        return self.start_frame / self.sample_rate


class AudioSource(Protocol):
    sample_rate: int
    channel_names: list[str]
    realtime: bool  # True when blocks arrive at the pace of the audio (JACK, or files played in real time)

    @property
    def xruns(self) -> int: ...

    @property
    def overruns(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def next_block(self, frames: int, timeout_s: float) -> Block | None:
        """Wait for the next ``frames`` frames.

        None when they did not all arrive within ``timeout_s`` (stale audio:
        the caller holds the faders); raises EndOfSource when a file source is
        exhausted. Consecutive calls return consecutive, non-overlapping
        blocks; when the caller fell behind by more than the ring holds, skip
        ahead to the newest audio and count it in ``overruns``.
        """
        ...


class StartStop:
    """``async with source:`` starts it and always stops it."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
