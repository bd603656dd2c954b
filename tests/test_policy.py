"""The safety policy, driven step by step on a virtual clock: scenarios and properties."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ailive.bridge import policy as P
from ailive.bridge.policy_settings import PolicySettings
from ailive.consoles.faderlaw import X32Law, held_db

LAW = X32Law()
STEP_S = 0.05


def make_config(n=4, modes=None, groups=None, **overrides) -> P.PolicyConfig:
    modes = modes or ["auto"] * n
    groups = groups or [""] * n
    channels = tuple(P.ChannelConfig(i + 1, f"ch{i + 1}", modes[i], 0.0, groups[i]) for i in range(n))
    return P.PolicyConfig(replace(PolicySettings(), **overrides), channels, LAW)


class Rig:
    """A policy plus a desk that holds what the policy writes, on a virtual clock."""

    def __init__(self, config: P.PolicyConfig, faders_db=None, muted=None):
        self.config = config
        self.state = P.initial_state(config)
        n = len(config.channels)
        self.faders = {c.channel: held_db(LAW, (faders_db or [0.0] * n)[i]) for i, c in enumerate(config.channels)}
        self.muted = {c.channel: (muted or [False] * n)[i] for i, c in enumerate(config.channels)}
        self.connected = True
        self.now = 100.0
        self.moves: list[tuple[float, P.Move]] = []
        self.events: list[P.PolicyEvent] = []

    def desk(self) -> P.DeskView:
        return P.DeskView(self.connected, {ch: P.DeskChannel(db, self.muted[ch]) for ch, db in self.faders.items()})

    def arm(self):
        self.state, snapshot, events = P.arm(self.config, self.state, self.desk(), self.now)
        self.events += events
        return snapshot

    def apply(self, moves):
        for move in moves:
            self.moves.append((self.now, move))
            self.faders[move.channel] = held_db(LAW, move.to_db)

    def step(self, gains, levels=None, audio_age_s=0.0, model_error=""):
        self.now += STEP_S
        levels = levels or {ch: -20.0 for ch in self.faders}
        proposal = P.Proposal(dict(gains), dict(levels), self.now - audio_age_s, model_error)
        self.state, moves, events = P.step(self.config, self.state, proposal, self.desk(), self.now)
        self.apply(moves)
        self.events += events
        return moves

    def run(self, seconds, gains, **kw):
        for _ in range(int(round(seconds / STEP_S))):
            self.step(gains, **kw)

    def engineer(self, channel, db):
        self.faders[channel] = held_db(LAW, db)
        self.state, events = P.desk_moved(self.config, self.state, channel, self.faders[channel], self.now)
        self.events += events


def test_disarmed_proposes_but_never_moves():
    rig = Rig(make_config())
    rig.run(2.0, {1: -12.0, 2: 0.0, 3: 0.0, 4: 0.0})
    assert rig.moves == []
    assert rig.state.channel(1).proposed_db == -12.0


def test_hot_channel_comes_down_and_the_mean_level_is_kept():
    rig = Rig(make_config())
    rig.arm()
    rig.run(10.0, {1: -12.0, 2: 0.0, 3: 0.0, 4: 0.0})
    # Equal input levels: the offset keeps the mean fader at 0 dB, so ch1 goes down 9, the others up 3.
    assert rig.faders[1] == pytest.approx(-6.0, abs=0.1)  # the window (6 dB) bounds it
    assert all(rig.faders[ch] == pytest.approx(3.0, abs=0.1) for ch in (2, 3, 4))


def test_slew_is_faster_down_than_up():
    rig = Rig(make_config(window_db=20.0, ceiling_db=10.0, total_gain_cap_db=20.0))
    rig.arm()
    rig.run(1.0, {1: -10.0, 2: 10.0, 3: 0.0, 4: 0.0})
    down, up = -rig.faders[1], rig.faders[2]
    assert down == pytest.approx(6.0, abs=0.4) and up == pytest.approx(3.0, abs=0.4)


def test_small_changes_inside_the_deadband_do_not_move_motors():
    rig = Rig(make_config())
    rig.arm()
    rig.run(3.0, {1: 0.3, 2: -0.3, 3: 0.0, 4: 0.0})
    assert rig.moves == []


def test_ceiling_and_window_bound_every_write():
    rig = Rig(make_config(ceiling_db=2.0, window_db=4.0, total_gain_cap_db=20.0), faders_db=[0.0, 0.0, -10.0, -10.0])
    rig.arm()
    rig.run(10.0, {1: 20.0, 2: -40.0, 3: 20.0, 4: 0.0})
    assert rig.faders[1] <= 2.0 and rig.faders[3] <= -6.0 + 1e-9 and rig.faders[2] >= -4.0 - 1e-9


def test_total_gain_cap_pulls_everything_down():
    rig = Rig(make_config(window_db=12.0, ceiling_db=10.0, total_gain_cap_db=1.0))
    rig.arm()
    # ch1 is loud and dominates the loudness-weighted mean, so the quiet ones really get +10 dB.
    rig.run(10.0, {1: 0.0, 2: 10.0, 3: 10.0, 4: 0.0}, levels={1: -10, 2: -40, 3: -40, 4: -200})
    total = sum(10 ** (db / 20) for db in rig.faders.values())
    assert total <= 4 * 10 ** (1.0 / 20) + 0.01
    assert any(m.reason == "capped: total gain" for _, m in rig.moves)


def test_silent_channel_holds():
    rig = Rig(make_config())
    rig.arm()
    rig.run(5.0, {1: 6.0, 2: -6.0, 3: 0.0, 4: 0.0}, levels={1: -90.0, 2: -20.0, 3: -20.0, 4: -20.0})
    assert all(m.channel != 1 for _, m in rig.moves)
    assert rig.state.channel(1).reason == "held: silence"


def test_muted_manual_and_excluded_channels_are_never_written():
    rig = Rig(make_config(5, modes=["auto", "manual", "excluded", "auto", "auto"]), muted=[False, False, False, True, False])
    rig.arm()
    rig.run(5.0, {1: -10.0, 2: -10.0, 3: -10.0, 4: -10.0, 5: 0.0})
    assert {m.channel for _, m in rig.moves} == {1, 5}
    assert rig.state.channel(4).reason == "held: muted"


@pytest.mark.parametrize("fault,reason", [("desk", "held: desk lost"), ("audio", "held: stale audio"), ("model", "held: model error"),
                                          ("inf", "held: model error"), ("absurd", "held: model error")])
def test_global_holds_freeze_every_fader(fault, reason):
    rig = Rig(make_config())
    rig.arm()
    rig.run(1.0, {1: -10.0, 2: 0.0, 3: 0.0, 4: 0.0})
    before = dict(rig.faders)
    count = len(rig.moves)
    gains = {1: -10.0, 2: 0.0, 3: 0.0, 4: 0.0}
    if fault == "desk":
        rig.connected = False
    for _ in range(20):
        broken = {"inf": math.inf, "absurd": 1e308}.get(fault)  # one channel's gain that no model can mean
        rig.step({**gains, 1: broken} if broken is not None else gains, audio_age_s=0.3 if fault == "audio" else 0.0,
                 model_error="boom" if fault == "model" else "")
    assert len(rig.moves) == count and rig.faders == before
    assert rig.state.hold == reason
    assert [e.kind for e in rig.events].count("hold") == 1
    rig.connected = True
    rig.step(gains)
    assert rig.state.hold == "" and rig.events[-1].kind == "resume"


def test_engineer_override_is_respected_then_kept_as_taste():
    rig = Rig(make_config(override_hold_s=5.0))
    rig.arm()
    rig.run(3.0, {1: -6.0, 2: 0.0, 3: 0.0, 4: 0.0})
    rig.engineer(1, -2.0)
    start = rig.now
    rig.run(4.9, {1: -6.0, 2: 0.0, 3: 0.0, 4: 0.0})
    assert all(m.channel != 1 for t, m in rig.moves if t > start)
    assert rig.faders[1] == pytest.approx(-2.0, abs=0.05)
    rig.run(5.0, {1: -6.0, 2: 0.0, 3: 0.0, 4: 0.0})
    assert rig.faders[1] == pytest.approx(-2.0, abs=0.6)  # the engineer's level holds afterwards
    assert any(e.kind == "override-ended" and e.channel == 1 for e in rig.events)
    rig.run(5.0, {1: -12.0, 2: 0.0, 3: 0.0, 4: 0.0})  # the model rides changes from there
    assert rig.faders[1] < -4.0


def test_override_can_leave_the_channel_manual():
    rig = Rig(make_config(override_hold_s=1.0, after_override="manual"))
    rig.arm()
    rig.engineer(2, -5.0)
    rig.run(3.0, {1: 0.0, 2: 6.0, 3: 0.0, 4: 0.0})
    assert rig.state.channel(2).mode == "manual"
    assert all(m.channel != 2 for _, m in rig.moves)


def test_linked_pair_moves_together_and_backs_off_together():
    rig = Rig(make_config(groups=["", "", "keys", "keys"]))
    rig.arm()
    rig.run(4.0, {1: 0.0, 2: 0.0, 3: -12.0, 4: 0.0})  # one gain for the pair: the weighted mean, -6
    assert rig.faders[3] == rig.faders[4] < -1.0
    writes = [(t, m.channel) for t, m in rig.moves if m.channel in (3, 4)]
    assert all((t, 3) in writes and (t, 4) in writes for t, _ in writes)
    rig.engineer(3, 0.0)
    count = len(rig.moves)
    rig.run(2.0, {1: 0.0, 2: 0.0, 3: -12.0, 4: -12.0})
    assert all(m.channel not in (3, 4) for _, m in rig.moves[count:])


def test_kill_restores_the_snapshot_of_every_written_fader():
    rig = Rig(make_config(modes=["auto", "auto", "auto", "manual"]), faders_db=[-3.0, 0.0, -10.0, -20.0])
    snapshot = rig.arm()
    rig.run(5.0, {1: -10.0, 2: 6.0, 3: 0.0, 4: 0.0})
    rig.faders[4] = held_db(LAW, -15.0)  # the engineer's manual channel moves; kill leaves it
    rig.state, moves, events = P.kill(rig.config, rig.state, rig.desk(), rig.now)
    rig.apply(moves)
    assert not rig.state.armed and events[-1].kind == "killed"
    for ch in (1, 2, 3):
        assert rig.faders[ch] == snapshot[ch]
    assert rig.faders[4] == held_db(LAW, -15.0)


def test_keep_mapping_holds_the_armed_balance_and_rides_changes():
    rig = Rig(make_config(mapping="keep", settle_s=2.0), faders_db=[-5.0, 0.0, 0.0, 0.0])
    rig.arm()
    rig.run(6.0, {1: -12.0, 2: 0.0, 3: 0.0, 4: 0.0})
    assert rig.moves == []  # settled: the engineer's balance is the model's balance
    rig.run(6.0, {1: -12.0, 2: -3.0, 3: 0.0, 4: 0.0})
    assert rig.faders[2] < -1.5


def test_arm_refuses_without_a_full_view():
    rig = Rig(make_config())
    rig.connected = False
    with pytest.raises(P.ArmRefused, match="not connected"):
        rig.arm()
    rig.connected = True
    rig.faders[2] = math.nan
    with pytest.raises(P.ArmRefused, match="desk channel 2"):
        rig.arm()


def test_arm_refuses_to_snapshot_a_write_the_desk_has_not_shown_back():
    rig = Rig(make_config())
    view = rig.desk()
    unconfirmed = P.DeskView(view.connected, {**view.channels, 3: P.DeskChannel(-4.0, False, confirmed=False)})
    with pytest.raises(P.ArmRefused, match="not shown back the bridge's last write on desk channel 3"):
        P.arm(rig.config, rig.state, unconfirmed, rig.now)
    assert not rig.state.armed
    assert rig.arm() == rig.faders  # once the desk has confirmed, it arms


def test_a_fader_that_was_off_stays_off():
    rig = Rig(make_config(), faders_db=[-math.inf, 0.0, 0.0, 0.0])
    rig.arm()
    rig.run(3.0, {1: 10.0, 2: 0.0, 3: 0.0, 4: 0.0})
    assert all(m.channel != 1 for _, m in rig.moves)


# ----- properties -----------------------------------------------------------------------

actions = st.lists(
    st.one_of(
        st.tuples(st.just("step"), st.lists(st.floats(-40, 30) | st.just(math.nan), min_size=4, max_size=4),
                  st.lists(st.floats(-100, 0), min_size=4, max_size=4)),
        st.tuples(st.just("engineer"), st.integers(1, 4), st.floats(-60, 10)),
        st.tuples(st.just("mute"), st.integers(1, 4), st.booleans()),
        st.tuples(st.just("wait"), st.floats(0.0, 3.0)),
        st.tuples(st.just("desk"), st.booleans()),
    ),
    min_size=1, max_size=60,
)


@hsettings(max_examples=150, deadline=None)
@given(actions=actions, modes=st.lists(st.sampled_from(["auto", "auto", "manual", "excluded"]), min_size=4, max_size=4),
       start=st.lists(st.floats(-40, 8), min_size=4, max_size=4))
def test_properties_hold_for_any_show(actions, modes, start):
    config = make_config(modes=modes, groups=["", "", "pair", "pair"], override_hold_s=1.0)
    s = config.settings
    rig = Rig(config, faders_db=start)
    snapshot = rig.arm()
    last_write: dict[int, tuple[float, float]] = {}
    for action in actions:
        if action[0] == "step":
            gains = dict(zip(range(1, 5), action[1]))
            levels = dict(zip(range(1, 5), action[2]))
            before = dict(rig.faders)
            moves = rig.step(gains, levels)
            for m in moves:
                ch = m.channel
                assert modes[ch - 1] == "auto" or rig.state.channel(ch).mode == "auto"
                assert not rig.muted[ch], "wrote a muted channel"
                assert m.to_db <= s.ceiling_db + 1e-9, "wrote above the ceiling"
                ref = rig.state.channel(ch).reference_db
                assert ref - s.window_db - 1e-9 <= m.to_db <= ref + s.window_db + 1e-9, "wrote outside the window"
                assert m.from_db == before[ch]
                if ch in last_write and min(snapshot.values()) > -89:
                    t0, db0 = last_write[ch]
                    inside = ref - s.window_db <= db0 <= min(ref + s.window_db, s.ceiling_db)
                    if inside:
                        allowed = max(s.slew_up_db_per_s, s.slew_down_db_per_s) * max(rig.now - t0, STEP_S) + 1.0
                        assert abs(m.to_db - db0) <= allowed, "slew exceeded"
                last_write[ch] = (rig.now, m.to_db)
        elif action[0] == "engineer":
            rig.engineer(action[1], action[2])
            last_write.pop(action[1], None)
        elif action[0] == "mute":
            rig.muted[action[1]] = action[2]
        elif action[0] == "wait":
            rig.now += action[1]
            last_write.clear()
        elif action[0] == "desk":
            rig.connected = action[1]
    for ch, mode in enumerate(modes, start=1):
        if mode != "auto":
            assert all(m.channel != ch for _, m in rig.moves if rig.state.channel(ch).mode != "auto"), "wrote a manual/excluded channel"
    rig.connected = True
    engineer_touched = {a[1] for a in actions if a[0] == "engineer"}
    rig.state, moves, _ = P.kill(rig.config, rig.state, rig.desk(), rig.now)
    rig.apply(moves)
    for ch in snapshot:
        if any(m.channel == ch for _, m in rig.moves if m.reason != "kill: restore snapshot"):
            assert rig.faders[ch] == held_db(LAW, snapshot[ch]), "kill did not restore the snapshot"
        elif ch not in engineer_touched:
            assert rig.faders[ch] == held_db(LAW, snapshot[ch])


def test_motors_move_in_purposeful_steps():
    rig = Rig(make_config(min_step_db=0.5, window_db=12.0, total_gain_cap_db=12.0, ceiling_db=10.0))
    rig.arm()
    rig.run(6.0, {1: -12.0, 2: 6.0, 3: 0.0, 4: 0.0})
    for ch in (1, 2):
        sizes = [abs(m.to_db - m.from_db) for _, m in rig.moves if m.channel == ch]
        assert len(sizes) >= 3
        assert all(size >= 0.5 - 1e-9 for size in sizes[:-1]), sizes  # only the arrival may be smaller
    assert rig.faders[1] == pytest.approx(-10.5, abs=0.2) and rig.faders[2] == pytest.approx(7.5, abs=0.2)  # offset -1.5


def test_a_send_back_goes_only_inside_the_bounds_to_an_unmuted_auto_channel_not_yet_held():
    rig = Rig(make_config(modes=["auto", "auto", "manual", "auto"]), muted=[False, False, False, True])
    rig.arm()

    def send_back(channel, db):
        state, moves, events = P.send_back(rig.config, rig.state, rig.desk(), channel, db, rig.now)
        return moves, [e.detail for e in events]

    moves, refused = send_back(1, -4.0)
    assert [(m.channel, m.to_db, m.reason) for m in moves] == [(1, -4.0, "engineer wins: sent back")] and not refused
    assert send_back(1, 10.0)[1] == ["not sent back: +10.0 dB is above the ceiling"]
    assert "outside the window" in send_back(1, -30.0)[1][0]
    assert send_back(1, -math.inf)[1] == ["not sent back: the fader is off"]
    assert send_back(3, -4.0) == ([], [])  # manual: the bridge never writes it
    assert send_back(4, -4.0)[1] == ["not sent back: the channel is muted"]
    rig.engineer(2, -3.0)  # already held by a hand: a gesture that keeps moving is not fought
    assert send_back(2, -4.0) == ([], [])
    rig.state, _ = P.disarm(rig.state, rig.now)
    assert send_back(1, -4.0) == ([], [])
