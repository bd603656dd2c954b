"""The safety policy's numbers (a show file's ``[policy]``): safe defaults, and the bounds a show may set them within."""
from __future__ import annotations

from dataclasses import dataclass

from ailive.consoles.tomlschema import TableReader

#: model: fader = gain + bias; keep: bias learned so the armed balance holds.
MAPPINGS = ("model", "keep")


@dataclass(frozen=True)
class PolicySettings:
    """The safety policy's numbers; defaults are the safe ones."""

    mapping: str = "model"  # model: fader = gain + bias; keep: bias learned so the armed balance holds
    window_db: float = 6.0  # furthest a fader moves from its arm-time position
    ceiling_db: float = 5.0  # no fader ever goes above this
    total_gain_cap_db: float = 3.0  # sum of linear gains vs. reference: feedback protection
    slew_up_db_per_s: float = 3.0
    slew_down_db_per_s: float = 6.0
    override_hold_s: float = 10.0  # an engineer's hand stops writes for this long
    after_override: str = "auto"  # auto: resume with the engineer's taste kept; manual: stay hands-off
    silence_db: float = -60.0  # below this input level a channel holds its fader
    stale_audio_s: float = 0.25  # no audio for this long holds every fader
    max_writes_per_s: float = 20.0  # per fader
    deadband_db: float = 0.5  # a fader starts moving only when its target is this far away
    min_step_db: float = 0.3  # smallest move sent while riding (the last step to the target may be smaller)
    settle_s: float = 3.0  # mapping = "keep": how long after arm the model settles before its balance is learned


def parse_policy(reader: TableReader | None) -> PolicySettings:
    if reader is None:
        return PolicySettings()
    d = PolicySettings()
    policy = PolicySettings(
        mapping=reader.choice("mapping", MAPPINGS, d.mapping),
        window_db=reader.number("window_db", d.window_db, low=0.0, high=40.0),
        ceiling_db=reader.number("ceiling_db", d.ceiling_db, low=-90.0, high=10.0),
        total_gain_cap_db=reader.number("total_gain_cap_db", d.total_gain_cap_db, low=0.0, high=20.0),
        slew_up_db_per_s=reader.number("slew_up_db_per_s", d.slew_up_db_per_s, low=0.01, high=100.0),
        slew_down_db_per_s=reader.number("slew_down_db_per_s", d.slew_down_db_per_s, low=0.01, high=100.0),
        override_hold_s=reader.number("override_hold_s", d.override_hold_s, low=0.0, high=3600.0),
        after_override=reader.choice("after_override", ("auto", "manual"), d.after_override),
        silence_db=reader.number("silence_db", d.silence_db, low=-150.0, high=0.0),
        stale_audio_s=reader.number("stale_audio_s", d.stale_audio_s, low=0.05, high=10.0),
        max_writes_per_s=reader.number("max_writes_per_s", d.max_writes_per_s, low=0.1, high=100.0),
        deadband_db=reader.number("deadband_db", d.deadband_db, low=0.0, high=10.0),
        min_step_db=reader.number("min_step_db", d.min_step_db, low=0.0, high=6.0),
        settle_s=reader.number("settle_s", d.settle_s, low=0.0, high=60.0),
    )
    reader.finish()
    return policy
