"""The fixed held-out set: songs never rendered for training, as the desk hears them, with targets, written once.

Ten songs of the ``heldout`` split (band arrangements from their own seed
stream, corpus pieces from the held-out hash bucket), rendered with the
SoundFont every machine has (so the set is the same everywhere), 20 s from
each song's start (intros and entries included, as at a show), bleed from
the room simulation (not the closed form models train on), random input
gains as in training. Each example is a folder a bridge can play directly:

    NN-<song>/01-<role>.flac ...      the desk inputs, one mono file per channel
    NN-<song>/target/direct/*.flac    each channel's own source only
    NN-<song>/target/mix.flac         the target mix
    NN-<song>/example.json            roles, programs, target gains, active channels

``manifest.json`` (written last) lists every file with its SHA-256;
:func:`verify` checks them, so a damaged or edited set is refused, not scored.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .examples import Example, make_example
from .songs import RENDER_VERSION, default_cache_dir, load_song, render_songs, sha256
from .targets import RULE_VERSION

log = logging.getLogger(__name__)

HELDOUT_VERSION = 1
SEED = 20260
SONGS = 10
SONG_SECONDS = 24.0
EXAMPLE_SECONDS = 20.0
SAMPLE_RATE = 44100
ROOMS = 4
#: Common scale so every stored signal peaks at most here (24-bit FLAC; gains are relative, so a common scale changes nothing).
PEAK = 0.9
MANIFEST = "manifest.json"


class HeldoutError(ModelError):
    """The held-out set is incomplete or does not match its checksums."""


def heldout_dir(cache_dir: Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / f"heldout-v{HELDOUT_VERSION}-rule{RULE_VERSION}-render{RENDER_VERSION}"


def ensure_heldout(cache_dir: Path | None = None) -> Path:
    """The held-out set's folder, written first if it is not there yet (about a minute on 2 cores)."""
    folder = heldout_dir(cache_dir)
    if (folder / MANIFEST).is_file():
        return folder
    log.warning("writing the held-out set into %s (once)", folder)
    write_heldout(folder, Path(cache_dir or default_cache_dir()))
    return folder


def write_heldout(folder: Path, cache_dir: Path) -> None:
    from .room import cached_bank
    from .synth import builtin_soundfont

    paths = render_songs(cache_dir, SONGS, SEED, "heldout", seconds=SONG_SECONDS, sample_rate=SAMPLE_RATE,
                         soundfonts=[builtin_soundfont()])
    bank = cached_bank(cache_dir, ROOMS, SAMPLE_RATE, seed=SEED)
    entries = []
    for index, path in enumerate(paths):
        song = load_song(path)
        example = make_example(song, np.random.default_rng([SEED, index]), EXAMPLE_SECONDS, bleed="room", bank=bank,
                               start_s=0.0)
        name = f"{index + 1:02d}-{song.name}"
        files = write_example(example, folder / name, song.programs)
        entries.append({"name": name, "files": {f"{name}/{rel}": digest for rel, digest in files.items()}})
    manifest = {"version": HELDOUT_VERSION, "rule_version": RULE_VERSION, "render_version": RENDER_VERSION,
                "seed": SEED, "seconds": EXAMPLE_SECONDS, "sample_rate": SAMPLE_RATE, "bleed": "room", "examples": entries}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def channel_names(roles: tuple[str, ...]) -> list[str]:
    return [f"{i + 1:02d}-{role}" for i, role in enumerate(roles)]


def write_example(example: Example, folder: Path, programs: tuple[int, ...] = ()) -> dict[str, str]:
    """Write one example as a playable folder; returns {relative path: sha256}."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "target" / "direct").mkdir(parents=True, exist_ok=True)
    peak = max(float(np.max(np.abs(a))) for a in (example.inputs, example.direct, example.target_mix)) or 1.0
    scale = min(1.0, PEAK / peak)
    names = channel_names(example.roles)
    written: dict[str, np.ndarray] = {}
    for name, inputs, direct in zip(names, example.inputs, example.direct):
        written[f"{name}.flac"] = inputs
        written[f"target/direct/{name}.flac"] = direct
    written["target/mix.flac"] = example.target_mix
    for rel, signal in written.items():
        sf.write(folder / rel, signal * scale, example.sample_rate, subtype="PCM_24", format="FLAC")
    record = {"song": example.song, "sample_rate": example.sample_rate, "roles": list(example.roles),
              "programs": list(programs), "channels": names,
              "target_gain_db": [None if math.isnan(g) else round(float(g), 4) for g in example.target_gain_db],
              "active": [bool(a) for a in example.active], "scale": scale}
    (folder / "example.json").write_text(json.dumps(record, indent=1))
    return {rel: sha256(folder / rel) for rel in [*written, "example.json"]}


def read_example(folder: Path) -> Example:
    """An example folder back as an :class:`Example` (levels as stored: one common scale, gains unchanged)."""
    import soundfile as sf

    record = json.loads((Path(folder) / "example.json").read_text())
    names = record["channels"]

    def read(rel: str) -> np.ndarray:
        data, rate = sf.read(Path(folder) / rel, dtype="float32")
        if rate != record["sample_rate"]:
            raise HeldoutError(f"{folder / rel} is {rate} Hz, example.json says {record['sample_rate']} Hz")
        return data

    inputs = np.stack([read(f"{n}.flac") for n in names])
    direct = np.stack([read(f"target/direct/{n}.flac") for n in names])
    gains = np.array([math.nan if g is None else g for g in record["target_gain_db"]])
    return Example(record["song"], int(record["sample_rate"]), tuple(record["roles"]), inputs, direct, gains,
                   read("target/mix.flac"), np.array(record["active"], dtype=bool))


def verify(folder: Path) -> list[Path]:
    """Check every file against the manifest; the example folders in order, or a :class:`HeldoutError`."""
    manifest_path = Path(folder) / MANIFEST
    if not manifest_path.is_file():
        raise HeldoutError(f"{folder} has no {MANIFEST}: not a held-out set, or an unfinished one")
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["examples"]:
        for rel, digest in entry["files"].items():
            path = Path(folder) / rel
            if not path.is_file():
                raise HeldoutError(f"held-out set {folder}: {rel} is missing")
            if sha256(path) != digest:
                raise HeldoutError(f"held-out set {folder}: {rel} does not match its checksum in {MANIFEST}")
    return [Path(folder) / entry["name"] for entry in manifest["examples"]]
