"""Commands about desks: the profiles, a simulator, checking a show's desk, drafting a show file from one."""
from __future__ import annotations

import asyncio
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import click

from ailive.consoles.faderlaw import describe
from ailive.consoles.profile import (Profile, dump_toml, get_profile, load_profile_file, load_profile_files,
                                     load_profiles, resolved_table)
from ailive.consoles.show import split_host_port

from .common import load_show_or_fail, profile_dirs_of, profile_dirs_option, run_async
from .fail import fail
from .inspect import inspect_desk, inspect_jack
from .tables import print_check, print_profiles


@click.group(invoke_without_command=True)
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
    print_profiles(rows)


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
    table = resolved_table(name, profile_dirs_of(ctx, profile_dirs))
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
    results = load_profile_files(list(files), profile_dirs_of(ctx, profile_dirs))
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


@click.command()
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
    run_async(lambda: _serve_simulator(profile, host, port, channels))


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


@click.command()
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
    show = load_show_or_fail(show_file, desk, profile_dirs)
    report = run_async(lambda: inspect_desk(show, timeout_s))
    report["jack"] = inspect_jack(show, jack_server)
    problems = report["problems"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_check(report)
    if problems or report["jack"]["missing"]:
        sys.exit(1)


@click.command()
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
    from ..init.init_show import InitOptions, init_show

    dirs = list(profile_dirs)
    candidates = [get_profile(profile_name, dirs)] if profile_name else list(load_profiles(dirs).values())
    try:
        host, port = split_host_port(desk, candidates[0].port if profile_name else 0, "--desk")
    except ValueError as exc:
        fail(str(exc), 2)
    options = InitOptions(show_file, host, port or None, candidates, force, jack_server, timeout_s, dirs)
    result = run_async(lambda: init_show(options))
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
