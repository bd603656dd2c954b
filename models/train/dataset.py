"""A streaming PyTorch dataset of examples built on the fly from rendered songs.

Each item is one :class:`ailive.models.data.Example` as tensors, padded to
``max_channels`` with a mask, so a batch holds songs of different channel
counts: ``inputs`` (bleed channels) and ``direct`` (clean channels) (C, N),
``target_gain_db`` (C,) (0 where not active), ``target_mix`` (N,),
``active`` (C,) and ``channels`` (C,) masks, and ``role_index`` (C,) (into
:data:`ailive.models.data.roles.ROLES`, 0 for padding) for the encoder's role task. Every worker draws from its own
generator, seeded from (seed, epoch, worker), and reads its own share of the
songs, so no two workers produce the same example and a run is repeatable.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ailive.models.data import Example, ExampleError, load_song, make_example
from ailive.models.data.roles import ROLES

log = logging.getLogger(__name__)


def example_tensors(example: Example, max_channels: int) -> dict[str, torch.Tensor]:
    """One example as padded tensors (see the module doc)."""
    channels, frames = example.inputs.shape
    if channels > max_channels:
        raise ValueError(f"{example.song} has {channels} channels, more than max_channels={max_channels}")
    pad = max_channels - channels

    def padded(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.pad(array, ((0, pad), (0, 0)))) if pad else torch.from_numpy(np.ascontiguousarray(array))

    return {
        "inputs": padded(example.inputs),
        "direct": padded(example.direct),
        "target_gain_db": torch.from_numpy(np.pad(np.nan_to_num(example.target_gain_db, nan=0.0), (0, pad))).float(),
        "target_mix": torch.from_numpy(example.target_mix),
        "active": torch.from_numpy(np.pad(example.active, (0, pad))),
        "channels": torch.from_numpy(np.arange(max_channels) < channels),
        "role_index": torch.tensor([ROLES.index(role) for role in example.roles] + [0] * pad, dtype=torch.int64),
    }


class ExampleDataset(IterableDataset):
    """Endless (or ``examples_per_epoch`` long) stream of examples from the songs at ``song_paths``."""

    def __init__(self, song_paths: Sequence[Path], seconds: float, *, seed: int, max_channels: int = 8,
                 bleed: str = "fast", examples_per_song: int = 8, examples_per_epoch: int | None = None) -> None:
        if not song_paths:
            raise ValueError("no songs to draw examples from")
        self.song_paths = [Path(p) for p in song_paths]
        self.seconds = seconds
        self.seed = seed
        self.max_channels = max_channels
        self.bleed = bleed
        self.examples_per_song = examples_per_song
        self.examples_per_epoch = examples_per_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch (in the main process) so every epoch draws new examples."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, worker])
        mine = self.song_paths[worker::workers] or self.song_paths
        quota = None if self.examples_per_epoch is None else len(range(worker, self.examples_per_epoch, workers))
        made = failures = 0
        while quota is None or made < quota:
            song = load_song(mine[int(rng.integers(len(mine)))])
            for _ in range(self.examples_per_song):
                if quota is not None and made >= quota:
                    return
                try:
                    example = make_example(song, rng, self.seconds, bleed=self.bleed)  # type: ignore[arg-type]
                except ExampleError as exc:
                    log.warning("skipping song %s: %s", song.name, exc)
                    failures += 1
                    if failures > 2 * len(mine) and made == 0:
                        raise ExampleError(f"none of {len(mine)} songs makes a {self.seconds:g} s example: {exc}") from None
                    break
                made += 1
                yield example_tensors(example, self.max_channels)
