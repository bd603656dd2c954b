"""The embedded default: the example multitrack through the real pipeline onto a built-in desk simulator.

No desk, no sound card, no broker: ``ailive demo`` starts the simulator on
loopback, plays the shipped multitrack (``examples/multitrack``) through the streaming engine, arms
after a short read-in, has a scripted engineer grab the vocal fader, and
writes what happened: the mix as the desk would sound with the bridge's
faders, the unity mix, the journal, a fader-automation plot and a summary.
"""
from __future__ import annotations

import asyncio
import json
import math
import socket
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ailive.consoles.errors import AiliveError
from ailive.consoles.sim import DeskSimulator
from ailive.models.base import GainModel
from ailive.models.registry import default_model

from ..audio import FileSource
from ..engine import EngineStatus
from ..journal import Journal
from ..remote.web import WebAddress, WebSurface, listen
from ..rig import open_rig
from ..runner import open_model
from ..show import Show, load_show
from ..ui import headless_log, live_view

#: The demo's shows and multitrack, shipped in the package (the checkout's ``examples/`` links here).
EXAMPLES = Path(str(resources.files("ailive.bridge") / "examples"))
READ_IN_S = 2.0
ENGINEER_PUSH_DB = -3.0


class DemoError(AiliveError):
    """The demo cannot run as asked."""


@dataclass
class DemoOptions:
    desk: str = "x32"
    model: str = field(default_factory=default_model)
    out: Path = Path("ailive-demo")
    headless: bool = False
    multitrack: Path = EXAMPLES / "multitrack"
    engineer_at_s: float = 10.0
    web: WebAddress | None = None  # serve the web control surface here (the demo then plays in real time)


@dataclass
class Automation:
    """The faders the desk held after every control step, on the audio clock."""

    times_s: list[float] = field(default_factory=list)
    faders_db: list[list[float]] = field(default_factory=list)  # (steps, channels)
    armed_at_s: float = math.nan
    engineer_at_s: float = math.nan


@dataclass
class DemoSummary:
    desk: str
    model: str
    seconds: float
    moves: int
    desk_writes: int
    writes_per_minute: float
    engineer_moves: int
    final_faders_db: dict[str, float]
    gain_error_db: dict[str, float]  # median / max |fader - target| after the common offset, bridge vs raw
    latency_ms: dict[str, float]
    files: dict[str, str]


def demo_show(desk: str) -> Show:
    path = EXAMPLES / f"{desk}-demo.toml"
    if not path.exists():
        known = sorted(p.name.removesuffix("-demo.toml") for p in EXAMPLES.glob("*-demo.toml"))
        raise DemoError(f"no demo for desk {desk!r}; demos exist for: {', '.join(known)}")
    return load_show(path)


def _engineer_channel(show: Show) -> int:
    """The vocal when there is one: the fader an engineer reaches for first."""
    for c in show.channels:
        if c.mode == "auto" and "vo" in c.name.lower():
            return c.desk_channel
    return next(c.desk_channel for c in show.channels if c.mode == "auto")


async def run_demo(options: DemoOptions) -> DemoSummary:
    show = demo_show(options.desk)
    if not options.multitrack.is_dir():
        raise DemoError(f"the demo multitrack is missing ({options.multitrack}); render it: python examples/render_multitrack.py")
    interactive = not options.headless and sys.stdout.isatty()
    realtime = interactive or options.web is not None  # a page is watched at the music's pace
    options.out.mkdir(parents=True, exist_ok=True)
    model = open_model(options.model)
    web_socket = listen(options.web) if options.web is not None else None  # a port in use stops here
    try:
        return await _run_demo(options, show, model, interactive, realtime, web_socket)
    finally:
        if web_socket is not None:
            web_socket.close()


async def _run_demo(options: DemoOptions, show: Show, model: GainModel, interactive: bool, realtime: bool,
                    web_socket: socket.socket | None) -> DemoSummary:
    source = FileSource.from_directory(options.multitrack, realtime=realtime)
    if len(source.channel_names) != len(show.channels):
        raise DemoError(f"{options.multitrack} has {len(source.channel_names)} files, the demo show maps {len(show.channels)}")
    automation = Automation()
    engineer_channel = _engineer_channel(show)

    def name_channels(desk: DeskSimulator, show: Show) -> None:
        for c in show.channels:
            desk.set_name(c.desk_channel, c.name[: show.profile.name_param.max_length])

    journal = Journal(options.out / "journal", show.name)
    async with open_rig(show, source, model, journal, simulated=True, prepare_desk=name_channels) as rig:
        engine, driver, desk, show = rig.engine, rig.driver, rig.desk, rig.show
        assert desk is not None

        async def on_step(elapsed_s: float) -> None:
            if not realtime:
                await driver.sync()  # on the virtual clock the desk catches up with every step
            automation.times_s.append(elapsed_s)
            automation.faders_db.append([desk.fader_db(c.desk_channel) for c in show.channels])
            if math.isnan(automation.armed_at_s) and engine.state.armed:
                automation.armed_at_s = elapsed_s
            if math.isnan(automation.engineer_at_s) and elapsed_s >= options.engineer_at_s:
                automation.engineer_at_s = elapsed_s
                desk.move_fader_db(engineer_channel, desk.fader_db(engineer_channel) + ENGINEER_PUSH_DB)
                if not realtime:
                    await driver.sync()  # the bridge hears the hand before its next step

        surface = WebSurface(engine, web_socket) if web_socket is not None else None
        if surface is not None:
            await surface.start()
            print(f"web surface: {surface.url}", flush=True)
        done = asyncio.Event()
        keys = {"a": engine.arm, "d": engine.disarm, "k": engine.kill, "q": engine.stop}
        view = (live_view(engine.refresh, keys, done, source.duration_s) if interactive
                else headless_log(engine.refresh, done, period_s=1.0))
        view_task = asyncio.create_task(view)
        try:
            status = await engine.run(arm_after_s=READ_IN_S, on_step=on_step)
        finally:
            done.set()
            await view_task
            if surface is not None:
                await surface.close()
    writes = desk.stats.total_writes()
    return _write_outputs(options, show, status, automation, writes, journal.path, engineer_channel)


def _gains_per_sample(automation: Automation, rate: int, frames: int) -> np.ndarray:
    """Fader gains as the desk applied them, ramped over each control step.  -> (channels, frames)"""
    times = np.asarray(automation.times_s)
    faders = np.asarray(automation.faders_db, dtype=np.float64).T  # (channels, steps)
    linear = np.where(np.isfinite(faders), 10.0 ** (faders / 20.0), 0.0)
    sample_times = np.arange(frames) / rate
    return np.stack([np.interp(sample_times, times, row) for row in linear])


def _read_multitrack(folder: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac"))
    channels = [sf.read(p, dtype="float32")[0] for p in paths]
    rate = sf.info(paths[0]).samplerate
    length = max(len(c) for c in channels)
    return np.stack([np.pad(c, (0, length - len(c))) for c in channels]), rate


def _gain_error(show: Show, target_path: Path, faders_db: list[float], engineer_channel: int) -> dict[str, float]:
    """|fader - target| with the common offset removed: the bridge's final faders vs unity (raw).

    The channel the engineer took over is left out: its level is the engineer's call, by design.
    """
    if not target_path.exists():
        return {}
    targets = tomllib.loads(target_path.read_text())["target"]["fader_db"]
    names = sorted(p.stem for p in target_path.parent.iterdir() if p.suffix.lower() in (".wav", ".flac"))
    pairs = [(faders_db[i], targets[name]) for i, name in enumerate(names)
             if name in targets and math.isfinite(faders_db[i]) and show.channels[i].desk_channel != engineer_channel]
    if not pairs:
        return {}

    def error(values: list[float]) -> tuple[float, float]:
        diffs = np.array([v - t for v, (_, t) in zip(values, pairs)])
        diffs -= np.median(diffs)
        return float(np.median(np.abs(diffs))), float(np.max(np.abs(diffs)))

    bridge_median, bridge_max = error([f for f, _ in pairs])
    raw_median, raw_max = error([0.0 for _ in pairs])
    return {"bridge_median": bridge_median, "bridge_max": bridge_max, "raw_median": raw_median, "raw_max": raw_max}


def _plot(path: Path, show: Show, automation: Automation) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faders = np.asarray(automation.faders_db, dtype=np.float64)
    figure, axes = plt.subplots(figsize=(10, 5), dpi=100)
    for index, c in enumerate(show.channels):
        axes.plot(automation.times_s, np.maximum(faders[:, index], -40.0), label=f"{c.desk_channel} {c.name} ({c.mode})")
    if math.isfinite(automation.armed_at_s):
        axes.axvline(automation.armed_at_s, color="red", linestyle="--", linewidth=1)
        axes.annotate("armed", (automation.armed_at_s, axes.get_ylim()[1]), color="red", va="top")
    if math.isfinite(automation.engineer_at_s):
        axes.axvline(automation.engineer_at_s, color="black", linestyle=":", linewidth=1)
        axes.annotate(f"engineer moves the vocal {ENGINEER_PUSH_DB:+g} dB", (automation.engineer_at_s, axes.get_ylim()[0]), va="bottom")
    axes.set_xlabel("time (s)")
    axes.set_ylabel("fader (dB)")
    axes.set_title(f"ailive demo: fader automation on the {show.profile.name} simulator")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _write_outputs(options: DemoOptions, show: Show, status: EngineStatus, automation: Automation, writes: int,
                   journal_path: Path, engineer_channel: int) -> DemoSummary:
    import soundfile as sf

    signals, rate = _read_multitrack(options.multitrack)
    gains = _gains_per_sample(automation, rate, signals.shape[1])
    out = options.out
    sf.write(out / "mix.wav", np.sum(signals * gains, axis=0).astype(np.float32), rate, subtype="FLOAT")
    sf.write(out / "raw.wav", np.sum(signals, axis=0).astype(np.float32), rate, subtype="FLOAT")
    _plot(out / "faders.png", show, automation)
    seconds = signals.shape[1] / rate
    final = automation.faders_db[-1] if automation.faders_db else [math.nan] * len(show.channels)
    summary = DemoSummary(
        desk=show.profile.name, model=status.model, seconds=round(seconds, 2), moves=status.moves, desk_writes=writes,
        writes_per_minute=round(writes / (seconds / 60.0), 1), engineer_moves=status.engineer_moves,
        final_faders_db={c.name: round(db, 2) if math.isfinite(db) else -999.0 for c, db in zip(show.channels, final)},
        gain_error_db={k: round(v, 2) for k, v in _gain_error(show, options.multitrack / "target.toml", final, engineer_channel).items()},
        latency_ms={k: round(v, 3) for k, v in status.latency_ms.items()},
        files={"mix": str(out / "mix.wav"), "raw": str(out / "raw.wav"), "plot": str(out / "faders.png"),
               "journal": str(journal_path), "summary": str(out / "summary.json")},
    )
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2, allow_nan=False, default=str))
    return summary
