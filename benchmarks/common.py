"""What every benchmark shares: the results folder, the test band, a show widened to N channels, the machine's description."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ailive.bridge.policy_settings import PolicySettings
from ailive.bridge.show import Show
from ailive.consoles.profile import Profile, get_profile
from ailive.consoles.show import ChannelMap, DeskAddress
from ailive.models.base import FRAME_S

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RATE = 48000
FRAME_MS = FRAME_S * 1000.0


def band(channels: int, seconds: float = 10.0, seed: int = 5) -> np.ndarray:
    """Noise bursts at different levels per channel, so gates open and close and faders move.  -> (channels, frames)"""
    rng = np.random.default_rng(seed)
    frames = int(seconds * RATE)
    levels = rng.uniform(-40, -10, channels)
    signals = rng.standard_normal((channels, frames)).astype(np.float32) * (10 ** (levels / 20))[:, None].astype(np.float32)
    gate = np.sin(np.arange(frames) / RATE * 2 * np.pi * rng.uniform(0.1, 0.5, channels)[:, None]) > -0.5
    return signals * gate


def wide_profile(channels: int, **changes: object) -> Profile:
    """The X32 profile with room for ``channels`` faders (a 64-channel desk speaks the same dialect)."""
    base = get_profile("x32")
    return replace(base, channels=max(channels, base.channels), **changes)


def bench_show(profile: Profile, channels: int, desk: DeskAddress, ports: list[str] | None = None,
               policy: PolicySettings | None = None) -> Show:
    """A show riding channels 1..N, every one ``auto``; ports default to placeholders (file and array sources)."""
    ports = ports or [f"in{ch}" for ch in range(1, channels + 1)]
    return Show(
        path="<benchmark>", name=f"bench-{channels}", profile=profile, desk=desk, allow_trim=False,
        channels=tuple(ChannelMap(ch, ports[ch - 1], f"In {ch}") for ch in range(1, channels + 1)),
        policy=policy or PolicySettings(),
    )


def percentiles(samples: np.ndarray | list[float], prefix: str = "", unit: str = "_ms",
                levels: tuple[int, ...] = (50, 99)) -> dict[str, float]:
    """The ``levels`` percentiles and the max of ``samples``, keyed like ``p50_ms``."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return {}
    picked = np.percentile(values, levels)
    return {**{f"{prefix}p{level}{unit}": float(v) for level, v in zip(levels, picked)}, f"{prefix}max{unit}": float(values.max())}


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def busy_percent(seconds: float = 1.0) -> float:
    """How busy the whole machine is, in % of all cores, over ``seconds``: the load the benchmark competes with."""
    busy0, total0 = _cpu_times()
    time.sleep(seconds)
    busy1, total1 = _cpu_times()
    return 100.0 * (busy1 - busy0) / max(1, total1 - total0)


def load_conditions(sample_s: float = 1.0) -> dict[str, object]:
    """Load average and how busy the machine was just before a measurement."""
    return {"loadavg": [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]],
            "busy_percent_before": round(busy_percent(sample_s), 1)}


def _first_line(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr).strip() else ""


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def machine() -> dict[str, object]:
    """The machine and software the numbers come from."""
    import onnxruntime

    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = bool(_first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]))
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gb": _memory_gb(),
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
        "jackd": _first_line(["jackd", "--version"]),
        "commit": commit + ("+changes" if dirty else ""),
    }
