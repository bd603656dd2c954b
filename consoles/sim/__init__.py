"""Desk simulators: the same protocols on loopback, with fault injection, for tests and demos."""
from .osc_desk import DeskSimulator, Faults, SimStats

__all__ = ["DeskSimulator", "Faults", "SimStats"]
