"""Exporting the weight average of checkpoints of one fine-tune, and refusing checkpoints that do not average."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

from ailive.models.train.average import average_checkpoints  # noqa: E402
from ailive.models.train.checkpoint import CheckpointError, save_checkpoint  # noqa: E402
from tests.alm_models import tiny_model  # noqa: E402
from tests.test_cli import ailive, assert_one_line_error  # noqa: E402


def _fine_tuned(start, seed: int):
    """``start`` with every trained weight moved, its BatchNorm statistics untouched (frozen, as in a fine-tune)."""
    model = tiny_model("mr")
    model.load_state_dict(start.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


@pytest.fixture
def two_steps_of_one_run(tmp_path):
    start = tiny_model("mr")
    paths = []
    for step, seed in ((1150, 1), (1700, 2)):
        path = tmp_path / f"step-{step}.pt"
        save_checkpoint(path, _fine_tuned(start, seed), step=step, training={"steps": step, "role_head": {"w": [1.0]}})
        paths.append(path)
    return paths


def test_the_average_is_the_mean_of_every_weight_and_keeps_the_shared_batchnorm(two_steps_of_one_run):
    first, second = (torch.load(path, weights_only=True)["weights"] for path in two_steps_of_one_run)
    model, meta = average_checkpoints(two_steps_of_one_run)
    averaged = model.state_dict()
    moved = 0
    for name, value in averaged.items():
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(value, first[name]), name
        else:
            torch.testing.assert_close(value, (first[name] + second[name]) / 2)
            moved += int(not torch.equal(value, first[name]))
    assert moved > 10
    assert meta["training"]["average_of"] == [{"checkpoint": "step-1150.pt", "steps": 1150},
                                              {"checkpoint": "step-1700.pt", "steps": 1700}]
    assert "role_head" not in meta["training"]


def test_export_of_several_checkpoints_writes_their_average_with_a_card_that_names_them(two_steps_of_one_run, tmp_path):
    from ailive.models.registry import load_model

    out = tmp_path / "averaged"
    result = ailive("export", *map(str, two_steps_of_one_run), "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "the average of 2 checkpoints" in result.stdout
    card = json.loads((out / "card.json").read_text())
    assert [entry["steps"] for entry in card["training"]["average_of"]] == [1150, 1700]
    runtime = load_model(str(out))
    state = runtime.initial_state(3, 44100)
    gains, _ = runtime.step(state, 0.1 * np.random.default_rng(0).standard_normal((3, 2205)).astype(np.float32))
    assert gains.shape == (3,) and np.all(np.isfinite(gains))


def test_checkpoints_of_different_runs_or_models_are_refused_in_one_line(two_steps_of_one_run, tmp_path):
    other_start = tiny_model("mr")
    for module in other_start.modules():  # a run trained from scratch learns its own BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.add_(0.25)
    from_scratch = tmp_path / "scratch.pt"
    save_checkpoint(from_scratch, other_start, step=900)
    other_model = tmp_path / "sr.pt"
    save_checkpoint(other_model, tiny_model("sr"), step=900)
    with pytest.raises(CheckpointError, match="BatchNorm statistics differ"):
        average_checkpoints([two_steps_of_one_run[0], from_scratch])
    with pytest.raises(CheckpointError, match="another architecture"):
        average_checkpoints([two_steps_of_one_run[0], other_model])
    out = tmp_path / "never"
    assert_one_line_error(ailive("export", str(two_steps_of_one_run[0]), str(from_scratch), "--out", str(out)),
                          "BatchNorm statistics differ", code=2)
    assert_one_line_error(ailive("export", str(two_steps_of_one_run[0]), str(tmp_path / "none.pt"), "--out", str(out)),
                          "no such checkpoint", code=2)
    assert not out.exists()
