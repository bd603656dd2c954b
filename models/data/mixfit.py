"""Target gains from a human mix: the faders that best rebuild the mix from the channels.

A reference mix made from the same channels is close to a gained sum of
them (plus whatever processing the engineer added); non-negative least
squares finds those gains. Used for MedleyDB's mixes and for real
multitracks that come with their mix. Gains follow the target convention of
:mod:`.targets`: mean 0 dB over the channels the mix uses, NaN for channels
it leaves out.
"""
from __future__ import annotations

import math

import numpy as np

#: Every this-many-th sample enters the fit: the mix is a per-sample sum, so any subset of samples fits it.
STRIDE = 7
#: A channel fitted more than this far below the loudest-gained one is treated as left out of the mix (dB).
LEFT_OUT_DB = -60.0


def fit_gains(channels: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """(C, N) channels and their (N,) mix -> (C,) gains in dB, mean 0 over the used channels, NaN for the rest."""
    from scipy.optimize import nnls

    if channels.ndim != 2 or mix.shape != (channels.shape[1],):
        raise ValueError(f"channels {channels.shape} and mix {mix.shape} do not line up")
    design = np.asarray(channels[:, ::STRIDE], dtype=np.float64).T
    linear, _ = nnls(design, np.asarray(mix[::STRIDE], dtype=np.float64))
    out = np.full(channels.shape[0], math.nan)
    if not np.any(linear > 0):
        return out
    db = 20.0 * np.log10(np.maximum(linear, 1e-300))
    used = db > db.max() + LEFT_OUT_DB
    out[used] = db[used] - float(np.mean(db[used]))
    return out
