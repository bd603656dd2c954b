"""Examples from real rendered parts: what the desk hears, the bleed-free direct signals, targets and the target mix."""

import numpy as np
import pyloudnorm
import pytest

from ailive.models.data import ExampleError, Song, load_song, make_example, render_songs
from ailive.models.data.targets import balance_lu


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Song:
    """A rendered band song with 6+ parts (drums, bass, lead ...)."""
    paths = render_songs(tmp_path_factory.mktemp("songs"), 4, seed=3, seconds=8.0)
    songs = [load_song(p) for p in paths]
    return max(songs, key=lambda s: s.parts.shape[0])


def test_example_shapes_and_the_chain(song):
    example = make_example(song, np.random.default_rng(0), 4.0)
    channels = song.parts.shape[0]
    frames = int(4.0 * song.sample_rate)
    assert example.inputs.shape == example.direct.shape == (channels, frames)
    assert example.inputs.dtype == example.direct.dtype == example.target_mix.dtype == np.float32
    assert example.target_gain_db.shape == example.active.shape == (channels,)
    assert example.roles == song.roles and example.song == song.name
    # Every direct channel is its own clean part, only scaled: correlation 1 with some stretch of the part.
    for i in range(channels):
        if not example.active[i]:
            continue
        part = song.parts[i]
        starts = range(0, part.size - frames + 1, int(0.1 * song.sample_rate))
        best = max(abs(np.corrcoef(part[s:s + frames], example.direct[i])[0, 1]) for s in starts)
        assert best > 0.9999
    # The bleed is really there, and it is the other sources: each input is more than its own source.
    bleed = example.inputs - example.direct
    ratio_db = 10 * np.log10(np.mean(bleed ** 2, axis=1) / np.mean(example.direct ** 2, axis=1))
    assert np.all(ratio_db[example.active] > -60.0)
    assert np.median(ratio_db[example.active]) < 10.0


def test_target_mix_is_the_direct_signals_at_the_target_gains(song):
    example = make_example(song, np.random.default_rng(1), 4.0)
    gains = np.where(example.active, 10 ** (np.nan_to_num(example.target_gain_db, nan=-np.inf) / 20), 0.0)
    assert np.allclose(example.target_mix, gains @ example.direct, atol=1e-5)
    assert np.all(np.isnan(example.target_gain_db) == ~example.active)


def test_the_target_mix_has_the_balance_of_the_rule_by_an_independent_meter(song):
    """Each active channel at its target gain measures (pyloudnorm) at the rule's level relative to the others."""
    example = make_example(song, np.random.default_rng(2), 6.0)
    meter = pyloudnorm.Meter(song.sample_rate)
    active = np.flatnonzero(example.active)
    assert active.size >= 3
    measured = np.array([meter.integrated_loudness((10 ** (example.target_gain_db[i] / 20) * example.direct[i]).astype(np.float64))
                         for i in active])
    wanted = balance_lu(song.name, song.roles)[active]
    assert measured - measured.mean() == pytest.approx(wanted - wanted.mean(), abs=0.3)


def test_random_input_gains_reach_both_sides(song):
    rng = np.random.default_rng(4)
    gains = np.concatenate([make_example(song, rng, 2.0).target_gain_db for _ in range(6)])
    gains = gains[np.isfinite(gains)]
    assert gains.min() < -6.0 and gains.max() > 6.0


def test_same_generator_same_example_and_different_ones_differ(song):
    a = make_example(song, np.random.default_rng(7), 2.0)
    b = make_example(song, np.random.default_rng(7), 2.0)
    c = make_example(song, np.random.default_rng(8), 2.0)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.target_gain_db, b.target_gain_db, equal_nan=True)
    assert not np.array_equal(a.inputs, c.inputs)


def test_a_one_part_song_is_refused_with_a_reason(song):
    one = Song("solo", song.sample_rate, song.roles[:1], song.programs[:1], song.parts[:1])
    with pytest.raises(ExampleError, match="1 part"):
        make_example(one, np.random.default_rng(0), 2.0)


def test_a_song_shorter_than_the_example_is_refused(song):
    with pytest.raises(ExampleError, match="asked for a 60 s example"):
        make_example(song, np.random.default_rng(0), 60.0)
