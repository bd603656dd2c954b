"""A stand-in gain model for the virtual soak: cheap, and harder on the safety policy than a real one.

Its proposals wander, jump, leave the card's range, turn infinite and, now
and then, raise; a silent input gets no opinion (NaN), as from a real model.
The soak runs it so an hour of show takes seconds; ``make soak`` runs the
same hour with the loudness model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ailive.models.base import ModelCard

CARD = ModelCard("restless", "random-walk gains with jumps, wild values and failures (tests only)", -20.0, 20.0)


@dataclass
class RestlessState:
    rng: np.random.Generator
    walk_db: np.ndarray  # (channels,)


class ModelFailure(RuntimeError):
    """The restless model failing on purpose."""


@dataclass
class RestlessModel:
    seed: int = 0
    jump_p: float = 0.002  # per channel per frame: a new level anywhere in the card's range
    wild_p: float = 0.0005  # per frame: one channel's gain far outside the range, or infinite
    fail_p: float = 0.0001  # per frame: the model raises

    card: ModelCard = CARD

    def initial_state(self, channels: int, sample_rate: int) -> RestlessState:
        return RestlessState(np.random.default_rng(self.seed), np.zeros(channels))

    def step(self, state: RestlessState, frame: np.ndarray) -> tuple[np.ndarray, RestlessState]:
        rng = state.rng
        if rng.random() < self.fail_p:
            raise ModelFailure("the restless model failed on purpose")
        walk = np.clip(state.walk_db + rng.normal(0.0, 0.05, walk_shape := state.walk_db.shape), -20.0, 20.0)
        jumps = rng.random(walk_shape) < self.jump_p
        walk[jumps] = rng.uniform(-20.0, 20.0, int(jumps.sum()))
        gains = walk.copy()
        if rng.random() < self.wild_p:
            gains[rng.integers(len(gains))] = rng.choice([-200.0, 200.0, np.inf, -np.inf])
        mean_square = np.mean(np.square(frame, dtype=np.float64), axis=1)
        gains[mean_square < 1e-6] = np.nan  # below -60 dBFS: no opinion
        return gains, RestlessState(rng, walk)
