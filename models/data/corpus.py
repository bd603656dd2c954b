"""Ensemble pieces from the music21 corpus: chorales, madrigals, motets and string quartets, 3..8 parts.

Each part becomes a channel, voiced by a drawn ensemble (choir, strings,
brass, winds, organ) or by its own instrument; its role comes from its place
in the score (top line = lead, bottom line = bass, inner lines = harmony)
whatever plays it.
Pieces are split between training and held-out by a hash of their corpus
path, so a held-out piece is never rendered for training.
"""
from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .arrangement import Arrangement, Part, notes_array
from .roles import role_for_program

log = logging.getLogger(__name__)

#: Corpus composers whose pieces are part-writing for 3..8 voices.
COMPOSERS = ("bach", "palestrina", "monteverdi", "trecento", "haydn", "mozart", "beethoven", "josquin")
#: Ensembles to voice a score with, top line first (the last program repeats downwards).
ENSEMBLES = {
    "choir": (53, 52, 52, 52),
    "strings": (40, 40, 41, 42),
    "brass": (56, 56, 60, 57, 58),
    "winds": (73, 68, 71, 70),
    "organ": (19, 19, 19, 19),
    "saxes": (64, 65, 66, 67),
}
MIN_PARTS, MAX_PARTS = 3, 8
#: One piece in this many is held out (never rendered for training).
HELDOUT_ONE_IN = 8


class PieceError(ModelError, ValueError):
    """A corpus piece cannot become a multitrack (too few or too many parts, no notes)."""


def _key(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def split_of(path: Path) -> str:
    """``heldout`` or ``train``, fixed by the piece's corpus path."""
    return "heldout" if zlib.crc32(_key(path).encode()) % HELDOUT_ONE_IN == 0 else "train"


def corpus_paths(split: str) -> list[Path]:
    """The corpus pieces of one split, in a fixed order."""
    from music21 import corpus

    paths = sorted({Path(p) for composer in COMPOSERS for p in corpus.getComposer(composer)}, key=_key)
    return [p for p in paths if p.suffix in (".mxl", ".xml", ".krn", ".musicxml") and split_of(p) == split]


def corpus_arrangement(rng: np.random.Generator, name: str, seconds: float, path: Path) -> Arrangement:
    """The parts of the piece at ``path`` as an arrangement of ``seconds``; raises :class:`PieceError`."""
    from music21 import corpus

    score = corpus.parse(str(path))
    parts = [p for p in score.parts if len(p.flatten().notes) > 0]
    if not MIN_PARTS <= len(parts) <= MAX_PARTS:
        raise PieceError(f"{_key(path)} has {len(parts)} parts with notes; a multitrack needs {MIN_PARTS}..{MAX_PARTS}")
    beat_s = 60.0 / rng.uniform(60.0, 110.0)
    length_ql = float(score.highestTime)
    start_ql = 0.0 if rng.random() < 0.5 else float(np.floor(rng.uniform(0.0, max(0.0, length_ql - seconds / beat_s))))
    ensemble = str(rng.choice([*ENSEMBLES, "own"]))
    out = []
    for index, part in enumerate(parts):
        rows = []
        for element in part.flatten().stripTies().notes:
            start_s = (float(element.offset) - start_ql) * beat_s
            end_s = start_s + max(float(element.quarterLength), 0.25) * beat_s * 0.97
            if end_s <= 0.0 or start_s >= seconds:
                continue
            velocity = element.volume.velocity or int(rng.integers(70, 96))
            for pitch in element.pitches:
                rows.append((max(start_s, 0.0), min(end_s, seconds), int(pitch.midi), int(velocity)))
        program = _program(part, index, ensemble)
        role = (role_for_program(program, melody=True) if index == 0 else "bass" if index == len(parts) - 1
                else "harmony")
        out.append(Part(role, program, False, notes_array(rows)))
    if sum(p.notes.shape[0] > 0 for p in out) < MIN_PARTS:
        raise PieceError(f"{_key(path)}: fewer than {MIN_PARTS} parts play in the excerpt")
    return Arrangement(name, seconds, tuple(out), _key(path))


def _program(part: object, index: int, ensemble: str) -> int:
    if ensemble == "own":
        program = part.getInstrument().midiProgram  # type: ignore[attr-defined]
        return int(program) if program is not None else 52
    programs = ENSEMBLES[ensemble]
    return programs[min(index, len(programs) - 1)]
