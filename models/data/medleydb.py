"""MedleyDB in its own folder layout: raw tracks as channels, the human mix as the target balance.

    <Song>/<Song>_METADATA.yaml
    <Song>/<Song>_MIX.wav
    <Song>/<Song>_RAW/<Song>_RAW_NN_MM.wav

Every raw track listed in the metadata becomes a channel, with a role from
its instrument label (and the stem's ``component``: ``melody`` is the lead);
the target balance is the human mix's, found by fitting the raw tracks'
gains to the mix (:func:`.mixfit.fit_gains`), and hands to
:func:`.examples.make_example` in place of the role rule. A song with a
missing or unreadable file, tracks of different rates or lengths, or fewer
than two tracks is skipped with the reason logged (or raised, loading one).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ModelError
from .loudness import gated_loudness, step_energy
from .mixfit import fit_gains
from .songs import Song

log = logging.getLogger(__name__)

#: MedleyDB instrument labels (lower case, substrings) to roles, first match wins.
INSTRUMENT_ROLES = (
    ("kick", "kick"), ("bass drum", "kick"), ("snare", "snare"), ("drum", "overheads"), ("cymbal", "overheads"),
    ("hi-hat", "overheads"), ("toms", "overheads"), ("percussion", "overheads"), ("tabla", "overheads"),
    ("bass", "bass"), ("tuba", "bass"), ("cello", "bass"),
    ("singer", "lead_vocal"), ("vocalist", "lead_vocal"), ("rapper", "lead_vocal"), ("choir", "pad"),
    ("guitar", "guitar"), ("piano", "keys"), ("organ", "keys"), ("keyboard", "keys"), ("accordion", "keys"),
    ("synth", "pad"), ("string section", "pad"), ("section", "pad"),
)
#: The paper's selection: songs with at most this many raw tracks.
MAX_TRACKS = 8


class MedleyDBError(ModelError, ValueError):
    """A MedleyDB song folder that cannot be used, with the reason."""


@dataclass(frozen=True)
class MedleySong:
    song: Song  # the raw tracks as parts (programs -1: not General MIDI)
    mix: np.ndarray  # (N,) the human mix
    balance_lu: np.ndarray  # (C,) each track's loudness in the human mix; NaN for tracks the mix leaves out
    instruments: tuple[str, ...]


def role_of(instrument: str, component: str = "") -> str:
    label = instrument.lower()
    if component == "melody":
        return "lead_vocal" if any(w in label for w in ("singer", "vocal", "rapper")) else "lead_instrument"
    if any(w in label for w in ("singer", "vocal")) and component != "melody":
        return "harmony"
    for needle, role in INSTRUMENT_ROLES:
        if needle in label:
            return role
    return "harmony"


def load_medleydb_song(folder: Path) -> MedleySong:
    """One song folder; a :class:`MedleyDBError` naming the file when anything is missing or does not fit."""
    import soundfile as sf
    import yaml

    folder = Path(folder)
    name = folder.name
    meta_path = folder / f"{name}_METADATA.yaml"
    if not meta_path.is_file():
        raise MedleyDBError(f"{folder}: no {meta_path.name}")
    try:
        meta = yaml.safe_load(meta_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MedleyDBError(f"{meta_path}: not valid YAML ({exc})") from None
    mix_path = folder / str(meta.get("mix_filename") or f"{name}_MIX.wav")
    raw_dir = folder / str(meta.get("raw_dir") or f"{name}_RAW")
    tracks: list[tuple[Path, str]] = []
    for stem_id, stem in sorted((meta.get("stems") or {}).items()):
        for raw_id, raw in sorted(((stem or {}).get("raw") or {}).items()):
            filename = (raw or {}).get("filename")
            if not filename:
                raise MedleyDBError(f"{meta_path}: {stem_id}/{raw_id} names no file")
            tracks.append((raw_dir / filename, role_of(str(raw.get("instrument", "")), str(stem.get("component") or ""))))
    if len(tracks) < 2:
        raise MedleyDBError(f"{folder}: {len(tracks)} raw track(s) in the metadata; a multitrack needs at least 2")
    for path in [mix_path, *(p for p, _ in tracks)]:
        if not path.is_file():
            raise MedleyDBError(f"{folder}: {path.relative_to(folder)} is listed but missing")
    infos = {path: sf.info(str(path)) for path in [mix_path, *(p for p, _ in tracks)]}
    rate, frames = infos[mix_path].samplerate, infos[mix_path].frames
    for path, info in infos.items():
        if info.samplerate != rate or info.frames != frames:
            raise MedleyDBError(f"{path.relative_to(folder)} is {info.frames} samples at {info.samplerate} Hz, "
                                f"the mix {frames} at {rate} Hz; a multitrack shares one rate and length")
    def mono(path: Path) -> np.ndarray:
        data = sf.read(str(path), dtype="float32", always_2d=True)[0]
        return data.mean(axis=1)

    parts = np.stack([mono(p) for p, _ in tracks])
    mix = mono(mix_path)
    energy = step_energy(parts, rate)
    gains = fit_gains(parts, mix)
    balance = gated_loudness(energy) + gains  # NaN gain: left out of the mix
    instruments = tuple(p.stem for p, _ in tracks)
    song = Song(name, int(rate), tuple(r for _, r in tracks), tuple(-1 for _ in tracks), parts, energy)
    return MedleySong(song, mix, balance, instruments)


def iter_medleydb(root: Path, max_tracks: int = MAX_TRACKS) -> Iterator[MedleySong]:
    """Every usable song under ``root`` with at most ``max_tracks`` raw tracks; the others are logged and skipped."""
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        try:
            song = load_medleydb_song(folder)
        except MedleyDBError as exc:
            log.warning("MedleyDB: skipping %s: %s", folder.name, exc)
            continue
        if song.song.parts.shape[0] > max_tracks:
            log.info("MedleyDB: skipping %s: %d raw tracks (at most %d)", folder.name, song.song.parts.shape[0], max_tracks)
            continue
        if np.sum(np.isfinite(song.balance_lu)) < 2 or not math.isfinite(float(np.nanmax(song.balance_lu))):
            log.warning("MedleyDB: skipping %s: its mix uses fewer than 2 of the raw tracks", folder.name)
            continue
        yield song
