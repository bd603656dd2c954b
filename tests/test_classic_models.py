"""The classic automixers: what each must do on signals whose right answer is known."""
import numpy as np
import pytest

from ailive.models.base import frame_samples
from tests import signals
from ailive.models.registry import default_model, UnknownModelError, load_model, model_names

RATE = 48000


def noise_channels(levels_db, seconds=4.0, seed=0):
    return signals.noise_channels(levels_db, seconds, RATE, seed)


def run(model, signals):
    state = model.initial_state(signals.shape[0], RATE)
    hop = frame_samples(RATE)
    gains = None
    for start in range(0, signals.shape[1] - hop + 1, hop):
        gains, state = model.step(state, signals[:, start:start + hop])
    return gains


def test_registry():
    assert model_names() == ["dugan", "loudness", "unity", "alm-mr", "alm-sr", "dmc-b-0l"]  # classic, then shipped
    assert default_model() == "alm-mr"
    with pytest.raises(UnknownModelError, match="known: dugan, loudness, unity, alm-mr, alm-sr, dmc-b-0l, or a model folder"):
        load_model("alm-xl")


def test_unity_is_zero():
    assert run(load_model("unity"), noise_channels([-20, -30])).tolist() == [0.0, 0.0]


def test_loudness_brings_a_hot_channel_down_and_leaves_silence_alone():
    gains = run(load_model("loudness"), noise_channels([-8, -20, -20, -20, None]))
    assert gains[0] == pytest.approx(-9.0, abs=0.5)  # 12 dB hotter than the rest: 3/4 of it above the mean
    assert gains[1:4] == pytest.approx([3.0] * 3, abs=0.5)
    assert np.isnan(gains[4])
    assert np.ptp(gains[:4] + np.array([-8, -20, -20, -20])) < 0.5  # equal loudness after the gains


def test_loudness_gains_are_bounded():
    gains = run(load_model("loudness"), noise_channels([-5, -50]))
    card = load_model("loudness").card
    assert card.min_gain_db <= gains.min() and gains.max() <= card.max_gain_db


def test_dugan_shares_gain_by_power():
    gains = run(load_model("dugan"), noise_channels([-20, -20, -26, None]))
    share = np.array([1, 1, 10 ** -0.6])
    assert gains[:3] == pytest.approx(10 * np.log10(share / share.sum()), abs=0.3)
    assert np.isnan(gains[3])


def test_state_is_explicit_and_stepping_is_deterministic():
    model = load_model("loudness")
    signals = noise_channels([-10, -20], seconds=1.0)
    hop = frame_samples(RATE)
    first = model.initial_state(2, RATE)
    a, after_a = model.step(first, signals[:, :hop])
    b, _ = model.step(first, signals[:, :hop])  # the same state twice gives the same answer
    assert np.array_equal(a, b)
    c, _ = model.step(after_a, signals[:, hop:2 * hop])
    assert not np.array_equal(a, c)
