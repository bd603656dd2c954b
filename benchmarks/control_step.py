"""Control-step latency: features + model + policy + OSC send, per step, at 8-64 channels for each model.

In-process, on a virtual clock, against the X32-family simulator on loopback
(profile widened to the channel count). Reports p50/p99/max in ms and as a
fraction of the 50 ms control frame; prints a table and writes
``benchmarks/results/control_step.json``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal
from ailive.bridge.sources import Block, EndOfSource
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.profile import get_profile
from ailive.consoles.show import ChannelMap, DeskAddress, PolicySettings, Show
from ailive.consoles.sim import DeskSimulator
from ailive.models.base import FRAME_S
from ailive.models.registry import load_model

RESULTS = Path(__file__).resolve().parent / "results"
RATE = 48000


class ArraySource:
    """A multitrack held in memory, handed out as fast as asked (virtual clock), looping."""

    realtime = False
    xruns = 0
    overruns = 0

    def __init__(self, signals: np.ndarray, steps: int) -> None:
        self.signals = signals  # (channels, frames)
        self.sample_rate = RATE
        self.channel_names = [f"in{i + 1}" for i in range(signals.shape[0])]
        self.steps = steps
        self._next = 0

    async def start(self) -> None:
        self._next = 0

    async def stop(self) -> None:
        pass

    async def next_block(self, frames: int, timeout_s: float) -> Block | None:
        if self._next >= self.steps:
            raise EndOfSource("done")
        start = (self._next * frames) % (self.signals.shape[1] - frames)
        self._next += 1
        return Block(self.signals[:, start:start + frames].copy(), self._next * frames, RATE)


def band(channels: int, seconds: float = 10.0) -> np.ndarray:
    """Noise bursts at different levels per channel, so gates open and close and faders move."""
    rng = np.random.default_rng(5)
    frames = int(seconds * RATE)
    levels = rng.uniform(-40, -10, channels)
    signals = rng.standard_normal((channels, frames)).astype(np.float32) * (10 ** (levels / 20))[:, None].astype(np.float32)
    gate = (np.sin(np.arange(frames) / RATE * 2 * np.pi * rng.uniform(0.1, 0.5, channels)[:, None]) > -0.5)
    return signals * gate


async def measure(model_name: str, channels: int, steps: int) -> dict[str, float]:
    base = get_profile("x32")
    profile = replace(base, channels=max(channels, base.channels), max_writes_per_s=1000.0)
    async with DeskSimulator(profile, port=0) as desk:
        show = Show(
            path="<benchmark>", name=f"bench-{channels}", profile=profile, desk=DeskAddress(*desk.address), allow_trim=False,
            channels=tuple(ChannelMap(ch, f"in{ch}", f"In {ch}") for ch in range(1, channels + 1)),
            policy=replace(PolicySettings(), window_db=12.0, total_gain_cap_db=12.0),
        )
        source = ArraySource(band(channels), steps)
        with tempfile.TemporaryDirectory() as journal_dir:
            async with OscDeskDriver(profile, "127.0.0.1", desk.port, show.desk_channels) as driver:
                with Journal(Path(journal_dir), show.name) as journal:
                    engine = Engine(show, source, driver, load_model(model_name), journal)
                    await source.start()
                    status = await engine.run(arm_after_s=1.0)
    samples = np.asarray(engine._latencies_ms)
    frame_ms = FRAME_S * 1000
    return {
        "model": model_name, "channels": channels, "steps": len(samples), "moves": status.moves,
        "p50_ms": float(np.percentile(samples, 50)), "p99_ms": float(np.percentile(samples, 99)),
        "max_ms": float(samples.max()), "p99_frame_fraction": float(np.percentile(samples, 99) / frame_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--models", nargs="+", default=["unity", "dugan", "loudness"])
    parser.add_argument("--out", type=Path, default=RESULTS / "control_step.json")
    args = parser.parse_args()
    rows = [asyncio.run(measure(model, channels, args.steps)) for model in args.models for channels in args.channels]
    print(f"{'model':10} {'ch':>4} {'steps':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99/frame':>10} {'moves':>7}")
    for r in rows:
        print(f"{r['model']:10} {r['channels']:4d} {r['steps']:6d} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['max_ms']:8.3f} "
              f"{r['p99_frame_fraction']:10.1%} {r['moves']:7d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                                    "processor": platform.processor(), "control_step": rows}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
