"""The desk's card for the live benchmarks: the test band on N JACK output ports, in a process of its own.

Its main thread only waits for SIGTERM, so the player's process callback
never waits for a GIL that other work holds (inside the harness it would
share one with the desk simulator, and its delays would count as the
bridge's xruns). Prints ``ready`` once its ports exist; on SIGTERM writes
its callback timing (timed as the tap times its own) summarised as JSON.
"""
from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

from tests.jackserver import JackPlayer

from ailive.bridge.audio.tap_process import CallbackTiming

from .common import RATE, band
from . import callbacks


class TimedPlayer(JackPlayer):
    """The tests' player, plus when each callback began and how long it ran."""

    timing: CallbackTiming

    def _process(self, frames: int) -> None:
        began = time.perf_counter_ns()
        super()._process(frames)
        self.timing.record(began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--channels", type=int, required=True)
    parser.add_argument("--period", type=int, required=True, help="the server's period, frames")
    parser.add_argument("--name", default="desk", help="the JACK client name")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # JACK's threads inherit the mask
    player = TimedPlayer(args.server, band(args.channels), RATE, client_name=args.name)
    player.timing = CallbackTiming(args.out.with_suffix(".npz"), args.period, RATE)
    with player:
        print("ready", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    player.timing.save()
    args.out.write_text(json.dumps(callbacks.summary(player.timing.path), indent=2))


if __name__ == "__main__":
    main()
