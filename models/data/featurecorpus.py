"""The training corpus on disk: per song, each desk channel's clean source as mel band power, computed once.

Training in the feature domain (``models/train/featurebatch.py``) never
touches audio: input gains, bleed and faders are applied to these powers.
A song folder holds

    features.npz   mel_db (C, T, 64) float16 log-mel of each clean channel (the project's log-mel,
                   :mod:`ailive.models.logmel`, 10 ms hops), frame_ms (C, F) float32 mean square
                   per 50 ms frame, level_db (C,) each channel's gated level over the song,
                   target_gain_db (C,) the fader of the target balance (0 for a real song: its
                   stems as produced)
    song.json      name, split, origin, roles, channel names, rate, licence and source
    NN-name.flac   the clean channels (real songs only; the real-music evaluation sets cut from them)

``corpus.json`` at the top lists the songs and is written last.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ailive.models.base import FRAME_S
from ailive.models.logmel import LogMelSpec, StreamingLogMel
from ..errors import ModelError

INDEX = "corpus.json"
FEATURES = "features.npz"
META = "song.json"
#: Frames quieter than this never count towards a channel's level.
ABSOLUTE_GATE_DB = -70.0
RELATIVE_GATE_DB = -10.0


class CorpusError(ModelError, ValueError):
    """A corpus folder that is missing, incomplete or not a corpus."""


@dataclass(frozen=True)
class CorpusSong:
    name: str
    split: str
    origin: str  # "real" | "rendered"
    roles: tuple[str, ...]
    channels: tuple[str, ...]
    mel_db: np.ndarray  # (C, T, bands) float16
    frame_ms: np.ndarray  # (C, F) float32
    level_db: np.ndarray  # (C,)
    target_gain_db: np.ndarray  # (C,)
    folder: Path


def mel_db(audio: np.ndarray, sample_rate: int, spec: LogMelSpec | None = None) -> np.ndarray:
    """(C, N) audio -> (C, N // hop, bands) log-mel dB, frame j ending on sample (j + 1) * hop, as the runtime hears it."""
    logmel = StreamingLogMel(sample_rate, spec or LogMelSpec(), dtype=np.float32)
    state = logmel.initial_state(audio.shape[0])
    hop = logmel.spec.hop(sample_rate)
    chunk = hop * 6000  # a minute at a time keeps the frame view small
    parts = [logmel.push(state, audio[:, start:start + chunk]) for start in range(0, audio.shape[1], chunk)]
    return np.concatenate(parts, axis=1)


def frame_mean_square(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    size = int(round(sample_rate * FRAME_S))
    frames = audio.shape[1] // size
    return np.mean(np.square(audio[:, : frames * size].reshape(audio.shape[0], frames, size), dtype=np.float64), axis=2)


def gated_level_db(frame_ms: np.ndarray) -> np.ndarray:
    """Each channel's level over the song: mean power of its frames above the absolute gate, then a relative one."""
    levels = np.full(frame_ms.shape[0], -math.inf)
    floor = 10.0 ** (ABSOLUTE_GATE_DB / 10.0)
    for channel, power in enumerate(frame_ms):
        loud = power[power > floor]
        if loud.size == 0:
            continue
        kept = loud[loud > loud.mean() * 10.0 ** (RELATIVE_GATE_DB / 10.0)]
        levels[channel] = 10.0 * math.log10(float(kept.mean()))
    return levels


def write_song(folder: Path, *, name: str, split: str, origin: str, roles: list[str], channels: list[str],
               audio: np.ndarray, sample_rate: int, target_gain_db: np.ndarray | None = None,
               keep_audio: bool = True, extra: dict | None = None) -> None:
    """Compute and write one song's features (and its clean channels when ``keep_audio``); meta last."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, dtype=np.float32)
    ms = frame_mean_square(audio, sample_rate).astype(np.float32)
    gains = np.zeros(audio.shape[0]) if target_gain_db is None else np.asarray(target_gain_db, dtype=np.float64)
    np.savez(folder / FEATURES, mel_db=mel_db(audio, sample_rate).astype(np.float16), frame_ms=ms,
             level_db=gated_level_db(ms), target_gain_db=gains)
    files = []
    if keep_audio:
        peak = float(np.max(np.abs(audio))) or 1.0
        scale = min(1.0, 0.9 / peak)
        for index, (channel, signal) in enumerate(zip(channels, audio)):
            files.append(f"{index + 1:02d}-{channel}.flac")
            sf.write(folder / files[-1], signal * scale, sample_rate, subtype="PCM_24", format="FLAC")
    meta = {"name": name, "split": split, "origin": origin, "roles": roles, "channels": channels,
            "sample_rate": sample_rate, "seconds": round(audio.shape[1] / sample_rate, 3), "files": files,
            **(extra or {})}
    (folder / META).write_text(json.dumps(meta, indent=1))


def write_index(root: Path, songs: list[dict]) -> None:
    (root / INDEX).write_text(json.dumps({"version": 1, "songs": songs}, indent=1))


def read_index(root: Path) -> list[dict]:
    index = Path(root) / INDEX
    if not index.is_file():
        raise CorpusError(f"{root}: no {INDEX}; build the corpus first (python -m ailive.models.data.build_corpus)")
    return json.loads(index.read_text())["songs"]


def load_song(folder: Path) -> CorpusSong:
    meta_path, features_path = Path(folder) / META, Path(folder) / FEATURES
    if not meta_path.is_file() or not features_path.is_file():
        raise CorpusError(f"{folder}: incomplete corpus song ({META} or {FEATURES} missing)")
    meta = json.loads(meta_path.read_text())
    with np.load(features_path) as data:
        return CorpusSong(meta["name"], meta["split"], meta["origin"], tuple(meta["roles"]), tuple(meta["channels"]),
                          data["mel_db"], data["frame_ms"], data["level_db"], data["target_gain_db"], Path(folder))


def load_corpus(root: Path, split: str) -> list[CorpusSong]:
    """Every song of ``split`` ("train" or "validation") in the corpus at ``root``."""
    songs = [load_song(Path(root) / entry["folder"]) for entry in read_index(root) if entry["split"] == split]
    if not songs:
        raise CorpusError(f"{root}: no {split} songs")
    return songs


def song_audio(song: CorpusSong) -> tuple[np.ndarray, int]:
    """The clean channels of a real song as written (one common scale), for the evaluation sets."""
    import soundfile as sf

    meta = json.loads((song.folder / META).read_text())
    if not meta.get("files"):
        raise CorpusError(f"{song.folder}: no audio kept for {song.name}")
    signals = [sf.read(song.folder / f, dtype="float32")[0] for f in meta["files"]]
    return np.stack(signals), int(meta["sample_rate"])
