"""The ALM without the streaming design, for the side-by-side benchmark only.

Every control step recomputes the whole 975 ms log-mel patch (96 STFT frames
per channel) from raw audio and runs the slow graph, then the fast graph:
no incremental features and no rate split. It reuses the shipped runtime's
ONNX sessions and the package's formulas (``StreamingLogMel.band_power``,
``patch_active``, ``conditioning_db``), so the difference measured is the
design, not a second implementation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ailive.models.alm import GAIN_MAX_DB, GAIN_MIN_DB, conditioning_db, patch_active
from ailive.models.base import ModelCard
from ailive.models.logmel import StreamingLogMel
from ailive.models.runtime import AlmRuntime


@dataclass
class NaiveState:
    audio: np.ndarray  # (channels, patch_span) the newest raw samples, float64
    gru: np.ndarray  # (channels, state_size) float32
    mean_squares: np.ndarray  # (channels, fast_every) the newest frames' mean squares


class NaiveAlm:
    """Full recompute every step; the same gain-model interface as ``AlmRuntime``."""

    def __init__(self, runtime: AlmRuntime) -> None:
        self.runtime = runtime
        self.card = ModelCard(f"naive-{runtime.card.name}", f"{runtime.card.description}, recomputed in full every step",
                              GAIN_MIN_DB, GAIN_MAX_DB)
        self._features: StreamingLogMel | None = None
        self._starts = np.zeros(0, int)

    def initial_state(self, channels: int, sample_rate: int) -> NaiveState:
        card = self.runtime.spec_card
        self._features = StreamingLogMel(sample_rate, card.spec, dtype=np.float32)
        window, hop = card.spec.window(sample_rate), card.spec.hop(sample_rate)
        self._starts = np.arange(card.spec.patch_frames) * hop
        span = int(self._starts[-1]) + window
        return NaiveState(audio=np.zeros((channels, span)), gru=np.zeros((channels, card.state_size), np.float32),
                          mean_squares=np.zeros((channels, card.timing.fast_every)))

    def patch(self, state: NaiveState) -> np.ndarray:
        """The whole 975 ms log-mel patch from the raw samples: (channels, patch_frames, bands) dB, oldest first."""
        assert self._features is not None, "initial_state() first"
        window = self.runtime.spec_card.spec.window(self._features.sample_rate)
        frames = np.lib.stride_tricks.sliding_window_view(state.audio, window, axis=1)[:, self._starts]
        return 10.0 * np.log10(self._features.band_power(frames))

    def step(self, state: NaiveState, frame: np.ndarray) -> tuple[np.ndarray, NaiveState]:
        frame = np.nan_to_num(np.asarray(frame, dtype=np.float64))
        state.audio = np.concatenate([state.audio[:, frame.shape[1]:], frame], axis=1)
        state.mean_squares = np.concatenate([state.mean_squares[:, 1:], np.mean(np.square(frame), axis=1)[:, None]], axis=1)
        patches = self.patch(state)
        active = patch_active(patches)
        (slow,) = self.runtime._slow.run(None, {"patches": patches.astype(np.float32), "active": active})
        gains, state.gru = self.runtime._fast.run(None, {"slow": slow, "rms_db": conditioning_db(state.mean_squares).astype(np.float32),
                                                         "active": active, "state": state.gru})
        return np.where(active, np.clip(gains.astype(np.float64), GAIN_MIN_DB, GAIN_MAX_DB), np.nan), state
