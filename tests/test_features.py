"""Features against an independent reference (pyloudnorm) and simple closed forms."""
import numpy as np
import pytest

from ailive.models.features import SILENCE_DB, KWeighting, loudness_lufs, rms_db

pyln = pytest.importorskip("pyloudnorm")


def test_rms_of_a_full_scale_sine_is_minus_3_db():
    t = np.arange(4800) / 48000
    frame = np.stack([np.sin(2 * np.pi * 1000 * t), np.zeros_like(t)]).astype(np.float32)
    levels = rms_db(frame)
    assert levels[0] == pytest.approx(-3.0103, abs=1e-3)
    assert levels[1] == SILENCE_DB


@pytest.mark.parametrize("rate", [44100, 48000])
def test_streamed_k_weighting_matches_pyloudnorm(rate):
    rng = np.random.default_rng(1)
    seconds = 4
    t = np.arange(rate * seconds) / rate
    signals = np.stack([0.1 * rng.standard_normal(t.size), 0.5 * np.sin(2 * np.pi * 100 * t),
                        0.3 * np.sin(2 * np.pi * 5000 * t)])
    weighting = KWeighting(rate)
    state = weighting.initial_state(3)
    hop = rate // 20
    squares = []
    for start in range(0, t.size, hop):
        ms, state = weighting.mean_square(signals[:, start:start + hop], state)
        squares.append(ms)
    ours = loudness_lufs(np.mean(squares, axis=0))
    meter = pyln.Meter(rate)
    reference = [meter.integrated_loudness(channel) for channel in signals]
    assert ours == pytest.approx(reference, abs=0.05)


def test_filter_state_is_flushed_in_silence_instead_of_going_subnormal():
    weighting = KWeighting(48000)
    state = weighting.initial_state(1)
    burst = np.random.default_rng(0).standard_normal((1, 2400)).astype(np.float32)
    _, state = weighting.mean_square(burst, state)
    silence = np.zeros((1, 2400), dtype=np.float32)
    for _ in range(400):  # 20 s of digital silence
        ms, state = weighting.mean_square(silence, state)
    assert not np.any((state != 0) & (np.abs(state) < np.finfo(np.float64).tiny))
    assert np.all(state == 0.0) and ms[0] == 0.0
