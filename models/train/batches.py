"""Batches for training: examples drawn on the fly from the rendered songs, padded to one channel count.

Songs are rendered once into the cache (deterministic from the seed); every
example draws a new segment, bleed, stage and input gains, so no two batches
repeat.  Data-loader workers each get their own random stream.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ailive.models.data import Song, load_song, render_songs
from ailive.models.data.examples import Example, ExampleError, make_example
from ailive.models.data.roles import ROLES
from ailive.models.data.songs import default_cache_dir

log = logging.getLogger(__name__)

#: Decoded songs a worker keeps (about 40 MB each for 8 parts x 30 s); older ones are read again when drawn.
SONGS_IN_MEMORY = 32


@dataclass(frozen=True)
class Batch:
    sample_rate: int
    inputs: np.ndarray  # (batch, channels, N) float32, zero rows for padding channels
    present: np.ndarray  # (batch, channels) bool: a real channel, not padding
    active: np.ndarray  # (batch, channels) bool: its part plays in the segment
    target_gain_db: np.ndarray  # (batch, channels) NaN where there is no target
    target_mix: np.ndarray  # (batch, N) float32
    role_index: np.ndarray  # (batch, channels) int64 index into ROLES (0 for padding)


def collate(examples: list[Example]) -> Batch:
    rates = {e.sample_rate for e in examples}
    if len(rates) != 1:
        raise ValueError(f"examples at different rates in one batch: {sorted(rates)}")
    size = len(examples)
    channels = max(e.inputs.shape[0] for e in examples)
    length = min(e.inputs.shape[1] for e in examples)
    batch = Batch(
        sample_rate=rates.pop(),
        inputs=np.zeros((size, channels, length), np.float32),
        present=np.zeros((size, channels), bool),
        active=np.zeros((size, channels), bool),
        target_gain_db=np.full((size, channels), np.nan),
        target_mix=np.zeros((size, length), np.float32),
        role_index=np.zeros((size, channels), np.int64),
    )
    for row, example in enumerate(examples):
        count = example.inputs.shape[0]
        batch.inputs[row, :count] = example.inputs[:, :length]
        batch.present[row, :count] = True
        batch.active[row, :count] = example.active
        batch.target_gain_db[row, :count] = example.target_gain_db
        batch.target_mix[row] = example.target_mix[:length]
        batch.role_index[row, :count] = [ROLES.index(role) for role in example.roles]
    return batch


class _Examples(torch.utils.data.IterableDataset):
    def __init__(self, paths: list[Path], seconds: float, batch: int, seed: int) -> None:
        self.paths, self.seconds, self.batch, self.seed = paths, seconds, batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, worker])
        songs: OrderedDict[Path, Song] = OrderedDict()
        while True:
            examples: list[Example] = []
            while len(examples) < self.batch:
                path = self.paths[int(rng.integers(len(self.paths)))]
                if path not in songs:
                    songs[path] = load_song(path)
                    if len(songs) > SONGS_IN_MEMORY:
                        songs.popitem(last=False)
                try:
                    examples.append(make_example(songs[path], rng, self.seconds))
                except ExampleError as exc:
                    log.info("skipped: %s", exc)
            yield collate(examples)


class ExampleStream:
    """An endless iterator of :class:`Batch` from ``songs`` rendered training songs."""

    def __init__(self, *, cache_dir: Path | None, songs: int, song_seconds: float, seconds: float, batch: int,
                 seed: int, workers: int = 1) -> None:
        cache = cache_dir or default_cache_dir()
        paths = render_songs(cache, songs, seed=seed // 1000, split="train", seconds=song_seconds)
        if not paths:
            raise ValueError(f"no training songs could be rendered into {cache}")
        dataset = _Examples(paths, seconds, batch, seed)
        self._loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                                   collate_fn=lambda b: b, persistent_workers=workers > 0)
        self._iterator = iter(self._loader)

    @staticmethod
    def role_names() -> tuple[str, ...]:
        return ROLES

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        return next(self._iterator)

    def close(self) -> None:
        del self._iterator
