"""Procedural band arrangements: drums, bass, keys, guitars, a lead line and pads over a chord progression.

The corpus covers choirs and string quartets; pop and rock line-ups (close-
miked kick and snare, overheads, bass, comping, a lead that enters after the
intro) come from here. Tempo, key, mode, progression, groove, line-up,
programs and entries are drawn from the generator, so a seed is a song.
"""
from __future__ import annotations

import numpy as np

from .arrangement import Arrangement, Part, notes_array
from .roles import KICK_KEYS, SNARE_KEYS, role_for_program

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
#: Progressions as scale degrees (0 = tonic), one chord per bar.
PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 6, 5, 4), (0, 3, 0, 4))
GROOVES = ("rock", "half_time", "four_on_floor", "ballad")
BASS_PROGRAMS = (32, 33, 34, 35, 38)
KEYS_PROGRAMS = (0, 1, 2, 4, 5, 16, 17)
GUITAR_PROGRAMS = (24, 25, 26, 27, 29, 30)
LEAD_PROGRAMS = (52, 53, 54, 85, 56, 65, 66, 71, 73, 80, 81, 40)
PAD_PROGRAMS = (48, 49, 50, 51, 89, 90, 91, 94)
HARMONY_PROGRAMS = (53, 54, 57, 61, 68, 41)
HAT, OPEN_HAT, CRASH, RIDE, TOM_LOW, TOM_MID, TOM_HIGH = 42, 46, 49, 51, 45, 47, 50


class _Song:
    """Time, harmony and humanising shared by every part of one song."""

    def __init__(self, rng: np.random.Generator, seconds: float) -> None:
        self.rng = rng
        self.seconds = seconds
        self.beat_s = 60.0 / rng.uniform(78.0, 140.0)
        self.key = int(rng.integers(0, 12))
        self.scale = MAJOR if rng.random() < 0.6 else MINOR
        self.progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
        self.bars = int(np.ceil(seconds / (4 * self.beat_s))) + 1

    def chord(self, bar: int) -> tuple[int, int, int]:
        """Pitch classes (relative to C) of the bar's triad."""
        degree = self.progression[bar % len(self.progression)]
        return tuple((self.key + self.scale[(degree + step) % 7] + 12 * ((degree + step) // 7)) for step in (0, 2, 4))  # type: ignore[return-value]

    def at(self, bar: int, beat: float) -> float:
        return (4 * bar + beat) * self.beat_s + self.rng.normal(0.0, 0.006)

    def velocity(self, base: int) -> int:
        return int(np.clip(base + self.rng.normal(0.0, 8.0), 20, 127))

    def keep(self, rows: list[tuple[float, float, int, int]]) -> np.ndarray:
        inside = [(max(0.0, s), min(e, self.seconds), p, v) for s, e, p, v in rows if s < self.seconds and e > s]
        return notes_array(inside)


def _voice(pitch_class: int, low: int) -> int:
    """The pitch of ``pitch_class`` at or just above MIDI note ``low``."""
    return low + (pitch_class - low) % 12


def _drums(song: _Song, groove: str, entry: int) -> dict[str, list[tuple[float, float, int, int]]]:
    kit: dict[str, list[tuple[float, float, int, int]]] = {"kick": [], "snare": [], "overheads": []}
    hit = 0.15
    for bar in range(entry, song.bars):
        fill = bar % 4 == 3 and song.rng.random() < 0.5
        if groove == "four_on_floor":
            kicks, snares = (0, 1, 2, 3), (1, 3)
        elif groove == "half_time":
            kicks, snares = (0, 2.5), (2,)
        elif groove == "ballad":
            kicks, snares = (0, 2), (1, 3)
        else:
            kicks, snares = (0, 1.5, 2), (1, 3)
        for beat in kicks:
            kit["kick"].append((song.at(bar, beat), song.at(bar, beat) + hit, int(KICK_KEYS[1]), song.velocity(105)))
        for beat in snares:
            if fill and beat >= 2:
                continue
            kit["snare"].append((song.at(bar, beat), song.at(bar, beat) + hit, int(SNARE_KEYS[1]), song.velocity(100)))
        cymbal = RIDE if groove == "ballad" else HAT
        eighths = 4 if groove == "ballad" else 8
        for step in range(eighths):
            beat = step * 4 / eighths
            key = OPEN_HAT if cymbal == HAT and step == eighths - 1 and song.rng.random() < 0.3 else cymbal
            kit["overheads"].append((song.at(bar, beat), song.at(bar, beat) + hit, key, song.velocity(70 if step % 2 else 85)))
        if bar % 4 == 0:
            kit["overheads"].append((song.at(bar, 0), song.at(bar, 0) + 1.0, CRASH, song.velocity(100)))
        if fill:
            for i, tom in enumerate((TOM_HIGH, TOM_HIGH, TOM_MID, TOM_MID, TOM_LOW, TOM_LOW, TOM_LOW, TOM_LOW)):
                beat = 2 + i * 0.25
                kit["overheads"].append((song.at(bar, beat), song.at(bar, beat) + hit, tom, song.velocity(95)))
    return kit


def _bass(song: _Song, groove: str, entry: int) -> list[tuple[float, float, int, int]]:
    rows = []
    step = 1.0 if groove in ("ballad", "half_time") else 0.5
    for bar in range(entry, song.bars):
        root = _voice(song.chord(bar)[0], 28)
        fifth = root + 7
        beat = 0.0
        while beat < 4.0:
            pitch = fifth if beat == 3.0 and song.rng.random() < 0.4 else root
            rows.append((song.at(bar, beat), song.at(bar, beat) + step * song.beat_s * 0.9, pitch, song.velocity(95)))
            beat += step
    return rows


def _chords(song: _Song, entry: int, low: int, pattern: str) -> list[tuple[float, float, int, int]]:
    """Comping: block chords on the beats, strummed eighths, sustained pads or arpeggios."""
    rows = []
    for bar in range(entry, song.bars):
        pitches = [_voice(pc, low) for pc in song.chord(bar)]
        if pattern == "pad":
            for p in pitches:
                rows.append((song.at(bar, 0), song.at(bar, 4), p, song.velocity(70)))
        elif pattern == "arpeggio":
            for i in range(8):
                p = pitches[i % 3] + (12 if i >= 6 else 0)
                rows.append((song.at(bar, i * 0.5), song.at(bar, i * 0.5 + 0.5), p, song.velocity(75)))
        else:
            beats = (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5) if pattern == "strum" else (0, 1, 2, 3)
            length = 0.45 if pattern == "strum" else 0.9
            for beat in beats:
                for i, p in enumerate(pitches + ([pitches[0] + 12] if pattern == "strum" else [])):
                    start = song.at(bar, beat) + (0.008 * i if pattern == "strum" else 0.0)
                    rows.append((start, start + length * song.beat_s, p, song.velocity(80 if beat % 1 == 0 else 65)))
    return rows


def _melody(song: _Song, entry: int, low: int, below: list[tuple[float, float, int, int]] | None = None
            ) -> list[tuple[float, float, int, int]]:
    """A lead line: a random walk on the scale in two-bar phrases with breaths; or a third under ``below``."""
    if below is not None:
        in_scale = {(song.key + step) % 12 for step in song.scale}
        thirds = [next((p - d for d in (3, 4) if (p - d) % 12 in in_scale), p - 3) for _, _, p, _ in below]
        return [(s, e, int(p), max(20, v - 10)) for (s, e, _, v), p in zip(below, thirds)]
    rows = []
    degree = int(song.rng.integers(0, 7))
    for bar in range(entry, song.bars, 2):
        beat = 0.0
        while beat < 7.0:
            length = float(song.rng.choice((0.5, 1.0, 1.0, 1.5, 2.0)))
            degree = int(np.clip(degree + song.rng.choice((-2, -1, -1, 0, 1, 1, 2)), 0, 11))
            pitch = low + song.key % 12 + song.scale[degree % 7] + 12 * (degree // 7)
            start = song.at(bar, beat)
            rows.append((start, start + length * song.beat_s * 0.95, pitch, song.velocity(92)))
            beat += length
    return rows


def band_arrangement(rng: np.random.Generator, name: str, seconds: float, channels: int) -> Arrangement:
    """A band of ``channels`` (3..8) channels playing for ``seconds``."""
    if not 3 <= channels <= 8:
        raise ValueError(f"a band has 3..8 channels, got {channels}")
    song = _Song(rng, seconds)
    groove = GROOVES[int(rng.integers(len(GROOVES)))]
    intro = int(rng.choice((1, 2, 2, 4)))  # bars before the lead comes in
    pick = lambda options: int(options[int(rng.integers(len(options)))])  # noqa: E731
    lead_program = pick(LEAD_PROGRAMS)
    lead = _melody(song, intro, 60 if lead_program in (52, 53, 54, 85) else 62)
    candidates: list[Part] = [
        Part(role_for_program(lead_program, melody=True), lead_program, False, song.keep(lead)),
        Part("bass", pick(BASS_PROGRAMS), False, song.keep(_bass(song, groove, int(rng.choice((0, 0, 1)))))),
    ]
    kit = _drums(song, groove, int(rng.choice((0, 0, 0, 1))))
    drum_parts = [Part(role, 0, True, song.keep(kit[role])) for role in ("kick", "snare", "overheads")]
    comp = [
        Part("keys", pick(KEYS_PROGRAMS), False, song.keep(_chords(song, int(rng.choice((0, 0, 2))), 55,
                                                                str(rng.choice(("block", "arpeggio")))))),
        Part("guitar", pick(GUITAR_PROGRAMS), False, song.keep(_chords(song, int(rng.choice((0, 1, 2))), 52, "strum"))),
        Part("pad", pick(PAD_PROGRAMS), False, song.keep(_chords(song, int(rng.choice((0, 2, 4))), 60, "pad"))),
        Part("harmony", pick(HARMONY_PROGRAMS), False, song.keep(_melody(song, intro, 0, below=lead))),
    ]
    order = rng.permutation(len(comp))
    whole_kit = Part("overheads", 0, True, song.keep(kit["kick"] + kit["snare"] + kit["overheads"]))
    drums = drum_parts if channels >= 5 else [whole_kit] if channels == 4 else []
    parts = candidates + drums + [comp[i] for i in order]
    return Arrangement(name, seconds, tuple(parts[:channels]), "band")
