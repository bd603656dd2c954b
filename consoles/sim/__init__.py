"""Desk simulators: the same protocols on loopback, with fault injection, for tests and demos."""
from .harness import SimulatedDesk, resolve_profile, simulated_desk
from .osc_desk import DeskSimulator, Faults, SimStats

__all__ = ["DeskSimulator", "Faults", "SimStats", "SimulatedDesk", "resolve_profile", "simulated_desk"]
