"""The command line's one error boundary: one line on stderr, a non-zero exit, never a traceback.

Every error a user can cause derives from one of two bases, one per package
that raises them (``consoles`` and ``bridge``: :class:`AiliveError`;
``models``: :class:`ModelError`). Commands let them rise; the group below
catches them, so no command needs its own ``except``. Anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from ailive.consoles.errors import AiliveError
from ailive.models.errors import ModelError

#: What a user can cause and act on, as opposed to a bug.
USER_ERRORS: tuple[type[Exception], ...] = (AiliveError, ModelError)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"ailive: error: {message}", err=True)
    sys.exit(code)


class ErrorBoundary(click.Group):
    """A click group whose subcommands' user errors end as one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            fail(str(exc))
