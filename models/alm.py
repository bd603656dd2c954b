"""What the ALM's training and its streaming runtime must agree on, in one place (numpy only).

The rates (when the slow and the fast half run), the activity rule behind the
key-padding mask, the RMS conditioning and the gain range.  The PyTorch side
(``models/train``) imports these; so does ``models/runtime``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import power_db

#: A channel whose loudest log-mel frame in the F1 window sums below this is masked out (silent).
ACTIVE_GATE_DB = -65.0
#: The model's gains stay in this range (the DMC paper's -48..+24 dB).
GAIN_MIN_DB = -48.0
GAIN_MAX_DB = 24.0
#: RMS conditioning is fed as (clamped rms_db - centre) / scale.
RMS_CENTRE_DB = -30.0
RMS_SCALE_DB = 20.0
#: STFT hops per F2 frame (50 ms / 10 ms).
HOPS_PER_FRAME = 5


@dataclass(frozen=True)
class Timing:
    """When each half runs, in F2 frames (50 ms): the slow half every ``slow_every``, the fast half every ``fast_every``.

    Both run on the frames whose index is a multiple of their period, after that
    frame's audio is in; a fast step's gain holds from the next frame until the next fast step's.
    """

    slow_every: int
    fast_every: int

    @classmethod
    def for_variant(cls, variant: str) -> "Timing":
        try:
            return {"mr": cls(6, 1), "sr": cls(20, 20), "dmc": cls(6, 6)}[variant]
        except KeyError:
            raise ValueError(f"unknown ALM variant {variant!r}; known: mr, sr, dmc") from None

    def __post_init__(self) -> None:
        if self.slow_every % self.fast_every:
            raise ValueError("the slow period must be a whole number of fast periods")

    def slow_steps(self, frames: int) -> int:
        return -(-frames // self.slow_every)

    def fast_steps(self, frames: int) -> int:
        return -(-frames // self.fast_every)

    def patch_end_frames(self, frames: int) -> np.ndarray:
        """Index of the newest log-mel frame in each slow step's patch."""
        return (np.arange(self.slow_steps(frames)) * self.slow_every + 1) * HOPS_PER_FRAME - 1


def patch_active(patches_db: np.ndarray) -> np.ndarray:
    """(..., frames, bands) dB -> (...,) bool: any frame louder than ACTIVE_GATE_DB over all bands."""
    frame_db = 10.0 * np.log10(np.sum(np.power(10.0, np.asarray(patches_db, dtype=np.float64) / 10.0), axis=-1))
    return frame_db.max(axis=-1) > ACTIVE_GATE_DB


def conditioning_db(frame_mean_squares: np.ndarray) -> np.ndarray:
    """RMS over the frames since the last fast step: (channels, fast_every) mean squares -> (channels,) dB."""
    return power_db(np.mean(frame_mean_squares, axis=-1))
