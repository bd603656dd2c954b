"""The desk driver's fader writes: deduplicated, held to the desk's hard cap, resent when lost, dropped when stale.

Writes are dated on the driver's clock (the engine's, when it runs on a
virtual one). The driver paces them only by the desk's hard cap (the
profile's ``max_writes_per_s`` per fader): a write due later waits, and a
newer decision replaces it there, so nothing older is ever sent after it.
A hand (or a scene recall) cancels a write still waiting; only addresses
rendered from the profile's write table are ever sent a value.
"""
from __future__ import annotations

import math
from typing import Iterable

from .driver_core import DeskOfflineError, DriverCore, PendingWrite

#: Least wait before a write a poll's answer shows lost goes again (longer: the recent round trip), seconds.
RESEND_GRACE_S = 0.02
#: Two writes to one fader this close on the driver's clock count as one slot of the desk's cap (float noise).
_CAP_SLACK_S = 1e-6


class FaderWrites(DriverCore):
    """Fader writes and the ones waiting for the desk's cap (a part of :class:`~.driver.OscDeskDriver`)."""

    def set_fader_db(self, channel: int, db: float, *, always: bool = False) -> float:
        """Move a fader to ``db``; returns the level the desk will hold. Rate-limited, deduplicated.

        ``always`` sends it even when the desk is last seen holding that step
        (sending a hand's level back, which one of our writes may have overwritten).
        """
        law = self.profile.law
        return law.to_db(self.set_fader(channel, law.from_db(db), always=always))

    def set_fader(self, channel: int, value: float, *, always: bool = False) -> float:
        """Move a fader to a wire value; returns the quantized value the desk will hold.

        Held back only by the desk's hard cap (the profile's ``max_writes_per_s``
        per fader, on the driver's clock): a write due later waits, and a newer
        decision replaces it there, so nothing older is ever sent after it.
        """
        if not self.connected:
            raise DeskOfflineError("desk is not connected; the write was not sent", self.host, self.port)
        if not math.isfinite(value):
            raise ValueError(f"fader value for channel {channel} is not finite: {value}")
        address = self.profile.fader.address_of(channel)
        law = self.profile.law
        held = law.quantize(value)
        step = law.step_of(held)
        pending = self._pending.pop(address, None)
        if pending is not None:
            pending.handle.cancel()
        current = self.view[channel].fader if channel in self.view else math.nan
        if pending is None and not always and not math.isnan(current) and law.step_of(current) == step:
            self.stats.skipped_equal += 1
            return held
        now = self._write_now()
        due = self._last_write_at.get(address, -math.inf) + 1.0 / self.profile.max_writes_per_s - _CAP_SLACK_S
        if now >= due:
            self._write(address, held, resend=always)
        else:
            self.stats.deferred += 1
            assert self._loop is not None
            handle = self._loop.call_later(due - now, self._flush, address)
            self._pending[address] = PendingWrite(held, handle, resend=always)
        return held

    def _write(self, address: str, held: float, *, resend: bool = False) -> None:
        """Send a fader level. A resend (a lost write again, a hand's level sent back) is no new decision of ours:
        it is not remembered as unconfirmed and opens no window in which a hand's move counts as crossed."""
        self._send(address, self.profile.fader.type, (held,))
        if not self.connected:  # the send itself found the desk's port closed: nothing to remember, all to re-read
            return
        law = self.profile.law
        now = self._write_now()
        target = self._by_address.get(address)
        view = self.view[target.channel] if target is not None else None
        before = None if view is None or math.isnan(view.fader) else law.step_of(view.fader)
        self.ledger.sent(address, law.step_of(held), before, now, resend=resend or view is None)
        self._last_write_at[address] = now
        self._wire_write_at[address] = self._now()
        self.stats.writes += 1
        if view is not None:
            view.fader, view.fader_db = held, law.to_db(held)
            view.pending_db = view.fader_db

    def stand_down(self, channels: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """Send nothing more that was decided before now for these faders (all when None).

        Writes still waiting for the desk's cap are dropped, and writes the
        desk has not shown back are no longer resent if a poll finds them lost:
        the bridge disarmed, was killed, stopped riding a channel, or the
        channel was muted, so the level the desk holds is the engineer's.
        Returns the writes it dropped, as (channel, dB), for the journal.
        """
        dropped = []
        for ch in self.channels if channels is None else channels:
            address = self.profile.fader.address_of(ch)
            pending = self._pending.get(address)
            if pending is not None:
                dropped.append((ch, self.profile.law.to_db(pending.value)))
            self._cancel_pending(address)
            self.ledger.stand_down(address)
        return dropped

    def _resend_later(self, address: str, value: float) -> None:
        """Send a write our poll's answer shows lost again, once the answer's round trip has passed.

        A change the desk pushed while our poll was on its way (a scene recall
        back to the level from before our write) reads just like that answer,
        and the real answer follows it within one round trip: that second
        report cancels the resend (see :meth:`_cancel_pending`), so the recall
        is not fought. A newer decision already waiting for the cap goes instead.
        """
        if address in self._pending:
            return
        assert self._loop is not None
        handle = self._loop.call_later(max(RESEND_GRACE_S, self.rtt_s), self._flush, address)
        self._pending[address] = PendingWrite(value, handle, resend=True)

    def _cancel_pending(self, address: str) -> PendingWrite | None:
        """A hand (or a scene recall) beats a write still waiting for the rate limit: it was decided before.

        Returns the write it cancelled, if one waited.
        """
        pending = self._pending.pop(address, None)
        if pending is not None:
            pending.handle.cancel()
            self.stats.cancelled += 1
        return pending

    def _flush(self, address: str) -> None:
        """Send a write that waited for the desk's cap, unless what the desk said meanwhile cancels it.

        A hand's move can sit unread in the socket when the timer fires;
        reading first lets it cancel the write, which was decided before it.
        """
        if address not in self._pending:
            return
        self.read_queued()
        pending = self._pending.pop(address, None)
        if pending is not None and self.connected:
            self._write(address, pending.value, resend=pending.resend)
