"""The exported two-graph model, streamed by the runtime, equals the PyTorch model run over the whole sequence."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ailive.models.runtime import AlmRuntime  # noqa: E402
from ailive.models.train.features import segment_features  # noqa: E402


def band_like(channels: int, rate: int, seconds: float, seed: int) -> np.ndarray:
    """Channels at very different levels, one entering late, one with a gap: what the mask and the GRU must handle."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    levels = np.logspace(-3, -0.3, channels)
    signal = rng.standard_normal((channels, n)) * levels[:, None]
    signal += 0.3 * np.sin(2 * np.pi * rng.uniform(60, 2000, channels)[:, None] * t) * levels[:, None]
    signal[0, : int(1.3 * rate)] = 0.0  # enters after 1.3 s
    if channels > 2:
        signal[1, int(2.0 * rate): int(2.6 * rate)] = 0.0  # a short gap
    return signal.astype(np.float32)


def torch_gains(model, signal: np.ndarray, rate: int) -> np.ndarray:
    with torch.no_grad():
        patches, conditioning = segment_features(torch.from_numpy(signal)[None], rate, model.config.timing)
        return model(patches, conditioning, torch.ones(1, signal.shape[0], dtype=torch.bool))[0].numpy()


def streamed_gains(folder, signal: np.ndarray, rate: int) -> np.ndarray:
    runtime = AlmRuntime(folder, slow_on_worker=False)  # each slow step on its own frame, as the model was trained
    state = runtime.initial_state(signal.shape[0], rate)
    frame = rate // 20
    out = []
    for k in range(signal.shape[1] // frame):
        gains, state = runtime.step(state, signal[:, k * frame:(k + 1) * frame])
        if k % runtime.timing.fast_every == 0:
            out.append(gains)
    return np.array(out).T


@pytest.mark.parametrize("channels", [3, 8, 32])
def test_streamed_onnx_equals_pytorch_over_the_sequence_mr(exported_models, channels):
    model, folder = exported_models["mr"]
    signal = band_like(channels, 48000, 4.0, seed=channels)
    reference = torch_gains(model, signal, 48000)
    streamed = streamed_gains(folder, signal, 48000)
    assert streamed.shape == reference.shape
    heard = np.isfinite(streamed)
    assert heard.sum() > 0.8 * heard.size  # the silent start of channel 0 is "no opinion", the rest is compared
    assert np.ptp(reference[heard]) > 0.5  # the gains really vary, so the bound below means something
    assert np.max(np.abs(streamed[heard] - reference[heard])) < 0.01


@pytest.mark.parametrize("variant", ["sr", "dmc"])
def test_streamed_onnx_equals_pytorch_for_the_other_variants(exported_models, variant):
    model, folder = exported_models[variant]
    signal = band_like(8, 44100, 4.0, seed=11)
    reference = torch_gains(model, signal, 44100)
    streamed = streamed_gains(folder, signal, 44100)
    heard = np.isfinite(streamed)
    assert heard.any()
    assert np.max(np.abs(streamed[heard] - reference[heard])) < 0.01


def test_zero_latency_the_output_of_a_step_depends_only_on_audio_up_to_that_step(exported_models):
    model, _ = exported_models["mr"]
    signal = band_like(4, 48000, 3.0, seed=5)
    later = signal.copy()
    later[:, 2 * 48000:] *= 10.0  # change only what comes after 2.0 s (frame 40 onwards)
    a, b = torch_gains(model, signal, 48000), torch_gains(model, later, 48000)
    np.testing.assert_allclose(a[:, :40], b[:, :40], atol=1e-5)
    assert np.max(np.abs(a[:, 40:] - b[:, 40:])) > 1e-3


def test_the_card_describes_the_model(exported_models):
    import json

    _, folder = exported_models["mr"]
    card = json.loads((folder / "card.json").read_text())
    assert card["name"] == "alm-mr"
    assert (card["slow_every"], card["fast_every"]) == (6, 1)
    assert card["features"]["bands"] == 64 and card["features"]["patch_frames"] == 96
    assert card["channels"] == {"min": 1, "max": 64}
    assert card["state_size"] == 32
