"""One training or evaluation example: a segment of a song as the desk would hear it, and its target.

The chain, per channel i (all gains random per example, as the paper does):

    clean part -> level to NOMINAL_LUFS -> stage gain (pre, +-12 dB) -> room: own source + bleed of
    the others -> preamp gain (post, +-12 dB) -> the desk input

``direct`` is the same chain without the bleed (channel i's own source
only); the target gains come from :mod:`.targets` on the direct signals, and
the target mix is the direct signals summed at those gains. Fast enough to
build on the fly while training (~20 ms for 8 channels x 10 s with the
closed-form bleed).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ModelError
from .bleed import apply_bleed, closed_form_paths
from .loudness import gated_loudness, sounding_fraction, step_samples
from .songs import Song
from .stage import random_stage
from .targets import balance_lu as rule_balance
from .targets import target_gains

log = logging.getLogger(__name__)

#: Every clean part is levelled to this loudness (over the whole song) before the stage gain.
NOMINAL_LUFS = -24.0
#: Stage and preamp gains are uniform in +-this (dB).
GAIN_RANGE_DB = 12.0
#: Median bleed of the other sources at a mic, relative to its own source, uniform in this range (dB).
BLEED_DB = (-30.0, -10.0)
#: A part counts as active in a segment when at least this share of its 400 ms blocks sound ...
ACTIVE_SHARE = 0.2
#: ... where sounding is louder than this far below the part's loudness over the song (LU).
SOUNDING_BELOW_LU = 20.0
#: Random starts tried to find a segment where most parts play.
START_TRIES = 4


class ExampleError(ModelError, ValueError):
    """A song that cannot make an example (one part, too short)."""


@dataclass(frozen=True)
class Example:
    song: str
    sample_rate: int
    roles: tuple[str, ...]
    inputs: np.ndarray  # (C, N) float32: what the desk's inputs carry (input gain -> bleed -> input gain)
    direct: np.ndarray  # (C, N) float32: inputs without the bleed part (each channel's own source only)
    target_gain_db: np.ndarray  # (C,) fader per input channel that gives the target balance; NaN where the part is silent
    target_mix: np.ndarray  # (N,) float32 = sum_i 10**(target_gain_db_i/20) * direct_i over active i
    active: np.ndarray  # (C,) bool


def make_example(song: Song, rng: np.random.Generator, seconds: float, *, bleed: Literal["fast", "room"] = "fast",
                 gain_range_db: float = GAIN_RANGE_DB, bleed_db: tuple[float, float] = BLEED_DB,
                 start_s: float | None = None, bank: "object | None" = None,
                 balance_lu: np.ndarray | None = None) -> Example:
    """A ``seconds`` long example from ``song``: random segment, gains, stage and bleed drawn from ``rng``.

    ``bleed="room"`` convolves with an impulse-response bank from
    :mod:`.room` (``bank``; a small one is simulated when none is given).
    ``start_s`` fixes the segment start (rounded down to 100 ms). ``balance_lu``
    (C,) replaces the role rule's balance, e.g. a human mix's (MedleyDB); NaN
    marks a channel the target leaves out.
    """
    channels = song.parts.shape[0]
    if channels < 2:
        raise ExampleError(f"song {song.name} has {channels} part; an example needs at least 2 channels")
    rate = song.sample_rate
    hop = step_samples(rate)
    steps = int(round(seconds * rate)) // hop
    energy = song.energy()
    if steps < 4 or steps > energy.shape[1]:
        raise ExampleError(f"song {song.name} is {song.parts.shape[1] / rate:.1f} s; asked for a {seconds:g} s example")
    song_lufs = gated_loudness(energy)
    floor = song_lufs - SOUNDING_BELOW_LU
    first = _pick_start(energy, floor, steps, rng, None if start_s is None else int(start_s * rate) // hop)
    segment = slice(first * hop, (first + steps) * hop)
    seg_energy = energy[:, first:first + steps]
    active = (sounding_fraction(seg_energy, floor) >= ACTIVE_SHARE) & np.isfinite(song_lufs)

    level_db = np.where(np.isfinite(song_lufs), NOMINAL_LUFS - song_lufs, 0.0)
    pre_db = rng.uniform(-gain_range_db, gain_range_db, channels)
    post_db = rng.uniform(-gain_range_db, gain_range_db, channels)
    stage = random_stage(rng, channels)
    severity = float(rng.uniform(*bleed_db))
    post = 10.0 ** (post_db / 20.0)
    if bleed == "fast":
        # One pass makes each channel's own source as it reaches the desk; the bleed is built from it.
        direct = song.parts[:, segment] * (10.0 ** ((level_db + pre_db + post_db) / 20.0)).astype(np.float32)[:, None]
        inputs = apply_bleed(direct, closed_form_paths(stage, rate, rng).scaled(severity), post)
        direct_lufs = gated_loudness(seg_energy) + level_db + pre_db + post_db
    elif bleed == "room":
        from .loudness import step_energy
        from .room import RoomBank, apply_room, small_bank

        sources = song.parts[:, segment] * (10.0 ** ((level_db + pre_db) / 20.0)).astype(np.float32)[:, None]
        room_bank = bank if isinstance(bank, RoomBank) else small_bank(rate)
        mics, own = apply_room(sources, room_bank.pick(rng, channels).scaled(severity))
        post32 = post.astype(np.float32)[:, None]
        inputs, direct = mics * post32, own * post32
        direct_lufs = gated_loudness(step_energy(direct, rate))
    else:
        raise ValueError(f"bleed is 'fast' or 'room', got {bleed!r}")
    balance = rule_balance(song.name, song.roles) if balance_lu is None else np.asarray(balance_lu, dtype=np.float64)
    target = target_gains(np.nan_to_num(balance, nan=0.0), direct_lufs, active & np.isfinite(balance))
    linear = np.where(target.active, 10.0 ** (np.nan_to_num(target.gain_db, nan=-math.inf) / 20.0), 0.0).astype(np.float32)
    target_mix = linear @ direct
    return Example(song.name, rate, song.roles, inputs, direct, target.gain_db, target_mix.astype(np.float32, copy=False),
                   target.active)


def _pick_start(energy: np.ndarray, floor: np.ndarray, steps: int, rng: np.random.Generator, fixed: int | None) -> int:
    """A segment start (in 100 ms steps) where as many parts as possible play: best of a few random tries."""
    last = energy.shape[1] - steps
    if fixed is not None:
        return min(max(fixed, 0), last)
    best, best_count = 0, -1
    for _ in range(START_TRIES):
        start = int(rng.integers(0, last + 1))
        count = int(np.sum(sounding_fraction(energy[:, start:start + steps], floor) >= ACTIVE_SHARE))
        if count > best_count:
            best, best_count = start, count
        if count == energy.shape[0]:
            break
    return best
