"""Commands that run the bridge: a show, a restore after a crash, the demo."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ailive.models.registry import default_model

from .common import console, format_db, load_show_or_fail, profile_dirs_option, run_async, wall_time, web_address
from .fail import fail


@click.command()
@click.argument("show_file", type=click.Path(dir_okay=False))
@click.option("--source", default="jack", show_default=True, metavar="jack|DIR",
              help="Tap the show's JACK ports, or play a folder of per-channel WAV/FLAC files (sorted by name).")
@click.option("--desk", "desk", metavar="HOST[:PORT]", help="Ride this desk instead of the show file's (a simulator, a spare).")
@click.option("--arm", is_flag=True, help="Arm after a short read-in (default: start disarmed; press a to arm).")
@click.option("--arm-after", "arm_after_s", type=click.FloatRange(0.0, 600.0), default=1.0, show_default=True,
              help="Seconds of audio to read before --arm takes effect.")
@click.option("--duration", "duration_s", type=click.FloatRange(0.1), default=None, help="Stop after this many seconds.")
@click.option("--model", default=default_model(), show_default=True, metavar="alm-mr|unity|dugan|loudness|PATH",
              help="The gain model: a name, or an exported model folder.")
@click.option("--journal", "journal_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ailive-journal"),
              show_default=True, help="Where the move journal and the arm snapshot are written.")
@click.option("--jack-server", default=None, help="Name of the JACK server (default: the default server).")
@click.option("--fast", is_flag=True, help="With a folder source: play as fast as possible on a virtual clock.")
@click.option("--headless", is_flag=True, help="No live view: one status line per second.")
@click.option("--mqtt", "mqtt", metavar="HOST[:PORT]",
              help="Publish telemetry to this MQTT broker and take commands from it (overrides the show's [mqtt] host; "
                   "credentials, TLS and token still come from the show file).")
@click.option("--web", "web", metavar="[HOST:]PORT",
              help="Serve the web control surface (docs/web.md) here; a bare PORT listens on this machine only. "
                   "Commands need the show's [mqtt] token, or AILIVE_WEB_TOKEN, when one is set.")
@click.option("--web-host", "web_hosts", multiple=True, metavar="NAME",
              help="Another name (or address) the web surface is reached by, besides this machine's own; repeatable. "
                   "Requests naming anything else are refused.")
@profile_dirs_option
def run(show_file: str, source: str, desk: str | None, arm: bool, arm_after_s: float, duration_s: float | None, model: str,
        journal_dir: Path, jack_server: str | None, fast: bool, headless: bool, mqtt: str | None, web: str | None,
        web_hosts: tuple[str, ...], profile_dirs: tuple[Path, ...]) -> None:
    """Ride the faders of the show file's desk.

    Starts disarmed unless --arm is given: it reads the desk and proposes,
    but moves nothing. Ctrl-C disarms and leaves every fader where it is.
    With --mqtt (or an [mqtt] block) it publishes state, levels and moves and
    takes arm, disarm, kill and channel-mode commands (docs/mqtt.md); it
    runs on when the broker is missing or goes away.

    \b
    Examples:
      ailive run show.toml --arm
      ailive run examples/x32-demo.toml --source stems/ --desk 127.0.0.1:10023 --arm --headless
      ailive run examples/x32-demo.toml --source examples/multitrack --desk 127.0.0.1:10023 --mqtt 127.0.0.1:1883
      ailive run show.toml --web 8765
    """
    from ..runner import RunOptions, run_show
    from ..remote.telemetry import parse_broker

    show = load_show_or_fail(show_file, desk, profile_dirs)
    broker = None
    if mqtt is not None:
        try:
            broker = parse_broker(mqtt, show.mqtt.port)
        except ValueError as exc:
            fail(f"--mqtt: {exc}", 2)
    options = RunOptions(source=source, model=model, journal_dir=journal_dir, arm=arm, arm_after_s=arm_after_s,
                         duration_s=duration_s, headless=headless, jack_server=jack_server, realtime=not fast, mqtt=broker,
                         web=web_address(web), web_token=os.environ.get("AILIVE_WEB_TOKEN") or show.mqtt.token,
                         web_hosts=web_hosts)
    status = run_async(lambda: run_show(show, options))
    click.echo(f"stopped: {status.steps} steps, {status.moves} moves, {status.engineer_moves} engineer moves, "
               f"{status.xruns} xruns; journal in {journal_dir}", err=True)


@click.command()
@click.argument("show_file", type=click.Path(dir_okay=False))
@click.option("--desk", "desk", metavar="HOST[:PORT]", help="Restore onto this desk instead of the show file's.")
@click.option("--journal", "journal_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ailive-journal"),
              show_default=True, help="The journal directory the bridge ran with.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.05, 30.0), default=0.5, show_default=True,
              help="Seconds to wait for each answer (three tries).")
@profile_dirs_option
def restore(show_file: str, desk: str | None, journal_dir: Path, timeout_s: float, profile_dirs: tuple[Path, ...]) -> None:
    """Put the faders back where they were when the bridge last armed.

    Works from the journal on disk, so it also works after a crash or a
    SIGKILL. The snapshot must be this show's (desk, address, channel map)
    and every level one the desk can hold, else nothing is written.
    Manual and excluded faders the bridge never wrote are the engineer's and
    are left alone. Every fader it writes is read back; a mismatch
    is a non-zero exit.

    \b
    Example:
      ailive restore show.toml --journal ailive-journal
    """
    from ..restore import restore_show

    show = load_show_or_fail(show_file, desk, profile_dirs)
    result = run_async(lambda: restore_show(show, journal_dir, timeout_s))
    out = console()
    out.print(f"restored the snapshot of {result.snapshot.show} taken at {wall_time(result.snapshot.time_s)} "
                  f"onto {show.desk}:")
    for ch, db in sorted(result.restored.items()):
        marker = "  MISMATCH" if ch in result.failed else ""
        out.print(f"  ch {ch:>2}: {format_db(db)} (snapshot {format_db(result.snapshot.faders_db[ch])}){marker}")
    for ch in result.skipped:
        out.print(f"  ch {ch:>2}: left alone (manual or excluded, never written by the bridge: the engineer's)")
    if result.failed:
        fail(f"{len(result.failed)} faders did not take the snapshot value: {', '.join(map(str, result.failed))}")


@click.command()
@click.option("--headless", is_flag=True, help="No live view, no waiting: play as fast as possible on a virtual clock.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ailive-demo"),
              show_default=True, help="Where mix.wav, raw.wav, the journal, faders.png and summary.json go.")
@click.option("--desk", default="x32", show_default=True, help="Which built-in desk simulator to ride.")
@click.option("--model", default=default_model(), show_default=True, metavar="alm-mr|unity|dugan|loudness|PATH",
              help="The gain model: a name, or an exported model folder.")
@click.option("--multitrack", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Another folder of per-channel files (default: the shipped example).")
@click.option("--web", "web", metavar="[HOST:]PORT",
              help="Serve the web control surface here (default with the live view: a free port on 127.0.0.1; "
                   "with --headless the demo then plays in real time).")
@click.option("--no-web", is_flag=True, help="No web control surface.")
def demo(headless: bool, out_dir: Path, desk: str, model: str, multitrack: Path | None, web: str | None,
         no_web: bool) -> None:
    """Run the whole bridge on the example multitrack against a built-in desk simulator.

    Needs no desk, no sound card and no broker. Arms after a short read-in,
    has a scripted engineer grab the vocal fader to show the back-off, and
    writes the mix as the desk would sound, the unity mix, the move journal,
    a fader-automation plot and a summary.

    \b
    Examples:
      ailive demo
      ailive demo --headless --out /tmp/demo
      ailive demo --web 0.0.0.0:8765
    """
    from ..offline.demo import DemoOptions, run_demo

    if no_web and web is not None:
        fail("--web and --no-web: give one of them", 2)
    if web is None and not no_web and not headless and sys.stdout.isatty():
        web = "127.0.0.1:0"  # the live view's demo shows the page too, on a port that is surely free
    options = DemoOptions(desk=desk, model=model, out=out_dir, headless=headless, web=web_address(web))
    if multitrack is not None:
        options.multitrack = multitrack
    summary = run_async(lambda: run_demo(options))
    error = summary.gain_error_db
    click.echo(f"demo done: {summary.seconds:g} s of audio on the {summary.desk} simulator with the {summary.model} model")
    click.echo(f"  {summary.moves} fader moves, {summary.desk_writes} desk writes ({summary.writes_per_minute:g} per minute), "
               f"{summary.engineer_moves} engineer move(s) respected")
    if error:
        click.echo(f"  gain error vs the target balance (channels the engineer left to the bridge): median {error['bridge_median']:.1f} dB, max {error['bridge_max']:.1f} dB "
                   f"(unity faders: median {error['raw_median']:.1f} dB, max {error['raw_max']:.1f} dB)")
    for name, path in summary.files.items():
        click.echo(f"  {name:8} {path}")
