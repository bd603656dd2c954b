"""Export a trained ALM as the two ONNX graphs the runtime streams, plus its model card.

- ``slow.onnx``: patches (channels, 96, 64) + active (channels,) -> slow (channels, width);
- ``fast.onnx``: slow, rms_db (channels,), active, state (channels, hidden) -> gain_db (channels,), state_out.

The channel axis is dynamic in both (torch.onnx dynamo exporter).
"""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ailive.models.alm import GAIN_MAX_DB, GAIN_MIN_DB
from ailive.models.base import FRAME_S
from ailive.models.runtime import CARD_FILE, CARD_FORMAT, CARD_VERSION, FAST_INPUTS, SLOW_INPUTS, file_sha256

from .average import average_checkpoints
from .checkpoint import load_checkpoint
from .model import Alm, AlmConfig

OPSET = 18
NAMES = {"mr": "alm-mr", "sr": "alm-sr", "dmc": "dmc-b-0l"}
DESCRIPTIONS = {
    "mr": "AiLive Mixer, multi-rate: 975 ms analysis every 300 ms, gains every 50 ms",
    "sr": "AiLive Mixer, single-rate: 975 ms analysis and gains every second",
    "dmc": "DMC-B-0L baseline: mean-context mixing console, trained with bleed and zero latency",
}


class SlowGraph(nn.Module):
    def __init__(self, model: Alm) -> None:
        super().__init__()
        self.slow_half = model.slow

    def forward(self, patches: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return self.slow_half(patches.unsqueeze(0), active.unsqueeze(0)).squeeze(0)


class FastGraph(nn.Module):
    def __init__(self, model: Alm) -> None:
        super().__init__()
        self.fast_half = model.fast

    def forward(self, slow: torch.Tensor, rms_db: torch.Tensor, active: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gains, new_state = self.fast_half(slow[None, None], rms_db[None, None], active[None, None], state[None])
        return gains[0, 0], new_state[0]


def _export(module: nn.Module, args: tuple, names: tuple[str, ...], outputs: list[str], path: Path) -> None:
    channels = torch.export.Dim("channels", min=1, max=256)
    shapes = {name: {0: channels} for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, input_names=list(names), output_names=outputs,
                                    dynamic_shapes=shapes, opset_version=OPSET, verbose=False)
    program.save(str(path))


def export_model(model: Alm, out: Path, *, training: dict | None = None, metrics: dict | None = None) -> Path:
    """Write slow.onnx, fast.onnx and card.json for ``model`` into ``out``; returns ``out``."""
    for name in ("torch.onnx", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model = model.eval()
    config = model.config
    out.mkdir(parents=True, exist_ok=True)
    channels = 3
    patches = torch.randn(channels, config.spec.patch_frames, config.spec.bands) * 10 - 50
    active = torch.ones(channels, dtype=torch.bool)
    with torch.no_grad():
        slow = SlowGraph(model)(patches, active)
    _export(SlowGraph(model), (patches, active), SLOW_INPUTS, ["slow"], out / "slow.onnx")
    state = torch.zeros(channels, model.fast.state_size)
    rms = torch.full((channels,), -20.0)
    _export(FastGraph(model), (slow, rms, active, state), FAST_INPUTS, ["gain_db", "state_out"], out / "fast.onnx")
    timing = config.timing
    card = {
        "format": CARD_FORMAT, "version": CARD_VERSION,
        "name": NAMES[config.variant], "variant": config.variant, "description": DESCRIPTIONS[config.variant],
        "frame_s": FRAME_S, "slow_every": timing.slow_every, "fast_every": timing.fast_every,
        "features": asdict(config.spec), "sample_rates": "any multiple of 100 Hz from 15000 Hz (44100, 48000)",
        "channels": {"min": 1, "max": config.max_channels}, "gain_range_db": [GAIN_MIN_DB, GAIN_MAX_DB],
        "slow_width": model.slow.width, "state_size": model.fast.state_size, "opset": OPSET,
        "graphs": {"slow": "slow.onnx", "fast": "fast.onnx"},
        "sha256": {"slow": file_sha256(out / "slow.onnx"), "fast": file_sha256(out / "fast.onnx")},
        "architecture": config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": training or {},
        "metrics": metrics or {},
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return out


def export_checkpoint(checkpoint: Path | list[Path], out: Path) -> Path:
    """Export one checkpoint, or the weight average of several (``models/train/average.py``)."""
    if isinstance(checkpoint, list):
        model, meta = average_checkpoints(checkpoint) if len(checkpoint) > 1 else load_checkpoint(checkpoint[0])
    else:
        model, meta = load_checkpoint(checkpoint)
    training = {k: v for k, v in (meta.get("training") or {}).items() if k != "role_head"}  # an auxiliary head, not shipped
    return export_model(model, out, training=training, metrics=meta.get("metrics"))


def export_random_init(variant: str, out: Path, seed: int = 0) -> Path:
    """A full-size ALM with PyTorch's default initialisation: what a trained one costs to run, for benchmarks."""
    torch.manual_seed(seed)
    return export_model(Alm(AlmConfig(variant=variant)).eval(), out)


if __name__ == "__main__":  # python -m ailive.models.train.export VARIANT FOLDER: a random-init export
    import sys

    export_random_init(sys.argv[1], Path(sys.argv[2]))
