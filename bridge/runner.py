"""Assemble a show into a running bridge (``ailive run``)."""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ailive.consoles.errors import AiliveError
from ailive.models.base import GainModel
from ailive.models.errors import ModelError
from ailive.models.registry import default_model, load_model

from .audio import AudioSource, FileSource, JackSource
from .engine import EngineStatus
from .journal import Journal, JournalError
from .remote.telemetry import BrokerAddress, Telemetry, with_broker
from .rig import Rig, open_rig
from .show import Show
from .ui import headless_log, live_view

if TYPE_CHECKING:
    from .remote.web import WebAddress

log = logging.getLogger(__name__)


#: Real-time priority for the control loop's thread: above every ordinary process, below
#: JACK's threads (a default jackd runs at 10, its clients, the tap among them, at 5).
CONTROL_LOOP_RT_PRIORITY = 1


def raise_control_loop_priority() -> bool:
    """Let ordinary processes no longer delay a control step (and so the fader moves).

    Below JACK's client threads: at the same SCHED_FIFO priority the tap's
    callback, sharing a core with a control step, would wait for the whole
    step. Best effort: without the right to do it (not root, no rtprio
    limit), nothing changes. The loop sleeps most of the time, so it never
    takes a core away from anything for long.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(CONTROL_LOOP_RT_PRIORITY))
    except (AttributeError, OSError) as exc:
        log.info("control loop stays at normal priority (%s)", exc)
        return False
    log.info("control loop runs at real-time priority %d", CONTROL_LOOP_RT_PRIORITY)
    return True


def quiet_garbage_collector() -> None:
    """Collect once, then freeze everything alive into a generation the collector never scans again.

    A full collection over the ~80,000 objects the bridge holds after start-up
    takes ~20 ms: two fifths of a control frame added to whichever step it
    happened to run in. Objects made later are few and short-lived.
    """
    gc.collect()
    gc.freeze()


class RunError(AiliveError):
    """The bridge cannot start as asked."""


def open_model(name: str) -> GainModel:
    """A model by name or folder, or a RunError saying in one line why it cannot be used."""
    try:
        return load_model(name)
    except ModelError as exc:
        raise RunError(str(exc)) from None


def open_source(show: Show, source: str, *, jack_server: str | None = None, realtime: bool = True) -> AudioSource:
    """``jack`` taps the show's JACK ports; anything else is a folder of per-channel files."""
    if source == "jack":
        return JackSource([c.name for c in show.channels], [c.port for c in show.channels],
                          client_name=f"ailive-{show.name}", server_name=jack_server)
    files = FileSource.from_directory(Path(source), realtime=realtime)
    if len(files.channel_names) != len(show.channels):
        raise RunError(f"{source} holds {len(files.channel_names)} audio files but the show maps {len(show.channels)} channels "
                       f"(one file per [[channel]], matched in sorted filename order)")
    return files


@dataclass
class RunOptions:
    source: str = "jack"
    model: str = field(default_factory=default_model)
    journal_dir: Path = Path("ailive-journal")
    arm: bool = False
    arm_after_s: float = 1.0
    duration_s: float | None = None
    headless: bool = False
    jack_server: str | None = None
    realtime: bool = True
    mqtt: BrokerAddress | None = None  # --mqtt: telemetry on this broker, overriding the show's [mqtt] host
    web: WebAddress | None = None  # --web: serve the web control surface here
    web_token: str = ""  # commands from the web surface must carry it when set
    web_hosts: tuple[str, ...] = ()  # --web-host: more names the web surface may be reached by


async def run_show(show: Show, options: RunOptions) -> EngineStatus:
    """Run the bridge for one show until the duration, the end of the files, or SIGINT/SIGTERM."""
    web_socket = None
    if options.web is not None:
        from .remote.web import listen  # aiohttp is loaded only for a show that serves the web surface

        web_socket = listen(options.web)  # a port in use stops here, before the desk
    try:
        return await _run_show(show, options, web_socket)
    finally:
        if web_socket is not None:
            web_socket.close()


async def _run_show(show: Show, options: RunOptions, web_socket: socket.socket | None) -> EngineStatus:
    model = open_model(options.model)
    source = open_source(show, options.source, jack_server=options.jack_server, realtime=options.realtime)
    closing: JournalError | None = None
    status: EngineStatus | None = None
    try:
        async with open_rig(show, source, model, Journal.for_show(options.journal_dir, show)) as rig:
            quiet_garbage_collector()
            if source.realtime and options.source == "jack":
                raise_control_loop_priority()
            status = await _serve(rig, options, web_socket)
    except JournalError as exc:
        if status is None:  # the journal never opened: nothing ran, the desk was never reached
            raise
        closing = exc  # closing it failed after the show: said below, as a failed journal
    failed = status.journal_error or (str(closing) if closing is not None else "")
    if failed:
        raise RunError(f"{failed}: the bridge disarmed and refused to arm (no restore without a journal)")
    return status


async def _serve(rig: Rig, options: RunOptions, web_socket: socket.socket | None) -> EngineStatus:
    """Run the engine with what watches and steers it: telemetry, the web surface, the live view, signals."""
    engine, show = rig.engine, rig.show
    mqtt = show.mqtt if options.mqtt is None else with_broker(show.mqtt, options.mqtt)
    telemetry = Telemetry(engine, mqtt) if mqtt.enabled else None  # connects in the background; no broker, no harm
    if telemetry is not None:
        telemetry.start()
    surface = None
    if web_socket is not None:
        from .remote.web import WebSurface

        surface = WebSurface(engine, web_socket, token=options.web_token, hosts=options.web_hosts)
        await surface.start()
        print(f"web surface: {surface.url}", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, engine.stop)
    done = asyncio.Event()
    interactive = not options.headless and sys.stdout.isatty()
    view = (live_view(engine.refresh, {"a": engine.arm, "d": engine.disarm, "k": engine.kill, "q": engine.stop}, done)
            if interactive else headless_log(engine.refresh, done))
    view_task = asyncio.create_task(view)
    try:
        return await engine.run(options.duration_s, options.arm_after_s if options.arm else None)
    finally:
        done.set()
        await view_task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if telemetry is not None:
            await telemetry.close()  # the last events and "online": false, bounded in time
        if surface is not None:
            await surface.close()
