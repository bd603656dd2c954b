"""Rendered multitracks on disk: render once per seed into a cache, load many times.

A song is one multichannel FLAC (24 bit, one channel per part, clean: no
bleed, no gains), its K-weighted energy per 100 ms (so targets need no
filtering per example) and a JSON sidecar with the labels, written last, so
a song whose JSON exists is complete. Training data never goes into the
repository: the cache is ``$AILIVE_CACHE_DIR``, else ``$XDG_CACHE_HOME/ailive``,
else ``~/.cache/ailive``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError
from .arrangement import Arrangement
from .loudness import step_energy

log = logging.getLogger(__name__)

#: Bumped whenever rendering changes, so stale cached songs are rendered again.
RENDER_VERSION = 2
#: Share of songs that are band arrangements; the rest come from the music21 corpus.
BAND_SHARE = 0.6
#: Peak level the stored parts are scaled to (their balance is kept; levels are set per example).
STORED_PEAK = 0.5
MIN_PARTS = 2
#: A rendered part whose peak stays below this is silent (its notes fell outside the excerpt).
SILENT_PEAK = 1e-5


class SongError(ModelError, ValueError):
    """A song file that is missing, damaged or not a multitrack."""


@dataclass(frozen=True)
class Song:
    """One rendered multitrack, clean parts."""

    name: str
    sample_rate: int
    roles: tuple[str, ...]
    programs: tuple[int, ...]
    parts: np.ndarray  # (C, N) float32 clean, one row per part/channel
    step_energy: np.ndarray | None = None  # (C, N // step) K-weighted mean square per 100 ms; None: computed when needed

    def __post_init__(self) -> None:
        channels = self.parts.shape[0]
        if self.parts.ndim != 2 or len(self.roles) != channels or len(self.programs) != channels:
            raise SongError(f"song {self.name}: parts {self.parts.shape}, {len(self.roles)} roles, "
                            f"{len(self.programs)} programs do not match")

    def energy(self) -> np.ndarray:
        """K-weighted mean square per 100 ms step.  -> (C, steps)"""
        return self.step_energy if self.step_energy is not None else step_energy(self.parts, self.sample_rate)


def default_cache_dir() -> Path:
    if os.environ.get("AILIVE_CACHE_DIR"):
        return Path(os.environ["AILIVE_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ailive"


def _files(path: Path) -> tuple[Path, Path, Path]:
    stem = path.with_suffix("") if path.suffix in (".json", ".flac") else path
    if stem.suffix == ".energy":
        stem = stem.with_suffix("")
    return stem.with_suffix(".flac"), stem.with_suffix(".energy.npy"), stem.with_suffix(".json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_song(song: Song, path: Path, extra: dict[str, object] | None = None) -> Path:
    """Write ``song`` next to ``path`` (any of its three names); returns the JSON sidecar's path."""
    import soundfile as sf

    flac, energy, meta = _files(path)
    flac.parent.mkdir(parents=True, exist_ok=True)
    if song.parts.shape[0] > 8:
        raise SongError(f"song {song.name}: FLAC holds at most 8 channels, got {song.parts.shape[0]}")
    peak = float(np.max(np.abs(song.parts))) or 1.0
    scale = STORED_PEAK / peak
    tmp = flac.with_suffix(".tmp.flac")
    sf.write(tmp, (song.parts * scale).T, song.sample_rate, subtype="PCM_24", format="FLAC")
    os.replace(tmp, flac)
    np.save(energy.with_suffix(".tmp.npy"), (song.energy() * scale * scale).astype(np.float32))
    os.replace(energy.with_suffix(".tmp.npy"), energy)
    record = {"version": RENDER_VERSION, "name": song.name, "sample_rate": song.sample_rate,
              "roles": list(song.roles), "programs": list(song.programs), "frames": int(song.parts.shape[1]),
              "flac_sha256": sha256(flac), **(extra or {})}
    meta.with_suffix(".tmp.json").write_text(json.dumps(record, indent=1))
    os.replace(meta.with_suffix(".tmp.json"), meta)
    return meta


def load_song(path: Path) -> Song:
    """The song at ``path`` (its .json, .flac or stem); a clear :class:`SongError` when it is incomplete."""
    import soundfile as sf

    flac, energy, meta = _files(Path(path))
    if not meta.is_file() or not flac.is_file():
        raise SongError(f"song {meta.with_suffix('')} is incomplete: {meta.name if not meta.is_file() else flac.name} is missing")
    record = json.loads(meta.read_text())
    data, rate = sf.read(flac, dtype="float32", always_2d=True)
    if rate != record["sample_rate"] or data.shape != (record["frames"], len(record["roles"])):
        raise SongError(f"song {flac}: {data.shape} at {rate} Hz, its sidecar says "
                        f"({record['frames']}, {len(record['roles'])}) at {record['sample_rate']} Hz")
    parts = np.ascontiguousarray(data.T)
    steps = np.load(energy).astype(np.float64) if energy.is_file() else None
    return Song(record["name"], int(rate), tuple(record["roles"]), tuple(int(p) for p in record["programs"]), parts, steps)


def _complete(meta: Path) -> bool:
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("version") == RENDER_VERSION and _files(meta)[0].is_file()
    except (OSError, ValueError):
        return False


def _fonts_key(fonts: Sequence[Path]) -> str:
    text = ";".join(f"{p.name}:{p.stat().st_size}" for p in fonts)
    return f"{zlib.crc32(text.encode()):08x}"


def render_songs(cache_dir: Path, count: int, seed: int, split: str = "train", *, seconds: float = 30.0,
                 sample_rate: int = 44100, soundfonts: Sequence[Path] | None = None, workers: int = 1) -> list[Path]:
    """Render ``count`` songs of ``split`` from ``seed`` into ``cache_dir`` (skipping those already there).

    Returns the songs' JSON paths in order; song ``i`` depends only on
    (seed, split, i, seconds, sample_rate, soundfonts), so asking for more
    later renders only the new ones.
    """
    from .synth import available_soundfonts

    if split not in ("train", "heldout"):
        raise ValueError(f"split is 'train' or 'heldout', got {split!r}")
    fonts = list(soundfonts) if soundfonts is not None else available_soundfonts()
    folder = Path(cache_dir) / f"songs-{split}-seed{seed}-{seconds:g}s-{sample_rate}hz-{_fonts_key(fonts)}"
    jobs = [(folder / f"{split}-{seed}-{index:05d}.json", seed, split, index, seconds, sample_rate, fonts)
            for index in range(count)]
    todo = [job for job in jobs if not _complete(job[0])]
    if todo:
        log.info("rendering %d of %d songs into %s", len(todo), count, folder)
        if workers > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(workers) as pool:
                pool.starmap(_render_one, todo)
        else:
            for job in todo:
                _render_one(*job)
    return [job[0] for job in jobs]


#: Arrangements tried for one song before it is given up (a short excerpt can leave too few parts playing).
ATTEMPTS = 5


def song_rng(seed: int, split: str, index: int, attempt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index, attempt])


def arrange(seed: int, split: str, index: int, seconds: float, attempt: int = 0) -> Arrangement:
    """Song ``index`` of (seed, split) as an arrangement: a band, or a corpus piece of that split."""
    from .band import band_arrangement
    from .corpus import PieceError, corpus_arrangement, corpus_paths

    rng = song_rng(seed, split, index, attempt)
    name = f"{split}-{seed}-{index:05d}"
    if rng.random() >= BAND_SHARE:
        paths = corpus_paths(split)
        path = paths[int(rng.integers(len(paths)))]
        try:
            return corpus_arrangement(rng, f"{name}-{path.stem}", seconds, path)
        except PieceError as exc:
            log.info("song %s: %s; a band plays instead", name, exc)
    return band_arrangement(rng, f"{name}-band", seconds, int(rng.integers(3, 9)))


def _render_one(meta: Path, seed: int, split: str, index: int, seconds: float, sample_rate: int,
                fonts: Sequence[Path]) -> None:
    """Render song ``index``; an arrangement that leaves fewer than two parts sounding is logged and redrawn."""
    from .synth import PartRenderer

    renderers: dict[Path, PartRenderer] = {}
    for attempt in range(ATTEMPTS):
        arrangement = arrange(seed, split, index, seconds, attempt)
        font = Path(fonts[zlib.crc32(arrangement.name.encode()) % len(fonts)])
        renderer = renderers.setdefault(font, PartRenderer(font, sample_rate))
        rendered = [(part, renderer.render(part, seconds)) for part in arrangement.parts]
        kept = [(part, audio) for part, audio in rendered if np.max(np.abs(audio)) > SILENT_PEAK]
        for part, audio in rendered:
            if np.max(np.abs(audio)) <= SILENT_PEAK:
                log.info("song %s: the %s part (program %d) is silent; left out", arrangement.name, part.role, part.program)
        if len(kept) >= MIN_PARTS:
            break
        log.info("song %s: only %d part(s) make sound in %g s; drawing another", arrangement.name, len(kept), seconds)
    else:
        raise SongError(f"song {index} of {split} seed {seed}: no arrangement in {ATTEMPTS} tries has {MIN_PARTS} parts "
                        f"sounding in {seconds:g} s")
    song = Song(arrangement.name, sample_rate, tuple(p.role for p, _ in kept), tuple(p.program for p, _ in kept),
                np.stack([a for _, a in kept]))
    save_song(song, meta, {"source": arrangement.source, "soundfont": font.name, "seed": seed,
                           "split": split, "index": index, "attempt": attempt, "seconds": seconds})
