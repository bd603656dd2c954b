"""One rig for every run: source, desk driver, journal and engine wired the same way for a show, the demo,
the evaluation and the benchmarks.

A live show's desk is at the show's address; an offline run asks for a desk
simulator on loopback (``simulated=True``), which the rig starts, lets the
caller prepare (names, the engineer's arm-time faders) and points the show at.
Teardown runs in reverse on every path: the source stops, the driver closes
(after the writes the desk's cap still holds back have left: ``drain``),
the journal closes (its error, if any, rises from the ``async with``) and the
simulator stops.
"""
from __future__ import annotations

import logging
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, AsyncIterator, Callable

from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.show import DeskAddress
from ailive.models.base import GainModel

from .audio import AudioSource
from .engine import Engine
from .journal import Journal, JournalError
from .show import Show

if TYPE_CHECKING:
    from ailive.consoles.sim import DeskSimulator

log = logging.getLogger(__name__)

#: Called with the simulator and the show before the driver connects: what the desk holds when the bridge arrives.
PrepareDesk = Callable[["DeskSimulator", Show], None]


@dataclass
class Rig:
    """A connected bridge, ready to ``engine.run``: the parts, for callers that watch or steer them."""

    show: Show  # pointed at the simulator when there is one
    source: AudioSource
    driver: OscDeskDriver
    journal: Journal
    engine: Engine
    desk: "DeskSimulator | None" = None  # the simulator an offline run plays against


@asynccontextmanager
async def open_rig(show: Show, source: AudioSource, model: GainModel, journal: Journal, *,
                   simulated: bool = False, prepare_desk: PrepareDesk | None = None) -> AsyncIterator[Rig]:
    """Open the journal, (start the simulator,) connect the driver, start the source, build the engine."""
    async with AsyncExitStack() as stack:
        desk = None
        if simulated:
            from ailive.consoles.sim import DeskSimulator  # a show's process never loads the simulators

            desk = await stack.enter_async_context(DeskSimulator(show.profile, port=0))
            show = show.with_desk(DeskAddress(*desk.address))
            if prepare_desk is not None:
                prepare_desk(desk, show)
        journal.open()
        stack.push(_journal_closer(journal))
        # A simulator answers the port a request came from; a desk that sends to a set port is heard there.
        driver = OscDeskDriver.for_show(show, local_port=0) if simulated else OscDeskDriver.for_show(show)
        stack.push_async_callback(driver.close)
        await driver.connect()
        stack.push_async_callback(source.stop)
        await source.start()
        engine = Engine(show, source, driver, model, journal)
        yield Rig(show, source, driver, journal, engine, desk)


def _journal_closer(journal: Journal) -> Callable[[type[BaseException] | None, BaseException | None, TracebackType | None], bool]:
    """Close the journal on the way out; a failing close rises, unless another error is already on its way out."""

    def close(kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> bool:
        try:
            journal.close()
        except JournalError as exc:
            if kind is None:
                raise
            log.error("closing the journal failed too: %s", exc)
        return False

    return close
