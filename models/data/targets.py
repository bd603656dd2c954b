"""The target balance: how loud each role sits in the mix, the one rule every target and the oracle come from.

Without human mixes the target is a rule an engineer would recognise, written
as each role's loudness in the mix relative to the lead (LU):

    lead vocal 0 | lead instrument -1 | kick -4 | snare -5 | bass -4 | overheads -9 |
    guitar -7 | keys -8 | harmony -7 | pad -11

so the melody sits on top, kick and bass carry the groove just under it, the
rhythm section comps below and pads fill underneath. Every song varies it:
each role's level moves by N(0, 1.5) LU (clipped to +-3), and channels that
share a role move apart by N(0, 1) LU more, drawn from the song's name so a
song always has the same balance (the model must learn balance from what it
hears, not one constant per role). Only differences count (the common level
is normalised away), so a song without a lead has its highest role on top.

From a channel's target level and its direct (bleed-free) loudness the
target gain follows; the gains are shifted so that their mean over the
active channels is 0 dB (the mix level is the engineer's, and the bridge's
policy sets the common offset itself). These gains are the **oracle**: a
model that proposed them would score zero gain error.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from .roles import ROLES

#: Each role's loudness in the mix relative to the lead, LU.
ROLE_LEVEL_LU: dict[str, float] = {
    "lead_vocal": 0.0,
    "lead_instrument": -1.0,
    "kick": -4.0,
    "snare": -5.0,
    "bass": -4.0,
    "overheads": -9.0,
    "guitar": -7.0,
    "keys": -8.0,
    "harmony": -7.0,
    "pad": -11.0,
}
SONG_SPREAD_LU = 1.5  # per song and role
SONG_CLIP_LU = 3.0
CHANNEL_SPREAD_LU = 1.0  # per channel among channels of one role
#: Bumped whenever the rule changes, so a cached held-out set is rebuilt.
RULE_VERSION = 1

assert set(ROLE_LEVEL_LU) == set(ROLES)


def song_seed(name: str) -> int:
    """A stable seed from a song's name (Python's ``hash`` changes per process)."""
    return zlib.crc32(f"target-rule-{RULE_VERSION}:{name}".encode())


def balance_lu(song: str, roles: tuple[str, ...]) -> np.ndarray:
    """Each channel's loudness in the target mix relative to the lead, LU.  -> (channels,)

    Deterministic in (song name, roles).
    """
    unknown = [r for r in roles if r not in ROLE_LEVEL_LU]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; known: {', '.join(ROLES)}")
    rng = np.random.default_rng(song_seed(song))
    per_role = {role: float(np.clip(rng.normal(0.0, SONG_SPREAD_LU), -SONG_CLIP_LU, SONG_CLIP_LU)) for role in ROLES}
    per_channel = rng.normal(0.0, CHANNEL_SPREAD_LU, size=len(roles))
    levels = np.array([ROLE_LEVEL_LU[r] + per_role[r] for r in roles])
    shared = np.array([roles.count(r) > 1 for r in roles])
    return levels + np.where(shared, per_channel, 0.0)


@dataclass(frozen=True)
class Target:
    gain_db: np.ndarray  # (channels,) fader per input channel; NaN where inactive
    active: np.ndarray  # (channels,) bool


def target_gains(balance_lu: np.ndarray, direct_lufs: np.ndarray, active: np.ndarray) -> Target:
    """The fader per channel that puts every active channel at its balance level, mean 0 dB over the active ones.

    balance_lu: (channels,) from :func:`balance_lu`; direct_lufs: (channels,) gated
    loudness of each channel's own source as it arrives at the desk; active:
    (channels,) bool.
    """
    active = np.asarray(active, dtype=bool) & np.isfinite(direct_lufs)
    gains = np.full(len(balance_lu), math.nan)
    if np.any(active):
        raw = balance_lu[active] - direct_lufs[active]
        gains[active] = raw - float(np.mean(raw))
    return Target(gains, active)
