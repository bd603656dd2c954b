"""Mic colour in feature-domain training: each source heard through another tone, at the loudness it had."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from ailive.models.data import featurecorpus  # noqa: E402
from ailive.models.train.featurebatch import draw_example, tone_curves  # noqa: E402
from ailive.models.train.train import TrainConfig, TrainConfigError  # noqa: E402
from tests.test_data_realcorpus import corpus  # noqa: E402,F401  (the made-up corpus fixture)

FRAMES = 120


def test_a_tone_curve_stays_within_its_size_and_is_smooth():
    curves_db = 10 * np.log10(tone_curves(np.random.default_rng(0), 400, 96, 6.0))
    assert np.abs(curves_db).max() <= 6.0 + 1e-4
    assert np.abs(curves_db).max() > 4.0  # the range is used, not only its middle
    assert np.abs(np.diff(curves_db, axis=1)).max() < 0.6  # no band jumps away from its neighbours


def test_a_coloured_source_keeps_its_loudness_its_fader_and_the_example_around_it(corpus):  # noqa: F811
    song = featurecorpus.load_corpus(corpus, "train")[0]
    plain = draw_example(song, np.random.default_rng(4), FRAMES)
    coloured = draw_example(song, np.random.default_rng(4), FRAMES, tone_db=6.0)
    # Same segment, gains and bleed: the faders that give the target balance do not change.
    assert np.array_equal(plain.active, coloured.active)
    assert np.allclose(plain.target_gain_db, coloured.target_gain_db, equal_nan=True)
    # Every input keeps its power over the segment; its spread over the bands changes.
    assert np.allclose(coloured.input_power.sum(axis=(1, 2)), plain.input_power.sum(axis=(1, 2)), rtol=1e-3)
    assert np.isclose(coloured.target_power.sum(), plain.target_power.sum(), rtol=1e-3)
    shape_db = 10 * np.log10(coloured.input_power.sum(axis=1) / plain.input_power.sum(axis=1))
    assert np.abs(shape_db).max() > 1.0


def test_tone_db_out_of_range_is_one_config_error(tmp_path):
    config = tmp_path / "tone.toml"
    config.write_text("tone_db = 20.0\n")
    with pytest.raises(TrainConfigError, match="tone_db"):
        TrainConfig.read(config)
