"""Instrument roles: the label every rendered channel carries, and how a General MIDI program maps onto one.

A role says what a channel does in the band (lead, rhythm, low end, bed),
which is what a mixing engineer balances by; the GM program says what it
sounds like. The target-balance rule in :mod:`.targets` is written per role.
"""
from __future__ import annotations

#: Every role a channel can have, from the top of a typical mix to its bed.
ROLES = (
    "lead_vocal",       # the sung melody
    "lead_instrument",  # a melody or solo on an instrument (sax, trumpet, violin 1, synth lead)
    "kick",             # kick drum close mic
    "snare",            # snare close mic
    "bass",             # bass guitar, double bass, cello or bass voice carrying the low end
    "overheads",        # cymbals, hats and toms: the kit from above
    "guitar",           # rhythm guitar
    "keys",             # piano, organ, electric piano comping
    "harmony",          # inner voices: alto/tenor, second violin, viola, backing vocals
    "pad",              # sustained strings, choir or synth pads under everything
)

#: General MIDI drum keys each drum role's close mic hears (kick, snare; the rest go to the overheads).
KICK_KEYS = (35, 36)
SNARE_KEYS = (37, 38, 39, 40)


def role_for_program(program: int, *, melody: bool = False, lowest: bool = False) -> str:
    """The role a GM program plays; ``melody`` marks the top line, ``lowest`` the bottom one of a score."""
    if not 0 <= program <= 127:
        raise ValueError(f"a General MIDI program is 0..127, got {program}")
    if melody:
        return "lead_vocal" if program in (52, 53, 54, 85) else "lead_instrument"
    if lowest or 32 <= program <= 39 or program in (43, 58, 70):  # basses, contrabass, tuba, bassoon
        return "bass"
    if 24 <= program <= 31:
        return "guitar"
    if program <= 23:
        return "keys"
    if 48 <= program <= 54 or 88 <= program <= 95:
        return "pad"
    return "harmony"
