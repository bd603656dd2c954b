"""Checkpoints: weights, the config that rebuilds the network, optimizer state for resume, and a summary."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelError
from .model import Alm, AlmConfig


class CheckpointError(ModelError):
    """A checkpoint that cannot be read as an ALM."""


def save_checkpoint(path: Path, model: Alm, *, optimizer: torch.optim.Optimizer | None = None, step: int = 0,
                    training: dict | None = None, metrics: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save({
        "config": model.config.to_dict(), "weights": model.state_dict(), "step": step,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "training": training or {}, "metrics": metrics or {},
    }, temporary)
    temporary.replace(path)


def load_checkpoint(path: Path) -> tuple[Alm, dict]:
    """The model (eval mode) and the rest of the checkpoint."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        model = Alm(AlmConfig.from_dict(data["config"]))
        model.load_state_dict(data["weights"])
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not an ALM checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return model.eval(), data
