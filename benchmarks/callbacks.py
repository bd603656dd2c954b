"""The tap process's callback timing (``tap_process.CallbackTiming``), summarised.

The gap between two starts beyond one period is how long a callback waited
to run, for the CPU (or, in a tap that shares a process, for the GIL): a
wait near a period is an xrun.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import percentiles


def summary(path: Path) -> dict[str, object]:
    """Callback duration and start delay (the gap to the previous start beyond one period), in us."""
    with np.load(path) as saved:
        started_ns, duration_ns = saved["started_ns"], saved["duration_ns"]
        period_us, count = float(saved["period_us"]), int(saved["count"])
    order = np.argsort(started_ns)
    delay_us = np.maximum(0.0, np.diff(started_ns[order]) / 1000.0 - period_us)
    return {"callbacks": count, "period_us": period_us,
            **percentiles(duration_ns / 1000.0, "callback_", "_us"),
            **percentiles(delay_us, "start_delay_", "_us"),
            "delayed_half_period": int(np.sum(delay_us > period_us / 2))}
