"""Examples drawn in the feature domain: what the desk would hear, built from each channel's precomputed mel power.

The corpus (:mod:`ailive.models.data.featurecorpus`) holds every clean
channel's mel band power once. An example picks a song, a segment and a
subset of its channels, then applies in the power domain what the desk's
inputs carry: a random input gain per channel (+-12 dB) and bleed, i.e.
every other source added as power, 12-24 dB under the mic's own source (the
sources levelled to the mic's, as the closed-form bleed does), 3-15 ms late
(0 or 1 hop of 10 ms). Adding powers ignores the phase between a source and
its bleed, which at 12-24 dB down moves a band by a fraction of a dB.
With ``drift_share``, that share of the examples also has one sounding
input drift over the segment (a singer stepping back, a solo: 2-6 dB up or
down, over 5-30 s, the segment seeing any part of the ramp), and the
fader that undoes it, frame by frame, is the target. With ``tone_db``, every
source is also heard through another mic: a random tilt and one broad bump
across the bands, up to that many dB, its power over the segment kept (the
same source at the same loudness keeps its fader). Nothing is
synthesised or transformed per example, so one example costs a
few milliseconds of numpy instead of a render, an STFT per channel and the
MR-STFT of two mixes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ailive.models.alm import HOPS_PER_FRAME
from ailive.models.base import FRAME_S
from ailive.models.data.featurecorpus import CorpusSong
from ailive.models.data.roles import ROLES
from ailive.models.drift import drift_curve

GAIN_RANGE_DB = 12.0
BLEED_DB = (-24.0, -12.0)
BLEED_SPREAD_DB = 3.0
DELAY_MS = (3.0, 15.0)
HOP_MS = 10.0
#: A channel is active in a segment when this share of its frames is within SOUNDING_BELOW_DB of its song level.
ACTIVE_SHARE = 0.2
SOUNDING_BELOW_DB = 20.0
KEEP_CHANNEL = 0.85
DRIFT_DB = (2.0, 6.0)
DRIFT_S = (5.0, 30.0)
START_TRIES = 4


def bleed_range(bleed_db: "tuple[float, float] | list[float]") -> tuple[float, float]:
    """``bleed_db`` as a (low, high) pair of dB under the mic's own source; ValueError when it is not one."""
    try:
        low, high = (float(v) for v in bleed_db)
    except (TypeError, ValueError):
        raise ValueError(f"bleed_db must be two numbers (dB), low first; got {bleed_db!r}") from None
    if not low <= high < 0.0:
        raise ValueError(f"bleed_db must be a range of negative dB, low first; got {[low, high]}")
    return low, high


@dataclass(frozen=True)
class FeatureBatch:
    input_power: np.ndarray  # (B, C, T, bands) mel power of each desk input (gain and bleed applied)
    input_ms: np.ndarray  # (B, C, F) mean square per 50 ms frame of each desk input
    target_power: np.ndarray  # (B, T, bands) mel power of the target mix (clean sources at the target balance)
    present: np.ndarray  # (B, C) bool: a real channel, not padding
    active: np.ndarray  # (B, C) bool
    target_gain_db: np.ndarray  # (B, C) the fader that gives the target balance (NaN where inactive)
    role_index: np.ndarray  # (B, C) int64
    drift_db: np.ndarray  # (B, C, F) input drift per 50 ms frame, which the fader must undo (0 without drift)


@dataclass(frozen=True)
class Drawn:
    input_power: np.ndarray
    input_ms: np.ndarray
    target_power: np.ndarray
    active: np.ndarray
    target_gain_db: np.ndarray
    roles: tuple[str, ...]
    drift_db: np.ndarray  # (C, F)


def drift_ramp(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames,) dB: a 2-6 dB ramp up or down over 5-30 s, of which the segment sees any part (held at either end),
    shaped as the riding set's drifts are (:func:`~ailive.models.drift.drift_curve`)."""
    size = rng.uniform(*DRIFT_DB) * rng.choice((-1.0, 1.0))
    length_s = rng.uniform(*DRIFT_S)
    begin_s = rng.uniform(-length_s, frames * FRAME_S)
    return drift_curve(np.arange(frames) * FRAME_S, [begin_s, begin_s + length_s], [0.0, size])


def tone_curves(rng: np.random.Generator, channels: int, bands: int, size_db: float) -> np.ndarray:
    """(channels, bands) power factors, one mic's colour per channel: a tilt and a broad bump, each up to
    ``size_db / 2`` dB either way."""
    x = np.linspace(-1.0, 1.0, bands)
    tilt = rng.uniform(-1.0, 1.0, (channels, 1)) * x
    centre = rng.uniform(-1.0, 1.0, (channels, 1))
    bump = rng.uniform(-1.0, 1.0, (channels, 1)) * np.exp(-np.square((x - centre) / 0.3))
    return np.power(10.0, size_db * 0.5 * (tilt + bump) / 10.0).astype(np.float32)


def draw_example(song: CorpusSong, rng: np.random.Generator, frames: int,
                 bleed_db: tuple[float, float] = BLEED_DB, drift_share: float = 0.0, tone_db: float = 0.0) -> Drawn:
    """One example of ``frames`` 50 ms frames from ``song`` (see the module doc); ``bleed_db`` bounds the severity,
    ``drift_share`` is the chance of a drifting input, ``tone_db`` the size of each source's mic colour."""
    total = min(song.frame_ms.shape[1], song.mel_db.shape[1] // HOPS_PER_FRAME)
    if total < frames + 1:
        raise ValueError(f"song {song.name} is {total} frames; asked for {frames}")
    keep = rng.random(song.mel_db.shape[0]) < KEEP_CHANNEL
    if keep.sum() < 2:
        keep[rng.choice(len(keep), 2, replace=False)] = True
    rows = np.flatnonzero(keep)
    loud = 10.0 * np.log10(np.maximum(song.frame_ms[rows], 1e-12)) > (song.level_db[rows] - SOUNDING_BELOW_DB)[:, None]
    start, best = 1, -1
    for _ in range(START_TRIES):
        candidate = int(rng.integers(1, total - frames + 1))
        count = int(np.sum(loud[:, candidate:candidate + frames].mean(axis=1) >= ACTIVE_SHARE))
        if count > best:
            start, best = candidate, count
    active = loud[:, start:start + frames].mean(axis=1) >= ACTIVE_SHARE
    hops = slice(start * HOPS_PER_FRAME, (start + frames) * HOPS_PER_FRAME)
    late = slice(hops.start - 1, hops.stop - 1)  # one hop earlier: the same source heard 10 ms late
    mel = song.mel_db[rows]
    clean = np.power(10.0, mel[:, hops].astype(np.float32) / 10.0)
    delayed = np.power(10.0, mel[:, late].astype(np.float32) / 10.0)
    ms = song.frame_ms[rows, start:start + frames]
    channels = len(rows)

    levels = np.where(np.isfinite(song.level_db[rows]), song.level_db[rows], -100.0)
    input_db = rng.uniform(-GAIN_RANGE_DB, GAIN_RANGE_DB, channels)
    severity = rng.uniform(*bleed_db)
    spread = rng.normal(0.0, BLEED_SPREAD_DB, (channels, channels))
    bleed = np.power(10.0, (severity + spread + levels[:, None] - levels[None, :]) / 10.0) / max(1, channels - 1)
    np.fill_diagonal(bleed, 0.0)
    one_hop = rng.uniform(*DELAY_MS, (channels, channels)) >= HOP_MS / 2
    bleed = bleed.astype(np.float32)
    if tone_db:
        curves = tone_curves(rng, channels, clean.shape[2], tone_db)
        kept = clean.sum(axis=(1, 2)) / np.maximum((clean * curves[:, None, :]).sum(axis=(1, 2)), 1e-30)
        curves *= kept[:, None].astype(np.float32)
        clean, delayed = clean * curves[:, None, :], delayed * curves[:, None, :]
    mixed = clean + np.einsum("ij,jtb->itb", bleed * ~one_hop, clean) + np.einsum("ij,jtb->itb", bleed * one_hop, delayed)
    drift = np.zeros((channels, frames))
    if drift_share and rng.random() < drift_share and active.any():
        drift[rng.choice(np.flatnonzero(active))] = drift_ramp(rng, frames)
    gain_per_frame = np.power(10.0, (input_db[:, None] + drift) / 10.0).astype(np.float32)
    input_ms = gain_per_frame * (ms + bleed @ ms)
    gain_per_hop = np.repeat(gain_per_frame, HOPS_PER_FRAME, axis=1)

    song_gain = song.target_gain_db[rows]
    target_power = np.einsum("i,itb->tb", np.power(10.0, song_gain / 10.0).astype(np.float32), clean)
    target = np.where(active, song_gain - input_db, np.nan)
    return Drawn(gain_per_hop[:, :, None] * mixed, input_ms.astype(np.float32), target_power, active, target,
                 tuple(song.roles[r] for r in rows), drift)


class FeatureStream:
    """Endless batches from the corpus songs; ``real_share`` of the examples come from real songs (when there are some)."""

    def __init__(self, songs: list[CorpusSong], *, seconds: float, batch: int, seed: int, real_share: float = 0.5,
                 max_channels: int = 8, frame_s: float = 0.05, bleed_db: tuple[float, float] = BLEED_DB,
                 drift_share: float = 0.0, tone_db: float = 0.0) -> None:
        self.real = [s for s in songs if s.origin == "real"]
        self.rendered = [s for s in songs if s.origin != "real"]
        if not songs:
            raise ValueError("no corpus songs to draw examples from")
        self.frames = int(round(seconds / frame_s))
        self.batch = batch
        self.real_share = real_share if self.real and self.rendered else (1.0 if self.real else 0.0)
        self.max_channels = max_channels
        self.bleed_db = bleed_range(bleed_db)
        self.drift_share = drift_share
        self.tone_db = tone_db
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[FeatureBatch]:
        return self

    def __next__(self) -> FeatureBatch:
        drawn = []
        while len(drawn) < self.batch:
            pool = self.real if self.rng.random() < self.real_share else self.rendered
            song = pool[int(self.rng.integers(len(pool)))]
            example = draw_example(song, self.rng, self.frames, self.bleed_db, self.drift_share, self.tone_db)
            if example.active.sum() >= 2:
                drawn.append(example)
        return stack(drawn, self.max_channels)

    def close(self) -> None:
        pass


def stack(drawn: list[Drawn], max_channels: int) -> FeatureBatch:
    """Pad every example to ``max_channels`` (zero power, absent) and stack them."""
    count, (_, hops, bands), frames = len(drawn), drawn[0].input_power.shape, drawn[0].input_ms.shape[1]
    power = np.zeros((count, max_channels, hops, bands), np.float32)
    ms = np.zeros((count, max_channels, frames), np.float32)
    present = np.zeros((count, max_channels), bool)
    active = np.zeros((count, max_channels), bool)
    gains = np.full((count, max_channels), np.nan)
    roles = np.zeros((count, max_channels), np.int64)
    drift = np.zeros((count, max_channels, frames))
    for b, ex in enumerate(drawn):
        c = ex.input_power.shape[0]
        power[b, :c], ms[b, :c], present[b, :c], active[b, :c], gains[b, :c], drift[b, :c] = (
            ex.input_power, ex.input_ms, True, ex.active, ex.target_gain_db, ex.drift_db)
        roles[b, :c] = [ROLES.index(r) for r in ex.roles]
    return FeatureBatch(power, ms, np.stack([d.target_power for d in drawn]), present, active, gains, roles, drift)
