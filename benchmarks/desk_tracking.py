"""How fast the driver tracks a second client's fader moves, and how fast its own writes land.

Loopback UDP against the X32 simulator in the same process. Prints a table of
percentiles and writes ``benchmarks/results/desk_tracking.json``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path

import numpy as np

from ailive.consoles import osc
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.events import FaderMoved
from ailive.consoles.profile import get_profile
from ailive.consoles.sim import DeskSimulator

from .common import percentiles

RESULTS = Path(__file__).resolve().parent / "results"


def latency_ms(samples_s: list[float]) -> dict[str, float]:
    """Seconds measured, as milliseconds: count, p50 / p90 / p99, max and mean."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    return {"n": int(ms.size), **percentiles(ms, levels=(50, 90, 99)), "mean_ms": float(ms.mean())}


class _Sender(asyncio.DatagramProtocol):
    pass


async def measure(moves: int) -> dict[str, dict[str, float]]:
    profile = get_profile("x32")
    async with DeskSimulator(profile, port=0) as sim:
        arrived: asyncio.Queue[float] = asyncio.Queue()
        driver = OscDeskDriver(profile, "127.0.0.1", sim.port, list(range(1, 33)))
        driver.add_listener(lambda e: arrived.put_nowait(time.perf_counter()) if isinstance(e, FaderMoved) and e.source == "external" else None)
        await driver.connect()
        loop = asyncio.get_running_loop()
        other, _ = await loop.create_datagram_endpoint(_Sender, local_addr=("127.0.0.1", 0))
        other.sendto(osc.encode("/xremote"), sim.address)
        await asyncio.sleep(0.05)
        tracking: list[float] = []
        for i in range(moves):
            value = 0.1 + 0.8 * ((i * 37) % 100) / 100.0 + (i % 2) * 0.001
            sent = time.perf_counter()
            other.sendto(osc.encode(f"/ch/{1 + i % 32:02d}/mix/fader", "f", (value,)), sim.address)
            tracking.append(await asyncio.wait_for(arrived.get(), 2.0) - sent)
        landing: list[float] = []
        for i in range(moves):
            channel = 1 + i % 32
            before = sim.fader(channel)
            await asyncio.sleep(0.06)  # stay under the per-fader write-rate limit
            sent = time.perf_counter()
            driver.set_fader(channel, 0.05 + 0.9 * ((i * 53) % 100) / 100.0)
            while sim.fader(channel) == before:
                await asyncio.sleep(0)
            landing.append(time.perf_counter() - sent)
        other.close()
        await driver.close()
    return {"external_move_to_event": latency_ms(tracking), "write_to_desk_holds": latency_ms(landing)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moves", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS / "desk_tracking.json")
    args = parser.parse_args()
    results = asyncio.run(measure(args.moves))
    print(f"{'measure':28} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, row in results.items():
        print(f"{name:28} {row['n']:5d} {row['p50_ms']:8.3f} {row['p90_ms']:8.3f} {row['p99_ms']:8.3f} {row['max_ms']:8.3f}")
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(), **results}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
