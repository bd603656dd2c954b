"""Typed errors with the context a user needs to fix the cause.

Every error a user can cause derives from :class:`AiliveError`, so the command
line prints its message as one line and exits non-zero instead of a traceback.
"""
from __future__ import annotations


class AiliveError(Exception):
    """Base of every error the user can act on."""


class SchemaError(AiliveError):
    """A TOML file does not match its schema: carries file, key, what was expected and what was found."""

    def __init__(self, path: str, key: str, expected: str, got: object | None = None) -> None:
        self.path = path
        self.key = key
        self.expected = expected
        self.got = got
        got_text = "" if got is None else f", got {got!r}"
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: expected {expected}{got_text}")


class ProfileError(AiliveError):
    """A desk profile is unknown or malformed."""


class ProfileSchemaError(SchemaError, ProfileError):
    """A key of a desk profile is wrong."""


class ShowFileError(SchemaError):
    """A key of a show file is wrong."""


class DeskError(AiliveError):
    """Talking to a desk failed; carries the address tried."""

    def __init__(self, message: str, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(f"{message} ({host}:{port})")


class DeskUnreachableError(DeskError):
    """Nothing answered at the desk address within the timeout."""


class DeskIdentityError(DeskError):
    """Something answered, but it is not the desk family the profile describes."""


class OscDecodeError(AiliveError):
    """A datagram is not a well-formed OSC message."""
