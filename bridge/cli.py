"""The ``ailive`` command line.

Every mistake a user can make ends in one readable line on stderr and a
non-zero exit (1: something is wrong with the input or the desk; 2: usage),
never a traceback, and never a fader moved.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import shlex
import signal
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table

from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.faderlaw import describe
from ailive.consoles.profile import (Profile, dump_toml, get_profile, load_profile_file, load_profile_files,
                                     load_profiles, resolved_table)
from ailive.consoles.show import Show, load_show, parse_address, split_host_port
from ailive.models.registry import default_model

from .cli_model import export_command, train_command
from .clifail import ErrorBoundary, fail


def _version() -> str:
    try:
        return version("ailive-bridge")
    except PackageNotFoundError:
        return "0+unknown"


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _run_async(coro_factory: Callable[[], Any]) -> Any:
    """Run a coroutine, turning Ctrl-C into a quiet exit (user errors go to the one boundary, :class:`ErrorBoundary`)."""
    try:
        return asyncio.run(coro_factory())
    except KeyboardInterrupt:
        sys.exit(130)


def _format_db(db: float) -> str:
    if math.isnan(db):
        return "?"
    return "-inf" if db == -math.inf else f"{db:+.2f} dB"


@click.group(cls=ErrorBoundary, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="ailive", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Automatic mixing bridge: listens to a desk's inputs and rides its faders over OSC.

    \b
    Examples:
      ailive profiles
      ailive sim x32 --port 10023
      ailive check show.toml --desk 127.0.0.1:10023
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="ailive: %(levelname)s: %(message)s", stream=sys.stderr)


def profile_dirs_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--profiles DIR`` (repeatable): more profile folders, searched last (docs/profiles.md)."""
    return click.option("--profiles", "profile_dirs", multiple=True, metavar="DIR",
                        type=click.Path(exists=True, file_okay=False, path_type=Path),
                        help="Also load desk profiles from this folder (repeatable; later ones override by name).")(command)


def _dirs(ctx: click.Context, profile_dirs: tuple[Path, ...]) -> list[Path]:
    """The group's --profiles folders, then the subcommand's."""
    return [*((ctx.obj or {}).get("profile_dirs", ())), *profile_dirs]


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@profile_dirs_option
@click.pass_context
def profiles(ctx: click.Context, as_json: bool, profile_dirs: tuple[Path, ...]) -> None:
    """List the desk profiles this bridge speaks (built-in, user, --profiles folders).

    \b
    Examples:
      ailive profiles --json
      ailive profiles show x32 > ~/.config/ailive/profiles/mydesk.toml
      ailive profiles validate mydesk.toml
    """
    ctx.obj = {"profile_dirs": tuple(profile_dirs)}
    if ctx.invoked_subcommand is not None:
        return
    found = load_profiles(list(profile_dirs))
    rows = [_profile_row(p) for p in found.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Desk profiles")
    for column in ("name", "vendor", "transport/port", "channels", "fader law", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["vendor"], f"{row['transport']}/{row['port']}", str(row["channels"]),
                      row["fader_law"], row["source_kind"] if row["source_kind"] == "built-in"
                      else f"{row['source_kind']}: {row['source']}")
    _console().print(table)


@profiles.command("show")
@click.argument("name")
@profile_dirs_option
@click.pass_context
def profiles_show(ctx: click.Context, name: str, profile_dirs: tuple[Path, ...]) -> None:
    """Print a profile fully resolved ('extends' applied) as TOML, to copy under a new name and edit.

    \b
    Example:
      ailive profiles show x32 > ~/.config/ailive/profiles/mydesk.toml
    """
    table = resolved_table(name, _dirs(ctx, profile_dirs))
    click.echo(f"# The {table['name']} profile, resolved. Save it under a new name, change 'name', edit; see docs/profiles.md.")
    click.echo(dump_toml(table), nl=False)


@profiles.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@profile_dirs_option
@click.pass_context
def profiles_validate(ctx: click.Context, files: tuple[Path, ...], profile_dirs: tuple[Path, ...]) -> None:
    """Check profile files: one 'ok' line per good file, one error line (file, key, expected, got) per bad one.

    \b
    Example:
      ailive profiles validate ~/.config/ailive/profiles/*.toml
    """
    results = load_profile_files(list(files), _dirs(ctx, profile_dirs))
    bad = 0
    for path, result in results:
        if isinstance(result, Exception):
            bad += 1
            click.echo(f"ailive: error: {result}", err=True)
        else:
            click.echo(f"ok: {path}: profile {result.name} ({result.vendor}, {describe(result.law)})")
    if bad:
        sys.exit(1)


def _profile_row(p: Profile) -> dict[str, Any]:
    return {
        "name": p.name, "vendor": p.vendor, "transport": p.transport, "port": p.port,
        "channels": p.channels, "fader_law": describe(p.law), "models": list(p.models), "source": p.source,
        "source_kind": p.source_kind,
    }


@main.command()
@click.argument("desk", required=False)
@click.option("--profile", "profile_ref", metavar="FILE|NAME", help="Simulate this profile file (or profile name) instead of DESK.")
@profile_dirs_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="UDP port (default: the desk's own; 0 picks a free one).")
@click.option("--channels", type=click.IntRange(1, 256), default=None, help="Input channels (default: the desk's).")
def sim(desk: str | None, profile_ref: str | None, profile_dirs: tuple[Path, ...], host: str, port: int | None,
        channels: int | None) -> None:
    """Run a desk simulator in the foreground until Ctrl-C or SIGTERM.

    It answers stock OSC clients like the desk would. Prints one line with its
    address when ready.

    \b
    Example:
      ailive sim x32 --port 10023
      ailive sim --profile mydesk.toml --port 0
    """
    if (desk is None) == (profile_ref is None):
        fail("give a DESK name or --profile FILE|NAME (one of them)", 2)
    ref = desk or profile_ref
    assert ref is not None
    if profile_ref is not None and Path(ref).is_file():
        profile = load_profile_file(Path(ref), list(profile_dirs))
    else:
        profile = get_profile(ref, list(profile_dirs))
    _run_async(lambda: _serve_simulator(profile, host, port, channels))


async def _serve_simulator(profile: Profile, host: str, port: int | None, channels: int | None) -> None:
    from ailive.consoles.sim import DeskSimulator  # only ailive sim needs the simulators

    simulator = DeskSimulator(profile, host, port, channels)
    try:
        await simulator.start()
    except OSError as exc:
        fail(f"cannot listen on {host}:{simulator.port}: {exc.strerror or exc}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    actual_host, actual_port = simulator.address
    click.echo(
        f"ailive sim {profile.name}: {profile.sim.model} simulator listening on {actual_host}:{actual_port} "
        f"(UDP, {simulator.channels} channels); Ctrl-C stops",
        nl=True,
    )
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def _load_show_or_fail(path: str, desk: str | None, profile_dirs: tuple[Path, ...] = ()) -> Show:
    show = load_show(path, list(profile_dirs))
    if desk:
        try:
            show = show.with_desk(parse_address(desk, show.profile.port))
        except ValueError as exc:
            fail(f"--desk: {exc}", 2)
    return show


@main.command()
@click.argument("show_file", type=click.Path(dir_okay=False))
@click.option("--desk", "desk", metavar="HOST[:PORT]", help="Reach this desk instead of the show file's.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.05, 30.0), default=0.5, show_default=True,
              help="Seconds to wait for each answer (three tries).")
@click.option("--jack-server", default=None, help="Name of the JACK server whose ports to list (default: the default server).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@profile_dirs_option
def check(show_file: str, desk: str | None, timeout_s: float, jack_server: str | None, as_json: bool,
          profile_dirs: tuple[Path, ...]) -> None:
    """Validate a show file, reach its desk and show what the desk holds.

    Nothing is written to the desk. Exits non-zero when the show file is
    wrong, the desk does not answer, or it is not the desk the profile names.

    \b
    Example:
      ailive check examples/x32-demo.toml --desk 127.0.0.1:10023
    """
    show = _load_show_or_fail(show_file, desk, profile_dirs)
    report = _run_async(lambda: _inspect_desk(show, timeout_s))
    report["jack"] = _inspect_jack(show, jack_server)
    problems = report["problems"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_check(report)
    if problems or report["jack"]["missing"]:
        sys.exit(1)


async def _inspect_desk(show: Show, timeout_s: float) -> dict[str, Any]:
    from ailive.consoles.subscription import subscription_report

    # Reading needs no pushes, and taking a one-subscriber desk's subscription would stop another app's feedback.
    polls = (show.profile.poll_period_s if show.desk.poll_period_s is None else show.desk.poll_period_s) > 0
    driver = OscDeskDriver.for_show(show, reply_timeout_s=timeout_s, subscribe=False if polls else None)
    identity = await driver.connect()
    try:
        channels = []
        problems: list[str] = []
        notes: list[str] = []
        for mapped in show.channels:
            view = driver.view[mapped.desk_channel]
            if view.name and view.name.strip().lower() != mapped.name.strip().lower():
                notes.append(f"desk channel {mapped.desk_channel} is named {view.name!r} on the desk, {mapped.name!r} in the show file")
            if view.muted and mapped.mode == "auto":
                notes.append(f"desk channel {mapped.desk_channel} ({mapped.name}) is muted: the bridge will not write it until it is unmuted")
            channels.append({
                "desk_channel": mapped.desk_channel, "port": mapped.port, "show_name": mapped.name,
                "desk_name": view.name, "fader_db": None if math.isnan(view.fader_db) else view.fader_db,
                "fader": view.fader, "muted": view.muted, "mode": mapped.mode,
            })
        return {
            "show": show.name, "file": show.path, "profile": show.profile.name, "desk": str(show.desk),
            "model": identity.model, "firmware": identity.firmware, "desk_name": identity.name,
            "channels": channels, "problems": problems, "notes": notes,
            "subscription": subscription_report(show.profile),
        }
    finally:
        await driver.close()


def _inspect_jack(show: Show, server_name: str | None) -> dict[str, Any]:
    """Which of the show's ports a running JACK server offers; no server is a note, not a failure."""
    from .sources import AudioSourceError, jack_output_ports, match_port

    try:
        ports = jack_output_ports(server_name)
    except AudioSourceError as exc:
        return {"running": False, "note": str(exc), "ports": [], "missing": []}
    missing = []
    for mapped in show.channels:
        try:
            match_port(mapped.port, ports)
        except AudioSourceError:
            missing.append(mapped.port)
    return {"running": True, "ports": ports, "missing": missing}


@main.command()
@click.argument("show_file", type=click.Path(path_type=Path))
@click.option("--desk", "desk", required=True, metavar="HOST[:PORT]", help="The desk to read (default port: the profile's).")
@click.option("--profile", "profile_name", metavar="NAME", help="The desk's profile (default: whichever the desk answers as).")
@click.option("--force", is_flag=True, help="Replace SHOW_FILE if it exists.")
@click.option("--jack-server", default=None, help="Name of the JACK server whose capture ports to map (default: the default server).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.05, 30.0), default=0.5, show_default=True,
              help="Seconds to wait for each answer (three tries).")
@profile_dirs_option
def init(show_file: Path, desk: str, profile_name: str | None, force: bool, jack_server: str | None, timeout_s: float,
         profile_dirs: tuple[Path, ...]) -> None:
    """Write a commented show file from what a desk and the JACK server report.

    Reads the desk's identity and channel names (nothing is written to the
    desk), maps the JACK capture ports to channels by matching names, else in
    order, and sets named channels to auto, unnamed ones and talkback,
    playback or spare channels to excluded, and the policy to its safe
    defaults. Never replaces an existing file without --force.

    \b
    Examples:
      ailive init show.toml --desk 192.168.1.20
      ailive init show.toml --desk 127.0.0.1:10023 --profile x32 --force
    """
    from .init_show import InitOptions, init_show

    dirs = list(profile_dirs)
    candidates = [get_profile(profile_name, dirs)] if profile_name else list(load_profiles(dirs).values())
    try:
        host, port = split_host_port(desk, candidates[0].port if profile_name else 0, "--desk")
    except ValueError as exc:
        fail(str(exc), 2)
    options = InitOptions(show_file, host, port or None, candidates, force, jack_server, timeout_s, dirs)
    result = _run_async(lambda: init_show(options))
    survey = result.survey
    modes = {mode: sum(1 for c in result.channels if c.port and c.mode == mode) for mode in ("auto", "excluded")}
    untapped = sum(1 for c in result.channels if not c.port)
    click.echo(f"wrote {result.path}: {survey.profile.name} desk {survey.identity.model} at {survey.host}:{survey.port}, "
               f"{modes['auto']} channels auto, {modes['excluded']} excluded"
               + (f", {untapped} without a JACK port" if untapped else "")
               + ("" if result.jack_ports is not None else "; no JACK server: ports are guesses"))
    if survey.also:
        click.echo(f"note: the desk also answers as {', '.join(survey.also)}; --profile picks another")
    click.echo(f"next: check every channel, then: {shlex.join(['ailive', 'check', str(result.path)])}")


def _print_check(report: dict[str, Any]) -> None:
    console = _console()
    console.print(f"show {report['show']} ({report['file']}): valid, profile {report['profile']}")
    console.print(f"desk {report['desk']}: {report['model']} firmware {report['firmware']}, named {report['desk_name']!r}")
    table = Table(title="Mapped channels")
    for column in ("desk ch", "JACK port", "show name", "desk name", "fader", "mute", "mode"):
        table.add_column(column)
    for ch in report["channels"]:
        db = -math.inf if ch["fader_db"] is None and ch["fader"] == 0 else ch["fader_db"]
        table.add_row(str(ch["desk_channel"]), ch["port"], ch["show_name"], ch["desk_name"] or "-",
                      _format_db(math.nan if db is None else db), "muted" if ch["muted"] else "on", ch["mode"])
    console.print(table)
    console.print(f"subscription: {report['subscription']['note']}")
    jack = report["jack"]
    if jack["running"]:
        console.print(f"JACK: {len(jack['ports'])} output ports: {', '.join(jack['ports'][:8])}"
                      f"{' ...' if len(jack['ports']) > 8 else ''}")
        for port in jack["missing"]:
            console.print(f"problem: the show taps JACK port {port!r}, which this server does not offer")
    else:
        console.print(f"JACK: {jack['note']}")
    for note in report["notes"]:
        console.print(f"note: {note}")
    for problem in report["problems"]:
        console.print(f"problem: {problem}")


@main.command()
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
    from .runner import RunOptions, run_show
    from .telemetry import parse_broker

    show = _load_show_or_fail(show_file, desk, profile_dirs)
    broker = None
    if mqtt is not None:
        try:
            broker = parse_broker(mqtt, show.mqtt.port)
        except ValueError as exc:
            fail(f"--mqtt: {exc}", 2)
    options = RunOptions(source=source, model=model, journal_dir=journal_dir, arm=arm, arm_after_s=arm_after_s,
                         duration_s=duration_s, headless=headless, jack_server=jack_server, realtime=not fast, mqtt=broker,
                         web=_web_address(web), web_token=os.environ.get("AILIVE_WEB_TOKEN") or show.mqtt.token,
                         web_hosts=web_hosts)
    status = _run_async(lambda: run_show(show, options))
    click.echo(f"stopped: {status.steps} steps, {status.moves} moves, {status.engineer_moves} engineer moves, "
               f"{status.xruns} xruns; journal in {journal_dir}", err=True)


@main.command()
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
    Excluded channels are left alone. Every fader is read back; a mismatch
    is a non-zero exit.

    \b
    Example:
      ailive restore show.toml --journal ailive-journal
    """
    from .restore import restore_show

    show = _load_show_or_fail(show_file, desk, profile_dirs)
    result = _run_async(lambda: restore_show(show, journal_dir, timeout_s))
    console = _console()
    console.print(f"restored the snapshot of {result.snapshot.show} taken at {_wall(result.snapshot.time_s)} "
                  f"onto {show.desk}:")
    for ch, db in sorted(result.restored.items()):
        marker = "  MISMATCH" if ch in result.failed else ""
        console.print(f"  ch {ch:>2}: {_format_db(db)} (snapshot {_format_db(result.snapshot.faders_db[ch])}){marker}")
    for ch in result.skipped:
        console.print(f"  ch {ch:>2}: left alone (excluded: the engineer's)")
    if result.failed:
        fail(f"{len(result.failed)} faders did not take the snapshot value: {', '.join(map(str, result.failed))}")


@main.command()
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
    from .demo import DemoOptions, run_demo

    if no_web and web is not None:
        fail("--web and --no-web: give one of them", 2)
    if web is None and not no_web and not headless and sys.stdout.isatty():
        web = "127.0.0.1:0"  # the live view's demo shows the page too, on a port that is surely free
    options = DemoOptions(desk=desk, model=model, out=out_dir, headless=headless, web=_web_address(web))
    if multitrack is not None:
        options.multitrack = multitrack
    summary = _run_async(lambda: run_demo(options))
    error = summary.gain_error_db
    click.echo(f"demo done: {summary.seconds:g} s of audio on the {summary.desk} simulator with the {summary.model} model")
    click.echo(f"  {summary.moves} fader moves, {summary.desk_writes} desk writes ({summary.writes_per_minute:g} per minute), "
               f"{summary.engineer_moves} engineer move(s) respected")
    if error:
        click.echo(f"  gain error vs the target balance (channels the engineer left to the bridge): median {error['bridge_median']:.1f} dB, max {error['bridge_max']:.1f} dB "
                   f"(unity faders: median {error['raw_median']:.1f} dB, max {error['raw_max']:.1f} dB)")
    for name, path in summary.files.items():
        click.echo(f"  {name:8} {path}")


def _web_address(text: str | None) -> Any:
    """``--web [HOST:]PORT`` parsed, or a usage error; None when not given."""
    if text is None:
        return None
    from .web import parse_web_address

    try:
        return parse_web_address(text)
    except ValueError as exc:
        fail(f"--web: {exc}", 2)


def _wall(time_s: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(time_s).isoformat(sep=" ", timespec="seconds")


@main.command("eval")
@click.option("--models", "model_names", default="unity,dugan,loudness,oracle", show_default=True, metavar="NAME,...",
              help="Comma-separated models: classic names, 'oracle' (the target itself), a model folder.")
@click.option("--set", "set_spec", default="heldout", show_default=True, metavar="heldout|DIR",
              help="The held-out set (written on first use), a folder of per-channel WAV/FLAC files "
                   "(a file named 'mix' is the reference), or a folder of such folders.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ailive-eval"),
              show_default=True, help="Where results.json, results.md and the plots go.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache folder for the held-out set (default: $AILIVE_CACHE_DIR or ~/.cache/ailive).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts instead of the table.")
def eval_command(model_names: str, set_spec: str, out_dir: Path, cache_dir: Path | None, as_json: bool) -> None:
    """Score gain models on multitracks, each streamed through the bridge against a desk simulator.

    Prints the table of docs/evaluation.md (gain error, mix distance, fader
    travel, desk writes, settling) and saves it with one fader plot per
    multitrack. Rendering the synthetic held-out set needs the train extra
    (pip install 'ailive-bridge[train]'); a folder of recordings does not.

    \b
    Examples:
      ailive eval
      ailive eval --models loudness,oracle --set ./my-multitrack --json
    """
    try:
        from .evalreport import json_object, markdown_table, score, summarise, write_report
        from .evaluate import load_items, load_models, run_all
    except ImportError as exc:
        fail(f"ailive eval needs the train extra (pip install 'ailive-bridge[train]'): {exc}")
    names = [n.strip() for n in model_names.split(",") if n.strip()]
    if not names:
        fail("--models: name at least one model", 2)
    progress = (lambda line: click.echo(line, err=True)) if not as_json else (lambda line: None)
    try:
        load_models(names)  # an unknown model stops here, before any audio is read
        set_name, items = load_items(set_spec, cache_dir)
        runs = run_all(items, names, progress=progress)
        scores = {name: [score(item, runs[name][item.name]) for item in items if item.name in runs[name]] for name in names}
        summaries = {name: summarise(scores[name]) for name in names if scores[name]}
        files = write_report(out_dir, set_name, items, runs, scores, summaries)
    except ImportError as exc:
        fail(f"rendering the held-out set needs the train extra (pip install 'ailive-bridge[train]'): {exc}")
    if as_json:
        click.echo(json.dumps(json_object(summaries)))
        return
    click.echo(markdown_table(summaries, set_name), nl=False)
    click.echo(f"saved: {files['json']}, {files['markdown']} and {len(items)} plot(s) in {out_dir / 'plots'}")


main.add_command(train_command)
main.add_command(export_command)

if __name__ == "__main__":
    main()
