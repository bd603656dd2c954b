"""Query pacing: a desk that wants its queries spaced gets at most a budget of them a second.

Public DiGiCo clients space their queries 10-50 ms apart; a sweep of 128
channels sent at once is hundreds of datagrams in a millisecond, and a poll
of every channel four times a second is a thousand a second. The driver
reserves a slot for each query here and sends it then. Polling takes what
the budget leaves in a period: the channels the bridge rides first, every
period, the rest in turns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class QueryPacer:
    """Hands out send times at least ``1 / per_s`` apart (``per_s`` 0: no pacing, every slot is now)."""

    per_s: float
    _next: float = -math.inf

    @property
    def paced(self) -> bool:
        return self.per_s > 0

    def reserve(self, now: float) -> float:
        """The time the next query may go out; later reservations get later slots."""
        if not self.paced:
            return now
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.per_s
        return slot

    def per_period(self, period_s: float) -> int:
        """How many queries fit in one period (at least one; unpaced: no limit)."""
        return max(1, int(self.per_s * period_s)) if self.paced else 1 << 30


@dataclass
class PollRota:
    """Which addresses one poll round asks: the ridden ones first, then the others in turns, within a budget."""

    first: list[str]
    rest: list[str]
    _first_at: int = 0
    _rest_at: int = 0

    def round(self, budget: int) -> list[str]:
        """The next round's addresses, at most ``budget``; each list is walked in a circle across rounds."""
        taken, self._first_at = _take(self.first, self._first_at, budget)
        more, self._rest_at = _take(self.rest, self._rest_at, budget - len(taken))
        return taken + more


def _take(items: list[str], start: int, count: int) -> tuple[list[str], int]:
    """Up to ``count`` items from ``start`` on, wrapping once; where the next call starts."""
    if count <= 0 or not items:
        return [], start
    if count >= len(items):
        return items[start:] + items[:start], start
    picked = [items[(start + i) % len(items)] for i in range(count)]
    return picked, (start + count) % len(items)
