"""The fast bleed path: every close mic hears the others by a closed-form direct path plus one diffuse tail.

Per mic i and source j: the direct path at 1/r from the source, delayed by
the extra distance and weighted by the cardioid's pickup at that angle,
relative to its own source; plus the room's reverberant field at the level
Sabine's theory gives (:func:`.stage.diffuse_gain`), one shared tail of the
summed sources decorrelated per mic by an offset. Bleed severity is then
set per example (the paper randomises it): the bleed is scaled so that the
median mic hears the sum of the other sources ``bleed_db`` below its own.
Cost for 8 channels x 10 s at 44.1 kHz: ~15 ms (BLAS axpys and one FFT
convolution at a quarter of the rate, where a tail's energy is).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.linalg.blas import saxpy

from .stage import SPEED_OF_SOUND_M_S, Stage, cardioid, diffuse_gain

#: The diffuse tail is computed at the sample rate divided by this.
TAIL_DECIMATION = 4
#: The tail is cut where it has decayed this far (dB).
TAIL_RANGE_DB = 40.0
#: Frames summed at a time by the direct paths.
CHUNK_FRAMES = 8192
#: Per-mic offsets into the shared tail, seconds, so mics do not hear one identical reverb.
TAIL_OFFSET_S = (0.0, 0.03)


@dataclass(frozen=True)
class BleedPaths:
    """How every mic hears every source, relative to its own source's direct sound."""

    gain: np.ndarray  # (mic, source) direct-path amplitude, 1 on the diagonal
    delay: np.ndarray  # (mic, source) samples, 0 on the diagonal
    diffuse: np.ndarray  # (mic,) amplitude of the summed sources' reverberant field
    tail: np.ndarray  # (taps,) unit-energy reverb tail at rate / TAIL_DECIMATION
    tail_offset: np.ndarray  # (mic,) samples at the tail's rate

    def bleed_ratio_db(self) -> np.ndarray:
        """Energy of all bleed at each mic relative to its own source, equal source powers.  -> (mic,)"""
        off = self.gain.copy()
        np.fill_diagonal(off, 0.0)
        channels = self.gain.shape[0]
        energy = np.sum(off ** 2, axis=1) + channels * self.diffuse ** 2
        return 10.0 * np.log10(np.maximum(energy, 1e-30))

    def scaled(self, bleed_db: float) -> "BleedPaths":
        """The same paths with the bleed scaled so the median mic's bleed ratio is ``bleed_db``."""
        scale = 10.0 ** ((bleed_db - float(np.median(self.bleed_ratio_db()))) / 20.0)
        gain = self.gain * scale
        np.fill_diagonal(gain, 1.0)
        return BleedPaths(gain, self.delay, self.diffuse * scale, self.tail, self.tail_offset)


def closed_form_paths(stage: Stage, sample_rate: int, rng: np.random.Generator) -> BleedPaths:
    distance = stage.distances_m()
    own = np.diag(distance)[:, None]
    gain = (own / distance) * cardioid(stage.cos_incidence())
    np.fill_diagonal(gain, 1.0)
    delay = np.rint(np.maximum(distance - own, 0.0) / SPEED_OF_SOUND_M_S * sample_rate).astype(np.int64)
    np.fill_diagonal(delay, 0)
    tail_rate = sample_rate / TAIL_DECIMATION
    length = int(stage.rt60_s * TAIL_RANGE_DB / 60.0 * tail_rate)
    t = np.arange(length) / tail_rate
    tail = rng.standard_normal(length) * np.exp(-3.0 * math.log(10.0) * t / stage.rt60_s)
    tail[: int(stage.mean_free_path_s() * tail_rate)] = 0.0  # the first reflections arrive after about one mean free path
    tail /= math.sqrt(float(np.sum(tail ** 2))) or 1.0
    offsets = rng.integers(int(TAIL_OFFSET_S[0] * tail_rate), int(TAIL_OFFSET_S[1] * tail_rate) + 1, size=stage.channels)
    return BleedPaths(gain, delay, diffuse_gain(stage), tail.astype(np.float32), offsets)


def apply_bleed(direct: np.ndarray, paths: BleedPaths, post_gain: np.ndarray | None = None) -> np.ndarray:
    """What each desk input carries: its own source plus the others' direct paths and the room.

    direct: (C, N) each channel's own source as it reaches the desk, i.e. already
    through its preamp gain ``post_gain`` (C,) (linear; None: unity). The bleed is
    taken from the same arrays (each source is ``direct_j / post_j``), so no
    separate source copy is made.  -> (C, N) float32
    """
    direct = np.ascontiguousarray(direct, dtype=np.float32)
    channels, frames = direct.shape
    post = np.ones(channels) if post_gain is None else np.asarray(post_gain, dtype=np.float64).reshape(channels)
    inputs = direct.copy()
    pairs = [(i, j, int(paths.delay[i, j]), float(paths.gain[i, j] * post[i] / post[j]))
             for i in range(channels) for j in range(channels) if i != j]
    # Chunk by chunk, so the rows being summed stay in cache (memory traffic, not arithmetic, is the cost).
    for first in range(0, frames, CHUNK_FRAMES):
        last = min(frames, first + CHUNK_FRAMES)
        for i, j, d, g in pairs:
            low = max(first, d)
            if low < last:
                saxpy(direct[j, low - d:last - d], inputs[i, low:last], a=g)
    room_sum = (1.0 / post).astype(np.float32) @ direct  # the sources themselves, summed
    reverb = _diffuse(room_sum, paths.tail, int(np.max(paths.tail_offset, initial=0)))
    for i in range(channels):
        start = int(paths.tail_offset[i]) * TAIL_DECIMATION
        saxpy(reverb[start: start + frames], inputs[i], a=float(paths.diffuse[i] * post[i]))
    return inputs


def _diffuse(mix: np.ndarray, tail: np.ndarray, extra: int) -> np.ndarray:
    """``mix`` through the tail at a quarter of the rate, held back to full rate; ``extra`` tail-rate samples longer."""
    frames = mix.shape[0]
    usable = frames - frames % TAIL_DECIMATION
    low = mix[:usable].reshape(-1, TAIL_DECIMATION).mean(axis=1)
    size = scipy.fft.next_fast_len(low.shape[0] + tail.shape[0])
    wet = scipy.fft.irfft(scipy.fft.rfft(low, size) * scipy.fft.rfft(tail, size), size)
    wet = np.concatenate([np.zeros(extra, dtype=np.float32), wet[: low.shape[0]].astype(np.float32)])
    full = np.repeat(wet, TAIL_DECIMATION)
    need = frames + extra * TAIL_DECIMATION
    return np.pad(full, (0, max(0, need - full.shape[0])))[:need]
