"""Every desk profile, one test body: driver and simulator over loopback UDP, then the whole bridge.

The X32 path's guarantees (identification, sweep, quantized writes, external
changes as events, no self-echo, reconnect, bad input refused) hold for every
desk the bridge speaks; the dialect differences live in the profiles. The
second half pins the WING and DiGiCo quirks the profiles name.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from ailive.bridge.audio import FileSource
from ailive.bridge.cli import main as cli_main
from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, last_snapshot, read_records
from ailive.bridge.show import Show, load_show
from ailive.consoles import osc
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.errors import DeskError, DeskIdentityError, DeskUnreachableError, ProfileError, ProfileSchemaError
from ailive.consoles.events import DeskConnected, DeskLost, FaderMoved, MuteChanged, NameChanged
from ailive.consoles.faderlaw import held_db
from ailive.consoles.profile import Profile, get_profile, load_profiles
from ailive.consoles.show import DeskAddress
from ailive.consoles.sim import DeskSimulator
from ailive.models.registry import load_model
from tests.conftest import wait_for
from tests.oscpeer import OscPeer
from tests.test_engine import write_stems

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DESKS = sorted(load_profiles())
HOT = [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0]
#: The driver hears ICMP "port unreachable" through IP_RECVERR, which only Linux has.
icmp_reports = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ICMP reports need Linux IP_RECVERR")


@pytest.fixture(params=DESKS)
def profile(request) -> Profile:
    return get_profile(request.param)


@pytest.fixture
async def sim(profile):
    async with DeskSimulator(profile, port=0) as desk:
        yield desk


def driver_for(sim: DeskSimulator, channels=(1, 2, 3, 4), profile: Profile | None = None, **options) -> OscDeskDriver:
    return OscDeskDriver(profile or sim.profile, "127.0.0.1", sim.port, list(channels), reply_timeout_s=0.3, **options)


def fader_set(profile: Profile, channel: int, db: float) -> tuple[str, tuple[str, float]]:
    """A stock client's fader write, in the profile's address and type."""
    return profile.fader.address_of(channel), (profile.fader.type, profile.law.from_db(db))


def detection_bound_s(driver: OscDeskDriver) -> float:
    """How soon an engineer's move must be seen: at once where the desk pushes it, within a poll period where not."""
    return 0.3 if driver.profile.pushes_hand_moves else driver.poll_period_s + 0.2


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_show(profile: Profile) -> Show:
    """The desk's example show, or the X32 one with this profile (the same 8 channels fit every desk)."""
    path = EXAMPLES / f"{profile.name}-demo.toml"
    if path.exists():
        return load_show(path)
    return replace(load_show(EXAMPLES / "x32-demo.toml"), profile=profile)


# ----- driver and simulator, every desk ------------------------------------------------------


async def test_handshake_identifies_and_sweeps(sim):
    sim.set_name(2, "Snare")
    sim.move_fader_db(3, -20.0)
    sim.set_mute(4, True)
    async with driver_for(sim) as driver:
        assert driver.connected
        assert driver.identity.model == sim.profile.sim.model
        assert driver.view[2].name == "Snare"
        assert driver.view[3].fader_db == pytest.approx(sim.fader_db(3))
        assert driver.view[3].fader_db == pytest.approx(-20.0, abs=0.2)
        assert driver.view[4].muted is True and driver.view[1].muted is False
        assert sim.subscribers() == [driver.local_address]  # the one the desk feeds back to


async def test_writes_land_quantized_and_equal_writes_are_skipped(sim):
    law = sim.profile.law
    async with driver_for(sim) as driver:
        held = driver.set_fader_db(1, -10.04)
        assert held == pytest.approx(held_db(law, -10.04))
        await wait_for(lambda: sim.fader_db(1) == pytest.approx(held))
        await asyncio.sleep(0.1)
        driver.set_fader_db(1, held)  # the same step
        assert driver.stats.skipped_equal == 1
        await driver.sync()
        assert sim.stats.writes == {sim.profile.fader.address_of(1): 1}
        assert driver.set_fader_db(2, -math.inf) == -math.inf
        await wait_for(lambda: sim.fader_db(2) == -math.inf)


async def test_engineer_and_other_clients_are_external_events(sim):
    profile = sim.profile
    events: list = []
    async with driver_for(sim) as driver, OscPeer(sim.address) as other:
        driver.add_listener(events.append)
        sim.move_fader_db(1, -12.0)
        took = await wait_for(lambda: any(isinstance(e, FaderMoved) and e.channel == 1 for e in events), timeout_s=2.0)
        assert took <= detection_bound_s(driver)
        other.send(*fader_set(profile, 2, -30.0))
        muted = int(profile.mute.muted_value) if profile.mute.type == "i" else float(profile.mute.muted_value)
        other.send(profile.mute.address_of(2), (profile.mute.type, muted))
        other.send(profile.name_param.address_of(2), ("s", "Bass DI"))
        took = await wait_for(lambda: sum(getattr(e, "channel", 0) == 2 for e in events) >= 3, timeout_s=2.0)
        assert took <= detection_bound_s(driver) + 0.2
        moved = [e for e in events if isinstance(e, FaderMoved)]
        assert [(e.channel, e.source) for e in moved] == [(1, "external"), (2, "external")]
        assert moved[1].db == pytest.approx(held_db(profile.law, -30.0))
        assert any(isinstance(e, MuteChanged) and e.muted and e.channel == 2 for e in events)
        assert any(isinstance(e, NameChanged) and e.name == "Bass DI" for e in events)


async def test_own_writes_are_never_engineer_moves(sim):
    events: list = []
    async with driver_for(sim, poll_period_s=0.2) as driver:  # poll answers come back too: they are not moves either
        driver.add_listener(events.append)
        for db in (-6.0, -9.0, -12.0):
            driver.set_fader_db(1, db)
            await asyncio.sleep(0.08)  # past the per-fader rate limit: every write goes out
        await asyncio.sleep(driver.poll_period_s + 0.3)  # echoes and poll answers are back
        assert sim.fader_db(1) == pytest.approx(held_db(sim.profile.law, -12.0))
        assert sim.stats.writes == {sim.profile.fader.address_of(1): 3}
        assert [e for e in events if isinstance(e, FaderMoved)] == []
        if sim.profile.echoes_own_writes:
            assert driver.stats.own_echoes >= 3


async def test_reconnect_after_restart_resyncs_state(profile):
    quick = replace(profile, liveness_timeout_s=0.6)
    async with DeskSimulator(quick, port=0) as sim:
        events: list = []
        async with driver_for(sim) as driver:
            driver.add_listener(events.append)
            restart = asyncio.create_task(sim.restart(keep_state=False, downtime_s=1.0))
            await asyncio.sleep(0.05)
            sim.move_fader_db(2, -40.0)  # changed while the desk is away: the sweep must find it
            await wait_for(lambda: any(isinstance(e, DeskLost) for e in events), timeout_s=1.0)
            assert not driver.connected
            await restart
            await wait_for(lambda: driver.connected, timeout_s=3.0)
            assert any(isinstance(e, DeskConnected) and e.reconnect for e in events)
            assert sim.subscribers() == [driver.local_address]
            resynced = [e for e in events if isinstance(e, FaderMoved) and e.source == "sweep"]
            assert [e.channel for e in resynced] == [2]
            assert driver.view[2].fader_db == pytest.approx(-40.0, abs=0.2)


async def test_feedback_keeps_coming_past_a_lease(profile):
    """Subscriptions are renewed before they lapse; a desk without one needs nothing renewed."""
    if profile.subscription is not None:
        profile = replace(profile, subscription=replace(profile.subscription, lease_s=0.6, renew_s=0.3))
    async with DeskSimulator(profile, port=0) as sim:
        events: list = []
        async with driver_for(sim) as driver:
            driver.add_listener(events.append)
            await asyncio.sleep(1.0)
            assert sim.subscribers() == [driver.local_address]
            sim.move_fader_db(1, -1.0)
            took = await wait_for(lambda: abs(driver.view[1].fader_db + 1.0) < 0.1, timeout_s=1.0)
            assert took <= detection_bound_s(driver)


async def test_a_desk_of_another_model_is_refused(profile):
    impostor = replace(profile, sim=replace(profile.sim, model="MX-9000"))
    async with DeskSimulator(impostor, port=0) as sim:
        with pytest.raises(DeskIdentityError, match=rf"'MX-9000', not one of the {profile.name} family"):
            await driver_for(sim, profile=profile).connect()


async def test_out_of_range_reports_are_clamped_logged_and_never_sent_back(sim, caplog):
    law = sim.profile.law
    low, high = law.wire_range
    address = sim.profile.fader.address_of(1)
    events: list = []
    async with driver_for(sim, poll_period_s=30.0) as driver:  # no poll answer puts the desk's real level back
        driver.add_listener(events.append)
        driver.set_fader_db(1, -3.0)  # one of our writes, so the engineer-wins window is open
        await driver.sync()  # its echo (where the desk echoes) is in
        with caplog.at_level(logging.WARNING, logger="ailive.consoles.driver"):
            sim.send_raw(osc.encode(address, "f", (high + 50.0,)), driver.local_address)
            await wait_for(lambda: driver.stats.clamped == 1)
            sim.send_raw(osc.encode(address, "f", (high + 60.0,)), driver.local_address)
            sim.send_raw(osc.encode(address, "f", (low - 1000.0,)), driver.local_address)
            await wait_for(lambda: driver.stats.clamped == 3)
        assert [r for r in caplog.records if "outside" in r.getMessage()] and len(caplog.records) == 2
        moved = [e for e in events if isinstance(e, FaderMoved)]
        assert [e.db for e in moved] == [law.max_db, -math.inf]  # within the law, never +50 dB or below off
        assert driver.view[1].fader_db == -math.inf
        await driver.sync()
        assert driver.stats.crossed == 0  # a clamped report is never offered back to the desk
        assert sim.stats.writes == {address: 1}


async def test_garbage_and_wrong_types_change_nothing(sim):
    profile = sim.profile
    async with driver_for(sim) as driver:
        before = {ch: (v.fader, v.muted, v.name) for ch, v in driver.view.items()}
        fader = profile.fader.address_of(1)
        for junk in (b"\x00" * 12, osc.encode(fader, "f", (0.1,))[:-2], osc.encode(fader, "i", (0,)),
                     osc.encode(fader, "s", ("loud",)), osc.encode(fader, "f", (math.nan,))):
            sim.send_raw(junk, driver.local_address)
        await wait_for(lambda: driver.stats.rejected >= 5)
        assert {ch: (v.fader, v.muted, v.name) for ch, v in driver.view.items()} == before
        assert driver.connected


async def test_only_fader_addresses_can_be_written(sim):
    profile = sim.profile
    async with driver_for(sim) as driver:
        with pytest.raises(DeskError, match="not in the profile's write table"):
            driver._send(profile.mute.address_of(1), profile.mute.type, (profile.mute.muted_value,))
        with pytest.raises(DeskError, match="not in the profile's write table"):
            driver.set_fader_db(9, -3.0)  # not a mapped channel
        await driver.sync()
        assert sim.stats.writes == {}


@icmp_reports
async def test_nothing_listening_is_a_clear_error(profile):
    port = free_udp_port()
    driver = OscDeskDriver(profile, "127.0.0.1", port, [1], reply_timeout_s=0.1)
    expected = "receive side is silent" if not profile.replies_to_sender else "check the desk's IP address"
    with pytest.raises(DeskUnreachableError, match=expected) as info:
        await driver.connect()
    assert f"nothing listens on UDP {port}" in str(info.value)


# ----- the whole bridge, every desk -------------------------------------------------------------


async def run_engine(sim: DeskSimulator, stems: Path, tmp_path: Path, *, realtime=False, arm_after_s=1.0,
                     during=None, **policy):
    show = demo_show(sim.profile).with_desk(DeskAddress("127.0.0.1", sim.port, receive_port=0))
    show = replace(show, policy=replace(show.policy, **policy))
    driver = OscDeskDriver.for_show(show)
    await driver.connect()  # first: a paced desk's sweep takes a while, and a real-time source would run ahead
    source = FileSource.from_directory(stems, realtime=realtime)
    await source.start()
    journal = Journal(tmp_path / "journal", show.name)
    journal.open()
    engine = Engine(show, source, driver, load_model("loudness"), journal)
    task = asyncio.create_task(engine.run(arm_after_s=arm_after_s))
    try:
        if during is not None:
            await during(engine, driver)
        status = await task
        await asyncio.sleep(0.2)  # the last rate-limited writes land
    finally:
        if not task.done():  # a failing check stops the engine before the journal closes
            engine.stop()
            await asyncio.gather(task, return_exceptions=True)
        journal.close()
        await driver.close()
        await source.stop()
    return status, show


async def test_a_hot_channel_comes_down(sim, tmp_path):
    law = sim.profile.law
    start_db = held_db(law, 0.0)
    status, show = await run_engine(sim, write_stems(tmp_path / "stems", HOT), tmp_path)
    assert status.moves > 0 and status.model_errors == 0
    assert sim.fader_db(1) < start_db - 4.0  # 12 dB too hot: pulled down (window 6 dB)
    assert sim.fader_db(8) == start_db  # talkback is excluded: never written
    assert sim.profile.fader.address_of(8) not in sim.stats.writes
    records = read_records(tmp_path / "journal" / f"{show.name}.jsonl")
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert kinds.index("arm") < kinds.index("move")
    snapshot = last_snapshot(tmp_path / "journal", show.name)
    assert snapshot.profile == sim.profile.name
    assert snapshot.faders_db[1] == pytest.approx(start_db, abs=0.01)
    assert all(r["ch"] != 8 for r in records if r["kind"] == "move")


async def test_an_engineer_move_is_respected_for_the_hold_time(sim, tmp_path):
    stems = write_stems(tmp_path / "stems", HOT, seconds=4.0)  # the hold ends well before the audio does

    async def engineer(engine, driver):
        await wait_for(lambda: any(m.startswith("armed") for m in engine.status.last_events), timeout_s=3)
        await asyncio.sleep(0.4)
        sim.move_fader_db(1, 2.0)
        await wait_for(lambda: engine.status.engineer_moves > 0, timeout_s=detection_bound_s(driver) + 0.3)

    status, show = await run_engine(sim, stems, tmp_path, realtime=True, arm_after_s=0.3, during=engineer,
                                    override_hold_s=1.0)
    records = read_records(tmp_path / "journal" / f"{show.name}.jsonl")
    override = next(i for i, r in enumerate(records) if r["kind"] == "event" and r["what"] == "override")
    ended = next(i for i, r in enumerate(records) if r["kind"] == "event" and r["what"] == "override-ended")
    assert records[ended]["t"] - records[override]["t"] == pytest.approx(1.0, abs=0.2)
    assert not any(r["kind"] == "move" and r["ch"] == 1 for r in records[override:ended])
    assert any(r["kind"] == "move" and r["ch"] != 1 for r in records[override:ended])  # the others kept riding


# ----- WING: one string identifies, ,sff answers, one subscriber console-wide -------------------


@pytest.fixture
async def wing_sim():
    async with DeskSimulator(get_profile("wing"), port=0) as desk:
        yield desk


async def test_wing_identifies_with_one_string(wing_sim):
    async with OscPeer(wing_sim.address) as client:
        reply = await client.ask("/?")
        assert list(reply.params) == ["WING,127.0.0.1,ailive-sim,wing-compact,S2100000001,3.0.5"]


async def test_wing_get_answers_text_position_and_db(wing_sim):
    async with OscPeer(wing_sim.address) as client:
        client.send("/ch/3/fdr", ("f", -12.34))
        await wait_for(lambda: wing_sim.fader_db(3) != 0.0)
        text, position, db = (await client.ask("/ch/3/fdr")).params
        assert (text, db) == ("-12.3", pytest.approx(-12.3, abs=1e-5)) and 0.0 < position < 1.0
        client.send("/ch/3/fdr", ("f", -200.0))  # below the range: held as off
        await wait_for(lambda: wing_sim.fader_db(3) == -math.inf)
        assert list((await client.ask("/ch/3/fdr")).params) == ["-oo", 0.0, -144.0]
        assert list((await client.ask("/ch/40/mute")).params) == ["0", 0.0, 0]  # an int node answers ,sfi
        client.send("/ch/3/fdr", ("i", 0))  # the wrong type is dropped
        await client.ask("/?")
        assert wing_sim.stats.rejected == 1


async def test_wing_last_subscriber_takes_the_only_subscription(wing_sim):
    async with OscPeer(wing_sim.address) as a, OscPeer(wing_sim.address) as b:
        a.send("/*S")
        await wait_for(lambda: wing_sim.subscribers() == [a.address])
        b.send("/*S")
        await wait_for(lambda: wing_sim.subscribers() == [b.address])
        assert wing_sim.stats.taken_over == 1 and wing_sim.stats.refused_subscriptions == 0
        wing_sim.move_fader_db(1, -6.0)
        pushed = await b.receive()
        assert (pushed.address, pushed.params) == ("/ch/1/fdr", [-6.0])
        assert await a.collect(0.15) == []


async def test_wing_driver_sees_moves_after_another_app_took_the_subscription(wing_sim):
    events: list = []
    async with driver_for(wing_sim) as driver, OscPeer(wing_sim.address) as editor:
        driver.add_listener(events.append)
        editor.send("/*S")
        await wait_for(lambda: wing_sim.subscribers() == [editor.address])
        wing_sim.move_fader_db(2, -25.0)
        took = await wait_for(lambda: any(isinstance(e, FaderMoved) and e.channel == 2 for e in events), timeout_s=2.0)
        assert took <= driver.poll_period_s + 0.2


async def test_wing_answer_with_too_few_fields_is_refused():
    wing = get_profile("wing")
    broken = replace(wing, sim=replace(wing.sim, replies={"/?": replace(wing.sim.replies["/?"], args=("WING,{ip}",))}))
    async with DeskSimulator(broken, port=0) as sim:
        with pytest.raises(DeskIdentityError, match="has 2 fields, a wing answers with 6"):
            await driver_for(sim, profile=wing).connect()


# ----- DiGiCo: send and receive ports, query form, echoes, one device, polling -----------------


@pytest.fixture
async def digico_sim():
    async with DeskSimulator(get_profile("digico"), port=0) as desk:
        yield desk


async def test_digico_queries_append_and_answers_drop_the_suffix(digico_sim):
    async with OscPeer(digico_sim.address) as client:
        reply = await asyncio.wait_for(_ask_digico(client, "/Input_Channels/1/fader"), 1.0)
        assert (reply.address, reply.params) == ("/Input_Channels/1/fader", [0.0])
        assert (await _ask_digico(client, "/Console/Name")).params == ["SD12"]
        client.send("/Input_Channels/1/fader")  # a bare address is not a query on this desk
        client.send("/Input_Channels/1/mute", ("i", 1))  # mutes are floats here
        await _ask_digico(client, "/Console/Name")
        assert digico_sim.stats.rejected == 2 and not digico_sim.muted(1)
        client.send("/Input_Channels/1/mute", ("f", 1.0))
        await wait_for(lambda: digico_sim.muted(1))


async def _ask_digico(client: OscPeer, address: str):
    client.send(address + "/?")
    while True:
        message = await client.receive()
        if message.address == address:
            return message


async def test_digico_echoes_changes_and_clamps_but_not_repeats(digico_sim):
    async with OscPeer(digico_sim.address) as device:
        await _ask_digico(device, "/Console/Name")  # the first to talk is the desk's device
        device.send("/Input_Channels/2/fader", ("f", -10.0))
        assert (await device.receive()).params == [-10.0]
        device.send("/Input_Channels/2/fader", ("f", -10.0))  # no change: no echo
        device.send("/Input_Channels/2/fader", ("f", 25.0))  # clamped: echoed as the desk holds it
        assert (await device.receive()).params == [10.0]
        device.send("/Input_Channels/2/fader", ("f", 25.0))  # clamped again: echoed again
        assert (await device.receive()).params == [10.0]
        assert await device.collect(0.1) == []


async def test_digico_feeds_back_one_device_and_no_hand_moves(digico_sim):
    async with OscPeer(digico_sim.address) as device, OscPeer(digico_sim.address) as other:
        await _ask_digico(device, "/Console/Name")
        other.send("/Input_Channels/1/fader/?")
        other.send("/Input_Channels/3/fader", ("f", -20.0))  # applied, never answered
        await wait_for(lambda: digico_sim.fader_db(3) == -20.0)
        assert digico_sim.stats.unanswered == 1 and await other.collect(0.1) == []
        digico_sim.move_fader_db(1, -5.0)  # a hand on a fader: this desk does not report it
        digico_sim.set_mute(1, True)  # a surface change it does report
        pushed = await device.receive()
        assert (pushed.address, pushed.params) == ("/Input_Channels/1/mute", [1.0])
        assert await device.collect(0.1) == []
        assert digico_sim.subscribers() == [device.address]


async def test_digico_sends_to_its_configured_destination_whatever_the_source_port():
    profile = get_profile("digico")
    receive_port = free_udp_port()
    async with DeskSimulator(profile, port=0, send_to=("127.0.0.1", receive_port)) as sim:
        async with OscDeskDriver(profile, "127.0.0.1", sim.port, [1, 2], local_port=receive_port, reply_timeout_s=0.3) as driver:
            assert driver.local_address == ("127.0.0.1", receive_port)
            assert sim.subscribers() == [("127.0.0.1", receive_port)]
            async with OscPeer(sim.address) as stranger:  # its answer goes to the destination, not back to it
                stranger.send("/Input_Channels/1/fader/?")
                assert await stranger.collect(0.1) == []
            sim.move_fader_db(2, -18.0)
            await wait_for(lambda: driver.view[2].fader_db == pytest.approx(-18.0), timeout_s=1.0)


@icmp_reports
async def test_digico_wrong_ports_say_which_side_is_silent():
    profile = get_profile("digico")
    wrong_destination = ("127.0.0.1", free_udp_port())
    async with DeskSimulator(profile, port=0, send_to=wrong_destination) as sim:
        driver = OscDeskDriver(profile, "127.0.0.1", sim.port, [1], local_port=0, reply_timeout_s=0.1)
        with pytest.raises(DeskUnreachableError, match="the desk's send side is silent") as info:
            await driver.connect()
        assert "receive_port" in str(info.value) and f"port {sim.port} ([desk] port)" in str(info.value)
        assert sim.stats.received >= 3  # the desk heard us, it answers elsewhere
    closed = free_udp_port()
    driver = OscDeskDriver(profile, "127.0.0.1", closed, [1], reply_timeout_s=0.1)
    with pytest.raises(DeskUnreachableError, match=rf"receive side is silent: nothing listens on UDP {closed}"):
        await driver.connect()


async def test_digico_poll_period_is_configurable(digico_sim):
    events: list = []
    async with driver_for(digico_sim, poll_period_s=0.1) as driver:
        driver.add_listener(events.append)
        digico_sim.move_fader_db(1, -9.0)
        took = await wait_for(lambda: any(isinstance(e, FaderMoved) for e in events), timeout_s=1.0)
        assert took <= 0.25
    with pytest.raises(ProfileError, match="poll period must be > 0"):
        driver_for(digico_sim, poll_period_s=0.0)


# ----- show files and profiles ------------------------------------------------------------------


def test_example_shows_map_the_same_eight_channels():
    shows = {name: load_show(EXAMPLES / f"{name}-demo.toml") for name in ("x32", "wing", "digico")}
    x32 = shows["x32"]
    for name, show in shows.items():
        assert show.profile.name == name
        assert [(c.desk_channel, c.name, c.mode, c.group) for c in show.channels] == \
               [(c.desk_channel, c.name, c.mode, c.group) for c in x32.channels]
        assert show.policy == x32.policy
    digico = shows["digico"].desk
    assert (digico.port, digico.receive_port, digico.poll_period_s) == (8000, 9000, 0.25)
    moved = shows["digico"].with_desk(DeskAddress("10.0.0.9", 8001))
    assert (moved.desk.host, moved.desk.port, moved.desk.receive_port) == ("10.0.0.9", 8001, 9000)


def test_for_show_builds_the_driver_the_show_asks_for():
    show = load_show(EXAMPLES / "digico-demo.toml")
    driver = OscDeskDriver.for_show(show, reply_timeout_s=0.2)
    assert (driver.host, driver.port, driver.local_port, driver.poll_period_s) == ("127.0.0.1", 8000, 9000, 0.25)
    assert driver.channels == list(range(1, 9)) and driver.reply_timeout_s == 0.2
    x32 = OscDeskDriver.for_show(load_show(EXAMPLES / "x32-demo.toml"))
    assert (x32.port, x32.local_port, x32.poll_period_s) == (10023, 0, 1.0)


def test_show_desk_keys_are_checked(tmp_path):
    path = tmp_path / "gig.toml"
    path.write_text('[desk]\nprofile = "digico"\nhost = "10.0.0.5"\nreceive_port = 70000\n'
                    '[[channel]]\nport = "system:capture_1"\ndesk = 1\n')
    with pytest.raises(Exception, match=r"desk\.receive_port: expected an integer in 0\.\.65535"):
        load_show(path)
    path.write_text(path.read_text().replace("receive_port = 70000", "poll_period_s = 0"))
    with pytest.raises(Exception, match=r"desk\.poll_period_s: expected a number in 0\.01\.\.60"):
        load_show(path)


@pytest.mark.parametrize("edit,key", [
    (lambda t: t.replace("receive_port = 9000\n", ""), "receive_port"),
    (lambda t: t.replace("poll_period_s = 0.25", "poll_period_s = 0.0"), "poll_period_s"),
    (lambda t: t + '\n[subscription]\naddress = "/x"\nrenew_s = 1.0\nlease_s = 2.0\nmax_clients = 1\n', "feedback"),
    (lambda t: t.replace('model_match = "prefix"', 'model_match = "fuzzy"'), "identify.model_match"),
    (lambda t: t.replace('query_suffix = "/?"', 'query_suffix = "?"'), "query_suffix"),
    (lambda t: t.replace('step_db = 0.1', 'step_db = 0.1\nreply = ["value", "value"]'), "fader.reply"),
])
def test_new_profile_keys_are_checked(tmp_path, edit, key):
    text = (Path(get_profile("digico").source)).read_text()
    (tmp_path / "digico.toml").write_text(edit(text))
    if key is None:
        with pytest.raises(ProfileSchemaError, match="receive_port"):  # a duplicate key is invalid TOML
            load_profiles([tmp_path])
        return
    with pytest.raises(ProfileSchemaError) as info:
        load_profiles([tmp_path])
    assert info.value.key == key


def test_every_desk_is_listed_by_ailive_profiles():
    result = CliRunner().invoke(cli_main, ["profiles", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert {"x32", "xair", "wing", "digico"} <= set(rows)
    assert rows["wing"]["port"] == 2223 and rows["wing"]["channels"] == 40
    assert "dB -150..+10" in rows["digico"]["fader_law"]
