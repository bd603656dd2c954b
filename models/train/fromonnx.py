"""Rebuild a torch ALM from an exported model folder (slow.onnx, fast.onnx, card.json), to fine-tune shipped weights.

The exporter keeps most torch parameter names on the ONNX initializers, but
not all of them survive as they were:

- a linear layer's weight becomes an unnamed, transposed MatMul operand; its
  name is read off the named bias added right after;
- a PReLU slope is unnamed; it belongs to the module after the linear layer
  that feeds it (``head.0`` -> ``head.1``);
- the GRU's biases are folded into one (1, 6 * hidden) operand in ONNX's gate
  order (z, r, h) instead of torch's (r, z, n);
- each BatchNorm is folded into the convolution before it.  Its statistics
  cannot be recovered, so it comes back as the identity (in eval mode), and the
  convolution carries the folded weights.  Training from such a model keeps
  BatchNorm in eval mode (``freeze_batchnorm``).

The exporter also shares initializers whose values are equal, which only an
untrained network has (LayerNorms still at one); such a folder is refused.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from .model import Alm, AlmConfig

GRAPH_PREFIXES = {"slow": ("slow_half.", "slow."), "fast": ("fast_half.", "fast.")}


class OnnxInitError(ModelError):
    """A model folder whose graphs cannot be read back into an ALM."""


def from_onnx_folder(folder: Path) -> Alm:
    """The ALM (eval mode) whose streaming graphs are ``folder``'s, with BatchNorm as the identity."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise OnnxInitError(f"reading ONNX weights needs the onnx package ({exc.name} is missing)") from None
    try:
        card = json.loads((folder / "card.json").read_text())
        config = AlmConfig.from_dict(card["architecture"])
        graphs = {name: onnx.load(str(folder / card["graphs"][name])) for name in GRAPH_PREFIXES}
    except FileNotFoundError as exc:
        raise OnnxInitError(f"{folder}: not a model folder ({Path(exc.filename).name} is missing)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OnnxInitError(f"{folder}: not an exported ALM ({type(exc).__name__}: {exc})") from None
    recovered: dict[str, np.ndarray] = {}
    for name, (onnx_prefix, torch_prefix) in GRAPH_PREFIXES.items():
        for key, value in graph_parameters(graphs[name], numpy_helper.to_array).items():
            if key.startswith(onnx_prefix):
                recovered[torch_prefix + key[len(onnx_prefix):]] = value
    model = Alm(config)
    model.load_state_dict(_state_dict(model, recovered, folder))
    return model.eval()


def graph_parameters(graph: "object", to_array: "object") -> dict[str, np.ndarray]:
    """Torch-named parameters of one exported graph (see the module docstring for the renamings)."""
    nodes = graph.graph.node
    initializers = {i.name: to_array(i) for i in graph.graph.initializer}
    consumers: dict[str, list] = {}
    producers = {}
    for node in nodes:
        for output in node.output:
            producers[output] = node
        for value in node.input:
            consumers.setdefault(value, []).append(node)
    named = {k: v for k, v in initializers.items() if not k.startswith("val_")}
    parameters = dict(named)
    for node in nodes:
        if node.op_type == "MatMul" and node.input[1] in initializers and node.input[1] not in named:
            bias = _added_bias(node.output[0], consumers, named)
            if bias is not None:
                parameters[bias[: -len("bias")] + "weight"] = initializers[node.input[1]].T
        elif node.op_type == "PRelu" and node.input[1] in initializers:
            source = producers.get(node.input[0])
            bias = next((i for i in source.input if i in named), None) if source is not None else None
            match = re.fullmatch(r"(.*)\.(\d+)\.bias", bias or "")
            if match:
                parameters[f"{match[1]}.{int(match[2]) + 1}.weight"] = initializers[node.input[1]].reshape(-1)
        elif node.op_type == "GRU":
            parameters.update(_gru_biases(node, initializers, producers))
    return parameters


def _added_bias(value: str, consumers: dict[str, list], named: dict) -> str | None:
    for node in consumers.get(value, []):
        if node.op_type == "Add":
            bias = next((i for i in node.input if i in named and i.endswith(".bias")), None)
            if bias is not None:
                return bias
    return None


def _gru_biases(node: "object", initializers: dict[str, np.ndarray], producers: dict) -> dict[str, np.ndarray]:
    """ONNX's folded (1, 6h) bias in gate order z, r, h back to torch's bias_ih and bias_hh in order r, z, n."""
    if len(node.input) < 4 or node.input[3] not in initializers:
        return {}
    weight = next((i for i in _upstream_inputs(node.input[1], producers) if i.endswith("weight_ih_l0")), None)
    if weight is None:
        return {}
    folded = initializers[node.input[3]].reshape(2, 3, -1)  # (W or R, gate z r h, hidden)
    torch_order = folded[:, [1, 0, 2]].reshape(2, -1)
    prefix = weight[: -len("weight_ih_l0")]
    return {prefix + "bias_ih_l0": torch_order[0], prefix + "bias_hh_l0": torch_order[1]}


def _upstream_inputs(value: str, producers: dict) -> list[str]:
    """The graph inputs and initializers that ``value`` is computed from."""
    seen, stack, found = set(), [value], []
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        node = producers.get(current)
        if node is None:
            found.append(current)
        else:
            stack.extend(node.input)
    return found


def _state_dict(model: Alm, recovered: dict[str, np.ndarray], folder: Path) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, current in state.items():
        if key in recovered:
            value = torch.from_numpy(np.array(recovered[key], copy=True)).to(current.dtype)
            if value.shape != current.shape:
                raise OnnxInitError(f"{folder}: {key} has shape {tuple(value.shape)} in the graph, "
                                    f"{tuple(current.shape)} in the model")
            out[key] = value
        elif _is_batchnorm(model, key):
            out[key] = _identity_batchnorm(model, key, current)
        else:
            raise OnnxInitError(f"{folder}: the graphs carry no value for {key}")
    return out


def _is_batchnorm(model: Alm, key: str) -> bool:
    module_name = key.rsplit(".", 1)[0]
    return isinstance(dict(model.named_modules()).get(module_name), nn.BatchNorm2d)


def _identity_batchnorm(model: Alm, key: str, current: torch.Tensor) -> torch.Tensor:
    module_name, field = key.rsplit(".", 1)
    eps = dict(model.named_modules())[module_name].eps
    values = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0 - eps, "num_batches_tracked": 0}
    return torch.full_like(current, values[field])


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep every BatchNorm in eval mode (its folded statistics stay as recovered) while the rest trains."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
