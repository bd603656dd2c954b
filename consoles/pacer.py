"""Query pacing: a desk that wants its queries spaced gets at most a budget of them a second.

Public DiGiCo clients space their queries 10-50 ms apart; a sweep of 128
channels sent at once is hundreds of datagrams in a millisecond, and a poll
of every channel four times a second is a thousand a second. The driver
queues each query here and sends it at its turn. Polling takes what
the budget allows in a period: the channels the bridge rides first, every
period, the rest in turns; the rest are kept a share of the budget
(:data:`UNRIDDEN_ONE_IN`), or many ridden channels on a slow desk would leave
them never asked, and an engineer's move on them never seen.
"""
from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

#: The unridden channels' share of the poll budget when the ridden ones would take it all: one query in this
#: many, counted across rounds (a budget of one query a round asks an unridden address every fourth round).
UNRIDDEN_ONE_IN = 4


class QueryPacer:
    """Sends at most ``per_s`` queries a second, in the order they were asked for (``per_s`` 0: at once).

    A query waits in a queue until the gap since the last one sent has passed;
    the gap is measured from when a query really went out, so a busy event
    loop that wakes late never sends a burst to catch up.
    """

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s
        self._queue: deque[Callable[[], bool]] = deque()
        self._next = -math.inf
        self._timer: asyncio.TimerHandle | None = None

    @property
    def paced(self) -> bool:
        return self.per_s > 0

    def close(self) -> None:
        """Drop every query still waiting and the timer that would send it (the driver is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()

    def submit(self, loop: asyncio.AbstractEventLoop, send: Callable[[], bool]) -> None:
        """Run ``send`` now or at its turn; it returns whether it sent (a withdrawn query spends no turn)."""
        if not self.paced:
            send()
            return
        self._queue.append(send)
        if self._timer is None:
            self._pump(loop)

    async def turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for this caller's turn to send one query."""
        if not self.paced:
            return
        ready: asyncio.Future[None] = loop.create_future()

        def go() -> bool:
            if ready.done():  # the caller gave up waiting
                return False
            ready.set_result(None)
            return True

        self.submit(loop, go)
        await ready

    def per_period(self, period_s: float) -> int:
        """How many queries fit in one period (at least one; unpaced: no limit)."""
        return max(1, int(self.per_s * period_s)) if self.paced else 1 << 30

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        while self._queue:
            now = loop.time()
            if now < self._next:
                self._timer = loop.call_at(self._next, self._pump, loop)
                return
            if self._queue.popleft()():
                self._next = now + 1.0 / self.per_s


@dataclass
class PollRota:
    """Which addresses one poll round asks: the ridden ones first, then the others in turns, within a budget.

    The others are owed one query in :data:`UNRIDDEN_ONE_IN` of the budget;
    what is owed and not yet a whole query carries to the next round, so a
    budget too small to split still reaches them. Each side takes what the
    other leaves unused.
    """

    first: list[str]
    rest: list[str]
    _first_at: int = 0
    _rest_at: int = 0
    _owed: int = 0  # the others' share not yet asked, in 1/UNRIDDEN_ONE_IN of a query

    def round(self, budget: int) -> list[str]:
        """The next round's addresses, at most ``budget``; each list is walked in a circle across rounds."""
        kept = 0
        if self.first and self.rest:
            self._owed += budget
            kept = min(len(self.rest), budget, self._owed // UNRIDDEN_ONE_IN)
        taken, self._first_at = _take(self.first, self._first_at, budget - kept)
        more, self._rest_at = _take(self.rest, self._rest_at, budget - len(taken))
        self._owed = min(UNRIDDEN_ONE_IN - 1, max(0, self._owed - len(more) * UNRIDDEN_ONE_IN))
        return taken + more


def _take(items: list[str], start: int, count: int) -> tuple[list[str], int]:
    """Up to ``count`` items from ``start`` on, wrapping once; where the next call starts."""
    if count <= 0 or not items:
        return [], start
    if count >= len(items):
        return items[start:] + items[:start], start
    picked = [items[(start + i) % len(items)] for i in range(count)]
    return picked, (start + count) % len(items)
