"""The target-balance rule: role levels, per-song variation, gains that realise the balance."""
import math

import numpy as np
import pytest

from ailive.models.data import targets as T


def test_lead_and_groove_always_sit_over_the_pads_and_the_table_holds_on_average():
    roles = ("lead_vocal", "kick", "bass", "keys", "pad")
    draws = np.array([T.balance_lu(f"song-{index}", roles) for index in range(400)])
    assert np.all(draws[:, 0] >= draws[:, 4] + 5.0)  # lead 0 +- 3 over pad -11 +- 3
    assert np.all(draws[:, 2] > draws[:, 4])  # bass over pad
    assert draws.mean(axis=0) == pytest.approx([T.ROLE_LEVEL_LU[r] for r in roles], abs=0.3)
    assert np.abs(draws - [T.ROLE_LEVEL_LU[r] for r in roles]).max() <= T.SONG_CLIP_LU


def test_balance_is_fixed_per_song_and_varies_between_songs():
    roles = ("lead_instrument", "bass", "guitar", "guitar")
    first = T.balance_lu("a", roles)
    assert np.array_equal(first, T.balance_lu("a", roles))
    assert not np.allclose(first, T.balance_lu("b", roles))
    assert first[2] != first[3]  # two guitars are not one level
    spread = np.std([T.balance_lu(f"s{i}", roles)[1] for i in range(400)])
    assert 1.0 < spread < 2.0


def test_unknown_role_is_refused_by_name():
    with pytest.raises(ValueError, match="tuba"):
        T.balance_lu("x", ("lead_vocal", "tuba"))


def test_target_gains_realise_the_balance_with_mean_zero_over_active_channels():
    balance = np.array([0.0, -4.0, -11.0, -7.0])
    direct = np.array([-30.0, -18.0, -25.0, -math.inf])
    active = np.array([True, True, True, True])
    target = T.target_gains(balance, direct, active)
    assert list(target.active) == [True, True, True, False]
    assert math.isnan(target.gain_db[3])
    mixed = direct[:3] + target.gain_db[:3]  # each channel's loudness in the mix
    assert mixed - mixed[0] == pytest.approx(balance[:3])
    assert np.mean(target.gain_db[:3]) == pytest.approx(0.0, abs=1e-12)


def test_no_active_channel_gives_no_target():
    target = T.target_gains(np.zeros(2), np.array([-20.0, -20.0]), np.array([False, False]))
    assert not target.active.any() and np.isnan(target.gain_db).all()
