"""Find a gain model by name or folder: the classic automixers, the shipped ALM weights, or an exported model folder."""
from __future__ import annotations

from pathlib import Path

from .base import GainModel
from .classic import CLASSIC_MODELS
from .errors import ModelError

#: Exported models that ship inside the package, by name.
SHIPPED = Path(__file__).resolve().parent / "weights"


class UnknownModelError(ModelError):
    """No model of that name."""


def shipped_models() -> list[str]:
    if not SHIPPED.is_dir():
        return []
    return sorted(p.name for p in SHIPPED.iterdir() if (p / "card.json").is_file())


def default_model() -> str:
    """What the bridge runs when no model is named: the shipped ALM-MR, or the loudness automixer without it."""
    return "alm-mr" if "alm-mr" in shipped_models() else "loudness"


def model_names() -> list[str]:
    return sorted(CLASSIC_MODELS) + shipped_models()


def load_model(name: str) -> GainModel:
    """A classic model by name, a shipped one (``alm-mr``), or an exported model folder given as a path.

    Raises UnknownModelError for a name that is none of these, and
    ``runtime.ModelLoadError`` for a folder that cannot be used.
    """
    if name in CLASSIC_MODELS:
        return CLASSIC_MODELS[name]()
    folder = SHIPPED / name if name in shipped_models() else Path(name).expanduser()
    if folder.is_dir() or "/" in name or name.startswith("."):
        from .runtime import AlmRuntime

        return AlmRuntime(folder)
    raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(model_names())}, or a model folder path")
