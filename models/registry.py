"""Find a gain model by name: the classic ones now, trained ones as they ship."""
from __future__ import annotations

from .base import GainModel
from .classic import CLASSIC_MODELS


class UnknownModelError(LookupError):
    """No model of that name."""


def model_names() -> list[str]:
    return sorted(CLASSIC_MODELS)


def load_model(name: str) -> GainModel:
    try:
        return CLASSIC_MODELS[name]()
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(model_names())}") from None
