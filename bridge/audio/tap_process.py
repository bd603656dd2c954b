"""The JACK tap in a process of its own (``python -m ailive.bridge.audio.tap_process``), started by ``JackSource``.

JACK's process callback must finish within a period (5.3 ms at 256 frames),
and a Python callback needs its process's GIL. In the bridge's process the
control loop holds the GIL for milliseconds at a time (features, the model),
so the callback waited and JACK counted xruns. Here the only other thread
is the main one, asleep on its pipe: the callback copies each port into the
shared ring (``tap_ring``, whose protocol orders the copy and its counters), and returns.

Protocol: one JSON line in (a :class:`TapRequest`), one JSON line out (the
ring's file, rate and port names, or ``{"error": ...}``), then the tap runs
until its stdin closes (the bridge stopped or died) or JACK shuts it down.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .base import AudioSourceError
from .jack import match_port, open_jack_client, port_short_names
from .tap_ring import RING_GUARD_FRAMES, XRUNS, TapRequest, TapRing

#: How often the main thread looks for a JACK shutdown while it waits on its pipe, seconds.
WATCH_S = 0.2
#: Callbacks a timing run remembers (the newest overwrite the oldest): 11 minutes at 128 frames and 48 kHz.
TIMING_CAPACITY = 1 << 18


class CallbackTiming:
    """When each callback began and how long it ran, in preallocated arrays, saved as ``.npz`` at the end."""

    def __init__(self, path: Path, period_frames: int, sample_rate: int) -> None:
        self.path = path
        self.period_us = period_frames * 1e6 / sample_rate
        self.started_ns = np.zeros(TIMING_CAPACITY, np.int64)
        self.duration_ns = np.zeros(TIMING_CAPACITY, np.int64)
        self.count = 0

    def record(self, began_ns: int) -> None:
        at = self.count % TIMING_CAPACITY
        self.started_ns[at] = began_ns
        self.duration_ns[at] = time.perf_counter_ns() - began_ns
        self.count += 1

    def save(self) -> None:
        kept = min(self.count, TIMING_CAPACITY)
        np.savez(self.path, started_ns=self.started_ns[:kept], duration_ns=self.duration_ns[:kept],
                 period_us=self.period_us, count=self.count)


class Tap:
    """The open JACK client, its input ports and the ring they are copied into."""

    def __init__(self, request: TapRequest) -> None:
        self.jack, self.client = open_jack_client(request.client_name, request.server_name)
        self.ring: TapRing | None = None
        self.timing: CallbackTiming | None = None
        try:
            self._open(request)
        except BaseException:
            self.close()
            raise

    def _open(self, request: TapRequest) -> None:
        jack, client = self.jack, self.client
        self.sample_rate = int(client.samplerate)
        self.usable_frames = max(1, round(request.ring_seconds * self.sample_rate))
        ring_frames = self.usable_frames + max(RING_GUARD_FRAMES, 2 * int(client.blocksize))
        self.ring = TapRing.create(len(request.channel_names), ring_frames)
        try:
            self.ports = [client.inports.register(name) for name in port_short_names(request.channel_names)]
        except jack.JackError as exc:
            raise AudioSourceError(f"cannot register JACK input ports: {exc}") from exc
        if request.timing_path:
            self.timing = CallbackTiming(Path(request.timing_path), int(client.blocksize), self.sample_rate)
        client.set_process_callback(self._process_timed if self.timing else self._process)
        client.set_xrun_callback(self._xrun)
        client.set_shutdown_callback(self._shutdown)
        gc.collect()  # once, before the callback runs: a collection holds the GIL the callback needs for ~10 ms
        gc.freeze()  # nothing alive now is scanned again; the callback's temporaries go by reference counting
        client.activate()
        available = [port.name for port in client.get_ports(is_output=True, is_audio=True)]
        available.sort(key=lambda name: not name.startswith("system:"))
        for wanted, port in zip(request.connect_to, self.ports):
            if wanted is None:
                continue
            source = match_port(wanted, available)
            try:
                client.connect(source, port)
            except jack.JackError as exc:
                raise AudioSourceError(f"cannot connect JACK port {source!r} to {port.name!r}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        assert self.ring is not None
        return {"ring": str(self.ring.path), "ring_frames": self.ring.ring_frames, "usable_frames": self.usable_frames,
                "sample_rate": self.sample_rate, "port_names": [port.name for port in self.ports]}

    def _process(self, frames: int) -> None:
        # JACK's real-time thread: copy into the ring, nothing else.
        self.ring.write([port.get_array() for port in self.ports], frames)  # type: ignore[union-attr]

    def _process_timed(self, frames: int) -> None:
        began = time.perf_counter_ns()
        self._process(frames)
        self.timing.record(began)  # type: ignore[union-attr]

    def _xrun(self, delayed_usecs: float) -> None:
        self.ring.header[XRUNS] += 1  # type: ignore[union-attr]

    def _shutdown(self, status: Any, reason: str) -> None:
        self.ring.mark_died(reason or "the JACK server shut the tap down")  # type: ignore[union-attr]

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.deactivate()
                client.close()
            except self.jack.JackError as exc:  # a server that died under us
                print(f"ailive tap: closing the JACK client: {exc}", file=sys.stderr)
        if self.timing is not None:
            self.timing.save()
        if self.ring is not None:
            self.ring.unlink()
            self.ring.close()


def wait_for_the_end(tap: Tap) -> None:
    """Until stdin closes (the bridge is done with the tap, or gone) or JACK shut the tap down."""
    stdin = sys.stdin.fileno()
    while not tap.ring.died:  # type: ignore[union-attr]
        readable, _, _ = select.select([stdin], [], [], WATCH_S)
        if readable and not os.read(stdin, 4096):
            return


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the bridge's to handle; it closes our pipe when done
    with contextlib.suppress(AttributeError, OSError):  # started from the control loop's real-time thread: not us
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    try:
        request = TapRequest(**json.loads(sys.stdin.readline()))
        tap = Tap(request)
    except AudioSourceError as exc:
        reply({"error": str(exc)})
        return 1
    except (ValueError, TypeError) as exc:
        reply({"error": f"the tap process was started with a bad request: {exc}"})
        return 2
    except Exception as exc:  # libjack refusing something unforeseen: still one line for the engineer
        reply({"error": f"the JACK tap could not start: {type(exc).__name__}: {exc}"})
        return 1
    try:
        reply(tap.describe())
        wait_for_the_end(tap)
    finally:
        tap.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
