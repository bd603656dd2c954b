"""The bridge in real time on a real jackd: audio safety (xruns under a CPU hog) and CPU / memory per channel count.

One run: a named dummy-driver jackd (``tests.jackserver``), a player client
standing in for the desk's card (the test band on N ports, in its own
process: ``benchmarks.player``), the X32-family simulator on loopback, and
the bridge in its own process (``benchmarks.live_bridge``), which starts its
JACK tap process. After a warm-up the harness reads both processes' CPU time
and memory from ``/proc``, samples JACK's DSP load, and counts the
xruns the server reports; then it stops the bridge with SIGTERM, as a user's
Ctrl-C would. With ``hog_cpu`` set, a busy loop holds that core, and the
harness, jackd and the bridge are kept on ``bridge_cpu``.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator

import numpy as np

from ailive.consoles.sim import DeskSimulator

from tests.jackserver import JackServer

from .common import ROOT, load_conditions, percentiles, wide_profile

#: How often JACK's DSP load and the bridge's RSS are sampled, seconds.
SAMPLE_S = 0.1
#: Longest wait for the bridge's first status line (imports, model load, desk handshake).
START_TIMEOUT_S = 60.0
PLAYER = "desk"


@dataclass(frozen=True)
class LiveRun:
    channels: int
    model: str  # what load_model takes
    period_frames: int = 256
    seconds: float = 60.0
    warmup_s: float = 3.0
    hog_cpu: int | None = None
    bridge_cpu: int | None = None
    switch_interval_ms: float | None = None  # an experiment; None leaves Python's default, as the bridge ships
    busy_sample_s: float = 1.0  # how long the machine's load is read before the run


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tap_process_of(pid: int) -> int:
    """The JACK tap process the bridge ``pid`` started (``ailive.bridge.audio.tap_process``)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"ailive.bridge.audio.tap_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise RuntimeError(f"the bridge {pid} runs no JACK tap process")


def proc_rss_mb(pid: int) -> tuple[float, float]:
    """(resident now, resident peak) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024.0
    return values["VmRSS"], values["VmHWM"]


def proc_memory_mb(pid: int) -> dict[str, float]:
    """RSS split: the process's own pages, and JACK's shared port memory, which every JACK client maps in full;
    and PSS, the process's proportional share of every page (the sum over processes counts a shared page once)."""
    private_kb = jack_kb = 0
    mapping = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].endswith(":"):
            mapping = parts[5] if len(parts) > 5 else ""
        elif parts[0] in ("Private_Clean:", "Private_Dirty:"):
            private_kb += int(parts[1])
        elif parts[0] == "Rss:" and mapping.startswith("/dev/shm/jack"):
            jack_kb += int(parts[1])
    pss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                  if line.startswith("Pss:"))
    return {"private_mb": private_kb / 1024.0, "jack_shm_mb": jack_kb / 1024.0, "pss_mb": pss_kb / 1024.0}


@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Keep this thread, and every thread and process it starts meanwhile, on one core."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def cpu_hog(cpu: int | None) -> Iterator[None]:
    """A busy loop holding core ``cpu``, stopped by its PID."""
    if cpu is None:
        yield
        return
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


@asynccontextmanager
async def player_process(server_name: str, channels: int, period_frames: int, out: Path) -> AsyncIterator[None]:
    """``benchmarks.player`` on the server until the block ends; its callback timing lands in ``out``."""
    player = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.player", "--server", server_name, "--channels", str(channels),
        "--period", str(period_frames), "--name", PLAYER, "--out", str(out),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert player.stdout is not None and player.stderr is not None
    errors = asyncio.create_task(player.stderr.read())
    try:
        if (await asyncio.wait_for(player.stdout.readline(), START_TIMEOUT_S)).strip() != b"ready":
            raise RuntimeError(f"the player did not start: {(await errors).decode()[-2000:]}")
        yield
    finally:
        if player.returncode is None:
            player.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(player.wait(), 10.0)
            except asyncio.TimeoutError:
                player.kill()
                await player.wait()
        await errors


class XrunMonitor:
    """A JACK client that only listens: xruns the server reports, and the server's DSP load."""

    def __init__(self, server_name: str) -> None:
        import jack

        self.xruns = 0
        self.client = jack.Client("monitor", no_start_server=True, servername=server_name)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    def _xrun(self, delayed_usecs: float) -> None:
        self.xruns += 1

    def dsp_load(self) -> float:
        return float(self.client.cpu_load())

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


async def _sample(monitor: XrunMonitor, pid: int | None, seconds: float) -> tuple[list[float], float]:
    """DSP load every SAMPLE_S for ``seconds``; the bridge's peak RSS meanwhile."""
    loads: list[float] = []
    peak_mb = 0.0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        await asyncio.sleep(SAMPLE_S)
        loads.append(monitor.dsp_load())
        if pid is not None:
            peak_mb = max(peak_mb, proc_rss_mb(pid)[0])
    return loads, peak_mb


async def _bridge(run: LiveRun, server: JackServer, desk_port: int, monitor: XrunMonitor, workdir: Path) -> dict[str, object]:
    out = workdir / "bridge.json"
    xruns_before_start = monitor.xruns
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.live_bridge", "--channels", str(run.channels), "--model", run.model,
        "--server", server.name, "--ports", f"{PLAYER}:out_", "--desk", f"127.0.0.1:{desk_port}",
        "--journal", str(workdir / "journal"), "--out", str(out),
        *(["--switch-interval-ms", str(run.switch_interval_ms)] if run.switch_interval_ms is not None else []),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    errors = asyncio.create_task(child.stderr.read())  # drained all along: a full pipe would stall the bridge
    try:
        first = await asyncio.wait_for(child.stdout.readline(), START_TIMEOUT_S)
        if not first:
            raise RuntimeError(f"the bridge stopped before its first status line: {(await errors).decode()[-2000:]}")
        drain = asyncio.create_task(child.stdout.read())
        await asyncio.sleep(run.warmup_s)
        tap = tap_process_of(child.pid)
        xruns_before = monitor.xruns
        cpu_before, tap_cpu_before, began = proc_cpu_s(child.pid), proc_cpu_s(tap), time.monotonic()
        loads, peak_mb = await _sample(monitor, child.pid, run.seconds)
        cpu_s, wall_s = proc_cpu_s(child.pid) - cpu_before, time.monotonic() - began
        tap_cpu_s = proc_cpu_s(tap) - tap_cpu_before
        rss_mb, hwm_mb = proc_rss_mb(child.pid)
        tap_rss_mb, _ = proc_rss_mb(tap)
        memory, tap_memory = proc_memory_mb(child.pid), proc_memory_mb(tap)
        xruns = monitor.xruns - xruns_before
        child.send_signal(signal.SIGTERM)
        await asyncio.wait_for(child.wait(), 30.0)
        await drain
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    if child.returncode != 0:
        raise RuntimeError(f"the bridge exited with {child.returncode}: {(await errors).decode()[-2000:]}")
    seen = json.loads(out.read_text())
    return {"xruns": xruns, "xruns_from_start": monitor.xruns - xruns_before_start,
            "cpu_percent": 100.0 * (cpu_s + tap_cpu_s) / wall_s, "rss_mb": rss_mb + tap_rss_mb,
            "bridge_process": {"cpu_percent": 100.0 * cpu_s / wall_s, "rss_mb": rss_mb, "rss_peak_mb": max(hwm_mb, peak_mb),
                               **memory},
            "tap_process": {"cpu_percent": 100.0 * tap_cpu_s / wall_s, "rss_mb": tap_rss_mb, **tap_memory},
            "pss_mb": memory["pss_mb"] + tap_memory["pss_mb"],
            "measured_s": wall_s, **percentiles(np.asarray(loads), "dsp_load_", "_percent"),
            "tap": seen["tap"], "engine": seen["engine"]}


async def _run(run: LiveRun) -> dict[str, object]:
    conditions = load_conditions(run.busy_sample_s)
    profile = wide_profile(run.channels)
    with pinned(run.bridge_cpu), JackServer(period_frames=run.period_frames, capture_channels=2, playback_channels=2) as server:
        with tempfile.TemporaryDirectory() as tmp:
            player_out = Path(tmp) / "player.json"
            async with player_process(server.name, run.channels, run.period_frames, player_out):
                monitor = XrunMonitor(server.name)
                try:
                    async with DeskSimulator(profile, port=0) as desk:
                        with cpu_hog(run.hog_cpu):
                            baseline_s, xruns_before = min(2.0, run.seconds), monitor.xruns
                            baseline, _ = await _sample(monitor, None, baseline_s)
                            xruns_player_only = monitor.xruns - xruns_before
                            measured = await _bridge(run, server, desk.port, monitor, Path(tmp))
                        writes = desk.stats.total_writes()
                finally:
                    monitor.close()
            player = json.loads(player_out.read_text())
    return {"channels": run.channels, "period_frames": run.period_frames, "seconds": run.seconds,
            "hog_cpu": run.hog_cpu, "bridge_cpu": run.bridge_cpu,
            "switch_interval_ms": run.switch_interval_ms, "conditions": conditions,
            "player_only_s": baseline_s, "xruns_player_only": xruns_player_only,
            "dsp_load_player_only_p50_percent": float(np.percentile(baseline, 50)) if baseline else None,
            "player": player, "desk_writes": writes, **measured}


def run_live(run: LiveRun) -> dict[str, object]:
    return asyncio.run(_run(run))
