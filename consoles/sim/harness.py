"""Simulated desks for people who test their own software against them.

An integrator's test starts a desk of any profile on a free loopback port,
points its own software at :attr:`SimulatedDesk.address`, plays the engineer
and the network (fader moves, mutes, names, loss, delay, restarts) and
awaits what its software did. The waits poll the desk's state, so a test
takes as long as the software needs and no fixed sleep makes it flaky.
The simulator itself is :class:`DeskSimulator`; this adds only the waits
and a way to name the desk.
"""
from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

from ..faderlaw import held_db
from ..profile import Profile, get_profile, load_profile_file
from .osc_desk import DeskSimulator, Peer

#: What a profile argument may be: a name on the search path, a profile file, or a profile already loaded.
ProfileRef = str | os.PathLike[str] | Profile
_POLL_S = 0.005


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 2.0, what: str = "the condition",
                     step_s: float = _POLL_S) -> float:
    """Poll ``predicate`` until it holds; the seconds it took. Raises :class:`TimeoutError` saying ``what``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout_s:
            raise TimeoutError(f"{what} not met within {timeout_s:g} s")
        await asyncio.sleep(step_s)
    return loop.time() - start


def resolve_profile(profile: ProfileRef, profile_dirs: list[Path] | None = None) -> Profile:
    """A profile by name (built-in, user folder, ``$AILIVE_PROFILES``, ``profile_dirs``), from a file, or as given."""
    if isinstance(profile, Profile):
        return profile
    path = Path(profile)
    if path.suffix == ".toml" and path.is_file():
        return load_profile_file(path, profile_dirs)
    return get_profile(str(profile), profile_dirs)


class SimulatedDesk(DeskSimulator):
    """A :class:`DeskSimulator` whose state a test can await.

    Everything of the simulator is here: ``address``, ``move_fader_db``,
    ``set_mute``, ``set_name``, ``faults``, ``restart``, ``fader_db``,
    ``muted``, ``name``, ``subscribers``, ``stats``.
    """

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 2.0, what: str = "the condition") -> float:
        """Wait until ``predicate()`` holds; the seconds it took. Raises :class:`TimeoutError` saying ``what``."""
        return await wait_until(predicate, timeout_s, what)

    async def wait_fader_db(self, channel: int, db: float, *, tolerance_db: float = 1e-6, timeout_s: float = 2.0) -> float:
        """Wait until a fader holds ``db`` as the desk stores it (after quantization); the level it holds."""
        target = held_db(self.profile.law, db)
        try:
            await self.wait_until(lambda: abs(self.fader_db(channel) - target) <= tolerance_db
                                  or self.fader_db(channel) == target, timeout_s)
        except TimeoutError:
            raise TimeoutError(f"fader {channel} holds {self.fader_db(channel):+.2f} dB, not {target:+.2f} dB, "
                               f"after {timeout_s:g} s") from None
        return self.fader_db(channel)

    async def wait_subscribers(self, count: int = 1, timeout_s: float = 2.0) -> list[Peer]:
        """Wait until at least ``count`` clients get the desk's pushes (a subscription, or a feedback desk's device)."""
        await self.wait_until(lambda: len(self.subscribers()) >= count, timeout_s, f"{count} subscriber(s)")
        return self.subscribers()

    def fader_writes(self, channel: int) -> int:
        """How many fader values clients have sent this channel (accepted by the desk)."""
        return self.stats.writes.get(self.profile.fader.address_of(channel), 0)

    async def wait_fader_writes(self, channel: int, count: int = 1, timeout_s: float = 2.0) -> int:
        """Wait until clients have sent this fader at least ``count`` values; how many they sent."""
        await self.wait_until(lambda: self.fader_writes(channel) >= count, timeout_s,
                              f"{count} write(s) to fader {channel}")
        return self.fader_writes(channel)


@asynccontextmanager
async def simulated_desk(
    profile: ProfileRef = "x32",
    *,
    channels: int | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int | None = None,
    send_to: Peer | None = None,
    profile_dirs: list[Path] | None = None,
    echo: str | None = None,
) -> AsyncIterator[SimulatedDesk]:
    """A running :class:`SimulatedDesk` (``port=0``: a free port), stopped on leaving the block.

    ``seed`` makes injected packet loss repeatable; ``send_to`` is where a
    desk that does not answer the sender sends (DiGiCo's External Control);
    ``echo`` whether a client's own sets come back to it (``none``, ``changes``,
    ``all``; default: as the profile says).
    """
    desk = SimulatedDesk(resolve_profile(profile, profile_dirs), host, port, channels, seed=seed, send_to=send_to,
                         echo=echo)
    async with desk:
        yield desk
