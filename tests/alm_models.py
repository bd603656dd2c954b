"""Tiny randomly initialised ALM models, exported once per test session (real graphs, real ONNX Runtime)."""
from __future__ import annotations

from pathlib import Path

import pytest

TINY = dict(d_model=32, heads=2, ff=64, gru_hidden=32, encoder_channels=(4, 8, 16, 32))


def tiny_model(variant: str):
    import torch

    from ailive.models.train.model import Alm, AlmConfig

    torch.manual_seed({"mr": 1, "sr": 2, "dmc": 3}[variant])
    model = Alm(AlmConfig(variant=variant, **TINY)).eval()
    for module in model.modules():  # batch-norm statistics that are not the identity, so export must carry them
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    last = model.fast.head[-1]  # gains spread over several dB (a fresh init gives tenths), so 0.01 dB is a real bound
    last.weight.data.mul_(8.0)
    return model


@pytest.fixture(scope="session")
def exported_models(tmp_path_factory) -> dict:
    """{variant: (torch model, exported folder)} for mr, sr and dmc."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from ailive.models.train.export import export_model

    root: Path = tmp_path_factory.mktemp("alm")
    out = {}
    for variant in ("mr", "sr", "dmc"):
        model = tiny_model(variant)
        out[variant] = (model, export_model(model, root / variant))
    return out
