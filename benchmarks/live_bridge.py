"""The bridge as ``ailive run`` runs it, in a process of its own, with the JACK tap's callback timed.

``runner.run_show`` does what the CLI does (GC frozen after start-up, the
control loop at real-time priority, the headless status line every second);
only the tap is a subclass that records when each callback began and how
long it took. The gap between two starts beyond one period is how long a
callback waited to run (for the GIL or for the CPU): a wait near a period
is an xrun. Started by ``benchmarks.live``; runs until SIGTERM, then writes
what it saw as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ailive.bridge import runner
from ailive.bridge.sources import JackSource
from ailive.consoles.show import DeskAddress, Show

from .common import bench_show, percentiles, wide_profile

#: Callbacks remembered (the newest overwrite the oldest): 11 minutes at 128 frames and 48 kHz.
CAPACITY = 1 << 18


class TimedJackSource(JackSource):
    """The shipped tap, plus its start time and duration per callback, written into preallocated arrays."""

    def _open(self, jack: Any, client: Any) -> None:
        self.period_frames = int(client.blocksize)
        self.started_ns = np.zeros(CAPACITY, np.int64)
        self.callback_ns = np.zeros(CAPACITY, np.int64)
        self.callbacks = 0
        super()._open(jack, client)

    def _process(self, frames: int) -> None:
        began = time.perf_counter_ns()
        super()._process(frames)
        at = self.callbacks % CAPACITY
        self.started_ns[at] = began
        self.callback_ns[at] = time.perf_counter_ns() - began
        self.callbacks += 1

    def timing(self) -> dict[str, object]:
        """Callback duration and start delay (the gap to the previous start beyond one period), in us."""
        kept = min(self.callbacks, CAPACITY)
        order = np.argsort(self.started_ns[:kept])
        period_us = self.period_frames * 1e6 / self.sample_rate
        delay_us = np.maximum(0.0, np.diff(self.started_ns[:kept][order]) / 1000.0 - period_us)
        return {"callbacks": self.callbacks, "period_us": period_us,
                **percentiles(self.callback_ns[:kept] / 1000.0, "callback_", "_us"),
                **percentiles(delay_us, "start_delay_", "_us"),
                "delayed_half_period": int(np.sum(delay_us > period_us / 2)),
                "xruns": self.xruns, "overruns": self.overruns}


async def run(show: Show, model: str, server: str, journal: Path) -> dict[str, object]:
    taps: list[TimedJackSource] = []

    def open_timed(show: Show, source: str, *, jack_server: str | None = None, realtime: bool = True) -> TimedJackSource:
        tap = TimedJackSource([c.name for c in show.channels], [c.port for c in show.channels],
                              client_name=f"ailive-{show.name}", server_name=jack_server)
        taps.append(tap)
        return tap

    runner.open_source = open_timed  # the one change to the CLI's path: the timed tap
    options = runner.RunOptions(source="jack", model=model, journal_dir=journal, arm=True, arm_after_s=1.0,
                                headless=True, jack_server=server)
    status = await runner.run_show(show, options)
    return {"tap": taps[0].timing(), "engine": {"steps": status.steps, "moves": status.moves, "xruns": status.xruns,
                                                "model_errors": status.model_errors, "latency_ms": status.latency_ms}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--server", required=True, help="the JACK server's name")
    parser.add_argument("--ports", required=True, help="output port prefix to tap, e.g. 'desk:out_' (1-based)")
    parser.add_argument("--desk", required=True, help="HOST:PORT of the desk (simulator)")
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="an experiment: how long a thread may hold the GIL while the JACK thread waits")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    host, port = args.desk.rsplit(":", 1)
    profile = wide_profile(args.channels)
    show = bench_show(profile, args.channels, DeskAddress(host, int(port)),
                      ports=[f"{args.ports}{ch}" for ch in range(1, args.channels + 1)])
    result = asyncio.run(run(show, args.model, args.server, args.journal))
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
