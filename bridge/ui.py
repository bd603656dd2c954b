"""What the engineer sees: a live terminal view (rich), or one line per second when headless.

Keys in the live view: ``a`` arm, ``d`` disarm, ``k`` kill (restore the
snapshot), ``q`` quit (disarm, faders stay where they are).
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import termios
import tty
from typing import Callable, Iterator

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .engine import EngineStatus


def _db(value: float, width: int = 6) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    if value == -math.inf or value <= -150:
        return "-inf".rjust(width)
    return f"{value:+.1f}".rjust(width)


def progress_bar(done_s: float, total_s: float, width: int = 30) -> Text:
    filled = int(width * min(max(done_s / total_s, 0.0), 1.0)) if total_s > 0 else 0
    return Text(f"[{'#' * filled}{'.' * (width - filled)}] {done_s:5.1f} / {total_s:.1f} s")


def render(status: EngineStatus, total_s: float | None = None) -> Group:
    """The live view: one header line, one row per channel, the latest events (and progress, for files)."""
    armed = Text("ARMED", style="bold red") if status.armed else Text("disarmed", style="bold green")
    desk = Text(f"desk {status.desk} ", style="") + (Text("connected", style="green") if status.desk_connected
                                                       else Text("LOST", style="bold red"))
    latency = status.latency_ms
    header = Text.assemble(
        armed, "  ", desk, f"  model {status.model}  audio {status.audio_time_s:6.1f} s  xruns {status.xruns}  ",
        f"step p50 {latency.get('p50', 0):.2f} ms p99 {latency.get('p99', 0):.2f} ms  moves {status.moves}",
    )
    if status.hold:
        header.append(f"  {status.hold}", style="bold yellow")
    table = Table(expand=False, pad_edge=False)
    for column, justify in (("ch", "right"), ("name", "left"), ("input dBFS", "right"), ("proposed", "right"),
                            ("fader", "right"), ("mode", "left"), ("last reason", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for ch in status.channels:
        mode = "muted" if ch.muted else ch.mode
        table.add_row(str(ch.channel), ch.name, _db(ch.level_db), _db(ch.proposed_db), _db(ch.fader_db), mode, ch.reason)
    events = Text("\n".join(status.last_events), style="dim")
    keys = Text("keys: a arm  d disarm  k kill (restore snapshot)  q quit", style="dim")
    if total_s is not None:
        return Group(header, progress_bar(status.audio_time_s, total_s), table, events, keys)
    return Group(header, table, events, keys)


def headless_line(status: EngineStatus) -> str:
    """One line a log collector can keep: state, health, then each channel's fader and reason."""
    latency = status.latency_ms
    channels = " ".join(f"{c.channel}:{_db(c.fader_db, 0)}({c.reason})" for c in status.channels)
    return (
        f"t={status.audio_time_s:.1f}s {'ARMED' if status.armed else 'disarmed'} "
        f"desk={'ok' if status.desk_connected else 'LOST'} hold={status.hold or '-'} xruns={status.xruns} "
        f"step_p50={latency.get('p50', 0):.2f}ms step_p99={latency.get('p99', 0):.2f}ms moves={status.moves} "
        f"engineer={status.engineer_moves} | {channels}"
    )


@contextlib.contextmanager
def _cbreak(stream) -> Iterator[bool]:
    """Single-key input without echo, restored on exit; False when there is no terminal."""
    try:
        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):
        yield False
        return
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def live_view(refresh: Callable[[], EngineStatus], keys: dict[str, Callable[[], None]], done: asyncio.Event,
                    total_s: float | None = None) -> None:
    """Draw the live view until ``done``; map single keys to commands."""
    loop = asyncio.get_running_loop()
    with _cbreak(sys.stdin) as interactive:
        if interactive:
            def on_key() -> None:
                key = sys.stdin.read(1).lower()
                if key in keys:
                    keys[key]()

            loop.add_reader(sys.stdin.fileno(), on_key)
        try:
            with Live(render(refresh(), total_s), refresh_per_second=4, transient=False) as live:
                while not done.is_set():
                    await asyncio.sleep(0.25)
                    live.update(render(refresh(), total_s))
        finally:
            if interactive:
                loop.remove_reader(sys.stdin.fileno())


async def headless_log(refresh: Callable[[], EngineStatus], done: asyncio.Event, period_s: float = 1.0) -> None:
    """Print one status line per ``period_s`` until ``done``."""
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), period_s)
        except asyncio.TimeoutError:
            pass
        print(headless_line(refresh()), flush=True)
