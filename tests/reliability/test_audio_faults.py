"""Audio faults: the JACK server dies and comes back, channels go silent, DC, clip or get repatched, audio stops.

The JACK test runs the real thing: a dummy jackd, a player client, the
bridge's tap, the X32 simulator over loopback. The channel faults run the
engine on the audio's own clock (a synthetic source and a desk simulator),
so the bounds hold whatever the machine's load.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Callable

import pytest

from ailive.bridge.audio import JackSource
from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, decode_db
from ailive.models.registry import load_model
from tests.conftest import wait_for
from tests.jackserver import JackPlayer
from tests.signals import noise_channels

from .audio import Generator, SyntheticSource
from .rig import HOT_KICK, example_show, recording_desk, running_bridge
from .virtualdesk import VirtualDesk

RATE = 48000


def kinds(records):
    return [(r["kind"], r.get("what")) for r in records]


async def test_jack_server_killed_and_restarted_holds_then_reattaches(own_jack_server, tmp_path):
    server = own_jack_server
    band = noise_channels(HOT_KICK, 4.0, RATE, seed=11)
    player = JackPlayer(server.name, band, RATE).start()
    try:
        async with recording_desk() as desk:
            show = example_show(desk.port)
            show = replace(show, channels=tuple(replace(c, port=p) for c, p in zip(show.channels, player.output_ports)))
            source = JackSource([c.name for c in show.channels], [c.port for c in show.channels],
                                client_name="ailive-reliability", server_name=server.name)
            async with running_bridge(desk, tmp_path, source=source, show=show) as bridge:
                engine = bridge.engine
                await wait_for(lambda: engine.status.moves > 0, timeout_s=8)
                player.stop()
                server.kill()  # as a crash: no goodbye to the clients
                await wait_for(lambda: engine.state.hold == "held: stale audio", timeout_s=2)
                writes = desk.stats.total_writes()
                await asyncio.sleep(1.5)  # a reattach is tried every second: no server, no tap
                assert desk.stats.total_writes() == writes  # every fader held
                assert engine.state.armed and bridge.driver.connected

                server.start()
                hot_bass = noise_channels([-20.0, -6.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0], 4.0, RATE, seed=12)
                player = JackPlayer(server.name, hot_bass, RATE).start()  # the same port names as before
                await wait_for(lambda: any(r["kind"] == "audio" and r["what"] == "reattached" for r in bridge.records),
                               timeout_s=5)
                await wait_for(lambda: engine.state.hold == "", timeout_s=2)
                await wait_for(lambda: desk.fader_db(2) < -1.5, timeout_s=8)  # riding the new audio
    finally:
        player.stop()
    k = kinds(bridge.records)
    lost, hold = k.index(("audio", "lost")), k.index(("event", "hold"))
    held = bridge.records[hold]
    print(f"\nJACK killed: every fader held {(held['loop_s'] - held['audio_s']) * 1000:.0f} ms after the last audio "
          f"(loop clock, loaded machine); reattached and rode on")
    assert held["loop_s"] - held["audio_s"] > bridge.show.policy.stale_audio_s  # the hold is the staleness rule, not a guess
    back, resume = k.index(("audio", "reattached")), k.index(("event", "resume"))
    assert hold < back < resume and lost < back
    assert bridge.records[hold]["detail"] == "held: stale audio"
    assert not any(r["kind"] == "move" for r in bridge.records[hold:resume])
    assert [r for r in bridge.records if r["kind"] == "audio" and r["what"] == "lost"][0]["reason"]


# ----- channel faults, on the audio's own clock --------------------------------------------------------


@dataclass
class Run:
    engine: Engine
    desk: VirtualDesk
    source: SyntheticSource
    moves: list[tuple[float, int, float, float]] = field(default_factory=list)  # time, channel, from, to
    holds: list[tuple[float, float, str]] = field(default_factory=list)  # time, newest audio then, reason


async def run_with(tmp_path, seconds: float, fault: Callable[[Run, float], None], levels=HOT_KICK, **policy) -> Run:
    """The engine with the loudness model on a synthetic band and a virtual desk, ``fault`` applied each step."""
    show = example_show(0, **policy)
    source = SyntheticSource(levels, realtime=False)
    desk = VirtualDesk(show.profile, show.desk_channels, source.clock)
    journal = Journal(tmp_path / "journal", show.name, wall_clock=source.clock)
    journal.open()
    engine = Engine(show, source, desk, load_model("loudness"), journal, clock=source.clock)
    run = Run(engine, desk, source)

    def listen(record: dict) -> None:
        if record["kind"] == "move":
            run.moves.append((source.now_s, record["ch"], decode_db(record["from"]), decode_db(record["to"])))
        elif record["kind"] == "event" and record["what"] == "hold":
            run.holds.append((source.now_s, engine._audio_time_s, record["detail"]))

    engine.add_listener(listen)

    async def on_step(elapsed_s: float) -> None:
        fault(run, elapsed_s)

    await source.start()
    try:
        await engine.run(duration_s=seconds, arm_after_s=0.5, on_step=on_step)
    finally:
        journal.close()
    return run


def moves_of(run: Run, channel: int, after_s: float = 0.0) -> list[tuple[float, int, float, float]]:
    return [m for m in run.moves if m[1] == channel and m[0] > after_s]


def generator(run: Run, channel: int) -> Generator:
    return run.source.generators[channel - 1]


async def test_a_channel_going_silent_holds_its_fader(tmp_path):
    reasons: list[str] = []

    def fault(run: Run, t: float) -> None:
        if t >= 4.0:
            generator(run, 2).kind = "silence"  # snare mic unplugged
        if t >= 5.0:
            generator(run, 3).level_db = -6.0  # the bass gets hot meanwhile
        if t >= 10.0 and not reasons:
            reasons.append(run.engine.state.channel(2).reason)

    run = await run_with(tmp_path, 11.0, fault, levels=[-8.0, -32.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0])
    assert moves_of(run, 2) and not moves_of(run, 2, after_s=4.6)  # riding up before; held (never up on noise) after
    assert reasons == ["held: silence"]
    assert moves_of(run, 3, after_s=5.0)  # the others ride on


@pytest.mark.parametrize("kind", ["dc", "clip"])
async def test_a_broken_input_never_pushes_its_fader_past_the_bounds(tmp_path, kind):
    """DC (a failing preamp) carries no sound: held as silence, never ridden up to blast when the sound comes back.
    Clipping is loud: pulled down, inside the window."""
    reasons: list[str] = []

    def fault(run: Run, t: float) -> None:
        if t >= 3.0:
            g = generator(run, 3)
            g.kind, g.level_db = kind, (-3.0 if kind == "dc" else 12.0)
        if t >= 11.0 and not reasons:
            reasons.append(run.engine.state.channel(3).reason)

    run = await run_with(tmp_path, 12.0, fault)
    settings = run.engine.show.policy
    after = moves_of(run, 3, after_s=3.0)
    for _, _, _, to in after:
        assert -settings.window_db - 0.05 <= to <= settings.ceiling_db
    if kind == "dc":
        assert not moves_of(run, 3, after_s=3.6)  # held within the gate's half second
        assert reasons == ["held: silence"]
    else:
        assert after and run.desk.fader_db(3) < -3.0  # a clipping input comes down


async def test_a_channel_repatched_mid_show_is_followed_at_the_slew_limit(tmp_path):
    """The quiet vocal's input is repatched to the hot kick's source: its fader comes down, never faster than the slew."""
    def fault(run: Run, t: float) -> None:
        if t >= 6.0:
            run.source.route[6] = 0  # channel 7 (vox) now hears the kick's source

    run = await run_with(tmp_path, 12.0, fault, levels=[-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -32.0, -30.0])
    settings = run.engine.show.policy
    vox = moves_of(run, 7)
    up = [m for m in vox if m[0] < 6.0]
    down = moves_of(run, 7, after_s=6.0)
    assert up and up[-1][3] > 2.0  # the quiet vocal was ridden up
    assert down and down[-1][3] < up[-1][3] - 4.0  # then followed the hot source down
    slew = max(settings.slew_up_db_per_s, settings.slew_down_db_per_s)
    for (t1, _, _, db1), (t2, _, _, db2) in zip(vox, vox[1:]):
        assert abs(db2 - db1) <= slew * (t2 - t1) + 0.5, (t1, db1, t2, db2)  # + one fader step of quantization
    assert all(m[3] <= settings.ceiling_db for m in vox)


async def test_stale_audio_holds_every_fader_within_its_limit_on_the_audio_clock(tmp_path):
    stalled_at: list[float] = []
    resumed: list[float] = []

    def fault(run: Run, t: float) -> None:
        if t >= 4.0 and not stalled_at:
            stalled_at.append(run.source.now_s)
            run.source.stalled = True
        elif stalled_at and run.source.stalled and run.source.now_s - stalled_at[0] > 1.0:
            run.source.stalled = False
        if stalled_at and not run.source.stalled and not run.engine.state.hold and not resumed:
            resumed.append(run.source.now_s)

    run = await run_with(tmp_path, 7.0, fault)
    limit = run.engine.show.policy.stale_audio_s
    held_at, audio_at, reason = run.holds[0]
    print(f"\nstale audio: every fader held {(held_at - audio_at) * 1000:.0f} ms after the last audio (audio clock, "
          f"limit {limit * 1000:.0f} ms)")
    assert reason == "held: stale audio" and audio_at == pytest.approx(stalled_at[0])
    assert limit < held_at - audio_at <= limit + 0.05  # the first control step past the limit holds
    assert not [m for m in run.moves if audio_at + limit < m[0] < stalled_at[0] + 1.0]  # nothing moved on old audio
    assert resumed and resumed[0] - stalled_at[0] < 1.2  # and it rides again as soon as audio flows
