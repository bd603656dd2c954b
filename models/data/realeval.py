"""Real-music evaluation sets cut from the corpus's validation songs (never trained on): balance and riding.

    python -m ailive.models.data.realeval --corpus runs/corpus --out runs/real-eval
    ailive eval --set runs/real-eval/balance --models unity,loudness,alm-mr,oracle
    ailive eval --set runs/real-eval/riding --models unity,loudness,alm-mr,oracle

Each multitrack is an excerpt of a validation song as the desk would hear
it: every channel's clean source (its stems as produced) with a random input
gain of +-12 dB and bleed of the other sources, 12-24 dB under its own
(levelled to it), 3-15 ms late. The target is the record: the faders that
undo the input gains. In the **riding** set one sounding channel's input
also drifts by 3-6 dB up or down over 5-15 s (a singer stepping back, a
solo), and the ideal fader undoes the drift as it happens; ``example.json``
carries the drift, and ``ailive eval`` scores against the fader it implies
at every step. Both sets are folders in the held-out layout, with a manifest.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..drift import drift_curve
from .examples import Example
from .featurecorpus import CorpusError, CorpusSong, load_corpus, song_audio
from .heldout import MANIFEST, write_example

EXCERPT_S = {"balance": 20.0, "riding": 30.0}
EXCERPTS_PER_SONG = 3
GAIN_RANGE_DB = 12.0
BLEED_DB = (-24.0, -12.0)
DELAY_S = (0.003, 0.015)
DRIFT_DB = (3.0, 6.0)
DRIFT_START_S = (5.0, 10.0)
DRIFT_LENGTH_S = (5.0, 15.0)
SEED = 2027
#: A channel counts as active in an excerpt when its level there is within this of its song level.
ACTIVE_BELOW_DB = 20.0


def make_excerpt(song: CorpusSong, audio: np.ndarray, rate: int, start_s: float, seconds: float,
                 rng: np.random.Generator, riding: bool) -> tuple[Example, dict | None]:
    span = slice(int(start_s * rate), int(start_s * rate) + int(seconds * rate))
    clean = audio[:, span].astype(np.float64)
    channels, length = clean.shape
    power = np.mean(clean ** 2, axis=1)
    level = 10 * np.log10(np.maximum(power, 1e-12))
    song_level = np.where(np.isfinite(song.level_db), song.level_db, -120.0)
    active = level > song_level - ACTIVE_BELOW_DB
    input_db = rng.uniform(-GAIN_RANGE_DB, GAIN_RANGE_DB, channels)
    severity = rng.uniform(*BLEED_DB)
    inputs = clean.copy()
    for mic in range(channels):
        for other in range(channels):
            if other == mic or power[other] <= 0:
                continue
            gain = math.sqrt(10 ** (severity / 10) / max(1, channels - 1) * max(power[mic], 1e-12) / power[other])
            delay = int(rng.uniform(*DELAY_S) * rate)
            inputs[mic, delay:] += gain * clean[other, : length - delay]
    gains = np.repeat((10 ** (input_db / 20))[:, None], length, axis=1)
    drift = None
    if riding:
        sounding = np.flatnonzero(active)
        channel = int(rng.choice(sounding)) if sounding.size else 0
        size = rng.uniform(*DRIFT_DB) * rng.choice([-1.0, 1.0])
        begin = rng.uniform(*DRIFT_START_S)
        end = min(begin + rng.uniform(*DRIFT_LENGTH_S), seconds - 1.0)
        drift = {"channel": channel, "times_s": [round(begin, 3), round(end, 3)], "db": [0.0, round(size, 3)]}
        times = np.arange(length) / rate
        gains[channel] *= 10 ** (drift_curve(times, drift["times_s"], drift["db"]) / 20)
    direct = (clean * gains).astype(np.float32)
    inputs = (inputs * gains).astype(np.float32)
    target = np.where(active, -input_db, math.nan)
    target = target - np.nanmean(target)
    # The record at the target's level: each active source at its fader plus its (undrifted) input gain.
    at_target = np.where(active, 10 ** (np.nan_to_num(target + input_db, nan=0.0) / 20), 0.0)
    target_mix = at_target @ clean
    example = Example(f"{song.name}-{start_s:.0f}s", rate, song.roles, inputs, direct, target,
                      target_mix.astype(np.float32), active)
    return example, drift


def excerpt_starts(song: CorpusSong, seconds: float, count: int) -> list[float]:
    """Evenly spread starts over the song, skipping its first and last 10%."""
    length = song.frame_ms.shape[1] * 0.05
    first, last = 0.1 * length, 0.9 * length - seconds
    if last <= first:
        return [0.0]
    return [round(float(s), 1) for s in np.linspace(first, last, count)]


def write_set(songs: list[CorpusSong], out: Path, kind: str, *, excerpts: int = EXCERPTS_PER_SONG,
              seed: int = SEED) -> list[str]:
    """Write ``excerpts`` multitracks per song; the seed draws their input gains, bleed and drifts."""
    entries = []
    seconds = EXCERPT_S[kind]
    for s_index, song in enumerate(songs):
        audio, rate = song_audio(song)
        for e_index, start in enumerate(excerpt_starts(song, seconds, excerpts)):
            rng = np.random.default_rng([seed, s_index, e_index, kind == "riding"])
            example, drift = make_excerpt(song, audio, rate, start, seconds, rng, kind == "riding")
            name = f"{len(entries) + 1:02d}-{example.song}"
            files = write_example(example, out / name)
            if drift is not None:
                record = json.loads((out / name / "example.json").read_text())
                record["drift"] = drift
                (out / name / "example.json").write_text(json.dumps(record, indent=1))
                from .songs import sha256

                files["example.json"] = sha256(out / name / "example.json")
            entries.append({"name": name, "files": {f"{name}/{rel}": digest for rel, digest in files.items()}})
    (out / MANIFEST).write_text(json.dumps({"version": 1, "kind": kind, "seed": seed, "examples": entries}, indent=1))
    return [e["name"] for e in entries]


def stem_loudness(audio: np.ndarray, rate: int) -> np.ndarray:
    """Each row's gated loudness (LUFS), the loudness automixer's measure."""
    from .loudness import gated_loudness, step_energy

    return gated_loudness(step_energy(audio, rate))


def role_offsets(songs: list[CorpusSong]) -> dict[str, float]:
    """Per role, the median of how far the produced balance sits from equal loudness (LU, each song's median removed).

    Learned from ``songs`` (the train split): what knowing roles, and nothing
    else about a song, adds to loudness equalisation.
    """
    by_role: dict[str, list[float]] = {}
    for song in songs:
        audio, rate = song_audio(song)
        lufs = stem_loudness(audio, rate) + song.target_gain_db
        use = np.isfinite(lufs)
        if use.sum() < 2:
            continue
        for role, offset in zip(np.asarray(song.roles)[use], lufs[use] - np.median(lufs[use])):
            by_role.setdefault(str(role), []).append(float(offset))
    return {role: float(np.median(values)) for role, values in by_role.items()}


def loudness_floor(folders: list[Path], offsets: dict[str, float] | None = None) -> np.ndarray:
    """Errors (dB) of perfect loudness equalisation of the clean sources against the target, per active channel.

    The gains that bring every active channel's own source (its input gain included, no bleed) to one
    loudness, against the target gains, each multitrack's median offset removed: what knowing every
    source's loudness exactly, and nothing about the song, would score. With ``offsets``
    (:func:`role_offsets`) each channel's role offset is added: the floor of role knowledge.
    """
    from .heldout import read_example

    errors = []
    for folder in folders:
        example = read_example(folder)
        lufs = stem_loudness(example.direct, example.sample_rate)
        if offsets:
            lufs = lufs - np.array([offsets.get(role, 0.0) for role in example.roles])
        use = example.active & np.isfinite(lufs) & np.isfinite(example.target_gain_db)
        deviation = -lufs[use] - example.target_gain_db[use]
        errors.append(np.abs(deviation - np.median(deviation)))
    return np.concatenate(errors) if errors else np.zeros(0)


def describe_floor(errors: np.ndarray) -> str:
    return f"median {np.median(errors):.2f} dB, p90 {np.percentile(errors, 90):.2f} dB" if errors.size else "no channels"


def train_songs(corpus: Path) -> list[CorpusSong]:
    """The corpus's real train songs (the role offsets are learned from recordings only); none is fine."""
    try:
        return [song for song in load_corpus(corpus, "train") if song.origin == "real"]
    except CorpusError:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ailive.models.data.realeval", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("runs/corpus"))
    parser.add_argument("--out", type=Path, default=Path("runs/real-eval"))
    parser.add_argument("--excerpts", type=int, default=EXCERPTS_PER_SONG,
                        help="multitracks per song, spread evenly over it (more gives a steadier median)")
    parser.add_argument("--seed", type=int, default=SEED, help="draws the input gains, bleed and drifts")
    args = parser.parse_args(argv)
    if args.excerpts < 1:
        parser.error("--excerpts must be at least 1")
    try:
        songs = load_corpus(args.corpus, "validation")
        offsets = role_offsets(train_songs(args.corpus))
        for kind in ("balance", "riding"):
            names = write_set(songs, args.out / kind, kind, excerpts=args.excerpts, seed=args.seed)
            folders = [args.out / kind / n for n in names]
            print(f"{args.out / kind}: {len(names)} multitracks from {len(songs)} validation songs; perfect loudness "
                  f"equalisation of the clean sources: {describe_floor(loudness_floor(folders))}; plus the role offsets "
                  f"of the train songs: {describe_floor(loudness_floor(folders, offsets))}")
    except (CorpusError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
