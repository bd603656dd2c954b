"""Control-step latency: features + model + policy + OSC send, per step, at 8-64 channels for each model.

In-process, on a virtual clock, against the X32-family simulator on loopback
(profile widened to the channel count), so the step is timed without waiting
for audio. Reports p50/p99/max in ms and as a fraction of the 50 ms control
frame, and the naive ALM (full recompute, both graphs every step) beside the
streaming one as a ratio. Writes ``benchmarks/results/control_step.json``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from ailive.bridge.audio import Block, EndOfSource
from ailive.bridge.journal import Journal
from ailive.bridge.policy_settings import PolicySettings
from ailive.bridge.rig import open_rig
from ailive.consoles.show import DeskAddress
from ailive.models.base import GainModel
from ailive.models.registry import load_model
from ailive.models.runtime import AlmRuntime

from .common import FRAME_MS, RATE, RESULTS, band, bench_show, machine, percentiles, wide_profile
from .naive_alm import NaiveAlm
from .weights import VARIANTS, Weights, resolve

CLASSIC = ("unity", "dugan", "loudness")
#: The ALMs also measured with the slow graph on its worker thread (``AILIVE_SLOW_GRAPH=worker``), as ``NAME+worker``.
WORKER = "+worker"
#: Steps run before timing starts: ONNX Runtime's first runs allocate.
WARMUP_STEPS = 20
#: Idle time between steps, untimed: a live loop idles most of each 50 ms frame, and a slow graph
#: on the worker thread finishes then; with no gap at all it would still be running at the next step.
IDLE_S = 0.005


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
        await asyncio.sleep(IDLE_S)
        start = (self._next * frames) % (self.signals.shape[1] - frames)
        self._next += 1
        return Block(self.signals[:, start:start + frames].copy(), self._next * frames, RATE)


def model_factory(weights: dict[str, Weights]) -> Callable[[str], GainModel]:
    """Classic models by name, ALMs from the resolved weights, ``naive-alm-*`` around the same runtime's sessions."""
    def make(name: str) -> GainModel:
        if name.startswith("naive-"):
            return NaiveAlm(load_model(weights[name.removeprefix("naive-")].model))  # type: ignore[arg-type]
        if name.endswith(WORKER):
            model = load_model(weights[name.removesuffix(WORKER)].model)
            return AlmRuntime(model.folder, slow_on_worker=True)  # type: ignore[attr-defined]
        return load_model(weights[name].model if name in weights else name)
    return make


async def measure(model: GainModel, name: str, channels: int, steps: int) -> dict[str, object]:
    """Time ``steps`` control steps after the warm-up; the engine's own per-step timer."""
    profile = wide_profile(channels)
    show = bench_show(profile, channels, DeskAddress("127.0.0.1", 0),
                      policy=replace(PolicySettings(), window_db=12.0, total_gain_cap_db=12.0))
    source = ArraySource(band(channels), steps + WARMUP_STEPS)
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as journal_dir:
        async with open_rig(show, source, model, Journal(Path(journal_dir), show.name), simulated=True) as rig:
            engine = rig.engine

            async def on_step(elapsed_s: float) -> None:
                samples.append(engine._latencies_ms[-1])

            status = await engine.run(arm_after_s=1.0, on_step=on_step)
    timed = np.asarray(samples[WARMUP_STEPS:])
    row: dict[str, object] = {"model": name, "channels": channels, "steps": int(timed.size), "moves": status.moves,
                              **percentiles(timed)}
    for key in ("p50", "p99", "max"):
        row[f"{key}_frame_fraction"] = row[f"{key}_ms"] / FRAME_MS  # type: ignore[operator]
    return row


def side_by_side(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Naive over streaming, per ALM and channel count: how many times more one step costs without the design."""
    by_key = {(r["model"], r["channels"]): r for r in rows}
    out = []
    for (name, channels), naive in by_key.items():
        if not str(name).startswith("naive-") or (str(name).removeprefix("naive-"), channels) not in by_key:
            continue
        shipped = by_key[(str(name).removeprefix("naive-"), channels)]
        out.append({"model": str(name).removeprefix("naive-"), "channels": channels,
                    "streaming_p50_ms": shipped["p50_ms"], "naive_p50_ms": naive["p50_ms"],
                    "streaming_p99_ms": shipped["p99_ms"], "naive_p99_ms": naive["p99_ms"],
                    "p50_ratio": naive["p50_ms"] / shipped["p50_ms"],  # type: ignore[operator]
                    "p99_ratio": naive["p99_ms"] / shipped["p99_ms"]})  # type: ignore[operator]
    return out


def run(models: list[str], channel_counts: list[int], steps: int, weights: dict[str, Weights]) -> list[dict[str, object]]:
    make = model_factory(weights)
    return [asyncio.run(measure(make(name), name, channels, steps)) for name in models for channels in channel_counts]


def print_table(rows: list[dict[str, object]]) -> None:
    print(f"{'model':14} {'ch':>4} {'steps':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99/frame':>10} {'moves':>7}")
    for r in rows:
        print(f"{r['model']:14} {r['channels']:4d} {r['steps']:6d} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['max_ms']:8.3f} "
              f"{r['p99_frame_fraction']:10.1%} {r['moves']:7d}")


def add_weights_options(parser: argparse.ArgumentParser) -> None:
    for name in VARIANTS:
        parser.add_argument(f"--{name}", type=Path, default=None, metavar="DIR",
                            help=f"an exported {name} folder (default: the shipped one, else a random-init export)")


def resolve_weights(args: argparse.Namespace, names: list[str]) -> dict[str, Weights]:
    wanted = {name.removeprefix("naive-").removesuffix(WORKER) for name in names} & set(VARIANTS)
    return {name: resolve(name, getattr(args, name.replace("-", "_"))) for name in sorted(wanted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--models", nargs="+", default=[*CLASSIC, *VARIANTS, f"alm-mr{WORKER}", *(f"naive-{n}" for n in VARIANTS)])
    parser.add_argument("--out", type=Path, default=RESULTS / "control_step.json")
    add_weights_options(parser)
    args = parser.parse_args()
    weights = resolve_weights(args, args.models)
    rows = run(args.models, args.channels, args.steps, weights)
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "weights": [w.describe() for w in weights.values()],
                                    "control_step": rows, "side_by_side": side_by_side(rows)}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
