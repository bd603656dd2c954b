"""Weights read back from exported graphs: the rebuilt torch ALM computes what the ONNX graphs compute, so training can resume from shipped models."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from ailive.models.train.export import FastGraph, SlowGraph, export_model  # noqa: E402
from ailive.models.train.fromonnx import OnnxInitError, freeze_batchnorm, from_onnx_folder  # noqa: E402
from ailive.models.train.model import Alm, AlmConfig  # noqa: E402
from ailive.models.train.train import TrainConfig, Trainer, TrainConfigError  # noqa: E402
from ailive.models.data import build_corpus  # noqa: E402
from tests.test_cli import ailive, assert_one_line_error  # noqa: E402
from tests.test_data_realcorpus import MANIFEST, SONG, made_repo  # noqa: E402

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "weights" / "alm-mr"
SMOKE = Path(__file__).resolve().parent.parent / "models" / "train" / "configs" / "smoke.toml"


def graph_outputs(folder: Path, patches: np.ndarray, active: np.ndarray, rms: np.ndarray,
                  state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    slow = ort.InferenceSession(str(folder / "slow.onnx")).run(None, {"patches": patches, "active": active})[0]
    gains, state_out = ort.InferenceSession(str(folder / "fast.onnx")).run(
        None, {"slow": slow, "rms_db": rms, "active": active, "state": state})
    return slow, gains, state_out


def torch_outputs(model: Alm, patches: np.ndarray, active: np.ndarray, rms: np.ndarray,
                  state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        slow = SlowGraph(model)(torch.from_numpy(patches), torch.from_numpy(active))
        gains, state_out = FastGraph(model)(slow, torch.from_numpy(rms), torch.from_numpy(active), torch.from_numpy(state))
    return slow.numpy(), gains.numpy(), state_out.numpy()


def inputs(channels: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    patches = (rng.standard_normal((channels, 96, 64)) * 15 - 50).astype(np.float32)
    active = rng.random(channels) > 0.25
    active[0] = True
    rms = rng.uniform(-60, -5, channels).astype(np.float32)
    state = (rng.standard_normal((channels, 128)) * 0.3).astype(np.float32)
    return patches, active, rms, state


def assert_same(ours: tuple[np.ndarray, ...], theirs: tuple[np.ndarray, ...]) -> None:
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_the_shipped_model_is_rebuilt_exactly_from_its_graphs():
    model = from_onnx_folder(SHIPPED)
    for channels, seed in ((1, 0), (6, 1)):
        args = inputs(channels, seed)
        reference = graph_outputs(SHIPPED, *args)
        assert np.abs(reference[1]).max() > 0.1  # the shipped gains are not trivially zero
        assert_same(torch_outputs(model, *args), reference)


def test_trained_batchnorm_is_folded_back_and_stays_frozen_in_training(tmp_path):
    torch.manual_seed(4)
    original = Alm(AlmConfig(variant="mr"))
    with torch.no_grad():  # as after training: no two parameters equal (the exporter shares equal constants)
        for parameter in original.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    for module in original.modules():  # statistics and affine terms far from the identity, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    export_model(original.eval(), tmp_path / "model")
    rebuilt = from_onnx_folder(tmp_path / "model")
    args = inputs(4, 2)
    assert_same(torch_outputs(rebuilt, *args), torch_outputs(original, *args))
    rebuilt.train()
    freeze_batchnorm(rebuilt)
    before = {k: v.clone() for k, v in rebuilt.state_dict().items() if "running" in k}
    assert_same(torch_outputs(rebuilt, *args), torch_outputs(original, *args))  # batch statistics unused
    assert all(torch.equal(v, rebuilt.state_dict()[k]) for k, v in before.items())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """One made-up real song, built into a corpus as the real ones are."""
    root = tmp_path_factory.mktemp("stems")
    manifest = root.parent / "manifest.toml"
    commit = made_repo(root, {"alpha": "train"}, seconds=4.0)
    manifest.write_text(MANIFEST.format(commit=commit, songs=SONG.format(name="alpha", split="train")))
    assert build_corpus.main(["--manifest", str(manifest), "--checkout", f"made={root}", "--out", str(root.parent / "corpus")]) == 0
    return root.parent / "corpus"


def test_the_trainer_starts_from_the_folder_and_trains_with_batchnorm_frozen(corpus, tmp_path):
    config = TrainConfig(variant="mr", corpus=str(corpus), init_from=str(SHIPPED), steps=1, batch=1, seconds=3.0)
    trainer = Trainer(config, tmp_path / "run")
    args = inputs(3, 3)
    assert_same(torch_outputs(trainer.model.eval(), *args), graph_outputs(SHIPPED, *args))
    statistics = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running" in k}
    weights = trainer.model.fast.head[0].weight.detach().clone()
    trainer.run(progress=False)
    assert trainer.step == 1
    assert not torch.equal(weights, trainer.model.fast.head[0].weight)  # it trained
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in statistics.items())  # BatchNorm did not
    with pytest.raises(TrainConfigError, match="architecture"):
        Trainer(TrainConfig.read(SMOKE, init_from=str(SHIPPED)), tmp_path / "other")  # the smoke model is smaller


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    with pytest.raises(OnnxInitError, match="card.json is missing"):
        from_onnx_folder(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED, broken)
    card = json.loads((broken / "card.json").read_text())
    card["architecture"]["d_model"] = 64
    (broken / "card.json").write_text(json.dumps(card))
    with pytest.raises(OnnxInitError, match="shape"):
        from_onnx_folder(broken)
    assert_one_line_error(ailive("train", "--config", str(SMOKE), "--out", str(tmp_path / "run"), "--init-from", str(tmp_path)),
                          "card.json is missing", code=2)
