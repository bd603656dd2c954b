"""Render parts with a General MIDI SoundFont (tinysoundfont), one part at a time, to mono float32.

The SoundFont inside the ``pretty_midi`` wheel (TimGM6mb) is always there;
Debian's ``fluid-soundfont-gm`` (FluidR3_GM) is richer and used as well when
installed. tinysoundfont renders offline far faster than real time and needs
no audio device.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .arrangement import END_S, PITCH, START_S, VELOCITY, Part

log = logging.getLogger(__name__)

#: Debian's General MIDI SoundFonts, used when installed.
SYSTEM_SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),)
DRUM_BANK = 128
#: Rendered and thrown away between parts, seconds.
FLUSH_S = 0.05


class SoundFontError(ModelError, ValueError):
    """A SoundFont that cannot be read or lacks what a part needs."""


def builtin_soundfont() -> Path:
    """TimGM6mb.sf2 from the pretty_midi wheel."""
    import pretty_midi

    return Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"


def available_soundfonts() -> list[Path]:
    """Every General MIDI SoundFont on this machine, the built-in one first."""
    return [builtin_soundfont(), *(p for p in SYSTEM_SOUNDFONTS if p.is_file())]


@dataclass
class PartRenderer:
    """One loaded SoundFont rendering parts at one sample rate."""

    soundfont: Path
    sample_rate: int

    def __post_init__(self) -> None:
        import tinysoundfont

        if not self.soundfont.is_file():
            raise SoundFontError(f"SoundFont {self.soundfont} does not exist")
        self._synth = tinysoundfont.Synth(samplerate=self.sample_rate)
        try:
            self._sfid = self._synth.sfload(str(self.soundfont))
        except Exception as exc:  # tinysoundfont raises a bare Exception subclass or RuntimeError
            raise SoundFontError(f"SoundFont {self.soundfont} cannot be read: {exc}") from None

    def render(self, part: Part, seconds: float) -> np.ndarray:
        """The part alone, mono.  -> (samples,) float32 of ``seconds``"""
        synth = self._synth
        # No voice of the previous part may ring into this one: a reset still fades voices out over
        # a few milliseconds, so render that fade into a scratch buffer first.
        synth.soundfonts[self._sfid].reset()
        synth.generate_simple(int(FLUSH_S * self.sample_rate))
        try:
            if part.is_drum:
                synth.program_select(0, self._sfid, DRUM_BANK, part.program, is_drums=True)
            else:
                synth.program_select(0, self._sfid, 0, part.program)
        except Exception as exc:
            raise SoundFontError(f"SoundFont {self.soundfont.name} has no {'drum kit' if part.is_drum else 'program'} "
                                 f"{part.program}: {exc}") from None
        frames = int(round(seconds * self.sample_rate))
        events = _events(part.notes, self.sample_rate, frames)
        stereo = np.zeros(2 * frames, dtype=np.float32)
        view = memoryview(stereo).cast("B")
        position = 0
        for frame, on, pitch, velocity in events:
            if frame > position:
                synth.generate_simple(frame - position, buffer=view[8 * position:8 * frame])
                position = frame
            if on:
                synth.noteon(0, pitch, velocity)
            else:
                synth.noteoff(0, pitch)
        if position < frames:
            synth.generate_simple(frames - position, buffer=view[8 * position:8 * frames])
        return stereo.reshape(frames, 2).mean(axis=1, dtype=np.float32)


def _events(notes: np.ndarray, rate: int, frames: int) -> list[tuple[int, bool, int, int]]:
    """Note-on and note-off events in time order (offs before ons at the same frame: a repeated note restrikes)."""
    events = []
    for row in notes:
        start = int(round(row[START_S] * rate))
        end = int(round(row[END_S] * rate))
        if start >= frames:
            continue
        pitch, velocity = int(row[PITCH]), int(np.clip(row[VELOCITY], 1, 127))
        events.append((start, True, pitch, velocity))
        events.append((min(max(end, start + 1), frames), False, pitch, 0))
    events.sort(key=lambda e: (e[0], e[1]))
    return events
