"""The safety policy: model gains in, bounded fader moves out, the engineer always in charge.

A pure, deterministic state machine. Time is an argument, nothing here does
IO or reads a clock, and every function returns a new state, so the whole
thing is testable without sleeping and replayable from a journal.

Promises (each is a property test in ``tests/test_policy.py``):
- disarmed, it proposes but never moves a fader;
- it never writes a muted, manual or excluded channel, never unmutes;
- it never writes above ``ceiling_db`` or outside ``reference +- window_db``;
- it never moves a fader faster than the slew limits, and moves it in steps of
  at least ``min_step_db`` (but the last one), so motors make few, purposeful moves;
- a hand on a fader stops the writes to it for ``override_hold_s``, then the
  engineer's position is kept as taste (``bias``); a hand's level that one of
  the bridge's writes may have overwritten is sent back only within the same
  bounds (never muted, above the ceiling or outside the window);
- stale audio, a lost desk or a model error hold every fader where it is;
- ``kill`` puts every fader it wrote back to its arm-time snapshot.

Over 400 lines: one state machine whose transitions (step, a hand, a
send-back, a mode change, kill) read and write the same per-channel state;
split apart, each bound would have to be checked in several files. Its
settings (``policy_settings``) and types (``control``) live apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Mapping, TypeVar

from ailive.consoles.errors import AiliveError
from ailive.consoles.faderlaw import FaderLaw, held_db, held_db_within

from .control import Hold
from .policy_settings import PolicySettings

if TYPE_CHECKING:
    from .show import Show

_State = TypeVar("_State")

#: Longest time step the slew limits integrate over (after a pause, no jump).
MAX_STEP_S = 0.2
#: Time constants of the input-level smoothing: the silence gate reacts in about
#: half a second; the loudness weights of the common offset follow the music's
#: phrases, not single drum hits.
GATE_TAU_S = 0.5
WEIGHT_TAU_S = 3.0
#: A proposed gain further from unity than this is no opinion but a broken model: every fader holds (one such
#: channel would otherwise drag the common offset, and with it every other fader, as far as the bounds allow).
ABSURD_GAIN_DB = 120.0


class ArmRefused(AiliveError):
    """The policy cannot promise to restore the desk, so it does not arm."""


class ArmAwaitsDesk(ArmRefused):
    """Refused only because faders hold writes of ours the desk has not shown back: asking the desk settles it."""

    def __init__(self, message: str, channels: list[int]) -> None:
        super().__init__(message)
        self.channels = channels


@dataclass(frozen=True)
class ChannelConfig:
    channel: int  # desk channel
    name: str
    mode: str  # auto | manual | excluded
    bias_db: float
    group: str


@dataclass(frozen=True)
class PolicyConfig:
    settings: PolicySettings
    channels: tuple[ChannelConfig, ...]
    law: FaderLaw

    @classmethod
    def from_show(cls, show: Show) -> "PolicyConfig":
        return cls(
            settings=show.policy,
            channels=tuple(ChannelConfig(c.desk_channel, c.name, c.mode, c.bias_db, c.group) for c in show.channels),
            law=show.profile.law,
        )

    def groups(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for c in self.channels:
            if c.group and c.mode != "excluded":
                found.setdefault(c.group, []).append(c.channel)
        return found


@dataclass(frozen=True)
class DeskChannel:
    """What the desk holds for one channel, as its driver last saw it."""

    fader_db: float  # NaN when unknown, -inf when off; our unconfirmed write while the desk has not shown it back
    muted: bool | None  # None when unknown
    confirmed: bool = True  # whether fader_db is the desk's own word (False: our write, not yet shown back)


@dataclass(frozen=True)
class DeskView:
    connected: bool
    channels: Mapping[int, DeskChannel]


@dataclass(frozen=True)
class Proposal:
    """One control step's input: the model's gains and the input levels, per desk channel."""

    gains_db: Mapping[int, float]  # NaN: no opinion (silent channel)
    levels_db: Mapping[int, float]  # input RMS of the frame, dBFS
    audio_time_s: float  # when the newest audio arrived, on the policy's clock
    model_error: str = ""  # non-empty when the model failed this step


@dataclass(frozen=True)
class Move:
    channel: int
    from_db: float
    to_db: float
    reason: str


@dataclass(frozen=True)
class PolicyEvent:
    kind: str  # armed, disarmed, killed, hold, resume, override, override-ended, mode, bias-learned, send-back-refused
    time_s: float
    detail: str = ""
    channel: int | None = None


@dataclass(frozen=True)
class ChannelState:
    mode: str
    bias_db: float
    bias_learned: bool = False  # mapping = "keep": learned once after arm
    snapshot_db: float = math.nan  # where the fader was at arm: what kill restores
    reference_db: float = math.nan  # centre of the window: the snapshot, then the engineer's last override
    position_db: float = math.nan  # where the bridge is steering, before quantization
    written: bool = False
    moving: bool = False
    last_write_s: float = -math.inf
    override_until_s: float = -math.inf
    overridden: bool = False
    handed_back: bool = False  # set to auto again mid-show: its level becomes taste at the next step, as after a hold
    proposed_db: float = math.nan
    target_db: float = math.nan
    reason: str = "disarmed"
    gate_power: float = math.nan  # input mean square smoothed over GATE_TAU_S
    weight_power: float = math.nan  # input mean square smoothed over WEIGHT_TAU_S

    @property
    def gate_db(self) -> float:
        return 10.0 * math.log10(self.gate_power) if self.gate_power > 0 else -math.inf


@dataclass(frozen=True)
class PolicyState:
    armed: bool = False
    arm_time_s: float = math.nan
    last_step_s: float = math.nan
    hold: str = ""  # non-empty while every fader is held, with the reason
    offset_db: float = 0.0
    cap_cut_db: float = 0.0  # the common cut the total-gain cap made at the last step (<= 0; 0: not binding)
    channels: Mapping[int, ChannelState] = field(default_factory=dict)
    offset_terms: Mapping[int, float] = field(default_factory=dict)  # what the offset followed per ridden channel last step

    def channel(self, number: int) -> ChannelState:
        return self.channels[number]


def replace(state: _State, **changes: object) -> _State:
    """``dataclasses.replace`` for the policy's frozen states, without its per-call introspection.

    A step makes about three new channel states per channel; at 64 channels
    the stock ``replace`` alone took a third of a control step. No state here
    has ``__post_init__``, so copying the fields and overwriting some is the same.
    """
    names = _FIELD_NAMES.get(type(state))
    if names is None:
        names = _FIELD_NAMES[type(state)] = frozenset(f.name for f in fields(state))  # type: ignore[arg-type]
    if not names.issuperset(changes):
        raise TypeError(f"{type(state).__name__} has no field {sorted(set(changes) - names)}")
    new = object.__new__(type(state))
    new.__dict__.update(state.__dict__)
    new.__dict__.update(changes)
    return new


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def initial_state(config: PolicyConfig) -> PolicyState:
    return PolicyState(channels={c.channel: ChannelState(mode=c.mode, bias_db=c.bias_db) for c in config.channels})


def _with_channels(state: PolicyState, updates: Mapping[int, ChannelState], **changes: object) -> PolicyState:
    return replace(state, channels={**state.channels, **updates}, **changes)


# ----- commands ---------------------------------------------------------------------------


def arm(config: PolicyConfig, state: PolicyState, desk: DeskView, now: float) -> tuple[PolicyState, dict[int, float], list[PolicyEvent]]:
    """Snapshot every mapped fader as the reference and start riding.

    Returns the snapshot, which the caller must make durable before the first
    move (the journal fsyncs it). Refuses when the desk is not fully known, or
    a fader holds a write of ours the desk has not shown back: the snapshot is
    the engineer's levels, in the desk's own word.
    """
    if state.armed:
        return state, {ch: s.snapshot_db for ch, s in state.channels.items()}, []
    if not desk.connected:
        raise ArmRefused("the desk is not connected")
    snapshot: dict[int, float] = {}
    in_flight = []
    for c in config.channels:
        seen = desk.channels.get(c.channel)
        if seen is None or math.isnan(seen.fader_db):
            raise ArmRefused(f"the fader of desk channel {c.channel} ({c.name}) is not known yet")
        if not seen.confirmed:  # a snapshot of our own write in flight would make kill and restore put it back
            in_flight.append(c)
        snapshot[c.channel] = seen.fader_db
    if in_flight:
        first = in_flight[0]
        raise ArmAwaitsDesk(f"the desk has not shown back the bridge's last write on desk channel {first.channel} "
                            f"({first.name}){f' and {len(in_flight) - 1} more' if len(in_flight) > 1 else ''} yet; "
                            f"arm again in a moment", [c.channel for c in in_flight])
    channels = {
        ch: replace(s, snapshot_db=snapshot[ch], reference_db=snapshot[ch], position_db=snapshot[ch], written=False, moving=False,
                    overridden=False, override_until_s=-math.inf, handed_back=False, bias_learned=False,
                    reason="armed" if s.mode == "auto" else s.mode)
        for ch, s in state.channels.items()
    }
    armed = replace(state, armed=True, arm_time_s=now, last_step_s=now, hold="", channels=channels, offset_terms={})
    return armed, snapshot, [PolicyEvent("armed", now, f"{len(snapshot)} faders in the snapshot")]


def disarm(state: PolicyState, now: float, detail: str = "") -> tuple[PolicyState, list[PolicyEvent]]:
    """Stop sending; every fader stays where it is."""
    if not state.armed:
        return state, []
    channels = {ch: replace(s, moving=False, reason="disarmed") for ch, s in state.channels.items()}
    return replace(state, armed=False, channels=channels), [PolicyEvent("disarmed", now, detail)]


def kill(config: PolicyConfig, state: PolicyState, desk: DeskView, now: float) -> tuple[PolicyState, list[Move], list[PolicyEvent]]:
    """Stop, and put every fader the bridge wrote back to its arm-time snapshot, at once.

    Faders the bridge never wrote are the engineer's and stay where they are.
    """
    moves = []
    for ch, s in state.channels.items():
        if not s.written or math.isnan(s.snapshot_db):
            continue
        seen = desk.channels.get(ch)
        current = seen.fader_db if seen is not None else math.nan
        if math.isnan(current) or held_db(config.law, current) != held_db(config.law, s.snapshot_db):
            moves.append(Move(ch, current, s.snapshot_db, "kill: restore snapshot"))
    disarmed, events = disarm(state, now, "kill")
    channels = {ch: replace(s, written=False, position_db=s.snapshot_db, reason="killed") for ch, s in disarmed.channels.items()}
    return replace(disarmed, channels=channels), moves, [*events, PolicyEvent("killed", now, f"{len(moves)} faders restored")]


def set_mode(state: PolicyState, channel: int, mode: str, now: float) -> tuple[PolicyState, list[PolicyEvent]]:
    """Change one channel's mode (auto, manual, excluded) during the show."""
    if mode not in ("auto", "manual", "excluded"):
        raise ValueError(f"unknown channel mode {mode!r}")
    current = state.channels[channel]
    if current.mode == mode:
        return state, []
    updated = replace(current, mode=mode, moving=False, reason=mode if mode != "auto" else "resumed")
    if mode == "auto" and state.armed:
        # Handed back: wherever the engineer left the fader is kept as taste and the window re-centres on it,
        # as at the end of a hold; riding from the old reference would jump a fader left outside the window.
        updated = replace(updated, overridden=True, override_until_s=now, handed_back=True)
    return _with_channels(state, {channel: updated}), [PolicyEvent("mode", now, mode, channel)]


def desk_moved(config: PolicyConfig, state: PolicyState, channel: int, db: float, now: float) -> tuple[PolicyState, list[PolicyEvent]]:
    """Somebody else moved a fader (a hand, a scene recall, another app): back off from it.

    The whole group of a linked channel backs off with it.
    """
    if channel not in state.channels:
        return state, []
    current = state.channels[channel]
    if not state.armed or current.mode != "auto":
        return _with_channels(state, {channel: replace(current, position_db=db)}), []
    group = _group_of(config, channel)
    hold_until = now + config.settings.override_hold_s
    updates = {}
    for member in group:
        s = state.channels[member]
        if s.mode != "auto":
            continue
        updates[member] = replace(s, overridden=True, override_until_s=hold_until, moving=False,
                                  position_db=db if member == channel else s.position_db, reason=Hold.OVERRIDE)
    return _with_channels(state, updates), [PolicyEvent("override", now, f"engineer moved the fader to {db:+.1f} dB", channel)]


def send_back(config: PolicyConfig, state: PolicyState, desk: DeskView, channel: int, db: float,
              now: float) -> tuple[PolicyState, list[Move], list[PolicyEvent]]:
    """A hand's move that one of the bridge's writes may have overwritten at the desk: send it back, within bounds.

    Call it before :func:`desk_moved` with the level the desk reported. The
    level comes from the network, so it is a write like any other: only to an
    armed, auto channel that is not muted, not already held by a hand (a
    gesture that keeps moving is not fought), inside the window and under the
    ceiling. Otherwise nothing is sent and the refusal is an event.
    """
    s = state.channels.get(channel)
    if s is None or not state.armed or s.mode != "auto":
        return state, [], []
    if s.overridden and now < s.override_until_s:
        return state, [], []
    seen = desk.channels.get(channel)
    low, high = _bounds(config, s)
    if seen is None or seen.muted is not False:
        refusal = "the channel is muted" if seen is not None and seen.muted else "its mute is not known"
    elif not math.isfinite(db) or db > config.settings.ceiling_db:
        refusal = f"{db:+.1f} dB is above the ceiling" if db > config.settings.ceiling_db else "the fader is off"
    elif not low - 1e-9 <= db <= high + 1e-9:
        refusal = f"{db:+.1f} dB is outside the window {low:+.1f}..{high:+.1f} dB"
    else:
        moved = replace(s, written=True, last_write_s=now)
        move = Move(channel, s.position_db, db, "engineer wins: sent back")
        return _with_channels(state, {channel: moved}), [move], []
    return state, [], [PolicyEvent("send-back-refused", now, f"not sent back: {refusal}", channel)]


def _group_of(config: PolicyConfig, channel: int) -> list[int]:
    for c in config.channels:
        if c.channel == channel and c.group:
            return config.groups().get(c.group, [channel])
    return [channel]


# ----- the control step -----------------------------------------------------------------


def _global_hold(config: PolicyConfig, proposal: Proposal, desk: DeskView, now: float) -> str:
    if not desk.connected:
        return Hold.DESK_LOST
    if now - proposal.audio_time_s > config.settings.stale_audio_s:
        return Hold.STALE_AUDIO
    if proposal.model_error:
        return Hold.MODEL_ERROR
    if any(math.isinf(g) or abs(g) > ABSURD_GAIN_DB for g in proposal.gains_db.values()):
        return Hold.MODEL_ERROR
    return ""


def _group_gains(config: PolicyConfig, proposal: Proposal) -> dict[int, float]:
    """Each linked group gets one gain: the loudness-weighted mean of its members' proposals."""
    gains = dict(proposal.gains_db)
    for members in config.groups().values():
        pairs = [(gains.get(m, math.nan), proposal.levels_db.get(m, -math.inf)) for m in members]
        finite = [(g, 10.0 ** (lvl / 10.0)) for g, lvl in pairs if math.isfinite(g) and math.isfinite(lvl)]
        total = sum(w for _, w in finite)
        shared = sum(g * w for g, w in finite) / total if total > 0 else math.nan
        for m in members:
            gains[m] = shared
    return gains


def _channel_hold(config: PolicyConfig, s: ChannelState, gain: float, level_db: float, seen: DeskChannel | None, now: float) -> str:
    if s.mode != "auto":
        return s.mode
    if seen is None or math.isnan(seen.fader_db):
        return Hold.FADER_UNKNOWN
    if seen.muted is None:
        return Hold.MUTE_UNKNOWN
    if seen.muted:
        return Hold.MUTED
    if seen.fader_db == -math.inf or s.reference_db == -math.inf:
        return Hold.FADER_OFF
    if seen.fader_db > config.settings.ceiling_db:
        return Hold.ABOVE_CEILING  # the engineer put it there; the bridge never pulls it down with a jump
    if s.overridden and now < s.override_until_s:
        return Hold.OVERRIDE
    if not math.isfinite(gain) or not level_db >= config.settings.silence_db:
        return Hold.SILENCE
    return ""


def step(
    config: PolicyConfig, state: PolicyState, proposal: Proposal, desk: DeskView, now: float
) -> tuple[PolicyState, list[Move], list[PolicyEvent]]:
    """One control step: decide which faders move where, and why."""
    settings = config.settings
    gains = _group_gains(config, proposal)
    events: list[PolicyEvent] = []
    dt = MAX_STEP_S if math.isnan(state.last_step_s) else min(max(now - state.last_step_s, 0.0), MAX_STEP_S)

    hold = _global_hold(config, proposal, desk, now) if state.armed else ""
    if hold != state.hold:
        events.append(PolicyEvent("hold" if hold else "resume", now, hold or state.hold))
    channels = {ch: _smooth_levels(s, proposal.levels_db.get(ch, -math.inf), dt, gains.get(ch, math.nan))
                for ch, s in state.channels.items()}
    if not state.armed or hold:
        reason = hold or "disarmed"
        channels = {ch: replace(s, moving=False, reason=reason if s.mode == "auto" else s.mode) for ch, s in channels.items()}
        return replace(state, channels=channels, hold=hold, last_step_s=now), [], events

    # Who may be written this step, and the engineer's overrides that just ended.
    eligible: list[int] = []
    for ch, s in channels.items():
        seen = desk.channels.get(ch)
        gain = gains.get(ch, math.nan)
        if s.overridden and now >= s.override_until_s and seen is not None and math.isfinite(gain):
            s, ended = _end_override(config, s, ch, gain, seen.fader_db, _effective_offset(state), now)
            events.extend(ended)
        # Silent now, or quiet for a while: either holds. The smoothed gate alone takes seconds to close after a
        # dropout, and a model's loudness window sees the channel fading meanwhile and asks for more gain.
        level_db = min(s.gate_db, proposal.levels_db.get(ch, -math.inf))
        reason = _channel_hold(config, s, gain, level_db, seen, now)
        channels[ch] = replace(s, reason=reason or s.reason, moving=s.moving and not reason)
        if not reason:
            eligible.append(ch)
    eligible = _drop_split_groups(config, channels, eligible)

    if settings.mapping == "keep":
        channels, eligible, learned = _learn_bias(config, state, channels, gains, eligible, now)
        events.extend(learned)

    offset, terms = _offset(channels, gains, eligible, state.offset_db, state.offset_terms)
    targets = {ch: _bounded_target(config, channels[ch], gains[ch], offset) for ch in eligible}
    targets, capped, cut_db = _cap_total_gain(config, channels, desk, targets)

    moves: list[Move] = []
    for ch in eligible:
        channels[ch], move = _advance(config, channels[ch], targets[ch], desk.channels[ch].fader_db, dt, now,
                                      "capped: total gain" if ch in capped else "")
        if move is not None:
            moves.append(Move(ch, move[0], move[1], move[2]))
    return replace(state, channels=channels, offset_db=offset, offset_terms=terms, cap_cut_db=cut_db, last_step_s=now,
                   hold=""), moves, events


def _effective_offset(state: PolicyState) -> float:
    """What a gain has taken off it on its way to a fader: the common offset, and the cap's cut while it binds.

    A bias learned against this makes the *capped* target equal the fader's
    level, so a fader the engineer just set is not moved by the cap the moment
    the hold ends (and fought over with whoever set it).
    """
    cut = state.cap_cut_db if math.isfinite(state.cap_cut_db) else 0.0
    return state.offset_db - cut


def _smooth_levels(s: ChannelState, level_db: float, dt: float, proposed_db: float) -> ChannelState:
    """Follow the input level with two one-pole smoothers (gate and weights)."""
    power = 10.0 ** (level_db / 10.0) if math.isfinite(level_db) else 0.0
    if math.isnan(s.gate_power):
        return replace(s, gate_power=power, weight_power=power, proposed_db=proposed_db)
    fast = 1.0 - math.exp(-dt / GATE_TAU_S)
    slow = 1.0 - math.exp(-dt / WEIGHT_TAU_S)
    return replace(s, gate_power=s.gate_power + fast * (power - s.gate_power),
                   weight_power=s.weight_power + slow * (power - s.weight_power), proposed_db=proposed_db)


def _end_override(config: PolicyConfig, s: ChannelState, ch: int, gain: float, desk_db: float, offset: float,
                  now: float) -> tuple[ChannelState, list[PolicyEvent]]:
    """Keep the engineer's position as taste: the bias that makes the model's target equal it.

    The window re-centres on the engineer's position too: the hand decided the new level.
    """
    manual = config.settings.after_override == "manual" and not s.handed_back
    bias = desk_db - (gain - offset) if math.isfinite(desk_db) else s.bias_db
    ended = replace(s, overridden=False, handed_back=False, bias_db=bias, bias_learned=True, position_db=desk_db,
                    reference_db=desk_db, mode="manual" if manual else s.mode, reason="manual" if manual else "resumed")
    if s.handed_back:
        return ended, [PolicyEvent("bias-learned", now, f"{bias:+.1f} dB, handed back at {desk_db:+.1f} dB", ch)]
    detail = "stays manual" if manual else f"resumes with bias {bias:+.1f} dB"
    return ended, [PolicyEvent("override-ended", now, detail, ch)]


def _drop_split_groups(config: PolicyConfig, channels: dict[int, ChannelState], eligible: list[int]) -> list[int]:
    """A linked group moves together or not at all (a stereo image must not tilt).

    A member switched to manual (or excluded) during the show holds the group
    too: its partner riding alone would tilt the image the engineer now owns.
    """
    allowed = set(eligible)
    for members in config.groups().values():
        if any(m not in allowed for m in members):
            for m in members:
                if m in allowed:
                    allowed.discard(m)
                    channels[m] = replace(channels[m], moving=False, reason=Hold.GROUP)
    return [ch for ch in eligible if ch in allowed]


def _learn_bias(config: PolicyConfig, state: PolicyState, channels: dict[int, ChannelState], gains: Mapping[int, float],
                eligible: list[int], now: float) -> tuple[dict[int, ChannelState], list[int], list[PolicyEvent]]:
    """mapping = "keep": once the model has settled, hold the armed balance and ride changes from there."""
    if now - state.arm_time_s < config.settings.settle_s:
        for ch in eligible:
            channels[ch] = replace(channels[ch], reason=Hold.SETTLING)
        return channels, [], []
    events = []
    for ch in eligible:
        s = channels[ch]
        if not s.bias_learned:
            channels[ch] = replace(s, bias_db=s.position_db - (gains[ch] - _effective_offset(state)), bias_learned=True)
            events.append(PolicyEvent("bias-learned", now, f"{channels[ch].bias_db:+.1f} dB", ch))
    return channels, eligible, events


def _offset(channels: Mapping[int, ChannelState], gains: Mapping[int, float], eligible: list[int], previous: float,
            last_terms: Mapping[int, float]) -> tuple[float, dict[int, float]]:
    """The common offset that keeps the loudness-weighted mean of the ridden faders where it was at arm.

    It moves only by what the channels ridden at the last step too asked for in common: a channel
    that just entered (or just left) changes the set, not the others' faders. Taking a loud
    entrance into the mean would move every fader by its pull, which an engineer would not do.
    Returns the offset and each ridden channel's term for the next step.
    """
    terms = {ch: gains[ch] + channels[ch].bias_db - channels[ch].reference_db for ch in eligible}
    weights = {ch: channels[ch].weight_power for ch in eligible}
    staying = [ch for ch in eligible if ch in last_terms and weights[ch] > 0.0]
    if staying:
        total = sum(weights[ch] for ch in staying)
        return previous + sum(weights[ch] * (terms[ch] - last_terms[ch]) for ch in staying) / total, terms
    total = sum(weights.values())
    if not eligible or total <= 0.0:
        return previous, terms
    return sum(weights[ch] * terms[ch] for ch in eligible) / total, terms


def _bounded_target(config: PolicyConfig, s: ChannelState, gain: float, offset: float) -> float:
    low, high = _bounds(config, s)
    return min(max(gain + s.bias_db - offset, low), high)


def _bounds(config: PolicyConfig, s: ChannelState) -> tuple[float, float]:
    settings = config.settings
    low = s.reference_db - settings.window_db
    high = min(s.reference_db + settings.window_db, settings.ceiling_db)
    return (min(low, high), high)


def _cap_total_gain(config: PolicyConfig, channels: Mapping[int, ChannelState], desk: DeskView,
                    targets: dict[int, float]) -> tuple[dict[int, float], set[int], float]:
    """Feedback protection: the summed linear gain may exceed the arm-time sum by at most the cap.

    Every ridden target takes the same cut in dB (the model's balance stays);
    the cut is returned too (0 when the cap does not bind).
    """
    limit = 10.0 ** (config.settings.total_gain_cap_db / 20.0) * sum(
        10.0 ** (s.reference_db / 20.0) for s in channels.values() if s.mode != "excluded" and math.isfinite(s.reference_db))
    others = sum(
        10.0 ** (desk.channels[ch].fader_db / 20.0)
        for ch, s in channels.items()
        if ch not in targets and s.mode != "excluded" and ch in desk.channels and math.isfinite(desk.channels[ch].fader_db)
    )
    ridden = sum(10.0 ** (t / 20.0) for t in targets.values())
    if not targets or others + ridden <= limit or ridden <= 0.0:
        return targets, set(), 0.0
    room = limit - others
    cut_db = -math.inf if room <= 0 else 20.0 * math.log10(room / ridden)
    capped = {}
    for ch, target in targets.items():
        low, _ = _bounds(config, channels[ch])
        capped[ch] = max(target + cut_db, low) if math.isfinite(cut_db) else low
    return capped, set(targets), cut_db


def _advance(config: PolicyConfig, s: ChannelState, target: float, desk_db: float, dt: float, now: float,
             cap_reason: str) -> tuple[ChannelState, tuple[float, float, str] | None]:
    """Slew the steering position toward the target; write when the desk would hold a new step."""
    settings = config.settings
    law = config.law
    position = s.position_db if math.isfinite(s.position_db) else desk_db
    distance = target - position
    starts = abs(target - desk_db) >= settings.deadband_db
    arrived = held_db(law, target) == held_db(law, desk_db)
    if (not s.moving and not starts) or (arrived and abs(distance) < settings.deadband_db):
        return replace(s, position_db=position, target_db=target, moving=False, reason="on target"), None
    limit = settings.slew_up_db_per_s * dt if distance > 0 else settings.slew_down_db_per_s * dt
    slewed = abs(distance) > limit
    position = position + math.copysign(min(abs(distance), limit), distance)
    reason = cap_reason or ("slew-limited" if slewed else "model")
    low, high = _bounds(config, s)
    to_db = held_db_within(law, position, low, high)
    rate_ok = now - s.last_write_s >= 1.0 / settings.max_writes_per_s - 1e-9
    still_moving = slewed or held_db_within(law, target, low, high) != to_db
    updated = replace(s, position_db=position, target_db=target, moving=still_moving, reason=reason)
    final = to_db == held_db_within(law, target, low, high)
    too_small = abs(to_db - desk_db) < settings.min_step_db and not final  # fewer, purposeful motor moves
    if to_db == held_db(law, desk_db) or not rate_ok or too_small:
        return updated, None
    return replace(updated, written=True, last_write_s=now), (desk_db, to_db, reason)
