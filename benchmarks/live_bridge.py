"""The bridge as ``ailive run`` runs it, in a process of its own, with the JACK tap's callback timed.

``runner.run_show`` does what the CLI does (GC frozen after start-up, the
control loop at real-time priority, the headless status line every second);
only the tap is asked to time each callback (``tap_process.CallbackTiming``).
Started by ``benchmarks.live``; runs until SIGTERM, then writes what it saw as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ailive.bridge import runner
from ailive.bridge.audio import JackSource
from ailive.bridge.show import Show
from ailive.consoles.show import DeskAddress

from .common import bench_show, wide_profile
from . import callbacks


async def run(show: Show, model: str, server: str, journal: Path) -> dict[str, object]:
    taps: list[JackSource] = []
    timing = journal.with_name("tap-timing.npz")

    def open_timed(show: Show, source: str, *, jack_server: str | None = None, realtime: bool = True) -> JackSource:
        tap = JackSource([c.name for c in show.channels], [c.port for c in show.channels],
                         client_name=f"ailive-{show.name}", server_name=jack_server, timing_path=timing)
        taps.append(tap)
        return tap

    runner.open_source = open_timed  # the one change to the CLI's path: the timed tap
    options = runner.RunOptions(source="jack", model=model, journal_dir=journal, arm=True, arm_after_s=1.0,
                                headless=True, jack_server=server)
    status = await runner.run_show(show, options)
    tap = taps[0]
    return {"tap": {**callbacks.summary(timing), "xruns": status.xruns, "overruns": tap.overruns},
            "engine": {"steps": status.steps, "moves": status.moves, "xruns": status.xruns,
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
