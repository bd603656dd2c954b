"""What the commands share: running a coroutine, the --profiles folders, loading a show, addresses, numbers."""
from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console

from ailive.consoles.show import parse_address

from ..show import Show, load_show
from .fail import fail


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def run_async(coro_factory: Callable[[], Any]) -> Any:
    """Run a coroutine, turning Ctrl-C into a quiet exit (user errors go to the one boundary, :class:`ErrorBoundary`)."""
    try:
        return asyncio.run(coro_factory())
    except KeyboardInterrupt:
        sys.exit(130)


def format_db(db: float) -> str:
    if math.isnan(db):
        return "?"
    return "-inf" if db == -math.inf else f"{db:+.2f} dB"


def profile_dirs_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--profiles DIR`` (repeatable): more profile folders, searched last (docs/profiles.md)."""
    return click.option("--profiles", "profile_dirs", multiple=True, metavar="DIR",
                        type=click.Path(exists=True, file_okay=False, path_type=Path),
                        help="Also load desk profiles from this folder (repeatable; later ones override by name).")(command)


def profile_dirs_of(ctx: click.Context, profile_dirs: tuple[Path, ...]) -> list[Path]:
    """The group's --profiles folders, then the subcommand's."""
    return [*((ctx.obj or {}).get("profile_dirs", ())), *profile_dirs]


def load_show_or_fail(path: str, desk: str | None, profile_dirs: tuple[Path, ...] = ()) -> Show:
    show = load_show(path, list(profile_dirs))
    if desk:
        try:
            show = show.with_desk(parse_address(desk, show.profile.port))
        except ValueError as exc:
            fail(f"--desk: {exc}", 2)
    return show


def web_address(text: str | None) -> Any:
    """``--web [HOST:]PORT`` parsed, or a usage error; None when not given."""
    if text is None:
        return None
    from ..remote.web import parse_web_address

    try:
        return parse_web_address(text)
    except ValueError as exc:
        fail(f"--web: {exc}", 2)


def wall_time(time_s: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(time_s).isoformat(sep=" ", timespec="seconds")
