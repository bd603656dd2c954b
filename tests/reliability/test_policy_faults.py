"""The safety policy under the desk faults the integration tests found, on a virtual clock."""
from __future__ import annotations

import pytest

from ailive.bridge import policy as P
from tests.test_policy import Rig, make_config


def test_a_level_set_again_and_again_while_the_cap_binds_is_kept_when_the_hold_ends():
    """A second controller keeps putting a fader back to its level while the total-gain cap holds everyone back.

    When the hold ends the bridge keeps that level: its taste is learned
    against the capped target, so the fader is not moved (and fought back by
    whoever set it) only because the cap cuts every ridden fader. (The first
    time, the cap's limit follows the fader's new reference and every fader
    settles once; from then on nothing moves.)
    """
    rig = Rig(make_config(window_db=6.0, ceiling_db=10.0, total_gain_cap_db=1.0, override_hold_s=1.0))
    rig.arm()
    gains = {1: 0.0, 2: 10.0, 3: 10.0, 4: 10.0}
    levels = {1: -10.0, 2: -40.0, 3: -40.0, 4: -40.0}  # the loud one keeps the offset near 0: the quiet ones want +10
    rig.run(8.0, gains, levels=levels)
    assert rig.state.cap_cut_db < -0.5  # the cap binds
    for _ in range(3):
        rig.engineer(2, -12.0)
        rig.run(4.0, gains, levels=levels)
    assert rig.state.cap_cut_db < -0.5
    fought = [m for t, m in rig.moves if m.channel == 2 and t > rig.now - 8.0]
    assert fought == []
    assert rig.faders[2] == pytest.approx(-12.0, abs=0.2)
    assert sum(e.kind == "override-ended" and e.channel == 2 for e in rig.events) == 3


def test_the_cap_still_takes_one_common_cut_when_the_engineer_frees_room():
    rig = Rig(make_config(window_db=6.0, ceiling_db=10.0, total_gain_cap_db=1.0, override_hold_s=1.0))
    rig.arm()
    gains = {1: 0.0, 2: 10.0, 3: 10.0, 4: 10.0}
    levels = {1: -10.0, 2: -40.0, 3: -40.0, 4: -40.0}
    rig.run(8.0, gains, levels=levels)
    total = sum(10 ** (db / 20) for db in rig.faders.values())
    assert total <= 4 * 10 ** (1.0 / 20) + 0.05
    assert rig.faders[3] == pytest.approx(rig.faders[4], abs=0.2)  # the same cut for every ridden fader


def test_a_pair_with_one_side_switched_to_manual_holds_both_sides():
    """Found by the soak: the partner of a channel switched to manual rode on alone, tilting the pair,
    and a hand on the manual side did not stop it."""
    rig = Rig(make_config(groups=["", "", "keys", "keys"], override_hold_s=1.0))
    rig.arm()
    gains = {1: 0.0, 2: 0.0, 3: -6.0, 4: -6.0}
    rig.run(0.5, gains)
    rig.state, _ = P.set_mode(rig.state, 3, "manual", rig.now)
    before = len(rig.moves)
    rig.run(2.0, gains)
    rig.engineer(3, -10.0)
    rig.run(2.0, gains)
    assert [m for _, m in rig.moves[before:] if m.channel in (3, 4)] == []
    assert rig.state.channel(4).reason == "held: group"


def test_a_channel_handed_back_to_auto_keeps_the_level_the_engineer_left_it_at():
    """Found by the soak: a fader ridden by hand outside the window while manual jumped back into the window
    (-20 to -6 dB in one write) when the channel was set to auto again."""
    rig = Rig(make_config(override_hold_s=1.0))
    rig.arm()
    gains = {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0}
    rig.run(1.0, gains)
    rig.state, _ = P.set_mode(rig.state, 2, "manual", rig.now)
    rig.engineer(2, -20.0)
    rig.run(1.0, gains)
    rig.state, _ = P.set_mode(rig.state, 2, "auto", rig.now)
    rig.run(0.5, gains)
    rig.run(2.0, {**gains, 2: 3.0})  # the model then asks for 3 dB more: ridden from the engineer's level
    moves = [m for _, m in rig.moves if m.channel == 2]
    assert moves and all(abs(m.to_db - m.from_db) < 1.0 for m in moves)
    assert -20.5 < rig.faders[2] < -15.0
    assert rig.state.channel(2).reference_db == pytest.approx(-20.0, abs=0.1)
