"""A desk's push that reads like the answer to our poll: the driver on a recording wire, no sockets, its clock set by hand.

An X32 pushes a scene recall the moment it happens; a poll of ours already on
its way is answered right after. When the recall puts a fader back where it
was before our latest write, the push, read first, looks exactly like an
answer showing that write lost.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ailive.consoles import osc
from ailive.consoles.driver import RESEND_GRACE_S, OscDeskDriver
from ailive.consoles.events import FaderMoved
from ailive.consoles.profile import get_profile

X32 = get_profile("x32")
DESK: tuple[str, int] = ("127.0.0.1", 10023)
FADER = X32.fader.address_of(1)
BEFORE = X32.law.quantize(X32.law.from_db(0.0))  # the armed scene, and where the fader was before our write
OURS = X32.law.quantize(X32.law.from_db(0.3))
STEP = X32.law.step_of(OURS)


class Wire:
    """The desk socket's place: keeps what the driver sends, has nothing waiting to be read."""

    def __init__(self) -> None:
        self.sent: list[osc.OscMessage] = []

    def send(self, data: bytes, peer: Any = None) -> bool:
        self.sent.append(osc.decode(data))
        return True

    def drain(self) -> int:
        return 0

    def writes(self) -> list[int]:
        """The fader steps written to channel 1."""
        return [X32.law.step_of(float(m.args[0])) for m in self.sent if m.address == FADER and m.args]


class Rig:
    """A driver that believes it is connected, one fader written, and a poll of it on its way."""

    def __init__(self) -> None:
        self.time_s = 100.0
        self.loop = asyncio.new_event_loop()
        self.wire = Wire()
        driver = OscDeskDriver(X32, *DESK, [1, 2], poll_period_s=0.5)
        driver._loop, driver._peer, driver._link, driver.connected = self.loop, DESK, self.wire, True  # type: ignore[assignment]
        driver._now = lambda: self.time_s  # type: ignore[method-assign]
        driver.use_clock(lambda: self.time_s)
        for view in driver.view.values():
            view.fader, view.fader_db, view.muted = BEFORE, X32.law.to_db(BEFORE), False
        self.events: list[Any] = []
        driver.add_listener(self.events.append)
        self.driver = driver
        driver.set_fader(1, OURS)
        self.time_s += 0.005
        driver._poll_faders(self.time_s)

    def desk_says(self, value: float) -> None:
        self.time_s += 0.001
        self.driver._on_datagram(osc.encode(FADER, "f", (value,)), DESK)

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def test_a_recall_pushed_before_the_answer_is_not_fought(rig):
    rig.desk_says(BEFORE)  # the recall's push, taken for the poll's answer: our write looks lost
    rig.desk_says(BEFORE)  # the real answer, right behind it: somebody else put that level there
    assert rig.wire.writes() == [STEP]  # our write once, never again over the recalled level
    assert rig.driver.stats.cancelled == 1 and not rig.driver._pending
    moved = [e for e in rig.events if isinstance(e, FaderMoved)]
    assert [(e.channel, e.value, e.crossed) for e in moved] == [(1, BEFORE, True)]  # the policy may send it back
    assert rig.driver.view[1].fader == BEFORE


def test_a_write_the_only_answer_shows_lost_is_sent_again_after_the_grace(rig):
    rig.desk_says(BEFORE)  # the answer, and nothing behind it: the write was lost
    assert rig.wire.writes() == [STEP]  # not yet: a push would have the answer right behind it
    pending = rig.driver._pending[FADER]
    assert pending.handle.when() - rig.loop.time() == pytest.approx(RESEND_GRACE_S, abs=0.01)
    rig.driver._flush(FADER)  # the grace has passed
    assert rig.wire.writes() == [STEP, STEP]
    assert rig.driver.stats.resent == 1
    assert not [e for e in rig.events if isinstance(e, FaderMoved)]  # not a hand
