"""The control loop: audio frames -> model -> safety policy -> desk, once per control frame (50 ms).

Runs on asyncio, driven by the audio source's clock; the JACK thread only
copies into a ring, so nothing here can stall it. Desk events (engineer
moves, lost desk) and commands (arm, disarm, kill, channel mode) are applied
at the start of a step, so the policy always sees one consistent world.
Every move and event goes to the journal.

Over 400 lines: one step's order (desk events, commands, model, policy,
send, journal) is the engine's whole promise and reads best in one place;
the wiring around it is ``rig``, the policy is pure and apart.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np

from ailive.consoles.driver import DeskOfflineError, OscDeskDriver
from ailive.consoles.errors import AiliveError
from ailive.consoles.events import DeskConnected, DeskEvent, DeskLost, FaderMoved, MuteChanged, PacketRejected
from ailive.models.base import FRAME_S, GainModel, frame_samples
from ailive.models.errors import ModelError
from ailive.models.features import SILENCE_DB, rms_db

from .audio import AudioSource, AudioSourceError, EndOfSource
from .control import Arm, Command, Disarm, Kill, Mode, Outcome, SetMode, hold_code
from .journal import Journal, JournalError, encode_db
from .show import Show
from . import policy as P

log = logging.getLogger(__name__)

#: How often a tap whose JACK server died is opened again (the faders hold meanwhile).
REATTACH_PERIOD_S = 1.0
#: How long an arm waits for the desk to show back writes of ours (it is asked at once; a paced desk answers in turn).
ARM_WAIT_S = 1.5
#: Refused datagrams are journaled at most this often, with a count (a flood must not fill the disk).
REJECTED_PERIOD_S = 1.0
#: Sources whose first refused datagram is journaled at once; beyond these, they are only counted.
REJECTED_PEERS_NAMED = 64



class ModelMismatchError(AiliveError):
    """The model cannot take this stream (sample rate, channel count); raised before anything moves."""


@dataclass
class Rejections:
    """Datagrams the driver refused since the last journal record about them."""

    count: int = 0
    reason: str = ""
    peer: str = ""
    reported_s: float = -math.inf
    named: set[str] = field(default_factory=set)  # sources already named in the journal


@dataclass
class ChannelStatus:
    channel: int
    name: str
    mode: str
    level_db: float
    proposed_db: float
    fader_db: float
    muted: bool | None
    reason: str  # for people: a hold, the mode, or the last move's reason
    hold_code: str = ""  # for programs: the Hold's code while this channel is held, else ""


@dataclass
class EngineStatus:
    """What the live view, the headless log and telemetry show."""

    show: str
    model: str
    armed: bool = False
    hold: str = ""  # for people: why every fader is held, "" when none is
    hold_code: str = ""  # for programs: that hold's code (desk_lost, stale_audio, model_error)
    desk: str = ""
    desk_connected: bool = False
    audio_time_s: float = 0.0  # seconds of audio since the bridge started
    steps: int = 0
    moves: int = 0
    engineer_moves: int = 0
    sent_back: int = 0  # hands' levels sent back because one of our writes may have crossed them
    send_back_refused: int = 0  # ... and not sent back: outside the policy's bounds
    xruns: int = 0
    model_errors: int = 0
    journal_error: str = ""  # why the journal cannot be written (the bridge disarmed and will not arm), "" when fine
    latency_ms: dict[str, float] = field(default_factory=dict)
    channels: list[ChannelStatus] = field(default_factory=list)
    last_events: deque[str] = field(default_factory=lambda: deque(maxlen=8))


def _percentiles(samples: deque[float]) -> dict[str, float]:
    """The step latency's median, 99th percentile (a sample that happened, never an interpolation) and worst."""
    if not samples:
        return {}
    p50, p99, worst = np.percentile(np.fromiter(samples, float), [50, 99, 100], method="higher")
    return {"p50": float(p50), "p99": float(p99), "max": float(worst)}


class Engine:
    """Wires one show: a source, a model, the policy, a desk driver and the journal."""

    def __init__(self, show: Show, source: AudioSource, driver: OscDeskDriver, model: GainModel, journal: Journal,
                 *, clock: Callable[[], float] | None = None) -> None:
        if len(source.channel_names) != len(show.channels):
            raise ValueError(f"the source has {len(source.channel_names)} channels, the show maps {len(show.channels)}")
        self.show = show
        self.source = source
        self.driver = driver
        self.model = model
        self.journal = journal
        self.config = P.PolicyConfig.from_show(show)
        self.state = P.initial_state(self.config)
        self._clock = clock
        # Writes are dated on the engine's clock: the driver's cap then agrees with the policy's pacing.
        driver.use_clock(clock if clock is not None or source.realtime else lambda: self._audio_time_s)
        self._desk_events: list[DeskEvent] = []
        self._listeners: list[Callable[[dict[str, object]], None]] = []
        self._commands: list[tuple[Command, asyncio.Future[Outcome]]] = []
        # Arms waiting for the desk to show back writes of ours, with their deadline on the event loop's clock.
        self._waiting_arms: list[tuple[Command, asyncio.Future[Outcome], float]] = []
        self._stop = asyncio.Event()
        self._latencies_ms: deque[float] = deque(maxlen=4096)
        self._analysed = [i for i, c in enumerate(show.channels) if c.mode != "excluded"]
        self._levels_db = np.full(len(show.channels), SILENCE_DB)
        self._gains_db = np.full(len(show.channels), math.nan)
        self._audio_time_s = -math.inf
        self._model_state: object = None
        self._last_model_error = ""
        self._started_at = math.nan
        self._audio_lost = ""  # why the audio tap is gone (its server died), until it is back
        self._last_reattach_s = -math.inf
        self._sample_rate = source.sample_rate
        self._rejections = Rejections()
        self.status = EngineStatus(show=show.name, model=model.card.name, desk=str(show.desk))
        driver.add_listener(self._on_desk_event)

    def add_listener(self, listener: Callable[[dict[str, object]], None]) -> None:
        """Call ``listener`` with every record the engine journals (moves, events, desk changes)."""
        self._listeners.append(listener)

    def _record(self, kind: str, **fields: object) -> None:
        """Journal a record, then show it to the listeners (telemetry); a failing listener never stops the loop."""
        try:
            self.journal.write(kind, **fields)
        except JournalError as exc:
            self._journal_failed(exc)
        for listener in self._listeners:
            try:
                listener({"kind": kind, **fields})
            except Exception:
                log.exception("engine listener failed on %s", kind)

    def _journal_failed(self, exc: JournalError) -> None:
        """The journal cannot be written (a full disk): disarm, say so, and refuse to arm until it can.

        Every fader stays where it is; what the bridge did is still on the
        desk and the arm snapshot is on disk, so restore still works.
        """
        if self.status.journal_error:
            return
        self.status.journal_error = str(exc)
        log.error("%s; the bridge disarms and will not arm until the journal can be written", exc)
        self.status.last_events.append(f"journal failed: {exc}")
        if self.state.armed:
            now = self.state.last_step_s if math.isfinite(self.state.last_step_s) else 0.0
            self._stand_down(None, "the journal cannot be written")
            self.state, events = P.disarm(self.state, now, "the journal cannot be written")
            self._journal_events(events)

    def _flush_journal(self, now: float) -> None:
        try:
            self.journal.flush_if_due(now)
        except JournalError as exc:
            self._journal_failed(exc)

    def _on_desk_event(self, event: DeskEvent) -> None:
        self._desk_events.append(event)

    # ----- commands (call from a coroutine or callback on the engine's event loop) ----------

    def submit(self, command: Command) -> asyncio.Future[Outcome]:
        """Queue ``command`` for the next control step; the future resolves when that step applied or refused it.

        The future always gets an :class:`Outcome` (never an exception), so a
        caller that does not wait for it (the keyboard) leaves nothing unread.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._commands.append((command, future))
        return future

    def arm(self, origin: str = "local") -> asyncio.Future[Outcome]:
        return self.submit(Arm(origin))

    def disarm(self, origin: str = "local") -> asyncio.Future[Outcome]:
        return self.submit(Disarm(origin))

    def kill(self, origin: str = "local") -> asyncio.Future[Outcome]:
        return self.submit(Kill(origin))

    def set_mode(self, channel: int, mode: str, origin: str = "local") -> asyncio.Future[Outcome]:
        return self.submit(SetMode(channel, Mode(mode), origin))

    def stop(self) -> None:
        self._stop.set()

    # ----- the loop ----------------------------------------------------------------------

    def _now(self, block_time_s: float | None) -> float:
        if self._clock is not None:
            return self._clock()
        if self.source.realtime or block_time_s is None:
            return asyncio.get_running_loop().time()
        return block_time_s

    async def run(self, duration_s: float | None = None, arm_after_s: float | None = None,
                  on_step: Callable[[float], Awaitable[None]] | None = None) -> EngineStatus:
        """Run until ``duration_s`` of audio, the end of a file source, or :meth:`stop`.

        ``on_step`` is called after every control step with the seconds of audio
        played so far (the demo records automation and scripts an engineer there).
        Leaves every fader where it is when it ends (disarm, never a jump).
        """
        self._sample_rate = self.source.sample_rate
        frames = frame_samples(self.source.sample_rate)
        try:
            self._model_state = self.model.initial_state(len(self._analysed), self.source.sample_rate)
        except (ValueError, ModelError) as exc:  # the stream does not fit the model (rate, channel count): nothing has moved
            raise ModelMismatchError(str(exc)) from None
        self._record("start", show=self.show.name, model=self.model.card.name, desk=str(self.show.desk),
                           channels=[c.desk_channel for c in self.show.channels])
        started_at: float | None = None
        try:
            while not self._stop.is_set():
                asked_at = asyncio.get_running_loop().time()
                try:
                    block = await self.source.next_block(frames, timeout_s=self.show.policy.stale_audio_s)
                except EndOfSource:
                    break
                if block is None:  # no audio (a dead server answers at once): keep the control rate, never spin
                    await asyncio.sleep(max(0.0, FRAME_S - (asyncio.get_running_loop().time() - asked_at)))
                    await self._reattach_if_died()
                began = time.perf_counter()
                now = self._now(block.time_s if block is not None else None)
                if started_at is None:
                    started_at = now
                    self._started_at = now
                if block is not None:
                    self._analyse(block.samples, now)
                if arm_after_s is not None and not self.state.armed and now - started_at >= arm_after_s:
                    arm_after_s = None
                    self.arm()
                self._control_step(now)
                self._latencies_ms.append((time.perf_counter() - began) * 1000.0)
                if on_step is not None:
                    await on_step(now - started_at)
                self._flush_journal(now)
                if duration_s is not None and now - started_at >= duration_s:
                    break
                if not self.source.realtime:
                    await asyncio.sleep(0)  # let desk replies and commands in between fast steps
        finally:
            now = self._now(None) if self.source.realtime else self.state.last_step_s
            # Writes still waiting for the desk's cap were journaled as moves: they go out before the socket closes.
            self._refuse_waiting_arms("the bridge stopped")
            self.state, events = P.disarm(self.state, now if math.isfinite(now) else 0.0, "bridge stopped")
            self._journal_events(events)
            if self._rejections.count:
                self._report_rejections(now)
            self._record("stop", steps=self.status.steps, moves=self.status.moves)
            self._refresh_status()
        return self.status

    async def _reattach_if_died(self) -> None:
        """A tap whose JACK server died is opened again once a second; every fader holds until audio flows again."""
        if not getattr(self.source, "server_died", False):
            return
        if not self._audio_lost:
            self._audio_lost = getattr(self.source, "shutdown_reason", "") or "the JACK server went away"
            log.error("audio tap lost: %s; holding every fader and reattaching", self._audio_lost)
            self._record("audio", what="lost", reason=self._audio_lost)
            self.status.last_events.append(f"audio lost: {self._audio_lost}")
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._last_reattach_s < REATTACH_PERIOD_S:
            return
        self._last_reattach_s = loop_now
        try:
            await self.source.stop()
            await self.source.start()
        except AudioSourceError as exc:
            log.info("audio tap not back yet: %s", exc)
            return
        if self.source.sample_rate != self._sample_rate:
            reason = (f"the JACK server came back at {self.source.sample_rate} Hz; the bridge started at "
                      f"{self._sample_rate} Hz (restart the server at that rate, or the bridge)")
            await self.source.stop()
            if reason != self._audio_lost:
                log.error("audio tap refused: %s", reason)
                self._record("audio", what="refused", reason=reason)
                self._audio_lost = reason
            return
        log.warning("audio tap reattached after: %s", self._audio_lost)
        self._record("audio", what="reattached", after=self._audio_lost)
        self.status.last_events.append("audio reattached")
        self._audio_lost = ""

    def _analyse(self, samples: np.ndarray, now: float) -> None:
        """Levels of every channel (DC removed); the model's gains for the analysed ones.

        A DC offset (a failing preamp, a broken cable) carries no sound: counted
        as level, it would open the silence gate and the bridge would ride a
        dead channel up to the ceiling, ready to blast when the sound came back.
        """
        self._levels_db = rms_db(samples - samples.mean(axis=1, keepdims=True))
        self._audio_time_s = now
        gains = np.full(len(self.show.channels), math.nan)
        try:
            proposed, self._model_state = self.model.step(self._model_state, samples[self._analysed])
            proposed = np.asarray(proposed, dtype=np.float64)
            if proposed.shape != (len(self._analysed),):
                raise ValueError(f"model returned shape {proposed.shape}, expected ({len(self._analysed)},)")
            gains[self._analysed] = proposed
            self._last_model_error = ""
        except Exception as exc:  # a failing model holds the faders; it never stops the bridge
            message = f"{type(exc).__name__}: {exc}"
            if message != self._last_model_error:
                log.error("model %s failed: %s", self.model.card.name, message)
                self._record("model-error", error=message)
            self._last_model_error = message
            self.status.model_errors += 1
        self._gains_db = gains

    def _control_step(self, now: float) -> None:
        self.driver.read_queued()  # decide on all the desk has said so far
        self._apply_desk_events(now)
        self._apply_commands(now)
        desk = self._desk_view()
        proposal = P.Proposal(
            gains_db={c.desk_channel: float(self._gains_db[i]) for i, c in enumerate(self.show.channels)},
            levels_db={c.desk_channel: float(self._levels_db[i]) for i, c in enumerate(self.show.channels)},
            audio_time_s=self._audio_time_s,
            model_error=self._last_model_error,
        )
        self.state, moves, events = P.step(self.config, self.state, proposal, desk, now)
        self._journal_events(events)
        self._send(moves)
        self.status.steps += 1
        if self.status.steps % 4 == 0:
            self._refresh_status()

    def _desk_view(self) -> P.DeskView:
        return P.DeskView(
            self.driver.connected,
            {ch: P.DeskChannel(view.fader_db, view.muted, view.confirmed) for ch, view in self.driver.view.items()},
        )

    def _apply_desk_events(self, now: float) -> None:
        events, self._desk_events = self._desk_events, []
        # A gesture pushes several levels in one step: only the last one can still be sent back (an earlier one
        # is already behind the hand, and sending it would pull the fader back under it).
        last_move = {e.channel: i for i, e in enumerate(events) if isinstance(e, FaderMoved)}
        moved: list[FaderMoved] = []
        for index, event in enumerate(events):
            if isinstance(event, FaderMoved):
                self.status.engineer_moves += 1
                self._record("desk", what="fader", ch=event.channel, db=encode_db(event.db), source=event.source)
                if event.cancelled_db is not None:  # a move already journaled that the desk will never get
                    self._record("unsent", ch=event.channel, to=encode_db(event.cancelled_db), reason="the desk moved first")
                if event.crossed and last_move[event.channel] == index:
                    self._send_back(event, now)
                moved.append(event)
            elif isinstance(event, MuteChanged):
                self._record("desk", what="mute", ch=event.channel, muted=event.muted, source=event.source)
            elif isinstance(event, DeskLost):
                self._record("desk", what="lost", reason=event.reason)
                self.status.last_events.append(f"desk lost: {event.reason}")
            elif isinstance(event, DeskConnected):
                self._record("desk", what="connected", model=event.model, reconnect=event.reconnect)
                self.status.last_events.append(f"desk {'reconnected' if event.reconnect else 'connected'}: {event.model}")
            elif isinstance(event, PacketRejected):
                self._reject(event, now)
        # Backed off only once every report of the step had its send-back: a scene recall moves a group's faders
        # at once, and the first one's override of the group must not refuse the level of the next one.
        for event in moved:
            self.state, policy_events = P.desk_moved(self.config, self.state, event.channel, event.db, now)
            self._journal_events(policy_events)
        if self._rejections.count and now - self._rejections.reported_s >= REJECTED_PERIOD_S:
            self._report_rejections(now)

    def _stand_down(self, channels: list[int] | None, reason: str) -> None:
        """Drop the driver's writes still waiting for the desk's cap; each one journaled as a move is unsent."""
        for channel, db in self.driver.stand_down(channels):
            self._record("unsent", ch=channel, to=encode_db(db), reason=reason)

    def _send_back(self, event: FaderMoved, now: float) -> None:
        """One of our writes may have overwritten this move at the desk: the policy decides whether it goes back."""
        self.state, moves, events = P.send_back(self.config, self.state, self._desk_view(), event.channel, event.db, now)
        self._journal_events(events)
        self.status.sent_back += len(moves)
        self.status.send_back_refused += len(events)
        self._send(moves, always=True)

    def _reject(self, event: PacketRejected, now: float) -> None:
        """Journal the first datagram refused from each source at once; then one record a second, with a count."""
        r = self._rejections
        r.count, r.reason, r.peer = r.count + event.count, event.reason, event.peer
        if event.peer not in r.named and len(r.named) < REJECTED_PEERS_NAMED:
            r.named.add(event.peer)
            self._report_rejections(now)

    def _report_rejections(self, now: float) -> None:
        r = self._rejections
        self._record("desk", what="rejected", reason=r.reason, peer=r.peer, count=r.count)
        r.count, r.reported_s = 0, now

    def _apply_commands(self, now: float) -> None:
        """Apply what was asked since the last step, in order; an arm the desk can settle waits for it (see below).

        An arm is refused while a fader holds a write of ours the desk has not
        shown back (its snapshot must be the desk's word). Desks that show our
        writes back only when asked would make an engineer's arm fail for up to
        a poll period after the bridge's last move, so the bridge asks for those
        faders at once and keeps the arm for up to ``ARM_WAIT_S``. A disarm or
        kill asked meanwhile refuses it: it never arms after them.
        """
        queue: list[tuple[Command, asyncio.Future[Outcome], float | None]] = [*self._waiting_arms]
        queue += [(command, future, None) for command, future in self._commands]
        self._waiting_arms = []
        self._commands = []
        for command, future, deadline in queue:
            if future.cancelled():  # its asker was told it was not applied (a stalled loop): it never is
                self._record("expired", command=command.name, args=list(command.args), origin=command.origin)
                continue
            if deadline is None:
                self._record("command", command=command.name, args=list(command.args), origin=command.origin)
            if isinstance(command, (Disarm, Kill)):
                self._refuse_waiting_arms(f"a {command.name} came after it")
            try:
                events = self._apply(command, now)
            except P.ArmAwaitsDesk as exc:
                loop_now = asyncio.get_running_loop().time()
                if deadline is None:
                    deadline = loop_now + ARM_WAIT_S
                    self.driver.ask_faders(exc.channels)
                if loop_now < deadline:
                    self._waiting_arms.append((command, future, deadline))
                    continue
                outcome = self._refused(command, str(exc))
            except (P.ArmRefused, JournalError, ValueError, KeyError) as exc:
                outcome = self._refused(command, str(exc))
            else:
                took = next((e for e in events if e.kind == command.event), None)
                detail = (took.detail or took.kind) if took is not None else "no change"
                mode = Mode(self.state.channel(command.channel).mode) if isinstance(command, SetMode) else None
                outcome = Outcome(True, detail, self.state.armed, mode)
            if not future.done():  # a waiter that gave up cancelled it
                future.set_result(outcome)

    def _refused(self, command: Command, reason: str) -> Outcome:
        self._record("refused", command=command.name, reason=reason)
        self.status.last_events.append(f"{command.name} refused: {reason}")
        return Outcome(False, reason, self.state.armed)

    def _refuse_waiting_arms(self, reason: str) -> None:
        waiting, self._waiting_arms = self._waiting_arms, []
        for command, future, _ in waiting:
            outcome = self._refused(command, reason)
            if not future.done():
                future.set_result(outcome)

    def _apply(self, command: Command, now: float) -> list[P.PolicyEvent]:
        """Apply one command through the policy; the events it caused, already journaled."""
        if isinstance(command, Arm):
            return self._arm(now)
        if isinstance(command, Disarm):
            self._stand_down(None, "disarmed")  # nothing decided while armed goes out after the disarm
            self.state, events = P.disarm(self.state, now, "command")
        elif isinstance(command, Kill):
            self._stand_down(None, "killed")  # first: kill compares the snapshot with what was really sent
            self.state, moves, events = P.kill(self.config, self.state, self._desk_view(), now)
            self._journal_events(events)
            self._send(moves)
            return events
        else:
            if command.mode != Mode.AUTO:
                self._stand_down([command.channel], str(command.mode))  # the engineer's from now on
            self.state, events = P.set_mode(self.state, command.channel, str(command.mode), now)
        self._journal_events(events)
        return events

    def _arm(self, now: float) -> list[P.PolicyEvent]:
        """Snapshot first, durably; only then may anything move."""
        armed, snapshot, events = P.arm(self.config, self.state, self._desk_view(), now)
        if not events:
            return []
        try:
            self.journal.write_snapshot(snapshot, self.show.profile.name, str(self.show.desk))
        except JournalError as exc:
            self._journal_failed(exc)
            raise JournalError(f"{exc}: the bridge cannot promise a restore, so it does not arm") from None
        if self.status.journal_error:
            log.warning("the journal %s can be written again", self.journal.path)
            self.status.last_events.append("journal writable again")
            self.status.journal_error = ""
        self.state = armed
        self._journal_events(events)
        return events

    def _send(self, moves: list[P.Move], *, always: bool = False) -> None:
        for move in moves:
            try:
                self.driver.set_fader_db(move.channel, move.to_db, always=always)
            except DeskOfflineError:
                self._record("unsent", ch=move.channel, to=encode_db(move.to_db), reason="desk offline")
                continue
            self.status.moves += 1
            self._record("move", ch=move.channel, **{"from": encode_db(move.from_db)}, to=encode_db(move.to_db),
                               reason=move.reason)

    def _journal_events(self, events: list[P.PolicyEvent]) -> None:
        for event in events:
            self._record("event", what=event.kind, detail=event.detail, ch=event.channel)
            where = f" ch{event.channel}" if event.channel is not None else ""
            self.status.last_events.append(f"{event.kind}{where}: {event.detail}" if event.detail else f"{event.kind}{where}")

    def _refresh_status(self) -> None:
        s = self.status
        s.armed = self.state.armed
        s.hold = self.state.hold
        s.hold_code = hold_code(self.state.hold)
        s.desk_connected = self.driver.connected
        elapsed = self._audio_time_s - self._started_at
        s.audio_time_s = elapsed if math.isfinite(elapsed) else 0.0
        s.xruns = self.source.xruns
        s.latency_ms = _percentiles(self._latencies_ms)
        s.channels = [
            ChannelStatus(
                channel=c.desk_channel, name=c.name, mode=self.state.channel(c.desk_channel).mode,
                level_db=float(self._levels_db[i]), proposed_db=float(self._gains_db[i]),
                fader_db=self.driver.view[c.desk_channel].fader_db, muted=self.driver.view[c.desk_channel].muted,
                reason=self.state.channel(c.desk_channel).reason,
                hold_code=hold_code(self.state.channel(c.desk_channel).reason),
            )
            for i, c in enumerate(self.show.channels)
        ]

    def refresh(self) -> EngineStatus:
        self._refresh_status()
        return self.status
