"""Fader laws: how a desk's fader value maps to dB, and which value the desk really holds.

A desk quantizes what it receives, so every comparison the bridge makes
(deadband, echo matching, override detection) is made against
:meth:`FaderLaw.quantize` of a value, never against the value sent.
This module is the only place these formulas live.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

from .errors import ProfileError

#: Position rules of 0..1 desks: which step a float lands on.
#: ``int_1023_5`` is ``int(f * (steps - 0.5))`` (Maillot's corrected X32 rule),
#: ``round`` is ``round(f * (steps - 1))``.
QuantizeRule = Callable[[float, int], int]

QUANTIZE_RULES: dict[str, QuantizeRule] = {
    "int_1023_5": lambda f, steps: int(f * (steps - 0.5)),
    "round": lambda f, steps: int(math.floor(f * (steps - 1) + 0.5)),
}


class FaderLaw(Protocol):
    """What the driver, the simulator and the policy need from a desk's fader."""

    name: str
    min_db: float  # lowest audible level; below it the fader is off
    max_db: float

    def to_db(self, value: float) -> float:
        """dB for a wire value; ``-inf`` when the fader is off."""

    def from_db(self, db: float) -> float:
        """Wire value for a level in dB, clamped to the law's range; ``-inf`` gives off."""

    def quantize(self, value: float) -> float:
        """The wire value the desk will hold after receiving ``value``."""

    def step_of(self, value: float) -> int:
        """Index of the step the desk will hold; equal steps mean equal faders."""

    def value_of_step(self, step: int) -> float:
        """The wire value the desk holds at ``step``."""

    @property
    def off_value(self) -> float:
        """Wire value of a fader pulled all the way down."""

    @property
    def wire_range(self) -> tuple[float, float]:
        """Lowest and highest wire value the desk can hold; a report outside it is clamped."""


# X32 piecewise law: (lowest f of the segment, dB per unit f, dB at f = 0 of the segment line)
_X32_SEGMENTS: tuple[tuple[float, float, float], ...] = (
    (0.5, 40.0, -30.0),
    (0.25, 80.0, -50.0),
    (0.0625, 160.0, -70.0),
    (0.0, 480.0, -90.0),
)


class _Stepped:
    """A desk holds steps: quantizing is taking the value of the step a value lands on."""

    def quantize(self, value: float) -> float:
        return self.value_of_step(self.step_of(value))  # type: ignore[attr-defined]


class _UnitWire(_Stepped):
    """Laws whose wire value is a float in [0, 1], where 0 is off."""

    @property
    def off_value(self) -> float:
        return 0.0

    @property
    def wire_range(self) -> tuple[float, float]:
        return (0.0, 1.0)


@dataclass(frozen=True)
class X32Law(_UnitWire):
    """Behringer X32/M32/X-Air fader: piecewise-linear float in [0, 1], ``steps`` positions."""

    steps: int = 1024
    rule: str = "int_1023_5"
    name: str = "x32"
    min_db: float = -90.0
    max_db: float = 10.0

    def __post_init__(self) -> None:
        if self.rule not in QUANTIZE_RULES:
            raise ProfileError(f"unknown quantize rule {self.rule!r}; known: {', '.join(QUANTIZE_RULES)}")
        if self.steps < 2:
            raise ProfileError(f"a fader needs at least 2 steps, got {self.steps}")

    def to_db(self, value: float) -> float:
        f = min(max(value, 0.0), 1.0)
        if f <= 0.0:
            return -math.inf
        for low, slope, intercept in _X32_SEGMENTS:
            if f >= low:
                return slope * f + intercept
        raise AssertionError("unreachable: segments cover (0, 1]")

    def from_db(self, db: float) -> float:
        if math.isnan(db):
            raise ValueError("fader level is NaN")
        if db <= self.min_db:
            return 0.0
        db = min(db, self.max_db)
        for low, slope, intercept in _X32_SEGMENTS:
            if db >= slope * low + intercept:
                return (db - intercept) / slope
        raise AssertionError("unreachable: segments cover (-90, +10] dB")

    def step_of(self, value: float) -> int:
        f = min(max(value, 0.0), 1.0)
        return min(max(QUANTIZE_RULES[self.rule](f, self.steps), 0), self.steps - 1)

    def value_of_step(self, step: int) -> float:
        return min(max(step, 0), self.steps - 1) / (self.steps - 1)


@dataclass(frozen=True)
class DbLaw(_Stepped):
    """Desks that take dB on the wire (WING, DiGiCo): ``min_db`` means off, steps of ``step_db``."""

    min_db: float
    max_db: float
    step_db: float = 0.1
    name: str = "db"

    def __post_init__(self) -> None:
        if not self.min_db < self.max_db:
            raise ProfileError(f"dB law needs min_db < max_db, got {self.min_db} .. {self.max_db}")
        if self.step_db <= 0:
            raise ProfileError(f"dB law needs step_db > 0, got {self.step_db}")

    def to_db(self, value: float) -> float:
        return -math.inf if value <= self.min_db else min(value, self.max_db)

    def from_db(self, db: float) -> float:
        if math.isnan(db):
            raise ValueError("fader level is NaN")
        return min(max(db, self.min_db), self.max_db)

    def step_of(self, value: float) -> int:
        clamped = min(max(value, self.min_db), self.max_db)
        return int(math.floor((clamped - self.min_db) / self.step_db + 0.5))

    def value_of_step(self, step: int) -> float:
        return min(max(self.min_db + step * self.step_db, self.min_db), self.max_db)

    @property
    def off_value(self) -> float:
        return self.min_db

    @property
    def wire_range(self) -> tuple[float, float]:
        return (self.min_db, self.max_db)


@dataclass(frozen=True)
class LinearDbLaw(_UnitWire):
    """A 0..1 float spread evenly over a dB range (X32 trim and head-amp gain)."""

    min_db: float
    max_db: float
    step_db: float
    name: str = "linear"

    def to_db(self, value: float) -> float:
        f = min(max(value, 0.0), 1.0)
        return self.min_db + f * (self.max_db - self.min_db)

    def from_db(self, db: float) -> float:
        if math.isnan(db):
            raise ValueError("level is NaN")
        clamped = min(max(db, self.min_db), self.max_db)
        return (clamped - self.min_db) / (self.max_db - self.min_db)

    def step_of(self, value: float) -> int:
        return int(math.floor((self.to_db(value) - self.min_db) / self.step_db + 0.5))

    def value_of_step(self, step: int) -> float:
        return self.from_db(self.min_db + step * self.step_db)


def clamp_to_range(law: FaderLaw, value: float) -> float:
    """``value`` moved into the law's wire range (a desk cannot hold anything outside it)."""
    low, high = law.wire_range
    return min(max(value, low), high)


def position_of(law: FaderLaw, value: float) -> float:
    """Where the desk holds ``value`` as a 0..1 fraction of its steps (what a dB desk reports beside the dB)."""
    return law.step_of(value) / max(law.step_of(law.wire_range[1]), 1)


def held_db(law: FaderLaw, db: float) -> float:
    """The level the desk holds after being sent ``db``."""
    return law.to_db(law.quantize(law.from_db(db)))


def held_db_within(law: FaderLaw, db: float, low_db: float, high_db: float) -> float:
    """The held level nearest ``db`` that stays inside ``[low_db, high_db]``.

    Quantization may land a step past a bound; then the neighbouring step
    inside is taken. If no step fits inside, the one nearest the range is.
    """
    step = law.step_of(law.from_db(min(max(db, low_db), high_db)))
    value = law.to_db(law.value_of_step(step))
    if value > high_db and law.to_db(law.value_of_step(step - 1)) >= low_db:
        step -= 1
    elif value < low_db and law.to_db(law.value_of_step(step + 1)) <= high_db:
        step += 1
    return law.to_db(law.value_of_step(step))


def make_law(name: str, **params: object) -> FaderLaw:
    """Build a law from a profile's ``law`` name and its parameters."""
    builders: dict[str, Callable[..., FaderLaw]] = {"x32": X32Law, "db": DbLaw, "linear": LinearDbLaw}
    if name not in builders:
        raise ProfileError(f"unknown fader law {name!r}; known: {', '.join(sorted(builders))}")
    try:
        return builders[name](**params)
    except TypeError as exc:
        raise ProfileError(f"fader law {name!r}: {exc}") from exc


def describe(law: FaderLaw) -> str:
    """One short human description, for tables."""
    if isinstance(law, X32Law):
        return f"x32 piecewise, {law.steps} steps ({law.rule})"
    if isinstance(law, DbLaw):
        return f"dB {law.min_db:g}..{law.max_db:+g}, {law.step_db:g} dB steps"
    return f"{law.name} {law.min_db:g}..{law.max_db:+g} dB"
