"""Build the training corpus: the manifest's real songs from checkouts of their repositories, plus rendered songs.

    python -m ailive.models.data.build_corpus --checkout everythingisremixed=/path/to/repo \\
        --out runs/corpus --rendered 60

Each real song's stems are read at the manifest's commit (a bare git
directory or a work tree), decoded (WAV/FLAC with soundfile, anything else
with the ``ffmpeg`` program), folded to mono, resampled to the manifest's
rate, summed into desk channels by the manifest's rules, and written with
their features (:mod:`.featurecorpus`). Rendered songs come from the render
cache with the role rule's target balance. The same manifest and commits
give the same corpus.
"""
from __future__ import annotations

import argparse
import io
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import featurecorpus
from .real import Checkout, ManifestError, Manifest, SongEntry, group_stems, read_manifest, song_stems

log = logging.getLogger(__name__)
DIRECT_SUFFIXES = (".wav", ".flac")


def decode(data: bytes, name: str, sample_rate: int) -> np.ndarray:
    """A stem's bytes -> mono float32 at ``sample_rate``."""
    if Path(name).suffix.lower() in DIRECT_SUFFIXES:
        import soundfile as sf
        from scipy.signal import resample_poly

        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if rate != sample_rate:
            divisor = np.gcd(rate, sample_rate)
            mono = resample_poly(mono, sample_rate // divisor, rate // divisor).astype(np.float32)
        return mono
    if shutil.which("ffmpeg") is None:
        raise ManifestError(f"{name}: decoding it needs the ffmpeg program (apt-get install ffmpeg)")
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as handle:
        handle.write(data)
        handle.flush()
        result = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", handle.name, "-ac", "1", "-ar", str(sample_rate),
                                 "-f", "f32le", "pipe:1"], capture_output=True, check=False)
    if result.returncode:
        raise ManifestError(f"{name}: ffmpeg cannot decode it ({result.stderr.decode(errors='replace').strip()[:200]})")
    return np.frombuffer(result.stdout, dtype=np.float32).copy()


def build_real_song(entry: SongEntry, manifest: Manifest, checkout: Checkout, out: Path) -> dict:
    stems = song_stems(entry, checkout)
    groups = group_stems(list(stems), manifest.channels, entry.name)
    roles = {rule.name: rule.role for rule in manifest.channels}
    decoded = {stem: decode(checkout.read(path), path, manifest.sample_rate) for stem, path in stems.items()}
    length = max(len(a) for a in decoded.values())
    channels = np.zeros((len(groups), length), dtype=np.float32)
    for row, members in enumerate(groups.values()):
        for stem in members:
            channels[row, : len(decoded[stem])] += decoded[stem]
    source = manifest.sources[entry.source]
    folder = out / entry.split / entry.name
    featurecorpus.write_song(folder, name=entry.name, split=entry.split, origin="real",
                             roles=[roles[name] for name in groups], channels=list(groups), audio=channels,
                             sample_rate=manifest.sample_rate,
                             extra={"licence": source.licence, "repository": source.repository, "commit": source.commit,
                                    "credit": source.credit, "stems": {name: [stems[s] for s in members]
                                                                       for name, members in groups.items()}})
    log.info("%s: %d stems -> %d channels, %.0f s", entry.name, len(stems), len(groups), length / manifest.sample_rate)
    return {"name": entry.name, "split": entry.split, "origin": "real", "folder": f"{entry.split}/{entry.name}",
            "channels": len(groups), "seconds": round(length / manifest.sample_rate, 1)}


def build_rendered(count: int, out: Path, cache_dir: Path | None, seed: int, sample_rate: int) -> list[dict]:
    """Rendered songs (train split) with the role rule's balance as their target."""
    from .loudness import gated_loudness
    from .songs import default_cache_dir, load_song, render_songs
    from .targets import balance_lu

    entries = []
    for path in render_songs(cache_dir or default_cache_dir(), count, seed=seed, split="train", sample_rate=sample_rate,
                             workers=2):
        song = load_song(path)
        lufs = gated_loudness(song.energy())
        gains = np.where(np.isfinite(lufs), balance_lu(song.name, song.roles) - np.where(np.isfinite(lufs), lufs, 0.0), 0.0)
        folder = out / "train" / f"rendered-{song.name}"
        featurecorpus.write_song(folder, name=song.name, split="train", origin="rendered", roles=list(song.roles),
                                 channels=[f"{i + 1:02d}" for i in range(len(song.roles))], audio=song.parts,
                                 sample_rate=song.sample_rate, target_gain_db=gains - gains.mean(), keep_audio=False)
        entries.append({"name": song.name, "split": "train", "origin": "rendered", "folder": f"train/{folder.name}",
                        "channels": len(song.roles), "seconds": round(song.parts.shape[1] / song.sample_rate, 1)})
    return entries


def build(out: Path, checkouts: dict[str, Path], *, manifest_path: Path | None = None, rendered: int = 0,
          cache_dir: Path | None = None, seed: int = 1) -> list[dict]:
    manifest = read_manifest(manifest_path) if manifest_path else read_manifest()
    missing = sorted({e.source for e in manifest.songs} - set(checkouts))
    if missing:
        raise ManifestError(f"no checkout given for source(s) {', '.join(missing)} (--checkout NAME=PATH)")
    opened = {name: Checkout(checkouts[name], manifest.sources[name].commit) for name in {e.source for e in manifest.songs}}
    out.mkdir(parents=True, exist_ok=True)
    entries = [build_real_song(entry, manifest, opened[entry.source], out) for entry in manifest.songs]
    if rendered:
        entries += build_rendered(rendered, out, cache_dir, seed, manifest.sample_rate)
    featurecorpus.write_index(out, entries)
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ailive.models.data.build_corpus", description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", action="append", default=[], metavar="NAME=PATH",
                        help="where the manifest's source NAME is checked out (bare git directory or work tree)")
    parser.add_argument("--out", type=Path, default=Path("runs/corpus"))
    parser.add_argument("--manifest", type=Path, default=None)
    parser.add_argument("--rendered", type=int, default=0, help="rendered songs to add to the train split")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        checkouts = dict(_pair(text) for text in args.checkout)
        entries = build(args.out, checkouts, manifest_path=args.manifest, rendered=args.rendered, cache_dir=args.cache_dir)
    except (ManifestError, featurecorpus.CorpusError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    real = [e for e in entries if e["origin"] == "real"]
    print(f"{args.out}: {len(real)} real songs ({sum(e['channels'] for e in real)} channels, "
          f"{sum(e['seconds'] for e in real) / 60:.1f} min), {len(entries) - len(real)} rendered")
    return 0


def _pair(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ManifestError(f"--checkout {text!r}: give NAME=PATH")
    return name, Path(path)


if __name__ == "__main__":
    sys.exit(main())
