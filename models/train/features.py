"""Batch twin of :mod:`ailive.models.logmel` in PyTorch, for training on whole segments.

Same parameters, same framing (the newest frame ends on the newest sample),
same mel weights (taken from the numpy spec, not rewritten), computed in
float64 so the parity test can hold it to 1e-4 dB of the streaming path.
"""
from __future__ import annotations

import numpy as np
import torch

from ailive.models.alm import Timing
from ailive.models.base import FRAME_S
from ailive.models.features import SILENCE_DB
from ailive.models.logmel import LogMelSpec


class LogMel(torch.nn.Module):
    """(..., samples) audio -> (..., frames, bands) log-mel in dB; frame j ends at sample (j + 1) * hop."""

    def __init__(self, sample_rate: int, spec: LogMelSpec | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.dtype = dtype
        self.spec = spec or LogMelSpec()
        self.spec.check_rate(sample_rate)
        self.sample_rate = sample_rate
        self.win = self.spec.window(sample_rate)
        self.hop = self.spec.hop(sample_rate)
        self.nfft = self.spec.fft_size(sample_rate)
        weights = self.spec.mel_matrix(sample_rate) * self.spec.power_scale(sample_rate)[None, :]
        used = np.flatnonzero(weights.any(axis=0))
        self.bins = slice(int(used[0]), int(used[-1]) + 1)  # only the bins a mel triangle touches
        self.register_buffer("weights", torch.from_numpy(weights.T[self.bins].copy()).to(dtype), persistent=False)
        self.register_buffer("window", torch.from_numpy(self.spec.hann(sample_rate)).to(dtype), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        audio = audio.to(self.dtype)
        padded = torch.nn.functional.pad(audio, (self.win - self.hop, 0))
        frames = padded.unfold(-1, self.win, self.hop)
        spectrum = torch.fft.rfft(frames * self.window, n=self.nfft, dim=-1)[..., self.bins]
        band_power = (spectrum.real ** 2 + spectrum.imag ** 2) @ self.weights
        return 10.0 * torch.log10(torch.clamp(band_power, min=10.0 ** (self.spec.floor_db / 10.0)))


def patches_at(logmel: torch.Tensor, end_frames: torch.Tensor, spec: LogMelSpec) -> torch.Tensor:
    """The 96-frame patch ending at each of ``end_frames`` (floor before the start).

    logmel: (..., frames, bands) -> (..., len(end_frames), patch_frames, bands).
    """
    pad = spec.patch_frames - 1
    padded = torch.nn.functional.pad(logmel.transpose(-1, -2), (pad, 0), value=spec.floor_db).transpose(-1, -2)
    index = end_frames[:, None] + torch.arange(spec.patch_frames, device=logmel.device)[None, :]
    return padded[..., index, :]


def frame_mean_square(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean square of each whole F2 frame.  (..., N) -> (..., N // F2), float64."""
    size = int(round(sample_rate * FRAME_S))
    frames = audio.to(torch.float64)[..., : audio.shape[-1] // size * size].unflatten(-1, (-1, size))
    return frames.square().mean(-1)


def conditioning_db(mean_square: torch.Tensor, timing: Timing) -> torch.Tensor:
    """RMS conditioning at each fast step (over the fast period ending on it, silence before the start), in dB.

    (..., frames) mean squares -> (..., fast_steps); the twin of :func:`ailive.models.alm.conditioning_db`.
    """
    period = timing.fast_every
    padded = torch.nn.functional.pad(mean_square, (period - 1, 0))
    windows = padded.unfold(-1, period, period)[..., : timing.fast_steps(mean_square.shape[-1]), :]
    power = windows.mean(-1)
    return 10.0 * torch.log10(torch.clamp(power, min=10.0 ** (SILENCE_DB / 10.0)))


def segment_features(audio: torch.Tensor, sample_rate: int, timing: Timing, spec: LogMelSpec | None = None,
                     dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Everything the model sees of a segment: (..., channels, N) audio -> (patches, conditioning).

    patches: (..., channels, slow_steps, frames, bands); conditioning: (..., channels, fast_steps) dB.
    Only whole F2 frames count.  Training may pass float32 (twice as fast; the parity test holds float64).
    """
    spec = spec or LogMelSpec()
    mean_square = frame_mean_square(audio, sample_rate)
    frames = mean_square.shape[-1]
    logmel = LogMel(sample_rate, spec, dtype).to(audio.device)(audio[..., : frames * int(round(sample_rate * FRAME_S))])
    ends = torch.from_numpy(timing.patch_end_frames(frames)).to(audio.device)
    return patches_at(logmel, ends, spec), conditioning_db(mean_square, timing)
