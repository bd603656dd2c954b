"""An entrance should not move everyone: the common offset while a loud channel enters (pure policy, virtual clock)."""
from __future__ import annotations

from tests.test_policy import Rig, make_config


def entrance_travel(rig: Rig) -> float:
    """Three channels play steadily with a loudness-style model; a fourth, 12 dB louder, enters at 4 s.

    The model asks the newcomer down and the others up by a common 3 dB (the mean it levels to rose).
    Returns the total travel (dB) of the three faders whose input never changed, over the 6 s after the entrance.
    """
    rig.arm()
    steady = {1: 0.0, 2: 0.0, 3: 0.0}
    rig.run(4.0, steady, levels={1: -20.0, 2: -20.0, 3: -20.0, 4: -120.0})
    before = len(rig.moves)
    rig.run(6.0, {1: 3.0, 2: 3.0, 3: 3.0, 4: -9.0}, levels={1: -20.0, 2: -20.0, 3: -20.0, 4: -8.0})
    return sum(abs(m.to_db - m.from_db) for _, m in rig.moves[before:] if m.channel in (1, 2, 3))


def test_a_loud_entrance_leaves_the_other_faders_alone():
    travel = entrance_travel(Rig(make_config(window_db=40.0, ceiling_db=10.0, total_gain_cap_db=20.0)))
    assert travel < 0.5


def test_the_newcomer_still_reaches_its_place():
    rig = Rig(make_config(window_db=40.0, ceiling_db=10.0, total_gain_cap_db=20.0))
    entrance_travel(rig)
    # Its gain is 12 dB under the others' (-9 vs +3): its fader ends 12 dB under theirs.
    assert rig.faders[4] - rig.faders[1] == __import__("pytest").approx(-12.0, abs=0.8)
