"""Desk traffic: OSC fader writes per second, in total and per fader, for the demo material, against the X32 guideline.

The demo's show and multitrack (``examples/``) through the real engine onto
the X32 simulator, on the audio clock as ``ailive demo --headless`` runs it
(the desk syncs after every step). What the simulator accepted is counted per
address and per control step, so the rate per fader is read on the audio
clock: the mean while armed, and the most in any 1 s window (20 steps,
sliding). The guideline is at most ~30 writes per address per second; the
policy's own bound is ``max_writes_per_s`` (20 in the demo show).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import numpy as np

from ailive.bridge.audio import FileSource
from ailive.bridge.journal import Journal
from ailive.bridge.rig import open_rig
from ailive.bridge.offline.demo import EXAMPLES, READ_IN_S, demo_show
from ailive.models.base import FRAME_S
from ailive.models.registry import load_model

from .common import RESULTS, machine

GUIDELINE_PER_ADDRESS_PER_S = 30.0
WINDOW_STEPS = int(round(1.0 / FRAME_S))


async def measure(name: str, model: str, multitrack: Path = EXAMPLES / "multitrack") -> dict[str, object]:
    show = demo_show("x32")
    profile = show.profile
    source = FileSource.from_directory(multitrack)
    riders = [c for c in show.channels if c.mode == "auto"]
    addresses = [profile.fader.address_of(c.desk_channel) for c in riders]
    counts: list[list[int]] = []  # (steps, riders) writes the desk accepted during each step
    with tempfile.TemporaryDirectory() as journal_dir:
        journal = Journal(Path(journal_dir), show.name)
        async with open_rig(show, source, load_model(model), journal, simulated=True) as rig:
            driver, desk = rig.driver, rig.desk
            assert desk is not None
            seen = [0] * len(addresses)

            async def on_step(elapsed_s: float) -> None:
                await driver.sync()
                now = [desk.stats.writes.get(a, 0) for a in addresses]
                counts.append([n - s for n, s in zip(now, seen)])
                seen[:] = now

            await rig.engine.run(arm_after_s=READ_IN_S, on_step=on_step)
    steps = np.asarray(counts, dtype=float)  # (steps, riders)
    armed = steps[int(round(READ_IN_S / FRAME_S)):]
    armed_s = armed.shape[0] * FRAME_S
    windows = np.lib.stride_tricks.sliding_window_view(steps, WINDOW_STEPS, axis=0).sum(axis=-1)  # (windows, riders)
    per_fader_max = windows.max(axis=0)
    return {
        "model": name, "seconds": round(steps.shape[0] * FRAME_S, 2), "faders": len(addresses),
        "writes": int(steps.sum()),
        "writes_per_s": float(armed.sum() / armed_s),
        "per_fader_mean_per_s": float(armed.sum(axis=0).mean() / armed_s),
        "per_fader_busiest_mean_per_s": float(armed.sum(axis=0).max() / armed_s),
        "per_fader_max_1s": int(per_fader_max.max()),
        "busiest_fader": addresses[int(per_fader_max.argmax())],
        "all_faders_max_1s": int(windows.sum(axis=1).max()),
        "guideline_per_address_per_s": GUIDELINE_PER_ADDRESS_PER_S,
        "within_guideline": bool(per_fader_max.max() <= GUIDELINE_PER_ADDRESS_PER_S),
    }


def run(models: dict[str, str]) -> list[dict[str, object]]:
    """``models``: display name -> what load_model takes."""
    return [asyncio.run(measure(name, model)) for name, model in models.items()]


def print_table(rows: list[dict[str, object]]) -> None:
    print(f"{'model':10} {'writes':>7} {'/s':>7} {'/s/fader':>9} {'max 1s/fader':>13} {'max 1s all':>11}")
    for r in rows:
        print(f"{r['model']:10} {r['writes']:7d} {r['writes_per_s']:7.2f} {r['per_fader_mean_per_s']:9.2f} "
              f"{r['per_fader_max_1s']:13d} {r['all_faders_max_1s']:11d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["unity", "dugan", "loudness"])
    parser.add_argument("--out", type=Path, default=RESULTS / "desk_traffic.json")
    args = parser.parse_args()
    rows = run({m: m for m in args.models})
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "desk_traffic": rows}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
