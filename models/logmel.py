"""Streaming log-mel patches in the VGGish layout, computed incrementally at the stream's own rate.

The layout is VGGish's: 25 ms Hann windows every 10 ms, 64 mel bands
(HTK scale, 125..7500 Hz), patches of 96 frames (975 ms).  The spectrum is
taken at the stream's rate (44.1 or 48 kHz) with the mel triangles placed in
Hz, which gives the same band powers as resampling to 16 kHz first, without
a resampling filter's cost, delay or passband ripple: the bands stop at
7.5 kHz, below every supported Nyquist.  Band powers are scaled as a power
spectral density (Parseval), so a level reads the same at every rate: a
full-scale sine is about -6 dB in its band.

Each control step hands over one F2 frame (50 ms = 5 hops) and only its five
new STFT frames are computed; the newest frame always ends on the newest
sample.  ``models/train/features.py`` is the batch twin used in training; a
test holds the two to 1e-4 dB.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.fft

from .base import FRAME_S
from .errors import ModelError
from .mrstft import hann


class UnsupportedRateError(ModelError):
    """The stream's sample rate cannot carry the 10 ms hop or the 50 ms frame in whole samples."""


@dataclass(frozen=True)
class LogMelSpec:
    """Feature parameters; the model card records them so a runtime can refuse a mismatch."""

    window_s: float = 0.025
    hop_s: float = 0.010
    bands: int = 64
    fmin_hz: float = 125.0
    fmax_hz: float = 7500.0
    patch_frames: int = 96
    floor_db: float = -100.0

    def check_rate(self, sample_rate: int) -> None:
        hop = sample_rate * self.hop_s
        frame = sample_rate * FRAME_S
        if sample_rate < 2 * self.fmax_hz or abs(hop - round(hop)) > 1e-9 or abs(frame / hop - round(frame / hop)) > 1e-9:
            raise UnsupportedRateError(
                f"sample rate {sample_rate} Hz is not supported: it must be a multiple of 100 Hz "
                f"and at least {2 * self.fmax_hz:.0f} Hz (44100 and 48000 are the usual ones)")

    def window(self, sample_rate: int) -> int:
        return int(round(self.window_s * sample_rate))

    def hop(self, sample_rate: int) -> int:
        return int(round(self.hop_s * sample_rate))

    def fft_size(self, sample_rate: int) -> int:
        return scipy.fft.next_fast_len(self.window(sample_rate), real=True)

    def hann(self, sample_rate: int) -> np.ndarray:
        """Periodic Hann window (as VGGish and torch.hann_window use)."""
        return hann(self.window(sample_rate))

    def mel_matrix(self, sample_rate: int) -> np.ndarray:
        """(bands, fft_size//2+1) triangles on the HTK mel scale, peak 1, placed in Hz."""
        nfft = self.fft_size(sample_rate)
        freqs = np.arange(nfft // 2 + 1) * sample_rate / nfft
        mel = _hz_to_mel(freqs)
        edges = np.linspace(_hz_to_mel(self.fmin_hz), _hz_to_mel(self.fmax_hz), self.bands + 2)
        lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        rising = (mel[None, :] - lower) / (centre - lower)
        falling = (upper - mel[None, :]) / (upper - centre)
        return np.maximum(0.0, np.minimum(rising, falling))

    def power_scale(self, sample_rate: int) -> np.ndarray:
        """Per-bin factor turning |X|^2 into band power: one-sided density times bin width (Parseval)."""
        nfft = self.fft_size(sample_rate)
        scale = np.full(nfft // 2 + 1, 2.0 / (nfft * float(np.sum(self.hann(sample_rate) ** 2))))
        scale[0] /= 2.0
        if nfft % 2 == 0:
            scale[-1] /= 2.0
        return scale


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@dataclass
class LogMelState:
    pending: np.ndarray  # (channels, samples) not yet consumed by a whole frame, window - hop of them after each step
    ring: np.ndarray  # (channels, patch_frames, bands) log-mel frames, oldest overwritten first
    levels: np.ndarray  # (channels, patch_frames) each frame's power over all bands, dB, same rows as ring
    write: int = 0  # next ring row to write
    frames: int = 0  # frames computed since the start


@dataclass
class StreamingLogMel:
    """Incremental log-mel for many channels; only new STFT frames are computed each step."""

    sample_rate: int
    spec: LogMelSpec = field(default_factory=LogMelSpec)
    #: float32 in the runtime, as in training (half the FFT and matmul time); float64 where the twins are compared.
    dtype: type[np.floating] = np.float64

    def __post_init__(self) -> None:
        self.spec.check_rate(self.sample_rate)
        self._win = self.spec.window(self.sample_rate)
        self._hop = self.spec.hop(self.sample_rate)
        self._nfft = self.spec.fft_size(self.sample_rate)

    @cached_property
    def _weights(self) -> np.ndarray:
        """(bins, bands): mel triangles with the power scale folded in, so one matmul gives band power."""
        weights = self.spec.mel_matrix(self.sample_rate) * self.spec.power_scale(self.sample_rate)[None, :]
        return weights.T.astype(self.dtype)

    @cached_property
    def _window(self) -> np.ndarray:
        return self.spec.hann(self.sample_rate).astype(self.dtype)

    def initial_state(self, channels: int) -> LogMelState:
        """Silence before the stream starts: the ring reads as the floor, the pending samples as zeros."""
        return LogMelState(
            pending=np.zeros((channels, self._win - self._hop), self.dtype),
            ring=np.full((channels, self.spec.patch_frames, self.spec.bands), self.spec.floor_db, self.dtype),
            levels=np.full((channels, self.spec.patch_frames), self.spec.floor_db + 10.0 * np.log10(self.spec.bands),
                           self.dtype),
        )

    def push(self, state: LogMelState, samples: np.ndarray) -> np.ndarray:
        """Consume (channels, samples); return the new frames (channels, new_frames, bands) in dB."""
        pending = np.concatenate([state.pending, np.asarray(samples, dtype=self.dtype)], axis=1)
        count = (pending.shape[1] - self._win) // self._hop + 1 if pending.shape[1] >= self._win else 0
        if count == 0:
            state.pending = pending
            return np.empty((pending.shape[0], 0, self.spec.bands))
        starts = np.arange(count) * self._hop
        frames = np.lib.stride_tricks.sliding_window_view(pending, self._win, axis=1)[:, starts]
        band_power = self.band_power(frames)
        new = 10.0 * np.log10(band_power)
        state.pending = pending[:, count * self._hop:].copy()
        keep = slice(max(0, count - self.spec.patch_frames), count)
        rows = (state.write + np.arange(keep.start, keep.stop)) % self.spec.patch_frames
        state.ring[:, rows] = new[:, keep]
        state.levels[:, rows] = 10.0 * np.log10(np.sum(band_power[:, keep], axis=-1))
        state.write = int((state.write + count) % self.spec.patch_frames)
        state.frames += count
        return new

    def band_power(self, frames: np.ndarray) -> np.ndarray:
        """(..., window) raw frames -> (..., bands) mel band power, floored (linear, not dB)."""
        spectrum = scipy.fft.rfft(frames * self._window, n=self._nfft, axis=-1)[..., self._bins]
        power = spectrum.real ** 2 + spectrum.imag ** 2
        return np.maximum(power @ self._weights[self._bins], 10.0 ** (self.spec.floor_db / 10.0))

    @cached_property
    def _bins(self) -> slice:
        """The FFT bins any mel triangle touches (125..7500 Hz): the rest are never computed into bands."""
        used = np.flatnonzero(self._weights.any(axis=1))
        return slice(int(used[0]), int(used[-1]) + 1)

    def active(self, state: LogMelState, gate_db: float) -> np.ndarray:
        """(channels,) bool: any frame of the current patch above ``gate_db`` over all bands."""
        return state.levels.max(axis=1) > gate_db

    def patch(self, state: LogMelState) -> np.ndarray:
        """The latest 96 frames per channel, oldest first: (channels, patch_frames, bands)."""
        return np.roll(state.ring, -state.write, axis=1)
