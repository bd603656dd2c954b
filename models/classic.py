"""Classic automixers behind the gain-model interface: the baselines the neural model must beat.

- ``unity``: every fader at 0 dB (RAW in the paper).
- ``dugan``: Dugan gain sharing, g_i = a_i / sum_j a_j on smoothed power (speech automixers).
- ``loudness``: loudness-equalizing faders in the spirit of Perez-Gonzalez & Reiss:
  every active channel is brought to the mean short-term loudness of the active ones,
  with a silence gate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .base import FRAME_S, ModelCard
from .features import FilterState, KWeighting, loudness_lufs, power_db, rms_db


@dataclass(frozen=True)
class UnityState:
    channels: int


class UnityModel:
    card = ModelCard("unity", "every fader at 0 dB: the raw sum", 0.0, 0.0)

    def initial_state(self, channels: int, sample_rate: int) -> UnityState:
        return UnityState(channels)

    def step(self, state: UnityState, frame: np.ndarray) -> tuple[np.ndarray, UnityState]:
        return np.zeros(frame.shape[0]), state


@dataclass(frozen=True)
class DuganState:
    power: np.ndarray  # (channels,) smoothed mean square


@dataclass
class DuganModel:
    """Gain sharing: each channel's share of the total power, in dB, on power smoothed over ``smoothing_s``."""

    smoothing_s: float = 0.3
    gate_db: float = -60.0
    floor_db: float = -40.0
    card: ModelCard = ModelCard("dugan", "Dugan gain sharing on smoothed power", -40.0, 0.0)

    def initial_state(self, channels: int, sample_rate: int) -> DuganState:
        return DuganState(np.zeros(channels))

    def step(self, state: DuganState, frame: np.ndarray) -> tuple[np.ndarray, DuganState]:
        alpha = 1.0 - math.exp(-FRAME_S / self.smoothing_s)
        frame_power = np.mean(np.square(frame, dtype=np.float64), axis=1)
        power = state.power + alpha * (frame_power - state.power)
        total = float(np.sum(power))
        active = rms_db(frame) > self.gate_db
        gains = np.full(frame.shape[0], np.nan)
        if total > 0.0:
            share_db = power_db(power / total)
            gains[active] = np.maximum(share_db[active], self.floor_db)
        return gains, DuganState(power)


@dataclass(frozen=True)
class LoudnessState:
    weighting: KWeighting
    filter_state: FilterState
    history: np.ndarray  # (channels, window_frames) K-weighted mean square per frame
    filled: int


@dataclass
class LoudnessModel:
    """Bring every active channel to the mean short-term loudness of the active channels.

    Short-term loudness is BS.1770 over the last ``window_s`` (3 s); a channel
    quieter than ``gate_lufs`` has no opinion (NaN), so it never rides up on noise.
    """

    window_s: float = 3.0
    gate_lufs: float = -55.0
    max_boost_db: float = 12.0
    max_cut_db: float = 24.0
    card: ModelCard = ModelCard("loudness", "loudness-equalizing faders (Perez-Gonzalez & Reiss)", -24.0, 12.0)

    def initial_state(self, channels: int, sample_rate: int) -> LoudnessState:
        window_frames = max(1, int(round(self.window_s / FRAME_S)))
        weighting = KWeighting(sample_rate)
        return LoudnessState(weighting, weighting.initial_state(channels), np.zeros((channels, window_frames)), 0)

    def step(self, state: LoudnessState, frame: np.ndarray) -> tuple[np.ndarray, LoudnessState]:
        history = np.roll(state.history, -1, axis=1)
        history[:, -1], filter_state = state.weighting.mean_square(frame, state.filter_state)
        filled = min(state.filled + 1, history.shape[1])
        loudness = loudness_lufs(np.mean(history[:, -filled:], axis=1))
        active = loudness > self.gate_lufs
        gains = np.full(frame.shape[0], np.nan)
        if np.any(active):
            target = float(np.mean(loudness[active]))
            gains[active] = np.clip(target - loudness[active], -self.max_cut_db, self.max_boost_db)
        return gains, replace(state, filter_state=filter_state, history=history, filled=filled)


CLASSIC_MODELS = {"unity": UnityModel, "dugan": DuganModel, "loudness": LoudnessModel}
