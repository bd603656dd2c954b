"""Riding in feature-domain training: an input that drifts during the example, and a target fader that undoes it."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ailive.models.data import featurecorpus  # noqa: E402
from ailive.models.train.featurebatch import DRIFT_DB, draw_example, drift_ramp, stack  # noqa: E402
from ailive.models.train.featureloss import gain_targets  # noqa: E402
from ailive.models.train.loss import relative_gain_loss  # noqa: E402
from tests.test_data_realcorpus import corpus  # noqa: E402,F401  (the made-up corpus fixture)

FRAMES = 120


def test_a_ramp_moves_2_to_6_db_at_most_and_never_jumps():
    rng = np.random.default_rng(0)
    ramps = [drift_ramp(rng, FRAMES) for _ in range(300)]
    assert all(np.abs(r).max() <= DRIFT_DB[1] + 1e-9 for r in ramps)
    assert all(np.abs(np.diff(r)).max() <= DRIFT_DB[1] / (5.0 / 0.05) + 1e-9 for r in ramps)  # 5 s is the fastest
    assert any(r[0] == 0.0 and abs(r[-1]) > 0.5 for r in ramps) and any(r[0] != 0.0 for r in ramps)
    assert {np.sign(r[np.argmax(np.abs(r))]) for r in ramps if np.abs(r).max() > 0} == {-1.0, 1.0}


def test_the_drifting_input_carries_its_drift_and_the_target_fader_undoes_it(corpus):  # noqa: F811
    song = featurecorpus.load_corpus(corpus, "train")[0]
    seed = next(s for s in range(50) if np.abs(draw_example(song, np.random.default_rng(s), FRAMES, drift_share=1.0)
                                               .drift_db).max() > 1.0)
    steady = draw_example(song, np.random.default_rng(seed), FRAMES)
    drifting = draw_example(song, np.random.default_rng(seed), FRAMES, drift_share=1.0)
    assert not steady.drift_db.any()
    moved = np.flatnonzero(np.abs(drifting.drift_db).max(axis=1) > 0)
    assert len(moved) == 1 and drifting.active[moved[0]]
    # Same segment, gains and bleed; the one input is louder or quieter by its drift, frame by frame.
    level = 10 * np.log10(drifting.input_ms / steady.input_ms)
    assert np.allclose(level[moved[0]], drifting.drift_db[moved[0]], atol=1e-3)
    assert np.allclose(np.delete(level, moved[0], axis=0), 0.0, atol=1e-4)
    # The target of each control step undoes the drift of the frame it is in force from.
    batch = stack([drifting], max_channels=4)
    target, weight = gain_targets(batch, 1, FRAMES)
    undone = 10 * np.log10(batch.input_ms[0, moved[0], 1:]) + target[0, moved[0], :-1].numpy()
    assert np.ptp(undone - 10 * np.log10(steady.input_ms[moved[0], 1:])) < 1e-3
    assert weight[0, moved[0]]


def test_the_gain_loss_scores_a_moving_target_step_by_step():
    target = torch.tensor([[[0.0, 0.0, 0.0], [-6.0, -4.0, -2.0]]])
    weight = torch.ones(1, 2, dtype=torch.bool)
    following = target + 7.0  # the common offset is the engineer's
    assert relative_gain_loss(following, target, weight).item() == pytest.approx(0.0, abs=1e-6)
    static = torch.tensor([[[0.0, 0.0, 0.0], [-6.0, -6.0, -6.0]]])
    # Missing the drift by 0, 2 and 4 dB on one channel: split by the offset, |1|+|1|, |2|+|2| over 6 entries.
    assert relative_gain_loss(static, target, weight).item() == pytest.approx(1.0, abs=1e-5)
