"""The uniform weight average of several checkpoints of one fine-tune.

Checkpoints taken along one run sit in one basin of the loss; their mean
often generalises better than any of them alone (stochastic weight
averaging, model soups). The mean is only meaningful when the
checkpoints share an architecture and the encoder's BatchNorm statistics:
a fine-tune started from exported weights keeps BatchNorm frozen, so its
checkpoints agree there, while two runs trained from scratch do not and
are refused.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint
from .model import Alm


def _is_batchnorm_statistic(name: str) -> bool:
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def average_checkpoints(paths: Sequence[Path]) -> tuple[Alm, dict]:
    """The model whose every weight is the mean of the checkpoints', and a summary naming them."""
    if len(paths) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    loaded = [load_checkpoint(path) for path in paths]
    first_model, first_meta = loaded[0]
    states = [model.state_dict() for model, _ in loaded]
    for path, (_, meta), state in zip(paths[1:], loaded[1:], states[1:]):
        if meta["config"] != first_meta["config"]:
            raise CheckpointError(f"{path}: another architecture than {paths[0]}; only checkpoints of one model average")
        for name, value in state.items():
            if _is_batchnorm_statistic(name) and not torch.equal(value, states[0][name]):
                raise CheckpointError(f"{path}: its BatchNorm statistics differ from {paths[0]}'s; "
                                      "average checkpoints of one fine-tune from exported weights (BatchNorm frozen)")
    mean = {name: (torch.stack([state[name] for state in states]).mean(dim=0)
                   if value.is_floating_point() and not _is_batchnorm_statistic(name) else value)
            for name, value in states[0].items()}
    first_model.load_state_dict(mean)
    training = {key: value for key, value in (first_meta.get("training") or {}).items() if key not in ("role_head", "steps")}
    training["average_of"] = [{"checkpoint": path.name, "steps": int(meta.get("step", 0))}
                              for path, (_, meta) in zip(paths, loaded)]
    return first_model.eval(), {"config": first_meta["config"], "step": 0, "training": training, "metrics": {}}
