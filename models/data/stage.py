"""Where the band stands: a shoebox room, one source per channel and a close cardioid mic on each.

The same drawn stage drives both bleed paths (the closed form in
:mod:`.bleed` and the image-source simulation in :mod:`.room`), so they can
be checked against each other. Ranges as data.md: rooms 4-20 m, RT60
0.2-1.0 s, close mics 3-15 cm from their source, pointing at it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPEED_OF_SOUND_M_S = 343.0
ROOM_LENGTH_M = (4.0, 20.0)
ROOM_WIDTH_RATIO = (0.6, 1.0)
ROOM_HEIGHT_M = (2.5, 6.0)
RT60_S = (0.2, 1.0)
MIC_DISTANCE_M = (0.03, 0.15)
MIN_SOURCE_SPACING_M = 0.8
#: Sabine absorption is capped here: a room that absorbs everything has no reverb to speak of.
MAX_ABSORPTION = 0.95


@dataclass(frozen=True)
class Stage:
    room_m: tuple[float, float, float]
    rt60_s: float
    sources_m: np.ndarray  # (C, 3)
    mics_m: np.ndarray  # (C, 3) mic i close to source i
    mic_axes: np.ndarray  # (C, 3) unit vector each cardioid points along (at its own source)

    @property
    def channels(self) -> int:
        return int(self.sources_m.shape[0])

    def distances_m(self) -> np.ndarray:
        """Distance from every mic to every source.  -> (mic, source)"""
        return np.linalg.norm(self.mics_m[:, None, :] - self.sources_m[None, :, :], axis=-1)

    def cos_incidence(self) -> np.ndarray:
        """Cosine of the angle between each mic's axis and the direction to each source.  -> (mic, source)"""
        to_source = self.sources_m[None, :, :] - self.mics_m[:, None, :]
        to_source /= np.linalg.norm(to_source, axis=-1, keepdims=True)
        return np.einsum("mk,msk->ms", self.mic_axes, to_source)

    @property
    def volume_m3(self) -> float:
        length, width, height = self.room_m
        return length * width * height

    @property
    def surface_m2(self) -> float:
        length, width, height = self.room_m
        return 2.0 * (length * width + length * height + width * height)

    def mean_free_path_s(self) -> float:
        """How long sound travels between reflections on average (4 V / S)."""
        return 4.0 * self.volume_m3 / self.surface_m2 / SPEED_OF_SOUND_M_S

    def absorption(self) -> float:
        """Mean absorption coefficient that gives this RT60 (Sabine)."""
        return min(0.161 * self.volume_m3 / (self.surface_m2 * self.rt60_s), MAX_ABSORPTION)

    def room_constant_m2(self) -> float:
        """R = S a / (1 - a): the reverberant field's energy is 4 W / R."""
        alpha = self.absorption()
        return self.surface_m2 * alpha / (1.0 - alpha)


def random_stage(rng: np.random.Generator, channels: int) -> Stage:
    """A room with ``channels`` sources spread over its floor and a close mic on each."""
    length = rng.uniform(*ROOM_LENGTH_M)
    width = length * rng.uniform(*ROOM_WIDTH_RATIO)
    height = rng.uniform(*ROOM_HEIGHT_M)
    margin = 0.5
    sources: list[np.ndarray] = []
    # The band plays in a stage area of the room (a third of its length, at most 8 x 6 m).
    stage_length, stage_width = min(8.0, length / 3.0 + 1.5), min(6.0, width - 2 * margin)
    while len(sources) < channels:
        for _ in range(200):
            point = np.array([margin + rng.uniform(0.0, stage_length), margin + rng.uniform(0.0, stage_width),
                              rng.uniform(0.4, min(1.8, height - margin))])
            if all(np.linalg.norm(point - s) >= MIN_SOURCE_SPACING_M for s in sources):
                sources.append(point)
                break
        else:
            stage_length, stage_width = min(length - 2 * margin, stage_length + 1.0), min(width - 2 * margin, stage_width + 1.0)
    sources_m = np.array(sources)
    directions = rng.normal(size=(channels, 3))
    directions[:, 2] = np.abs(directions[:, 2]) * 0.5  # mics mostly beside or above their source
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    distance = rng.uniform(*MIC_DISTANCE_M, size=(channels, 1))
    mics_m = sources_m + directions * distance
    return Stage((float(length), float(width), float(height)), float(rng.uniform(*RT60_S)), sources_m, mics_m,
                 -directions)


def cardioid(cos_angle: np.ndarray) -> np.ndarray:
    """Cardioid pickup, 1 on axis, 0 behind."""
    return 0.5 * (1.0 + np.asarray(cos_angle))


def diffuse_gain(stage: Stage) -> np.ndarray:
    """Amplitude of the reverberant field at each mic relative to its own source's direct sound.  -> (C,)

    Sabine steady state: reverberant/direct energy at distance r is 16 pi r^2 / R for
    an omni; a cardioid takes a third of a diffuse field.
    """
    own = np.diag(stage.distances_m())
    return own * math.sqrt(16.0 * math.pi / (3.0 * stage.room_constant_m2()))
