"""Render the demo multitrack: a short band recorded with close mics, bleed and badly set input gains.

Every part is synthesised here from a seed (no samples, no downloads), so the
files in ``examples/multitrack/`` can be regenerated bit for bit:

    python examples/render_multitrack.py            # writes examples/multitrack/*.flac

Channels, in the order of ``examples/x32-demo.toml``: kick, snare, bass,
guitar, keys L, keys R, lead vocal (a formant-filtered voice), talkback
(silent but for two short announcements). Each close mic also hears every
other source, delayed by the distance between them, attenuated 14..26 dB and
darkened, plus a shared room tail. Input gains are set badly on purpose:
the kick and the guitar come in hot, the vocal far too low.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

RATE = 44100
SECONDS = 24.0
BPM = 100.0
SEED = 7
SPEED_OF_SOUND = 343.0

NAMES = ["01-kick", "02-snare", "03-bass", "04-guitar", "05-keys-l", "06-keys-r", "07-vocal", "08-talkback"]
# Badly set input gains, dB: what the demo's automixer has to fix.
INPUT_TRIM_DB = [+6.0, -2.0, +1.0, +8.0, -6.0, -6.0, -12.0, 0.0]
# Each part's role in the band, for the target balance (talkback has none), and the song name the rule varies by.
ROLES = ("kick", "snare", "bass", "guitar", "keys", "keys", "lead_vocal")
TARGET_SONG = "ailive-demo"
# Where each source stands on stage (metres); the keys pair shares one instrument.
POSITIONS = [(0.0, 0.0), (0.5, 0.3), (2.5, -1.0), (-2.5, -1.0), (-1.5, 1.5), (-1.2, 1.5), (0.0, 3.0), (4.0, 4.0)]

# I - V - vi - IV in A major: chord roots (MIDI) and triads.
CHORDS = [(45, (57, 61, 64)), (52, (56, 59, 64)), (54, (57, 61, 66)), (50, (57, 62, 66))]


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


@dataclass(frozen=True)
class Timeline:
    rate: int
    seconds: float
    bpm: float

    @property
    def samples(self) -> int:
        return int(self.rate * self.seconds)

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    def beats(self) -> int:
        return int(self.seconds / self.beat_s)

    def chord_at(self, beat: float) -> tuple[int, tuple[int, int, int]]:
        return CHORDS[int(beat // 4) % len(CHORDS)]


def _place(out: np.ndarray, start_s: float, sound: np.ndarray, rate: int) -> None:
    start = int(start_s * rate)
    if start >= out.size:
        return
    end = min(out.size, start + sound.size)
    out[start:end] += sound[: end - start]


def _env(length_s: float, rate: int, decay_s: float, attack_s: float = 0.002) -> np.ndarray:
    t = np.arange(int(length_s * rate)) / rate
    return np.minimum(t / attack_s, 1.0) * np.exp(-t / decay_s)


def kick(tl: Timeline, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(tl.samples)
    t = np.arange(int(0.5 * tl.rate)) / tl.rate
    freq = 45 + 75 * np.exp(-t / 0.04)
    hit = np.sin(2 * np.pi * np.cumsum(freq) / tl.rate) * np.exp(-t / 0.18)
    for beat in range(tl.beats()):
        for offset in ((0.0,) if beat % 2 else (0.0, 0.5) if beat % 4 == 2 else (0.0,)):
            if beat % 2 == 0 or rng.random() < 0.15:
                _place(out, (beat + offset) * tl.beat_s, hit * rng.uniform(0.85, 1.0), tl.rate)
    return out


def snare(tl: Timeline, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(tl.samples)
    length = int(0.3 * tl.rate)
    t = np.arange(length) / tl.rate
    band = butter(2, [900, 6000], btype="bandpass", fs=tl.rate, output="sos")
    for beat in range(tl.beats()):
        if beat % 2 == 1:
            noise = sosfilt(band, rng.standard_normal(length)) * np.exp(-t / 0.09)
            body = 0.6 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
            _place(out, beat * tl.beat_s, (noise * 2.5 + body) * rng.uniform(0.8, 1.0), tl.rate)
    return out


def bass(tl: Timeline, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(tl.samples)
    note_s = tl.beat_s / 2
    t = np.arange(int(note_s * tl.rate)) / tl.rate
    low = butter(2, 700, fs=tl.rate, output="sos")
    for eighth in range(tl.beats() * 2):
        root, _ = tl.chord_at(eighth / 2)
        note = root + (12 if eighth % 8 == 7 else 0)
        phase = (midi_hz(note) * t) % 1.0
        tone = sosfilt(low, 2 * phase - 1) * _env(note_s, tl.rate, 0.25)
        _place(out, eighth * note_s, tone * 0.8, tl.rate)
    return out


def _plucked(freq: float, length_s: float, rate: int, brightness: float) -> np.ndarray:
    t = np.arange(int(length_s * rate)) / rate
    tone = np.zeros_like(t)
    for harmonic in range(1, 12):
        tone += (brightness ** harmonic) / harmonic * np.sin(2 * np.pi * freq * harmonic * t) * np.exp(-t * (1.5 + 0.8 * harmonic))
    return tone


def guitar(tl: Timeline, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(tl.samples)
    for beat in range(tl.beats()):
        if beat % 4 in (0, 2, 3):
            _, triad = tl.chord_at(beat)
            for k, note in enumerate(triad + (triad[0] + 12,)):
                strum = 0.012 * k if beat % 2 == 0 else 0.012 * (3 - k)
                _place(out, beat * tl.beat_s + strum, _plucked(midi_hz(note), 1.2, tl.rate, 0.8) * 0.35, tl.rate)
    return out


def keys(tl: Timeline, rng: np.random.Generator, side: int) -> np.ndarray:
    out = np.zeros(tl.samples)
    bar_s = 4 * tl.beat_s
    t = np.arange(int(bar_s * tl.rate)) / tl.rate
    tremolo = 1.0 + 0.25 * np.sin(2 * np.pi * 5.0 * t + side * np.pi)
    for bar in range(tl.beats() // 4 + 1):
        _, triad = tl.chord_at(bar * 4)
        chord = np.zeros_like(t)
        for note in triad:
            freq = midi_hz(note + 12) * (1.0 + 0.0015 * (side - 0.5))
            chord += np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t)
        envelope = np.minimum(t / 0.05, 1.0) * np.exp(-t / 3.0)
        _place(out, bar * bar_s, chord * envelope * tremolo * 0.2, tl.rate)
    return out


FORMANTS = {"a": (800, 1150, 2900), "e": (400, 1600, 2700), "o": (450, 800, 2830), "i": (300, 2300, 3000)}


def _voice(f0: np.ndarray, vowel: str, rate: int) -> np.ndarray:
    phase = np.cumsum(f0) / rate
    source = 2 * (phase % 1.0) - 1
    voice = np.zeros_like(source)
    for gain, centre in zip((1.0, 0.5, 0.25), FORMANTS[vowel]):
        sos = butter(2, [centre * 0.85, centre * 1.15], btype="bandpass", fs=rate, output="sos")
        voice += gain * sosfilt(sos, source)
    return voice


def vocal(tl: Timeline, rng: np.random.Generator) -> np.ndarray:
    """A sung line in two-bar phrases with breaths between them."""
    out = np.zeros(tl.samples)
    melody = [64, 66, 68, 69, 68, 66, 64, 61]
    note_s = tl.beat_s
    for beat in range(tl.beats()):
        if beat % 8 >= 6 or beat < 4:
            continue  # a breath at the end of every phrase, and an intro
        note = melody[beat % len(melody)] + (0 if (beat // 8) % 2 == 0 else 2)
        t = np.arange(int(note_s * tl.rate)) / tl.rate
        f0 = midi_hz(note) * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        envelope = np.minimum(t / 0.04, 1.0) * np.minimum((note_s - t) / 0.05, 1.0)
        _place(out, beat * tl.beat_s, _voice(f0, "aeoi"[beat % 4], tl.rate) * envelope * 1.5, tl.rate)
    return out


def talkback(tl: Timeline, rng: np.random.Generator) -> np.ndarray:
    """Silent but for two short announcements: the channel the bridge must never analyse or write."""
    out = np.zeros(tl.samples)
    for start_s in (2.0, tl.seconds - 4.0):
        t = np.arange(int(1.5 * tl.rate)) / tl.rate
        f0 = 120 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))
        syllables = (np.sin(2 * np.pi * 4 * t) > 0).astype(float)
        _place(out, start_s, _voice(f0, "e", tl.rate) * syllables * 0.8, tl.rate)
    return out


def room_tail(rate: int, rng: np.random.Generator, rt60_s: float = 0.5) -> np.ndarray:
    t = np.arange(int(rt60_s * rate)) / rate
    return rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60_s) * 0.02


def add_bleed(sources: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Each close mic hears the others: delayed by distance, 14..26 dB down, darker, plus a room tail."""
    mics = sources.copy()
    dark = butter(1, 3000, fs=rate, output="sos")
    tail = room_tail(rate, rng)
    room = fftconvolve(sources.sum(axis=0), tail)[: sources.shape[1]]
    for i, (xi, yi) in enumerate(POSITIONS):
        for j, (xj, yj) in enumerate(POSITIONS):
            if i == j or j == 7 or i == 7:
                continue
            distance = max(np.hypot(xi - xj, yi - yj), 0.3)
            delay = int(distance / SPEED_OF_SOUND * rate)
            level = 10 ** (-rng.uniform(14.0, 26.0) / 20)
            bled = sosfilt(dark, sources[j]) * level
            mics[i, delay:] += bled[: sources.shape[1] - delay]
        if i != 7:
            mics[i] += room * 10 ** (-rng.uniform(20.0, 28.0) / 20)
    return mics


def render(seed: int = SEED, rate: int = RATE, seconds: float = SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """The eight mic channels and their bleed-free sources as they reach the desk, (channels, samples), input gains applied."""
    rng = np.random.default_rng(seed)
    tl = Timeline(rate, seconds, BPM)
    sources = np.stack([kick(tl, rng), snare(tl, rng), bass(tl, rng), guitar(tl, rng), keys(tl, rng, 0),
                        keys(tl, rng, 1), vocal(tl, rng), talkback(tl, rng)])
    # Balance the parts to a common level first, so the trims below are the only mistakes.
    rms = np.sqrt(np.mean(sources ** 2, axis=1, keepdims=True))
    sources = sources / np.maximum(rms, 1e-9) * 10 ** (-24 / 20)
    sources[7] *= 0.5
    mics = add_bleed(sources, rate, rng)
    trims = (10 ** (np.array(INPUT_TRIM_DB) / 20))[:, None]
    fade = np.minimum(np.arange(mics.shape[1]) / (0.02 * rate), 1.0) * np.minimum((mics.shape[1] - np.arange(mics.shape[1])) / (0.5 * rate), 1.0)
    mics *= trims * fade
    direct = sources * trims * fade
    peak = np.max(np.abs(mics))
    if peak > 0.98:
        mics *= 0.98 / peak
        direct *= 0.98 / peak
    return mics.astype(np.float32), direct


def write_target(path: Path, direct: np.ndarray, rate: int = RATE) -> None:
    """The target balance: the project's one rule (ailive.models.data.targets) applied to these parts.

    Each part's loudness as it reaches the desk (its bad trim included) is
    measured without bleed, and the fader that puts it at its role's level in
    the mix follows, as for every training and evaluation example.
    """
    from ailive.models.data.loudness import gated_loudness, step_energy
    from ailive.models.data.targets import balance_lu, target_gains

    balance = balance_lu(TARGET_SONG, ROLES)
    target = target_gains(balance, gated_loudness(step_energy(direct[: len(ROLES)], rate)), np.ones(len(ROLES), bool))
    lines = [
        "# The target balance of this multitrack (examples/render_multitrack.py writes it): the project's",
        "# target rule (ailive.models.data.targets: the lead on top, kick and bass under it, the rhythm",
        "# section below) applied to each part's bleed-free loudness as it reaches the desk, bad trims",
        "# included. The mix level itself is the engineer's: compare after removing the common offset.",
        "# Talkback has no target.",
        "[target.fader_db]",
    ]
    lines += [f'"{name}" = {gain:+.1f}' for name, gain in zip(NAMES, target.gain_db)]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "multitrack")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    mics, direct = render(args.seed)
    for name, channel in zip(NAMES, mics):
        sf.write(args.out / f"{name}.flac", channel, RATE, subtype="PCM_16")
    write_target(args.out / "target.toml", direct)
    print(f"wrote {len(NAMES)} channels of {SECONDS:g} s at {RATE} Hz to {args.out}")


if __name__ == "__main__":
    main()
