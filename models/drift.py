"""The input drift of a riding example: how far one channel's input level has wandered, in dB, over time.

One formula serves the riding evaluation set (which applies it to the audio),
the training batches (which apply it to mel powers) and the scorer (whose
ideal fader undoes it), so all three agree on what a drift is.
"""
from __future__ import annotations

import numpy as np


def drift_curve(times_s: np.ndarray, points_s: list[float], points_db: list[float]) -> np.ndarray:
    """The drift (dB) at ``times_s`` from its keypoints (linear between them, held outside)."""
    return np.interp(times_s, points_s, points_db)
