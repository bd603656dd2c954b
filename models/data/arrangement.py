"""What a song is before it is rendered: parts of timed notes, each with a GM program and a role."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Columns of a part's note array.
START_S, END_S, PITCH, VELOCITY = range(4)


@dataclass(frozen=True)
class Part:
    """One channel to be: what it plays and on what."""

    role: str
    program: int  # General MIDI program 0..127 (for drums: the kit, 0 = standard)
    is_drum: bool
    notes: np.ndarray  # (notes, 4): start_s, end_s, MIDI pitch, velocity 1..127

    def __post_init__(self) -> None:
        if self.notes.ndim != 2 or self.notes.shape[1] != 4:
            raise ValueError(f"a part's notes are (notes, 4), got {self.notes.shape}")


@dataclass(frozen=True)
class Arrangement:
    name: str
    seconds: float
    parts: tuple[Part, ...]
    source: str  # where it came from: "band" or the corpus path


def notes_array(rows: list[tuple[float, float, int, int]]) -> np.ndarray:
    """Notes as a float array sorted by start.  -> (notes, 4)"""
    if not rows:
        return np.zeros((0, 4))
    array = np.asarray(rows, dtype=np.float64)
    return array[np.argsort(array[:, START_S], kind="stable")]
