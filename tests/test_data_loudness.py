"""Segment loudness from precomputed 100 ms energies agrees with pyloudnorm's BS.1770 meter."""
import numpy as np
import pyloudnorm
import pytest

from ailive.models.data.loudness import block_energy, gated_loudness, sounding_fraction, step_energy, step_samples

RATE = 48000


def _gappy_noise(seed: int, seconds: float = 6.0) -> np.ndarray:
    """Noise at three levels with a silent gap: the relative gate has something to do."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal(int(seconds * RATE)) * 0.1
    signal[: RATE] *= 0.05
    signal[2 * RATE: 3 * RATE] = 0.0
    signal[4 * RATE:] *= 0.3
    return signal


@pytest.mark.parametrize("seed", [0, 1])
def test_gated_loudness_matches_pyloudnorm(seed):
    signal = _gappy_noise(seed)
    ours = gated_loudness(step_energy(signal[None, :], RATE))[0]
    reference = pyloudnorm.Meter(RATE).integrated_loudness(signal)
    assert ours == pytest.approx(reference, abs=0.1)


def test_silence_has_no_loudness_and_does_not_sound():
    steps = step_energy(np.zeros((1, 3 * RATE)), RATE)
    assert gated_loudness(steps)[0] == -np.inf
    assert sounding_fraction(steps, np.array([-90.0]))[0] == 0.0


def test_steps_and_blocks():
    assert step_samples(44100) == 4410 and step_samples(48000) == 4800
    steps = step_energy(np.ones((2, RATE + 100)), RATE)
    assert steps.shape == (2, 10)
    blocks = block_energy(np.arange(10.0)[None, :])
    assert blocks.shape == (1, 7) and blocks[0, 0] == pytest.approx(1.5)


def test_sounding_fraction_counts_blocks_above_the_floor():
    signal = np.zeros(10 * RATE)
    signal[: 5 * RATE] = np.random.default_rng(0).standard_normal(5 * RATE) * 0.1
    fraction = sounding_fraction(step_energy(signal[None, :], RATE), np.array([-40.0]))[0]
    assert fraction == pytest.approx(0.5, abs=0.05)
