"""Test signals with a known right answer: noise per channel at a chosen RMS level."""
from __future__ import annotations

import numpy as np


def noise_channels(levels_db: list[float | None], seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """White noise per channel at ``levels_db`` RMS (None: silence).  -> (channels, frames) float32"""
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    out = np.zeros((len(levels_db), frames), dtype=np.float32)
    for index, level in enumerate(levels_db):
        if level is not None:
            out[index] = rng.standard_normal(frames) * 10 ** (level / 20)
    return out
