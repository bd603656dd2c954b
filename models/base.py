"""The gain-model interface: one F2 frame of every channel in, one proposed gain per channel out.

State is explicit (returned, never hidden), so a model can be stepped,
rewound and tested deterministically; the runtime owns it. A gain is for
the channel's pre-fader input, in dB; NaN means "no opinion" (a silent
channel), and the safety policy then holds that fader.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: Control-frame length (F2), seconds.
FRAME_S = 0.05


@dataclass(frozen=True)
class ModelCard:
    """What a model is and the range its gains stay in (the policy bounds them again)."""

    name: str
    description: str
    min_gain_db: float
    max_gain_db: float
    frame_s: float = FRAME_S


class GainModel(Protocol):
    card: ModelCard

    def initial_state(self, channels: int, sample_rate: int) -> Any:
        """Fresh state for ``channels`` inputs at ``sample_rate``."""

    def step(self, state: Any, frame: np.ndarray) -> tuple[np.ndarray, Any]:
        """One control frame.  frame: (channels, samples) float32 -> gains_db (channels,), new state."""


def frame_samples(sample_rate: int, frame_s: float = FRAME_S) -> int:
    """Samples in one control frame at ``sample_rate`` (2400 at 48 kHz, 2205 at 44.1 kHz)."""
    return int(round(sample_rate * frame_s))
