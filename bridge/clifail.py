"""The one way a command reports a user error: one line on stderr, a non-zero exit, never a traceback."""
from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"ailive: error: {message}", err=True)
    sys.exit(code)
