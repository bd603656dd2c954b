"""Streaming log-mel (numpy, runtime) against its batch twin (PyTorch, training), and closed forms."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ailive.models.alm import ACTIVE_GATE_DB, patch_active
from ailive.models.logmel import LogMelSpec, StreamingLogMel, UnsupportedRateError

torch = pytest.importorskip("torch")
from ailive.models.train.features import LogMel  # noqa: E402

MULTITRACK = Path(__file__).resolve().parent.parent / "examples" / "multitrack"


def stream(signal: np.ndarray, rate: int, block: int, dtype=np.float64) -> tuple[np.ndarray, StreamingLogMel, object]:
    features = StreamingLogMel(rate, dtype=dtype)
    state = features.initial_state(signal.shape[0])
    frames = [features.push(state, signal[:, start:start + block]) for start in range(0, signal.shape[1], block)]
    return np.concatenate(frames, axis=1), features, state


def real_like(rate: int, seconds: float) -> np.ndarray:
    """Four channels of the example multitrack (kick, bass, vocal, talkback), resampled if needed."""
    rows = []
    for name in ("01-kick", "03-bass", "07-vocal", "08-talkback"):
        audio, file_rate = sf.read(MULTITRACK / f"{name}.flac", dtype="float64", always_2d=True)
        audio = audio[: int(seconds * file_rate), 0]
        if file_rate != rate:
            from scipy.signal import resample_poly

            audio = resample_poly(audio, rate // 100, file_rate // 100)
        rows.append(audio[: int(seconds * rate)])
    return np.stack(rows)


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("kind", ["random", "real"])
def test_streaming_matches_the_torch_twin_within_1e_4_db(rate, kind):
    rng = np.random.default_rng(7)
    if kind == "random":
        signal = rng.standard_normal((3, 2 * rate)) * np.array([[1.0], [1e-3], [0.3]])
        signal[2, : rate // 2] = 0.0  # digital silence reads as the floor in both
    else:
        signal = real_like(rate, 3.0)
    frame = rate // 20
    streamed, _, _ = stream(signal, rate, frame)
    batch = LogMel(rate)(torch.from_numpy(signal)).numpy()
    assert streamed.shape == batch.shape == (signal.shape[0], signal.shape[1] // (rate // 100), 64)
    assert np.max(np.abs(streamed - batch)) < 1e-4


def test_the_runtime_float32_stream_stays_within_0_01_db_of_float64():
    """The runtime computes in float32, as training did; above the floor it reads as float64 does."""
    rate = 48000
    signal = real_like(rate, 3.0).astype(np.float32)
    exact, _, _ = stream(signal, rate, rate // 20)
    single, features, state = stream(signal, rate, rate // 20, dtype=np.float32)
    assert single.dtype == np.float32 and features.patch(state).dtype == np.float32
    heard = exact > features.spec.floor_db + 20.0  # 20 dB above the floor: float32's resolution is not a level
    assert heard.mean() > 0.5
    assert np.max(np.abs(single[heard] - exact[heard])) < 0.01


def test_block_size_does_not_change_the_frames():
    rate = 48000
    signal = np.random.default_rng(3).standard_normal((2, rate))
    a, _, _ = stream(signal, rate, 2400)
    b, _, _ = stream(signal, rate, 137)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_only_new_frames_are_computed_and_the_newest_ends_on_the_newest_sample():
    rate = 48000
    features = StreamingLogMel(rate)
    state = features.initial_state(1)
    assert features.push(state, np.zeros((1, 2400))).shape == (1, 5, 64)
    burst = np.zeros((1, 2400))
    burst[0, -240:] = np.random.default_rng(2).standard_normal(240)  # the last 5 ms of the frame
    new = features.push(state, burst)
    assert new.shape[1] == 5
    assert new[0, -1].max() > features.spec.floor_db + 20  # the newest frame already hears it
    assert new[0, :-1].max() == features.spec.floor_db


def test_a_full_scale_sine_reads_about_minus_6_db_in_its_band_at_every_rate():
    peaks = []
    for rate in (44100, 48000):
        t = np.arange(rate) / rate
        out, _, _ = stream(np.sin(2 * np.pi * 1000 * t)[None], rate, rate // 20)
        peaks.append(out[0, 50].max())
    assert peaks[0] == pytest.approx(-6.0, abs=0.5)
    assert peaks[1] == pytest.approx(peaks[0], abs=0.5)


def test_the_patch_is_the_last_96_frames_oldest_first():
    rate = 48000
    signal = np.random.default_rng(5).standard_normal((2, 3 * rate)) * np.linspace(0.0, 1.0, 3 * rate)
    frames, features, state = stream(signal, rate, 2400)
    np.testing.assert_allclose(features.patch(state), frames[:, -96:], atol=1e-12)


def test_the_streaming_activity_rule_is_the_patch_rule():
    rate = 48000
    signal = np.zeros((3, 2 * rate))
    signal[0] = 0.1 * np.random.default_rng(1).standard_normal(2 * rate)
    signal[1, -2400:] = 1e-5  # quieter than the gate
    _, features, state = stream(signal, rate, 2400)
    active = features.active(state, ACTIVE_GATE_DB)
    np.testing.assert_array_equal(active, patch_active(features.patch(state)))
    assert active.tolist() == [True, False, False]


@pytest.mark.parametrize("rate", [8000, 22050, 44101])
def test_rates_that_cannot_carry_the_framing_are_refused(rate):
    with pytest.raises(UnsupportedRateError, match="not supported"):
        StreamingLogMel(rate)


def test_spec_places_64_triangles_between_125_and_7500_hz():
    spec = LogMelSpec()
    matrix = spec.mel_matrix(48000)
    freqs = np.arange(matrix.shape[1]) * 48000 / spec.fft_size(48000)
    assert matrix.shape[0] == 64
    touched = freqs[matrix.any(axis=0)]
    assert touched.min() > 125.0 and touched.max() < 7500.0
