"""The control path's vocabulary: channel modes, hold reasons, commands and their outcomes, as types.

Code decides on these; people read their text. A hold is a :class:`Hold`
member whose value is the sentence the journal, the live view and the page
show (``"held: desk lost"``) and whose :attr:`Hold.code` is what a program
tests (``desk_lost``). A command is a small frozen object handed to
:meth:`Engine.submit`; the engine resolves its future with an
:class:`Outcome` once the control step that applied (or refused) it has run.
Nothing here does IO or reads a clock, so the policy may use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class Mode(StrEnum):
    """A channel's mode (the show file's ``mode``): the bridge rides only ``auto``."""

    AUTO = "auto"
    MANUAL = "manual"
    EXCLUDED = "excluded"


class Hold(StrEnum):
    """Why a fader (or every fader) is held where it is; the value is the text for people."""

    DESK_LOST = "held: desk lost"
    STALE_AUDIO = "held: stale audio"
    MODEL_ERROR = "held: model error"
    FADER_UNKNOWN = "held: fader unknown"
    MUTE_UNKNOWN = "held: mute unknown"
    MUTED = "held: muted"
    FADER_OFF = "held: fader off"
    ABOVE_CEILING = "held: above ceiling"
    OVERRIDE = "held: override"
    SILENCE = "held: silence"
    GROUP = "held: group"  # a linked group with a member that may not be written
    SETTLING = "held: settling"  # mapping = "keep": waiting for the model to settle before learning the balance

    @property
    def code(self) -> str:
        """The short name a program tests (``desk_lost``), stable when the text is reworded."""
        return self.name.lower()

    @property
    def text(self) -> str:
        """The reason without the ``held:`` lead, for a sentence that says "held" itself."""
        return self.value.removeprefix("held: ")


def hold_code(reason: object) -> str:
    """The :attr:`Hold.code` of a reason that is a hold, ``""`` for any other reason (a mode, a move, "disarmed")."""
    return reason.code if isinstance(reason, Hold) else ""


@dataclass(frozen=True)
class Arm:
    """Arm: snapshot the desk durably, then ride."""

    origin: str = "local"  # who asked: local (keyboard), mqtt, web
    name: ClassVar[str] = "arm"  # as the journal records it
    event: ClassVar[str] = "armed"  # the policy event that shows it took effect

    @property
    def args(self) -> tuple[object, ...]:
        return ()


@dataclass(frozen=True)
class Disarm:
    """Stop writing; every fader stays where it is."""

    origin: str = "local"
    name: ClassVar[str] = "disarm"
    event: ClassVar[str] = "disarmed"

    @property
    def args(self) -> tuple[object, ...]:
        return ()


@dataclass(frozen=True)
class Kill:
    """Put every fader the bridge wrote back to its arm-time snapshot, and disarm."""

    origin: str = "local"
    name: ClassVar[str] = "kill"
    event: ClassVar[str] = "killed"

    @property
    def args(self) -> tuple[object, ...]:
        return ()


@dataclass(frozen=True)
class SetMode:
    """Set one desk channel's mode for the rest of the show."""

    channel: int
    mode: Mode
    origin: str = "local"
    name: ClassVar[str] = "mode"
    event: ClassVar[str] = "mode"

    @property
    def args(self) -> tuple[object, ...]:
        return (self.channel, str(self.mode))


Command = Arm | Disarm | Kill | SetMode


@dataclass(frozen=True)
class Outcome:
    """What became of a command, as the control step that took it left things."""

    applied: bool  # False: refused, and nothing changed
    detail: str  # the policy's word on it ("no change" when it changed nothing), or why it was refused
    armed: bool  # armed after the step
    mode: Mode | None = None  # for SetMode: the channel's mode after the step
