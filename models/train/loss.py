"""Training losses: the multi-resolution STFT distance (PyTorch twin of :mod:`ailive.models.mrstft`) and the gain loss."""
from __future__ import annotations

import torch

from ailive.models.mrstft import EPS, WINDOWS, resolutions


def mrstft_loss(produced: torch.Tensor, target: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(batch, N) produced and target mixes -> mean over the batch of the multi-resolution STFT distance."""
    total = produced.new_zeros(produced.shape[0])
    for resolution in resolutions(sample_rate):
        window = torch.hann_window(resolution.window, periodic=True, dtype=produced.dtype, device=produced.device)
        x = _magnitudes(produced, resolution, window)
        y = _magnitudes(target, resolution, window)
        convergence = torch.linalg.vector_norm(y - x, dim=(-2, -1)) / torch.linalg.vector_norm(y, dim=(-2, -1)).clamp(min=EPS)
        log_magnitude = (torch.log(x + EPS) - torch.log(y + EPS)).abs().mean(dim=(-2, -1))
        total = total + convergence + log_magnitude
    return (total / len(WINDOWS)).mean()


def _magnitudes(signal: torch.Tensor, resolution, window: torch.Tensor) -> torch.Tensor:
    frames = signal.unfold(-1, resolution.window, resolution.hop)
    return torch.fft.rfft(frames * window, n=resolution.fft, dim=-1).abs()


def relative_gain_loss(gains_db: torch.Tensor, target_db: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |gain - target| in dB after removing each step's common offset (the mix level is the engineer's).

    gains_db: (batch, channels, steps); target_db: (batch, channels), or (batch, channels, steps) for a
    target that moves; weight: (batch, channels) 1 for active channels with a target, 0 elsewhere.
    """
    target = torch.nan_to_num(target_db)
    if target.dim() == 2:
        target = target[..., None]
    w = weight[..., None].to(gains_db.dtype)
    error = gains_db - target
    offset = (error * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)
    return ((error - offset).abs() * w).sum() / (w.sum() * gains_db.shape[-1]).clamp(min=1.0)
