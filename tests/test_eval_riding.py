"""The riding set's scoring: the ideal fader undoes an input drift as it happens (pure scoring, no streaming)."""
import json

import numpy as np
import pytest

from ailive.bridge.offline.evalreport import score, target_faders
from ailive.bridge.offline.evaluate import Multitrack, Run
from ailive.models.base import FRAME_S

RATE = 8000
SECONDS = 12.0


def riding_item(folder) -> Multitrack:
    """Two steady channels; channel 1's input rises 6 dB between 6 and 9 s (example.json says so)."""
    folder.mkdir()
    (folder / "example.json").write_text(json.dumps({"drift": {"channel": 1, "times_s": [6.0, 9.0], "db": [0.0, 6.0]}}))
    frames = int(SECONDS * RATE)
    rng = np.random.default_rng(0)
    inputs = (0.1 * rng.standard_normal((2, frames))).astype(np.float32)
    paths = (folder / "01-a.flac", folder / "02-b.flac")
    return Multitrack("riding", paths, RATE, inputs, inputs, np.array([0.0, 0.0]), None, np.array([True, True]), ("", ""))


def run_of(item: Multitrack, follow: bool) -> Run:
    times = np.arange(1, int(SECONDS / FRAME_S) + 1) * FRAME_S
    faders = np.repeat(target_faders(item)[None, :], len(times), axis=0)
    if follow:
        faders[:, 1] -= np.interp(times, [6.0, 9.0], [0.0, 6.0])
    return Run("m", times, faders, 1.0, 0, 0.0)


def test_a_fader_that_undoes_the_drift_scores_zero_and_a_static_one_does_not(tmp_path):
    item = riding_item(tmp_path / "ride")
    follows = score(item, run_of(item, follow=True))
    stays = score(item, run_of(item, follow=False))
    assert follows.gain_error_p90_db == pytest.approx(0.0, abs=1e-9)
    assert stays.gain_error_p90_db > 2.0
    # Over time: nothing before the drift, the full 6 dB (3 dB each side of the common offset) after it.
    over_time = dict(stays.error_over_time_db)
    assert over_time[5] == pytest.approx(0.0, abs=1e-9) and over_time[10] == pytest.approx(3.0, abs=1e-6)
