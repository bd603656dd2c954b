"""The desk driver's reading of what the desk says: checked, parsed, and turned into the view and typed events.

Every datagram is checked for its source and decoded strictly; a fader
report is clamped into the law's range, told apart as our own write, a write
of ours the desk's answer shows lost, or somebody else's move (the pure
:class:`~.writes.WriteLedger`'s call), and only then believed. A pushed
unmute is believed only once the desk answers our own question with it.
"""
from __future__ import annotations

import ipaddress
import logging
import math

from . import osc
from .driver_core import ChannelView, DriverCore
from .errors import OscDecodeError
from .events import FaderMoved, MuteChanged, NameChanged, PacketRejected, Source
from .faderlaw import clamp_to_range
from .link import Peer
from .writes import Verdict

log = logging.getLogger("ailive.consoles.driver")

#: An engineer's move that arrives this soon after one of our writes to the same
#: fader (or one round trip to the desk, when that is longer) may have been
#: overwritten by that write at the desk: its event says so, and the bridge may
#: send it back once (within the policy's bounds), so the engineer wins the race.
ENGINEER_WINS_WINDOW_S = 0.25


class DeskReports(DriverCore):
    """What the desk reports, read into the view (a part of :class:`~.driver.OscDeskDriver`)."""

    def _from_desk(self, peer: Peer) -> bool:
        """A desk that answers the sender answers from its port; one that sends to a set port, from any of its ports."""
        assert self._peer is not None
        if self.profile.replies_to_sender:
            return peer == self._peer
        return ipaddress.ip_address(peer[0]) == ipaddress.ip_address(self._peer[0])

    def _on_datagram(self, data: bytes, peer: Peer) -> None:
        now = self._now()
        if self._peer is None or not self._from_desk(peer):
            self.stats.rejected += 1
            self._emit(PacketRejected("datagram from a source that is not the desk", f"{peer[0]}:{peer[1]}", now))
            return
        try:
            message = osc.decode(data)
        except OscDecodeError as exc:
            self.stats.rejected += 1
            self._emit(PacketRejected(str(exc), f"{peer[0]}:{peer[1]}", now))
            return
        self.stats.received += 1
        self._last_rx = now
        self._refusals_in_a_row = 0
        for fut in self._waiters.pop(message.address, []):
            if not fut.done():
                fut.set_result(message)
        if self._sweep_waiting is not None and message.address in self._sweep_waiting:
            self._sweep_waiting.discard(message.address)  # the sweep's answer (or a push before it: as new)
            self._apply(message, "sweep")
        elif self.connected or self._sweep_waiting is not None:  # a push during the sweep is newer than its answer
            answer = self._poll_answer(message.address, now)
            if answer is not None:
                self._apply(message, "external", answer=answer)

    def _poll_answer(self, address: str, now: float) -> bool | None:
        """Whether a message answers our poll (True), was pushed (False), or is an answer that is old news (None).

        A poll answer may have left the desk before our latest write arrived.
        Only an answer to our own question can show that a write was lost: a
        pushed level is always somebody else's change (a hand, a scene recall).
        """
        asked_at = self._polls.pop(address, None)
        if asked_at is None:
            return False
        self._answered_round = asked_at
        self._note_round_trip(now - asked_at)
        if self._wire_write_at.get(address, -math.inf) >= asked_at:
            return None
        return True

    def _note_round_trip(self, took_s: float) -> None:
        """Keep the longest recent round trip; it decays so one slow answer is forgotten."""
        self.rtt_s = max(took_s, self.rtt_s * 0.9)

    def _apply(self, message: osc.OscMessage, source: Source, *, answer: bool = False) -> None:
        """Update the view from a desk message; report changes as events."""
        target = self._by_address.get(message.address)
        if target is None or not message.args:
            return
        view = self.view[target.channel]
        now = self._now()
        p = self.profile
        if target.kind == "fader":
            number = osc.as_finite_float(p.fader.value_in(message.tags, message.args))  # type: ignore[arg-type]
            if number is None:
                self.stats.rejected += 1
                return
            number, clamped = self._in_range(message.address, number)
            held = p.law.quantize(number)
            view.reported_fader, view.reported_db = held, p.law.to_db(held)
            if source == "external" and self._is_own_or_lost_write(message.address, view, held, answer):
                return
            changed = math.isnan(view.fader) or p.law.step_of(view.fader) != p.law.step_of(held)
            cancelled = None
            if changed and source == "external":
                self.ledger.moved_on(message.address)  # the desk moved on from our last write
                cancelled = self._cancel_pending(message.address)
            view.fader, view.fader_db, view.pending_db = held, view.reported_db, math.nan
            # A clamped report is never offered back to the desk: the desk cannot have held that level.
            crossed = (changed and source == "external" and not clamped
                       and self.ledger.crossed(message.address, self._write_now(), max(ENGINEER_WINS_WINDOW_S, self.rtt_s)))
            if changed:
                self._emit(FaderMoved(target.channel, held, view.fader_db, source, now, crossed=crossed,
                                      cancelled_db=None if cancelled is None else p.law.to_db(cancelled.value)))
            return
        shape = p.mute if target.kind == "mute" else p.name_param
        value = shape.value_in(message.tags, message.args)
        if value is None and len(message.args) == 1:
            value = message.args[0]  # a mute as ,i or ,f: either states it
        if value is None:
            self.stats.rejected += 1
        elif target.kind == "mute":
            number = osc.as_finite_float(value)
            if number is None:
                self.stats.rejected += 1
                return
            muted = number == p.mute.muted_value
            if view.muted and not muted and source == "external" and not answer:
                self._verify_unmute(message.address, now)
            elif view.muted != muted:
                view.muted = muted
                if muted:  # a write still waiting, or a lost one, must not land on a muted channel
                    self.stand_down([target.channel])
                self._emit(MuteChanged(target.channel, muted, source, now))
        elif target.kind == "name" and isinstance(value, str):
            if view.name != value:
                view.name = value
                self._emit(NameChanged(target.channel, value, source, now))

    def _verify_unmute(self, address: str, now: float) -> None:
        """A pushed unmute is believed only once the desk answers our own question with it.

        A muted channel is never ridden; a forged or stray "unmuted" would
        start the bridge writing a channel the engineer muted. The answer to
        the query counts as an answer (see :meth:`_poll_answer`).
        """
        self.stats.unmutes_checked += 1
        self._polls[address] = now
        self._send(self.profile.query_of(address))

    def _in_range(self, address: str, number: float) -> tuple[float, bool]:
        """A fader value the desk cannot hold is clamped into the law's range and logged (once per excursion)."""
        clamped = clamp_to_range(self.profile.law, number)
        if clamped == number:
            self._clamping.pop(address, None)
            return number, False
        self.stats.clamped += 1
        if self._clamping.get(address) != clamped:
            self._clamping[address] = clamped
            low, high = self.profile.law.wire_range
            log.warning("desk %s reported %s = %g, outside %g..%g: taken as %g", self.desk_address, address, number,
                        low, high, clamped)
        return clamped, True

    def _is_own_or_lost_write(self, address: str, view: ChannelView, held: float, answer: bool) -> bool:
        """Whether a reported level is ours (echoed, polled back, or a lost write now sent again); see
        :meth:`.WriteLedger.judge`. Several faders in one poll round showing levels none of our writes left
        there mean the desk changed wholesale behind us (a restart with no push, an unannounced scene recall):
        it counts as lost and is read again, whole, before the next write."""
        law = self.profile.law
        judgement = self.ledger.judge(address, law.step_of(held), answer=answer, round_s=self._answered_round)
        if judgement.verdict is Verdict.RESEND:
            assert judgement.resend_step is not None
            self._resend_later(address, law.value_of_step(judgement.resend_step))
            return True
        if judgement.verdict is Verdict.OURS:
            if judgement.confirmed:
                view.pending_db = math.nan
            return True
        if judgement.wholesale and self.connected:
            self._lost(f"{judgement.wholesale} faders answered our poll with levels none of our writes left there "
                       f"(a desk restart or an unannounced scene recall): reading the desk again")
        return False
