"""Batches for training: examples drawn on the fly from the rendered songs (see ``dataset.py``), as numpy.

Songs are rendered once into the cache (deterministic from the seed); every
example draws a new song, segment, bleed, stage and input gains, so no two
batches repeat, and one batch mixes songs of different channel counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ailive.models.data import render_songs
from ailive.models.data.roles import ROLES
from ailive.models.data.songs import default_cache_dir

from .dataset import ExampleDataset

#: Channels every batch is padded to (the rendered songs have 3..8 parts).
MAX_CHANNELS = 8


@dataclass(frozen=True)
class Batch:
    sample_rate: int
    inputs: np.ndarray  # (batch, channels, N) float32, zero rows for padding channels
    present: np.ndarray  # (batch, channels) bool: a real channel, not padding
    active: np.ndarray  # (batch, channels) bool: its part plays in the segment
    target_gain_db: np.ndarray  # (batch, channels) NaN where there is no target
    target_mix: np.ndarray  # (batch, N) float32
    role_index: np.ndarray  # (batch, channels) int64 index into ROLES (0 for padding)


class ExampleStream:
    """An endless iterator of :class:`Batch` from ``songs`` rendered training songs."""

    def __init__(self, *, cache_dir: Path | None, songs: int, song_seconds: float, seconds: float, batch: int,
                 seed: int, workers: int = 1, sample_rate: int = 44100) -> None:
        cache = cache_dir or default_cache_dir()
        paths = render_songs(cache, songs, seed=seed // 1000, split="train", seconds=song_seconds,
                             sample_rate=sample_rate, workers=2)
        self.sample_rate = sample_rate
        dataset = ExampleDataset(paths, seconds, seed=seed, max_channels=MAX_CHANNELS, examples_per_song=1)
        self._loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers,
                                                   persistent_workers=workers > 0)
        self._iterator = iter(self._loader)

    @staticmethod
    def role_names() -> tuple[str, ...]:
        return ROLES

    def __iter__(self) -> "ExampleStream":
        return self

    def __next__(self) -> Batch:
        items = next(self._iterator)
        active = items["active"].numpy()
        return Batch(
            sample_rate=self.sample_rate,
            inputs=items["inputs"].numpy(),
            present=items["channels"].numpy(),
            active=active,
            target_gain_db=np.where(active, items["target_gain_db"].numpy().astype(np.float64), np.nan),
            target_mix=items["target_mix"].numpy(),
            role_index=items["role_index"].numpy(),
        )

    def close(self) -> None:
        del self._iterator
