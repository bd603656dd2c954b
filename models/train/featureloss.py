"""The feature-domain loss: the produced mix's log-mel against the target mix's, and the gains in dB.

The desk's fader scales a channel's power, so the produced mix's mel power
is the sum over channels of each input's power times the fader in force in
that 50 ms frame (the gain of control step k from frame k + 1, as on the
desk). The mix level is the engineer's: the mean log-mel difference per
example is taken out before the mean absolute difference is scored.
"""
from __future__ import annotations

import numpy as np
import torch

from ailive.models.alm import HOPS_PER_FRAME, Timing
from ailive.models.logmel import LogMelSpec

from .featurebatch import FeatureBatch
from .features import conditioning_db, patches_at

#: Bands further than this below the target mix's loudest band are floored (they carry no balance).
DYNAMIC_RANGE_DB = 60.0


def model_inputs(batch: FeatureBatch, timing: Timing, spec: LogMelSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(patches, conditioning, input power) as the model and the loss take them."""
    power = torch.from_numpy(batch.input_power)
    logmel = 10.0 * torch.log10(torch.clamp(power, min=10.0 ** (spec.floor_db / 10.0)))
    frames = batch.input_ms.shape[-1]
    ends = torch.from_numpy(timing.patch_end_frames(frames))
    patches = patches_at(logmel, ends, spec)
    conditioning = conditioning_db(torch.from_numpy(batch.input_ms).to(torch.float64), timing)
    return patches, conditioning, power


def produced_power(power: torch.Tensor, gains_db: torch.Tensor, fast_every: int) -> torch.Tensor:
    """Sum over channels of input power times the fader in force: (B, C, T, bands), (B, C, fast_steps) -> (B, T, bands)."""
    frames = power.shape[2] // HOPS_PER_FRAME
    per_frame = gains_db.repeat_interleave(fast_every, dim=-1)[..., : frames - 1]
    per_frame = torch.cat([torch.zeros_like(per_frame[..., :1]), per_frame], dim=-1)
    per_hop = torch.pow(10.0, per_frame / 10.0).repeat_interleave(HOPS_PER_FRAME, dim=-1)
    return torch.einsum("bct,bctk->btk", per_hop.to(power.dtype), power)


def mix_logmel_loss(produced: torch.Tensor, target: torch.Tensor, from_hop: int) -> torch.Tensor:
    """Mean |log-mel difference| in dB after removing each example's mean difference (its mix level)."""
    produced, target = produced[:, from_hop:], target[:, from_hop:]
    floor = target.flatten(1).amax(1).clamp(min=1e-12)[:, None, None] * 10.0 ** (-DYNAMIC_RANGE_DB / 10.0)
    difference = 10.0 * (torch.log10(produced + floor) - torch.log10(target + floor))
    difference = difference - difference.mean(dim=(1, 2), keepdim=True)
    return difference.abs().mean()


def gain_targets(batch: FeatureBatch, fast_every: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(target gain per control step, NaN as 0; weight) for :func:`.loss.relative_gain_loss`.

    Step k's gain is in force from frame k * fast_every + 1 (:func:`produced_power`), so its target undoes the
    input drift of that frame.
    """
    weight = batch.active & batch.present & np.isfinite(batch.target_gain_db)
    frames = batch.drift_db.shape[-1]
    in_force = np.minimum(np.arange(steps) * fast_every + 1, frames - 1)
    target = np.nan_to_num(batch.target_gain_db)[..., None] - batch.drift_db[..., in_force]
    return torch.from_numpy(target).to(torch.float32), torch.from_numpy(weight)
