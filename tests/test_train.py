"""Training: the loop runs end to end on a smoke config, resumes, logs, exports; the losses and the mix are right."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tinysoundfont")

from ailive.models.mrstft import mrstft_distance  # noqa: E402
from ailive.models.train.loss import mrstft_loss, relative_gain_loss  # noqa: E402
from ailive.models.train.train import TrainConfig, TrainConfigError, produced_mix  # noqa: E402
from tests.test_cli import ailive, assert_one_line_error  # noqa: E402

SMOKE = Path(__file__).resolve().parent.parent / "models" / "train" / "configs" / "smoke.toml"


def test_mrstft_torch_twin_matches_numpy():
    rng = np.random.default_rng(0)
    target = rng.standard_normal(48000)
    produced = 0.5 * target + 0.1 * rng.standard_normal(48000)
    ours = mrstft_loss(torch.from_numpy(produced)[None], torch.from_numpy(target)[None], 48000).item()
    assert ours == pytest.approx(mrstft_distance(produced, target, 48000), rel=1e-9)
    assert mrstft_distance(target, target, 48000) == 0.0
    assert mrstft_distance(0.5 * target, target, 48000) > 0.3


def test_relative_gain_loss_ignores_the_common_offset_and_inactive_channels():
    target = torch.tensor([[0.0, -6.0, 3.0, float("nan")]])
    weight = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    shifted = (target.nan_to_num() + 10.0)[..., None].repeat(1, 1, 5)
    shifted[0, 3] = 40.0  # an inactive channel: whatever it says does not count
    assert relative_gain_loss(shifted, target, weight).item() == pytest.approx(0.0, abs=1e-6)
    wrong = shifted.clone()
    wrong[0, 1] += 3.0
    assert relative_gain_loss(wrong, target, weight).item() == pytest.approx(4.0 / 3.0, abs=1e-5)  # (|-1| + |2| + |-1|) / 3


def test_produced_mix_applies_each_gain_from_the_next_frame():
    frame = 10
    inputs = torch.ones(1, 1, 4 * frame)
    gains = torch.tensor([[[-6.0, 0.0, 6.0, 12.0]]])
    mix = produced_mix(inputs, gains, 1, frame)[0]
    per_frame = mix.unflatten(0, (4, frame))[:, 0]
    expected = torch.pow(10.0, torch.tensor([0.0, -6.0, 0.0, 6.0]) / 20.0)  # frame 0 before any prediction: 0 dB
    torch.testing.assert_close(per_frame, expected)
    held = produced_mix(torch.ones(1, 1, 8 * frame), torch.tensor([[[-6.0, 6.0]]]), 4, frame)[0]
    assert held[frame].item() == pytest.approx(10 ** (-6 / 20)) and held[5 * frame].item() == pytest.approx(10 ** (6 / 20))


def test_config_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('variant = "mr"\nstepz = 3\n')
    with pytest.raises(TrainConfigError, match="unknown keys stepz"):
        TrainConfig.read(bad)
    assert_one_line_error(ailive("train", "--config", str(bad), "--out", str(tmp_path / "run")), "unknown keys stepz", code=2)
    bad.write_text("variant = [")
    assert_one_line_error(ailive("train", "--config", str(bad), "--out", str(tmp_path / "run")), r"bad\.toml", code=2)


def test_export_of_something_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(ailive("export", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "m")), "not an ALM checkpoint", code=2)
    assert_one_line_error(ailive("export", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m")), "no such checkpoint", code=2)
    assert not (tmp_path / "m").exists()


def test_smoke_training_runs_resumes_logs_and_exports(tmp_path, monkeypatch):
    monkeypatch.setenv("AILIVE_CACHE_DIR", str(tmp_path / "cache"))
    out, model = tmp_path / "run", tmp_path / "model"
    env_cache = ["--config", str(SMOKE), "--out", str(out)]
    first = ailive("train", *env_cache, "--steps", "2", timeout=900)
    assert first.returncode == 0, first.stderr
    with (out / "loss.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["mix_mrstft"])) and float(r["mix_mrstft"]) > 0 for r in rows)
    second = ailive("train", *env_cache, "--steps", "4", "--export", str(model), timeout=900)
    assert second.returncode == 0, second.stderr
    assert "resuming at step 2" in second.stdout
    with (out / "loss.csv").open() as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4]
    assert (out / "loss.png").stat().st_size > 1000
    card = json.loads((model / "card.json").read_text())
    assert card["name"] == "alm-mr" and card["training"]["steps"] == 4
    from ailive.models.registry import load_model

    runtime = load_model(str(model))
    state = runtime.initial_state(3, 44100)
    gains, _ = runtime.step(state, 0.1 * np.random.default_rng(0).standard_normal((3, 2205)).astype(np.float32))
    assert gains.shape == (3,)
