"""Multi-resolution STFT distance between a produced mix and its target: the training loss and an evaluation metric.

The paper's resolutions (windows 440/884/3528 samples, FFTs 512/1024/4096 at
44.1 kHz, hop a quarter window), scaled to the stream's rate.  Each resolution
adds spectral convergence and the mean absolute log-magnitude difference
(auraloss's definition); the result is their mean over resolutions.  This is
the numpy version used by evaluation; ``models/train/loss.py`` is its PyTorch
twin, held to it by a test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REFERENCE_RATE = 44100
WINDOWS = (440, 884, 3528)
EPS = 1e-7


@dataclass(frozen=True)
class Resolution:
    window: int
    fft: int
    hop: int


def resolutions(sample_rate: int) -> tuple[Resolution, ...]:
    """The three resolutions at ``sample_rate``: windows scaled from 44.1 kHz, FFT the next power of two."""
    out = []
    for window in WINDOWS:
        scaled = int(round(window * sample_rate / REFERENCE_RATE))
        out.append(Resolution(scaled, 1 << math.ceil(math.log2(scaled)), scaled // 4))
    return tuple(out)


def hann(window: int) -> np.ndarray:
    """Periodic Hann window of ``window`` samples (as torch.hann_window and VGGish use): the one for every STFT here."""
    return 0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(window) / window)


def magnitudes(signal: np.ndarray, resolution: Resolution) -> np.ndarray:
    """(..., N) -> (..., frames, bins) STFT magnitude, frames every hop from sample 0 (no centring)."""
    frames = np.lib.stride_tricks.sliding_window_view(signal, resolution.window, axis=-1)[..., ::resolution.hop, :]
    return np.abs(np.fft.rfft(frames * hann(resolution.window), n=resolution.fft, axis=-1))


def mrstft_distance(produced: np.ndarray, target: np.ndarray, sample_rate: int) -> float:
    """Multi-resolution STFT distance of two mono signals of equal length (lower is closer; 0 when equal)."""
    produced = np.asarray(produced, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if produced.shape != target.shape:
        raise ValueError(f"signals differ in shape: {produced.shape} vs {target.shape}")
    total = 0.0
    for resolution in resolutions(sample_rate):
        x, y = magnitudes(produced, resolution), magnitudes(target, resolution)
        convergence = np.linalg.norm(y - x) / max(np.linalg.norm(y), EPS)
        log_magnitude = np.mean(np.abs(np.log(x + EPS) - np.log(y + EPS)))
        total += convergence + log_magnitude
    return float(total / len(WINDOWS))
