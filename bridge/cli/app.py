"""The ``ailive`` command line: the group and its commands.

Every mistake a user can make ends in one readable line on stderr and a
non-zero exit (1: something is wrong with the input or the desk; 2: usage),
never a traceback, and never a fader moved (``fail.ErrorBoundary``).
"""
from __future__ import annotations

import logging
import sys
from importlib.metadata import PackageNotFoundError, version

import click

from .desk import check, init, profiles, sim
from .fail import ErrorBoundary
from .model import eval_command, export_command, train_command
from .show import demo, restore, run


def _version() -> str:
    try:
        return version("ailive-bridge")
    except PackageNotFoundError:
        return "0+unknown"


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


for command in (profiles, sim, check, init, run, restore, demo, eval_command, train_command, export_command):
    main.add_command(command)
