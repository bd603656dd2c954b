"""When each JACK process callback began and how long it ran, kept in preallocated arrays (nothing allocated per call).

The gap between two starts beyond one period is how long a callback waited
to run, for the GIL or for the CPU: a wait near a period is an xrun.
"""
from __future__ import annotations

import time

import numpy as np

from .common import percentiles

#: Callbacks remembered (the newest overwrite the oldest): 11 minutes at 128 frames and 48 kHz.
CAPACITY = 1 << 18


class CallbackClock:
    def __init__(self, period_frames: int, sample_rate: int) -> None:
        self.period_us = period_frames * 1e6 / sample_rate
        self.started_ns = np.zeros(CAPACITY, np.int64)
        self.duration_ns = np.zeros(CAPACITY, np.int64)
        self.count = 0

    @staticmethod
    def begin() -> int:
        return time.perf_counter_ns()

    def end(self, began_ns: int) -> None:
        at = self.count % CAPACITY
        self.started_ns[at] = began_ns
        self.duration_ns[at] = time.perf_counter_ns() - began_ns
        self.count += 1

    def summary(self) -> dict[str, object]:
        """Callback duration and start delay (the gap to the previous start beyond one period), in us."""
        kept = min(self.count, CAPACITY)
        order = np.argsort(self.started_ns[:kept])
        delay_us = np.maximum(0.0, np.diff(self.started_ns[:kept][order]) / 1000.0 - self.period_us)
        return {"callbacks": self.count, "period_us": self.period_us,
                **percentiles(self.duration_ns[:kept] / 1000.0, "callback_", "_us"),
                **percentiles(delay_us, "start_delay_", "_us"),
                "delayed_half_period": int(np.sum(delay_us > self.period_us / 2))}
