"""The room bleed path: a bank of impulse responses from pyroomacoustics' image-source simulation.

Each bank entry is a drawn :class:`.stage.Stage` with eight sources and eight
close cardioid mics, simulated once (seconds to minutes per room) and kept in
the cache; an example picks a room and as many source/mic pairs as it has
channels, and convolves. Slower than the closed form (~1 s per 8 x 10 s
example) and truer to a room: the held-out set uses it, so models trained on
the fast path are measured on bleed they never saw made that way. On the
same stage the two agree on each mic's bleed level within about 1 dB
(``tests/test_data_room.py``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft

from .stage import SPEED_OF_SOUND_M_S, Stage, random_stage

log = logging.getLogger(__name__)

BANK_CHANNELS = 8
#: Image-source order cap (the energy that sets the bleed level is in the early part).
MAX_ORDER = 30
#: Impulse responses are cut after this long.
MAX_IR_S = 1.0
#: Rooms in the bank an example draws from when none is given.
SMALL_BANK_ROOMS = 6
BANK_VERSION = 1


@dataclass(frozen=True)
class RoomIRs:
    """Every mic's response to every source in one room, relative to its own source's direct sound."""

    stage: Stage
    irs: np.ndarray  # (mic, source, taps) float32; each mic's own direct path has amplitude 1

    def bleed_ratio_db(self) -> np.ndarray:
        """Energy each mic takes from all other sources relative to its own, equal source powers.  -> (mic,)"""
        energy = np.sum(np.square(self.irs, dtype=np.float64), axis=-1)
        own = np.diag(energy).copy()
        return 10.0 * np.log10((energy.sum(axis=1) - own) / own)

    def scaled(self, bleed_db: float) -> "RoomIRs":
        """The bleed (not the own responses) scaled so the median mic's bleed ratio is ``bleed_db``."""
        scale = 10.0 ** ((bleed_db - float(np.median(self.bleed_ratio_db()))) / 20.0)
        irs = self.irs * np.float32(scale)
        for i in range(irs.shape[0]):
            irs[i, i] = self.irs[i, i]
        return RoomIRs(self.stage, irs)

    def subset(self, pairs: np.ndarray) -> "RoomIRs":
        stage = Stage(self.stage.room_m, self.stage.rt60_s, self.stage.sources_m[pairs], self.stage.mics_m[pairs],
                      self.stage.mic_axes[pairs])
        return RoomIRs(stage, np.ascontiguousarray(self.irs[np.ix_(pairs, pairs)]))


@dataclass(frozen=True)
class RoomBank:
    sample_rate: int
    rooms: tuple[RoomIRs, ...]

    def pick(self, rng: np.random.Generator, channels: int) -> RoomIRs:
        """A room and ``channels`` of its source/mic pairs."""
        if channels > BANK_CHANNELS:
            raise ValueError(f"the room bank holds {BANK_CHANNELS} sources per room, {channels} asked")
        room = self.rooms[int(rng.integers(len(self.rooms)))]
        return room.subset(np.sort(rng.choice(BANK_CHANNELS, size=channels, replace=False)))


def simulate_room(stage: Stage, sample_rate: int) -> RoomIRs:
    """Image-source responses of ``stage`` (pyroomacoustics), normalised to each mic's own direct path."""
    import pyroomacoustics as pra
    from pyroomacoustics.directivities import Cardioid, DirectionVector

    # Sabine's absorption, capped as the closed form caps it (a big dry room cannot reach a short RT60).
    order = math.ceil(SPEED_OF_SOUND_M_S * stage.rt60_s / min(stage.room_m))
    room = pra.ShoeBox(list(stage.room_m), fs=sample_rate, materials=pra.Material(stage.absorption()),
                       max_order=min(order, MAX_ORDER))
    for source in stage.sources_m:
        room.add_source(list(source))
    for mic, axis in zip(stage.mics_m, stage.mic_axes):
        direction = DirectionVector(azimuth=math.atan2(axis[1], axis[0]), colatitude=math.acos(float(np.clip(axis[2], -1, 1))),
                                    degrees=False)
        room.add_microphone(list(mic), directivity=Cardioid(direction))
    room.compute_rir()
    channels = stage.channels
    taps = min(int(MAX_IR_S * sample_rate), max(len(room.rir[m][s]) for m in range(channels) for s in range(channels)))
    irs = np.zeros((channels, channels, taps), dtype=np.float32)
    for m in range(channels):
        for s in range(channels):
            response = np.asarray(room.rir[m][s][:taps], dtype=np.float32)
            irs[m, s, : response.size] = response
    # pyroomacoustics delays every response by a fractional-delay filter; the own direct path is its peak.
    for m in range(channels):
        irs[m] /= np.max(np.abs(irs[m, m]))
    return RoomIRs(stage, irs)


def build_bank(rooms: int, sample_rate: int, seed: int) -> RoomBank:
    rng = np.random.default_rng([seed, 0x800])
    return RoomBank(sample_rate, tuple(simulate_room(random_stage(rng, BANK_CHANNELS), sample_rate) for _ in range(rooms)))


def save_bank(bank: RoomBank, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {"sample_rate": np.array(bank.sample_rate), "version": np.array(BANK_VERSION)}
    for index, room in enumerate(bank.rooms):
        s = room.stage
        arrays[f"irs{index}"] = room.irs.astype(np.float16)
        arrays[f"geometry{index}"] = np.concatenate([s.sources_m, s.mics_m, s.mic_axes])
        arrays[f"room{index}"] = np.array([*s.room_m, s.rt60_s])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_bank(path: Path) -> RoomBank:
    with np.load(path) as data:
        rooms = []
        index = 0
        while f"irs{index}" in data:
            geometry = data[f"geometry{index}"]
            n = geometry.shape[0] // 3
            length, width, height, rt60 = (float(v) for v in data[f"room{index}"])
            stage = Stage((length, width, height), rt60, geometry[:n], geometry[n:2 * n], geometry[2 * n:])
            rooms.append(RoomIRs(stage, data[f"irs{index}"].astype(np.float32)))
            index += 1
        return RoomBank(int(data["sample_rate"]), tuple(rooms))


def cached_bank(cache_dir: Path, rooms: int, sample_rate: int, seed: int = 0) -> RoomBank:
    """The bank of ``rooms`` rooms for (rate, seed), simulated on first use and kept in ``cache_dir``."""
    path = Path(cache_dir) / f"rooms-v{BANK_VERSION}-{rooms}x{BANK_CHANNELS}-{sample_rate}hz-seed{seed}.npz"
    if path.is_file():
        return load_bank(path)
    log.info("simulating %d rooms for the bleed bank (once) into %s", rooms, path)
    bank = build_bank(rooms, sample_rate, seed)
    save_bank(bank, path)
    return bank


def small_bank(sample_rate: int) -> RoomBank:
    from .songs import default_cache_dir

    return cached_bank(default_cache_dir(), SMALL_BANK_ROOMS, sample_rate)


def apply_room(sources: np.ndarray, room: RoomIRs) -> tuple[np.ndarray, np.ndarray]:
    """Convolve: what every mic hears, and each mic's own source alone.  (C, N) -> (C, N), (C, N) float32

    The own direct path's delay is removed, so a channel's own source is time-aligned with the clean part.
    """
    channels, frames = sources.shape
    lag = np.array([int(np.argmax(np.abs(room.irs[i, i]))) for i in range(channels)])
    taps = room.irs.shape[-1]
    size = scipy.fft.next_fast_len(frames + taps)
    spectra = scipy.fft.rfft(sources, size, axis=-1)  # (C, bins)
    responses = scipy.fft.rfft(room.irs, size, axis=-1)  # (mic, source, bins)
    mics = np.empty((channels, frames), dtype=np.float32)
    own = np.empty((channels, frames), dtype=np.float32)
    for i in range(channels):
        heard = scipy.fft.irfft(np.einsum("sb,sb->b", responses[i], spectra), size)
        alone = scipy.fft.irfft(responses[i, i] * spectra[i], size)
        mics[i] = heard[lag[i]:lag[i] + frames]
        own[i] = alone[lag[i]:lag[i] + frames]
    return mics, own
