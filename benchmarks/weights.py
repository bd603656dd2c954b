"""Which ALM weights a benchmark runs: the shipped ones when present, else full-size random-init exports (cached).

Timing does not depend on the weights, only on the architecture, so a
randomly initialised model of the shipped size gives the shipped model's
cost. The export runs in its own process so torch never loads into a
process whose memory or CPU is measured.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ailive.models.registry import shipped_models

from .common import RESULTS

CACHE = RESULTS / "weights"
VARIANTS = {"alm-mr": "mr", "alm-sr": "sr"}


@dataclass(frozen=True)
class Weights:
    name: str  # alm-mr, alm-sr
    model: str  # what load_model takes: a shipped name or a folder
    source: str  # shipped | random-init | folder
    parameters: int
    sha256: dict[str, str]

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "model": self.model, "source": self.source, "parameters": self.parameters,
                "sha256": self.sha256}


def _read(name: str, model: str, folder: Path, source: str) -> Weights:
    card = json.loads((folder / "card.json").read_text())
    return Weights(name, model, source, int(card.get("parameters", 0)), dict(card.get("sha256", {})))


def resolve(name: str, given: Path | None = None, cache: Path = CACHE) -> Weights:
    """``given`` folder if any, else the shipped model of that name, else a cached random-init export."""
    if given is not None:
        return _read(name, str(given), Path(given), "folder")
    if name in shipped_models():
        from ailive.models.registry import SHIPPED

        return _read(name, name, SHIPPED / name, "shipped")
    folder = cache / name
    if not (folder / "card.json").is_file():
        subprocess.run([sys.executable, "-m", "ailive.models.train.export", VARIANTS[name], str(folder)], check=True)
    return _read(name, str(folder), folder, "random-init")
