"""Refusals of what comes from the network: counted always, logged at most once a second per source, escaped.

A stranger who floods the bridge with bad commands or connections must not
fill the disk or bury the lines that matter, and text a stranger chose (a
command name, a Host header) must never start a log line of its own: every
line is the bridge's, with what came from outside escaped. Between two lines
from one source, its refusals are counted by code, and the next line (or
:meth:`RefusalLog.flush`) says how many there were.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable

#: At most one line per source this often.
LOG_PERIOD_S = 1.0
#: At most this many lines a second over all sources (a flood from many addresses).
MAX_LINES_PER_S = 10
#: Sources remembered; beyond this the one logged longest ago is forgotten, its count kept as "other sources".
MAX_SOURCES = 256
#: What a stranger chose is cut to this many characters in a log line.
TEXT_LIMIT = 120


def printable(text: object, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, every control or line-breaking character escaped (``\\n``, ``\\x1b``)."""
    value = str(text)
    cut = len(value) > limit
    value = value[:limit]
    if not value.isprintable():
        value = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return value + ("..." if cut else "")


def quoted(text: object, limit: int = TEXT_LIMIT) -> str:
    """A stranger's name for a log line: ``repr`` (quotes and escapes), cut to ``limit``."""
    return printable(repr(text), limit)


@dataclass
class _Source:
    logged_at_s: float  # when this source last had a line
    held: Counter[str] = field(default_factory=Counter)  # refusals by code since that line


class RefusalLog:
    """Counts refusals per source and logs at most one line per source per ``period_s``."""

    def __init__(self, logger: logging.Logger, what: str, *, period_s: float = LOG_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what  # "commands", "connections": what the summary counts
        self.period_s = period_s
        self.lines = 0  # lines logged so far
        self._clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._second = (-1.0, 0)  # start of the current second, lines logged in it
        self._forgotten = _Source(0.0)  # held counts of sources forgotten before their line

    def refused(self, source: str, code: str, line: str) -> None:
        """One refusal from ``source``: log ``line`` (already escaped) now, or count it for the next line."""
        now = self._clock()
        entry = self._sources.get(source)
        if entry is not None and (now - entry.logged_at_s < self.period_s or not self._may_log(now)):
            entry.held[code] += 1
            return
        if entry is None and not self._may_log(now):
            self._remember(source, _Source(now, Counter({code: 1})))
            return
        before = f" ({self._summary(entry)} before it)" if entry is not None and entry.held else ""
        self._log(now, f"{line}{before}")
        self._remember(source, _Source(now))

    def flush(self, final: bool = False) -> None:
        """Log the count held for each source whose period has passed (every one when ``final``)."""
        now = self._clock()
        for source, entry in [*self._sources.items(), ("other sources", self._forgotten)]:
            if entry.held and (final or (now - entry.logged_at_s >= self.period_s and self._may_log(now))):
                self._log(now, f"{source}: {self._summary(entry)}")
                entry.held.clear()
                entry.logged_at_s = now

    def _summary(self, entry: _Source) -> str:
        codes = ", ".join(f"{code} {count}" for code, count in entry.held.most_common())
        return f"{sum(entry.held.values())} more {self.what} refused ({codes})"

    def _may_log(self, now: float) -> bool:
        start, count = self._second
        return now - start >= 1.0 or count < MAX_LINES_PER_S

    def _log(self, now: float, line: str) -> None:
        start, count = self._second
        self._second = (now, 1) if now - start >= 1.0 else (start, count + 1)
        self.lines += 1
        self.logger.warning("%s", line)

    def _remember(self, source: str, entry: _Source) -> None:
        self._sources[source] = entry
        self._sources.move_to_end(source)
        while len(self._sources) > MAX_SOURCES:
            self._forgotten.held.update(self._sources.popitem(last=False)[1].held)
