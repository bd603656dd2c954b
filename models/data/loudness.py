"""Loudness of any stretch of a part, fast: BS.1770 gating on K-weighted energy precomputed per 100 ms.

K-weighting a 10 s segment of 8 channels costs ~0.1 s, too slow to do for
every training example, so a song's parts are K-weighted once (with
:class:`ailive.models.features.KWeighting`, the one implementation) into
mean squares per 100 ms step; a segment's gated loudness is then a few
hundred additions. Gating as ITU-R BS.1770-4 (and pyloudnorm): 400 ms blocks
every 100 ms, an absolute gate at -70 LUFS, a relative gate 10 LU below the
ungated level; :func:`gated_loudness` matches ``pyloudnorm.Meter.integrated_loudness``.
"""
from __future__ import annotations

import math

import numpy as np

from ailive.models.features import KWeighting, loudness_lufs

#: Energy step, seconds (the BS.1770 block hop).
STEP_S = 0.1
#: Gating block, in steps (400 ms).
BLOCK_STEPS = 4
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


def step_samples(sample_rate: int) -> int:
    """Samples per energy step (4410 at 44.1 kHz, 4800 at 48 kHz)."""
    return int(round(sample_rate * STEP_S))


def step_energy(signals: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weighted mean square of every channel per 100 ms step.  (channels, samples) -> (channels, steps).

    A last partial step is dropped.
    """
    weighting = KWeighting(sample_rate)
    hop = step_samples(sample_rate)
    steps = signals.shape[1] // hop
    energy = np.empty((signals.shape[0], steps))
    state = weighting.initial_state(signals.shape[0])
    for step in range(steps):
        energy[:, step], state = weighting.mean_square(signals[:, step * hop:(step + 1) * hop], state)
    return energy


def block_energy(steps: np.ndarray) -> np.ndarray:
    """Mean square of each 400 ms gating block from the 100 ms steps.  (..., steps) -> (..., blocks)."""
    if steps.shape[-1] < BLOCK_STEPS:
        return np.empty(steps.shape[:-1] + (0,))
    cumulative = np.cumsum(np.concatenate([np.zeros(steps.shape[:-1] + (1,)), steps], axis=-1), axis=-1)
    return (cumulative[..., BLOCK_STEPS:] - cumulative[..., :-BLOCK_STEPS]) / BLOCK_STEPS


def gated_loudness(steps: np.ndarray) -> np.ndarray:
    """BS.1770 gated loudness (LUFS) of each channel's steps; -inf where no block passes the gates.

    steps: (channels, steps) K-weighted mean squares -> (channels,)
    """
    blocks = block_energy(np.atleast_2d(steps))
    out = np.full(blocks.shape[0], -math.inf)
    for channel, energy in enumerate(blocks):
        loud = energy[loudness_lufs(energy) > ABSOLUTE_GATE_LUFS]
        if loud.size == 0:
            continue
        relative = float(loudness_lufs(np.array([loud.mean()]))[0]) + RELATIVE_GATE_LU
        kept = loud[loudness_lufs(loud) > relative]
        out[channel] = float(loudness_lufs(np.array([kept.mean()]))[0])
    return out


def sounding_fraction(steps: np.ndarray, floor_lufs: np.ndarray) -> np.ndarray:
    """Share of each channel's 400 ms blocks louder than its ``floor_lufs``.  -> (channels,)"""
    blocks = block_energy(np.atleast_2d(steps))
    if blocks.shape[-1] == 0:
        return np.zeros(blocks.shape[0])
    return np.mean(loudness_lufs(blocks) > np.asarray(floor_lufs)[:, None], axis=1)
