"""The OSC driver against the simulator over loopback UDP: real sockets, real timing."""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace

import pytest

from ailive.consoles import osc
from ailive.consoles.driver import DeskOfflineError, OscDeskDriver
from ailive.consoles.errors import DeskError, DeskIdentityError, DeskUnreachableError
from ailive.consoles.events import DeskConnected, DeskLost, FaderMoved, MuteChanged, NameChanged, PacketRejected
from ailive.consoles.profile import get_profile
from ailive.consoles.sim import DeskSimulator
from tests.conftest import short_lease, wait_for
from tests.oscpeer import OscPeer


def driver_for(sim: DeskSimulator, channels=(1, 2, 3, 4), profile=None) -> OscDeskDriver:
    return OscDeskDriver(profile or sim.profile, "127.0.0.1", sim.port, list(channels), reply_timeout_s=0.3)


async def test_handshake_identifies_and_sweeps(x32_sim):
    x32_sim.set_name(2, "Snare")
    x32_sim.move_fader_db(3, -20.0)
    x32_sim.set_mute(4, True)
    events = []
    async with driver_for(x32_sim) as driver:
        driver.add_listener(events.append)
        assert driver.connected
        assert (driver.identity.model, driver.identity.firmware) == ("X32", "4.06")
        assert "/info" in driver.identity.replies
        assert driver.view[2].name == "Snare"
        assert driver.view[3].fader_db == pytest.approx(x32_sim.fader_db(3))
        assert driver.view[4].muted is True and driver.view[1].muted is False
        assert x32_sim.subscribers() == [driver.local_address]


async def test_writes_land_quantized_and_equal_writes_are_skipped(x32_sim):
    async with driver_for(x32_sim) as driver:
        held = driver.set_fader_db(1, -10.0)
        assert held == pytest.approx(-10.039, abs=1e-3)
        await wait_for(lambda: x32_sim.fader(1) == 511 / 1023)
        await asyncio.sleep(0.1)
        driver.set_fader_db(1, -10.02)  # the same step
        assert driver.stats.skipped_equal == 1
        await asyncio.sleep(0.05)
        assert x32_sim.stats.writes == {"/ch/01/mix/fader": 1}


async def test_writes_are_rate_limited_per_fader_latest_wins(x32_sim):
    async with driver_for(x32_sim) as driver:
        for i in range(10):
            driver.set_fader_db(2, -20.0 + i)
        driver.set_fader_db(3, -5.0)  # another fader is not held back
        await wait_for(lambda: abs(x32_sim.fader_db(3) + 5.0) < 0.1)
        assert x32_sim.stats.writes["/ch/02/mix/fader"] == 1
        await wait_for(lambda: abs(x32_sim.fader_db(2) - (-11.0)) < 0.1, timeout_s=1.0)
        assert x32_sim.stats.writes["/ch/02/mix/fader"] == 2
        assert driver.stats.deferred == 9


async def test_a_hand_cancels_a_write_still_waiting_for_the_rate_limit(x32_sim):
    events: list = []
    async with driver_for(x32_sim) as driver:
        driver.add_listener(events.append)
        await asyncio.sleep(0.3)  # out of any window in which a hand's move counts as crossed by our write
        x32_sim.move_fader_db(1, -5.0)
        driver.set_fader_db(1, -10.0)  # sent at once
        driver.set_fader_db(1, -12.0)  # decided now, due one rate-limit period later
        assert driver.stats.deferred == 1
        await wait_for(lambda: abs(x32_sim.fader_db(1) + 10.0) < 0.1)
        x32_sim.move_fader_db(1, -30.0)  # a hand (or a scene recall) meanwhile
        await wait_for(lambda: abs(driver.view[1].fader_db + 30.0) < 0.2)
        await asyncio.sleep(3.0 / x32_sim.profile.max_writes_per_s)
        assert driver.stats.cancelled == 1
        assert x32_sim.fader_db(1) == pytest.approx(-30.0, abs=0.2)  # the hand's level stands
        assert x32_sim.stats.writes["/ch/01/mix/fader"] == 1  # ours only: the waiting one never went out
    cancelled = [e.cancelled_db for e in events if isinstance(e, FaderMoved) and e.cancelled_db is not None]
    assert cancelled == [pytest.approx(-12.0, abs=0.1)], events  # which write the hand cancelled, for the journal


async def test_second_client_move_is_an_external_event_and_own_writes_are_not(x32_sim):
    events: list = []
    async with driver_for(x32_sim) as driver, OscPeer(x32_sim.address) as other:
        driver.add_listener(events.append)
        driver.set_fader_db(1, -6.0)
        await wait_for(lambda: abs(x32_sim.fader_db(1) + 6.0) < 0.1)
        other.send("/ch/02/mix/fader", ("f", 0.25))
        other.send("/ch/02/mix/on", ("i", 0))
        other.send("/ch/02/config/name", ("s", "Bass DI"))
        took = await wait_for(lambda: len(events) >= 3, timeout_s=1.0)
        assert took < 0.5
        moved = [e for e in events if isinstance(e, FaderMoved)]
        assert len(moved) == 1 and moved[0].channel == 2 and moved[0].source == "external"
        assert moved[0].db == pytest.approx(-30.117, abs=1e-3)
        assert any(isinstance(e, MuteChanged) and e.muted and e.channel == 2 for e in events)
        assert any(isinstance(e, NameChanged) and e.name == "Bass DI" for e in events)
        assert driver.view[2].fader_db == pytest.approx(-30.117, abs=1e-3)


async def test_engineer_move_on_an_unmapped_channel_is_ignored(x32_sim):
    events: list = []
    async with driver_for(x32_sim, channels=(1,)) as driver:
        driver.add_listener(events.append)
        x32_sim.move_fader_db(9, -3.0)
        x32_sim.move_fader_db(1, -3.0)
        await wait_for(lambda: len(events) == 1)
        assert events[0].channel == 1


async def test_echoing_desk_own_writes_are_not_engineer_moves():
    profile = get_profile("x32")
    echoing = replace(profile, subscription=replace(profile.subscription, echoes_own_writes=True))
    async with DeskSimulator(echoing, port=0) as sim:
        events: list = []
        async with driver_for(sim) as driver:
            driver.add_listener(events.append)
            driver.set_fader_db(1, -12.0)
            await wait_for(lambda: driver.stats.own_echoes == 1)
            assert [e for e in events if isinstance(e, FaderMoved)] == []


async def test_what_waits_in_the_socket_is_read_before_a_write_so_a_second_copy_is_no_hand(x32_sim):
    """Networks duplicate datagrams. A copy still queued when the bridge writes shows the level from before
    the write; read after it, it would pass for a hand pulling the fader back. The engine reads the queue first."""
    events: list = []
    async with driver_for(x32_sim) as driver:
        driver.add_listener(events.append)
        copy = osc.encode("/ch/01/mix/fader", "f", (x32_sim.fader(1),))  # what the desk holds: its last answer, again
        x32_sim.send_raw(copy, driver.local_address)
        deadline = time.monotonic() + 1.0
        while driver.read_queued() == 0:  # blocking the loop meanwhile: only read_queued can take it
            assert time.monotonic() < deadline, "the copy never reached the socket"
            time.sleep(0.001)
        driver.set_fader_db(1, -6.0)
        await wait_for(lambda: abs(x32_sim.fader_db(1) + 6.0) < 0.1)
        await asyncio.sleep(0.05)
        assert events == []
        assert driver.view[1].fader_db == pytest.approx(-6.0, abs=0.1)
        assert driver.read_queued() == 0


async def test_the_same_push_again_after_our_write_is_a_hand(x32_sim):
    """A second controller (or a hand) putting the fader back where it was is seen, however soon."""
    events: list = []
    async with driver_for(x32_sim) as driver:
        driver.add_listener(events.append)
        x32_sim.move_fader_db(1, -20.0)
        await wait_for(lambda: len(events) == 1)
        driver.set_fader_db(1, -6.0)
        await wait_for(lambda: abs(x32_sim.fader_db(1) + 6.0) < 0.1)
        x32_sim.move_fader_db(1, -20.0)  # the same datagram as the first push
        await wait_for(lambda: len(events) == 2)
        assert events[1].source == "external" and events[1].db == pytest.approx(-20.0, abs=0.1)


async def test_subscription_is_renewed_and_lapses_when_the_driver_stops():
    profile = short_lease(get_profile("x32"), lease_s=0.6, renew_s=0.3)
    async with DeskSimulator(profile, port=0) as sim:
        async with driver_for(sim) as driver:
            await asyncio.sleep(1.5)
            assert sim.subscribers() == [driver.local_address]
            sim.move_fader_db(1, -1.0)
            await wait_for(lambda: abs(driver.view[1].fader_db + 1.0) < 0.1)
        await asyncio.sleep(0.7)
        assert sim.subscribers() == []


async def test_reconnect_after_restart_resyncs_state(x32_sim):
    events: list = []
    async with driver_for(x32_sim) as driver:
        driver.add_listener(events.append)
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        restart = asyncio.create_task(x32_sim.restart(keep_state=False, downtime_s=3.5))
        await asyncio.sleep(0.1)
        x32_sim.move_fader_db(2, -40.0)  # changed while the desk is away: must be picked up by the sweep
        await wait_for(lambda: any(isinstance(e, DeskLost) for e in events), timeout_s=4.0)
        lost_after = next(e for e in events if isinstance(e, DeskLost)).time_s - stopped_at
        assert lost_after <= 3.6
        assert not driver.connected
        with pytest.raises(DeskOfflineError):
            driver.set_fader_db(1, -3.0)
        await restart
        await wait_for(lambda: driver.connected, timeout_s=6.0)
        assert any(isinstance(e, DeskConnected) and e.reconnect for e in events)
        assert x32_sim.subscribers() == [driver.local_address]
        resynced = [e for e in events if isinstance(e, FaderMoved) and e.source == "sweep"]
        assert [e.channel for e in resynced] == [2]
        assert driver.view[2].fader_db == pytest.approx(-40.0, abs=0.2)


async def test_a_hand_move_during_the_reconnect_sweep_is_kept_newest_wins(x32_sim):
    """A push that arrives after its fader's sweep answer is the desk's newer word: the view holds it when the
    desk counts as connected again, and listeners (the engine) hear it as a hand's move."""
    events: list = []
    at_reconnect: dict[str, object] = {}
    async with driver_for(x32_sim) as driver:
        def listen(event) -> None:
            events.append(event)
            if isinstance(event, DeskConnected) and event.reconnect:
                at_reconnect.update(db=driver.view[1].fader_db, events=list(events))

        driver.add_listener(listen)
        assert driver.view[1].fader_db == pytest.approx(0.0, abs=0.1)
        await x32_sim.stop()
        await wait_for(lambda: any(isinstance(e, DeskLost) for e in events), timeout_s=5.0)

        def hand_on_fader_1(address: str) -> None:
            if address == x32_sim.profile.name_param.address_of(4):  # the sweep's last query: fader 1 answered
                x32_sim.before_answer = None
                x32_sim.move_fader_db(1, -12.0)

        x32_sim.before_answer = hand_on_fader_1
        await x32_sim.start()
        await wait_for(lambda: "db" in at_reconnect, timeout_s=8.0)
        assert x32_sim.before_answer is None  # the hand moved during the sweep
        assert at_reconnect["db"] == pytest.approx(-12.0, abs=0.2)
        moved = [e for e in at_reconnect["events"] if isinstance(e, FaderMoved) and e.channel == 1]
        assert [(e.source, round(e.db)) for e in moved] == [("external", -12)]
        assert driver.view[1].fader_db == pytest.approx(x32_sim.fader_db(1), abs=0.01)


async def test_foreign_desk_is_refused(x32_profile):
    async with DeskSimulator(get_profile("xair"), port=0) as xair:
        with pytest.raises(DeskIdentityError, match="'XR18', not one of the x32 family"):
            await driver_for(xair, profile=x32_profile).connect()


async def test_nothing_listening_is_a_clear_error(x32_profile):
    probe = DeskSimulator(x32_profile, port=0)
    await probe.start()
    port = probe.port
    await probe.stop()
    driver = OscDeskDriver(x32_profile, "127.0.0.1", port, [1], reply_timeout_s=0.1)
    with pytest.raises(DeskUnreachableError, match="check the desk's IP address"):
        await driver.connect()


async def test_unknown_host_is_a_clear_error(x32_profile):
    with pytest.raises(DeskUnreachableError, match="cannot resolve"):
        await OscDeskDriver(x32_profile, "no-such-desk.invalid", 10023, [1]).connect()


async def test_garbage_from_the_desk_or_elsewhere_changes_nothing(x32_sim):
    events: list = []
    async with driver_for(x32_sim) as driver, OscPeer(driver.local_address) as stranger:
        driver.add_listener(events.append)
        before = {ch: (v.fader, v.muted, v.name) for ch, v in driver.view.items()}
        for junk in (b"\x00" * 12, osc.encode("/ch/01/mix/fader", "f", (0.1,))[:-2], b"#bundle\x00" * 2,
                     osc.encode("/ch/01/mix/fader", "i", (0,)), osc.encode("/ch/01/mix/fader", "f", (math.nan,))):
            x32_sim.send_raw(junk, driver.local_address)
        stranger.send("/ch/01/mix/fader", ("f", 0.1))  # pretends to be the desk
        await wait_for(lambda: driver.stats.rejected >= 6)
        assert {ch: (v.fader, v.muted, v.name) for ch, v in driver.view.items()} == before
        assert not any(isinstance(e, FaderMoved) for e in events)
        assert sum(isinstance(e, PacketRejected) for e in events) >= 4
        assert driver.connected
        assert driver.stats.filtered_in_kernel and driver.stats.dropped_in_kernel == 1  # the stranger never got in


async def test_only_fader_addresses_can_be_written(x32_sim):
    async with driver_for(x32_sim) as driver:
        with pytest.raises(DeskError, match="not in the profile's write table"):
            driver._send("/ch/01/mix/on", "i", (1,))
        with pytest.raises(DeskError, match="not in the profile's write table"):
            driver.set_fader_db(9, -3.0)  # not a mapped channel
        await asyncio.sleep(0.05)
        assert x32_sim.stats.writes == {}


async def test_non_finite_levels_never_reach_the_desk(x32_sim):
    async with driver_for(x32_sim) as driver:
        with pytest.raises(ValueError):
            driver.set_fader(1, math.nan)
        with pytest.raises(ValueError):
            driver.set_fader_db(1, math.nan)
        assert driver.set_fader_db(1, -math.inf) == -math.inf
        await wait_for(lambda: x32_sim.fader(1) == 0.0)


async def test_polling_sees_moves_when_the_desk_refused_our_subscription(x32_sim):
    others = [OscPeer(x32_sim.address) for _ in range(4)]
    for peer in others:
        await peer.__aenter__()
        peer.send("/xremote")
    try:
        await wait_for(lambda: len(x32_sim.subscribers()) == 4)
        events: list = []
        async with driver_for(x32_sim) as driver:
            driver.add_listener(events.append)
            assert driver.local_address not in x32_sim.subscribers()  # the fifth gets nothing
            x32_sim.move_fader_db(2, -25.0)
            took = await wait_for(lambda: any(isinstance(e, FaderMoved) and e.channel == 2 for e in events), timeout_s=2.5)
            assert took <= driver.profile.poll_period_s + 0.5
    finally:
        for peer in others:
            await peer.__aexit__(None, None, None)


async def test_a_lost_write_is_sent_again_not_taken_for_an_engineer_move(x32_sim):
    events: list = []
    async with driver_for(x32_sim) as driver:
        driver.add_listener(events.append)
        x32_sim.faults.loss_in = 1.0
        driver.set_fader_db(1, -12.0)
        await asyncio.sleep(0.05)
        x32_sim.faults.loss_in = 0.0
        await wait_for(lambda: abs(x32_sim.fader_db(1) + 12.0) < 0.1, timeout_s=2.5)  # the poll found it, the resend fixed it
        assert driver.stats.resent == 1
        assert not any(isinstance(e, FaderMoved) and e.source == "external" for e in events)


async def test_a_move_our_write_may_have_crossed_is_reported_as_crossed_and_never_written_back_here(x32_sim):
    events: list = []
    async with driver_for(x32_sim) as driver:
        driver.add_listener(events.append)
        driver.set_fader_db(1, -6.0)  # on its way to the desk ...
        x32_sim.move_fader_db(1, -20.0)  # ... while a hand moves the fader: the desk takes our write last
        await wait_for(lambda: any(isinstance(e, FaderMoved) and e.source == "external" for e in events))
        moved = [e for e in events if isinstance(e, FaderMoved) and e.source == "external"]
        assert moved[0].crossed and moved[0].db == pytest.approx(-20.0, abs=0.1)
        assert driver.stats.crossed == 1
        await asyncio.sleep(0.3)
        assert x32_sim.stats.writes["/ch/01/mix/fader"] == 1  # the policy decides on a send-back, not the driver
        await asyncio.sleep(0.5)  # out of the window: a later hand is a plain hand
        x32_sim.move_fader_db(1, -25.0)
        await wait_for(lambda: len([e for e in events if isinstance(e, FaderMoved)]) >= 2)
        assert not [e for e in events if isinstance(e, FaderMoved)][-1].crossed


async def test_a_forced_write_goes_out_even_when_the_desk_is_seen_holding_that_level(x32_sim):
    async with driver_for(x32_sim) as driver:
        x32_sim.move_fader_db(1, -20.0)
        await wait_for(lambda: abs(driver.view[1].fader_db + 20.0) < 0.1)
        driver.set_fader_db(1, -20.0)
        assert driver.stats.skipped_equal == 1
        driver.set_fader_db(1, -20.0, always=True)  # a hand's level sent back: our write may have overwritten it
        await wait_for(lambda: x32_sim.stats.writes.get("/ch/01/mix/fader") == 1)


async def test_a_hand_that_keeps_moving_is_not_fought(x32_sim):
    async with driver_for(x32_sim) as driver:
        driver.set_fader_db(1, -6.0)
        await asyncio.sleep(0.02)
        for db in (-8.0, -10.0, -12.0, -14.0):  # one continuous gesture after our write
            x32_sim.move_fader_db(1, db)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert driver.stats.crossed <= 1  # only the gesture's first move can have crossed our write
        assert x32_sim.fader_db(1) == pytest.approx(-14.0, abs=0.1)


@pytest.mark.parametrize("desk", ["xair", "x32"])
async def test_echoes_of_earlier_writes_over_a_slow_link_are_ours_whatever_the_profile_says(desk):
    """A desk that echoes every set, 80 ms away each way: a ramp's echoes arrive after its next steps went out."""
    profile = get_profile(desk)
    assert not profile.echoes_own_writes  # the profile does not expect echoes, the desk sends them anyway
    async with DeskSimulator(profile, port=0, echo="all") as sim:
        sim.faults.delay_s = 0.08
        sim.faults.delay_in_s = 0.08
        events: list = []
        async with OscDeskDriver(profile, "127.0.0.1", sim.port, [1], reply_timeout_s=1.0) as driver:
            driver.add_listener(events.append)
            for db in (-2.0, -3.0, -4.0, -5.0, -6.0):  # one step per control frame
                driver.set_fader_db(1, db)
                await asyncio.sleep(0.05)
            await wait_for(lambda: abs(sim.fader_db(1) + 6.0) < 0.1, timeout_s=2)
            await asyncio.sleep(0.5)
            assert sim.stats.echoed >= 5
            assert sim.fader_db(1) == pytest.approx(-6.0, abs=0.1)
            assert not [e for e in events if isinstance(e, FaderMoved) and e.source == "external"]
            assert driver.stats.own_echoes >= 5


async def test_an_unconfirmed_write_is_kept_apart_from_the_desks_word(x32_sim):
    x32_sim.move_fader_db(1, -30.0)
    driver = OscDeskDriver(x32_sim.profile, "127.0.0.1", x32_sim.port, [1, 2], reply_timeout_s=0.3, poll_period_s=0.05)
    async with driver:
        view = driver.view[1]
        assert view.confirmed and view.reported_db == pytest.approx(-30.0, abs=0.2)
        held = driver.set_fader_db(1, -10.0)
        assert not view.confirmed and view.pending_db == held == view.fader_db  # the belief: our write
        assert view.reported_db == pytest.approx(-30.0, abs=0.2)  # the desk's word has not changed yet
        await wait_for(lambda: view.confirmed, timeout_s=2.0)  # a poll answer (or an echo) shows it back
        assert view.reported_db == view.fader_db == held and math.isnan(view.pending_db)


async def test_the_desks_write_cap_counts_on_the_drivers_clock(x32_sim):
    now = [100.0]
    driver = OscDeskDriver(x32_sim.profile, "127.0.0.1", x32_sim.port, [1], reply_timeout_s=0.3, clock=lambda: now[0])
    async with driver:
        period = 1.0 / x32_sim.profile.max_writes_per_s
        for i in range(5):  # one write per cap period on the given clock, however fast the loop runs them
            driver.set_fader_db(1, -20.0 + i)
            now[0] += period
        assert driver.stats.deferred == 0 and driver.stats.writes == 5
        driver.set_fader_db(1, -10.0)
        driver.set_fader_db(1, -11.0)  # the same instant on that clock: held back by the cap
        assert driver.stats.deferred == 1
        await wait_for(lambda: abs(x32_sim.fader_db(1) + 11.0) < 0.1, timeout_s=1.0)  # the newest decision lands


async def test_a_mute_drops_a_write_still_waiting_for_the_desks_cap(x32_sim):
    async with driver_for(x32_sim) as driver:
        driver.set_fader_db(1, -10.0)  # sent at once
        driver.set_fader_db(1, -12.0)  # waits for the cap
        x32_sim.set_mute(1, True)  # the engineer mutes meanwhile
        await wait_for(lambda: driver.view[1].muted is True)
        await asyncio.sleep(3.0 / x32_sim.profile.max_writes_per_s)
        assert x32_sim.stats.writes["/ch/01/mix/fader"] == 1  # the waiting write never landed on the muted channel
        assert driver.stats.cancelled == 1


async def test_standing_down_drops_waiting_writes_and_never_resends_a_lost_one(x32_sim):
    async with driver_for(x32_sim) as driver:
        x32_sim.faults.loss_in = 1.0
        driver.set_fader_db(2, -12.0)  # lost on the way
        await asyncio.sleep(0.05)
        x32_sim.faults.loss_in = 0.0
        driver.set_fader_db(3, -10.0)
        driver.set_fader_db(3, -11.0)  # waits for the cap
        driver.stand_down()  # disarmed: nothing decided before goes out any more
        await asyncio.sleep(1.5)  # a poll finds ch 2's write lost: the desk's level stands
        assert driver.stats.resent == 0 and x32_sim.fader_db(2) == pytest.approx(0.0, abs=0.1)
        assert x32_sim.stats.writes.get("/ch/03/mix/fader") == 1


async def test_one_refusal_of_the_desks_port_is_checked_two_in_a_row_lose_the_desk(x32_sim):
    events: list = []
    async with driver_for(x32_sim) as driver:
        driver.add_listener(events.append)
        driver._on_socket_error(ConnectionRefusedError())  # forged, or stray: the probe it sends is answered
        await asyncio.sleep(0.2)
        assert driver.connected and not any(isinstance(e, DeskLost) for e in events)
        await x32_sim.stop()  # the desk's port really closes: the next sends are refused
        driver.set_fader_db(1, -3.0)
        await wait_for(lambda: any(isinstance(e, DeskLost) for e in events), timeout_s=1.0)
        assert "refused" in next(e for e in events if isinstance(e, DeskLost)).reason


async def test_writes_held_back_by_the_desk_cap_reach_the_desk_before_the_driver_closes(x32_sim):
    async with driver_for(x32_sim) as driver:
        driver.set_fader_db(1, -10.0)
        driver.set_fader_db(1, -12.0)  # due one cap period later
        assert await driver.drain(1.0)  # nothing held back any more
        driver.set_fader_db(2, -10.0)
        driver.set_fader_db(2, -14.0)  # held back when the driver closes
        assert driver.stats.deferred == 2
    await wait_for(lambda: abs(x32_sim.fader_db(2) + 14.0) < 0.1)
    assert x32_sim.fader_db(1) == pytest.approx(-12.0, abs=0.1)
    assert x32_sim.stats.writes == {"/ch/01/mix/fader": 2, "/ch/02/mix/fader": 2}
