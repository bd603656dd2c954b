"""Per-frame signal features shared by the runtime, the classic models and training.

One implementation of each: RMS level and BS.1770 K-weighted mean square.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Level reported for digital silence, dBFS.
SILENCE_DB = -150.0
#: Filter state smaller than this (-300 dB) is set to zero between frames.
DENORMAL_FLUSH = 1e-15


def rms_db(frame: np.ndarray) -> np.ndarray:
    """RMS level of each channel in dBFS.  frame: (channels, samples) -> (channels,)."""
    mean_square = np.mean(np.square(frame, dtype=np.float64), axis=1)
    return power_db(mean_square)


def power_db(mean_square: np.ndarray) -> np.ndarray:
    """10 log10 of a mean square, floored at :data:`SILENCE_DB`."""
    floor = 10.0 ** (SILENCE_DB / 10.0)
    return 10.0 * np.log10(np.maximum(mean_square, floor))


def _biquad_high_shelf(rate: int, gain_db: float, q: float, fc: float) -> tuple[np.ndarray, np.ndarray]:
    a_gain = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * fc / rate
    alpha = math.sin(w0) / (2.0 * q)
    cos_w0 = math.cos(w0)
    sq = 2.0 * math.sqrt(a_gain) * alpha
    b = np.array([a_gain * ((a_gain + 1) + (a_gain - 1) * cos_w0 + sq),
                  -2 * a_gain * ((a_gain - 1) + (a_gain + 1) * cos_w0),
                  a_gain * ((a_gain + 1) + (a_gain - 1) * cos_w0 - sq)])
    a = np.array([(a_gain + 1) - (a_gain - 1) * cos_w0 + sq,
                  2 * ((a_gain - 1) - (a_gain + 1) * cos_w0),
                  (a_gain + 1) - (a_gain - 1) * cos_w0 - sq])
    return b / a[0], a / a[0]


def _biquad_high_pass(rate: int, q: float, fc: float) -> tuple[np.ndarray, np.ndarray]:
    w0 = 2.0 * math.pi * fc / rate
    alpha = math.sin(w0) / (2.0 * q)
    cos_w0 = math.cos(w0)
    b = np.array([(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2])
    a = np.array([1 + alpha, -2 * cos_w0, 1 - alpha])
    return b / a[0], a / a[0]


FilterState = np.ndarray  # (2 stages, channels, 2) second-order-section state


@dataclass(frozen=True)
class KWeighting:
    """ITU-R BS.1770 K-weighting (high shelf, then high pass), streamed with explicit filter state.

    Filter parameters as pyloudnorm's ``Meter`` uses them, so levels match it;
    run as one cascade of second-order sections (one pass over the samples).
    """

    sample_rate: int

    def __post_init__(self) -> None:
        # scipy.signal loads when a K-weighting is made (a model being set up), never in a control step: its
        # first import takes from 0.3 s to seconds on a busy machine, and the ALM never needs it.
        import scipy.signal  # noqa: F401

    @property
    def sos(self) -> np.ndarray:
        stages = [
            _biquad_high_shelf(self.sample_rate, 4.0, 1 / math.sqrt(2), 1500.0),
            _biquad_high_pass(self.sample_rate, 0.5, 38.0),
        ]
        return np.vstack([np.concatenate([b, a]) for b, a in stages])  # (2, 6)

    def initial_state(self, channels: int) -> FilterState:
        return np.zeros((2, channels, 2))

    def mean_square(self, frame: np.ndarray, state: FilterState) -> tuple[np.ndarray, FilterState]:
        """K-weighted mean square per channel over this frame.  (channels, samples) -> (channels,), new state."""
        from scipy.signal import sosfilt  # loaded by __post_init__: scipy.signal is ~80 MB the ALM never uses

        weighted, new_state = sosfilt(self.sos, frame.astype(np.float64, copy=False), axis=1, zi=state)
        # A filter ringing out into digital silence decays into subnormal floats, which
        # cost a hundred times more per sample; far below audibility, so flush them.
        new_state[np.abs(new_state) < DENORMAL_FLUSH] = 0.0
        return np.mean(np.square(weighted), axis=1), new_state


def loudness_lufs(mean_square: np.ndarray) -> np.ndarray:
    """BS.1770 loudness of a K-weighted mean square: -0.691 + 10 log10(ms)."""
    return -0.691 + power_db(mean_square)


__all__ = ["SILENCE_DB", "KWeighting", "loudness_lufs", "power_db", "rms_db"]
