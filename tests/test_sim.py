"""The X32-family simulator, seen from a stock OSC client (python-osc) as the protocol notes describe."""
from __future__ import annotations

import asyncio
import struct

import pytest

from ailive.consoles.meters import METER_CODECS
from ailive.consoles.profile import get_profile
from ailive.consoles.sim import DeskSimulator
from tests.conftest import short_lease, wait_for
from tests.oscpeer import OscPeer


async def test_identification_replies(x32_sim):
    async with OscPeer(x32_sim.address) as client:
        xinfo = await client.ask("/xinfo")
        assert list(xinfo.params) == ["127.0.0.1", "ailive-sim", "X32", "4.06"]
        info = await client.ask("/info")
        assert len(info.params) == 4 and info.params[2] == "X32"
        status = await client.ask("/status")
        assert list(status.params) == ["active", "127.0.0.1", "ailive-sim"]


async def test_node_queries_answer_with_current_values(x32_sim):
    async with OscPeer(x32_sim.address) as client:
        fader = await client.ask("/ch/01/mix/fader")
        assert fader.params[0] == pytest.approx(767 / 1023, abs=1e-6)
        assert (await client.ask("/ch/32/mix/on")).params == [1]
        assert (await client.ask("/ch/05/config/name")).params == [""]
        assert (await client.ask("/ch/05/preamp/trim")).params[0] == pytest.approx(0.5)
        assert (await client.ask("/headamp/000/gain")).params[0] == pytest.approx(0.1667, abs=1e-4)
        assert (await client.ask("/main/st/mix/fader")).params[0] == pytest.approx(0.75)
        assert (await client.ask("/dca/8/fader")).params[0] == pytest.approx(0.75)
        assert (await client.ask("/config/chlink/31-32")).params == [0]


async def test_writes_are_quantized_to_1024_steps(x32_sim):
    async with OscPeer(x32_sim.address) as client:
        client.send("/ch/03/mix/fader", ("f", 0.5003))
        await wait_for(lambda: x32_sim.fader(3) != 767 / 1023)
        assert x32_sim.fader(3) == 512 / 1023
        assert (await client.ask("/ch/03/mix/fader")).params[0] == pytest.approx(512 / 1023, abs=1e-7)
        client.send("/ch/03/mix/fader", ("f", 0.5))
        await wait_for(lambda: x32_sim.fader(3) == 511 / 1023)


async def test_names_are_cut_to_twelve_characters(x32_sim):
    async with OscPeer(x32_sim.address) as client:
        client.send("/ch/07/config/name", ("s", "Lead Vocal Stage Left"))
        await wait_for(lambda: x32_sim.name(7) != "")
        assert x32_sim.name(7) == "Lead Vocal S"


async def test_wrong_type_tag_is_dropped(x32_sim):
    async with OscPeer(x32_sim.address) as client:
        client.send("/ch/01/mix/fader", ("i", 0))
        client.send("/ch/01/mix/on", ("f", 0.0))
        await client.ask("/status")  # a round trip: both sets were processed before it
        assert x32_sim.fader(1) == 767 / 1023 and not x32_sim.muted(1)
        assert x32_sim.stats.rejected == 2


async def test_garbage_changes_nothing_and_the_desk_keeps_answering(x32_sim):
    before = {a: p.value for a, p in x32_sim.params.items()}
    async with OscPeer(x32_sim.address) as client:
        for junk in (b"\x00" * 7, b"/ch/01/mix/fader\x00\x00\x00\x00,f\x00\x00\x3f", b"#bundle\x00" * 4,
                     b"/ch/01/mix/fader\x00\x00\x00\x00,f\x00\x00\x7f\xc0\x00\x00",  # NaN
                     bytes(range(256))):
            client.send_raw(junk)
        assert (await client.ask("/xinfo")).params[2] == "X32"
    assert {a: p.value for a, p in x32_sim.params.items()} == before
    assert x32_sim.stats.rejected == 5


async def test_pushes_go_to_other_subscribers_never_back_to_the_writer(x32_sim):
    async with OscPeer(x32_sim.address) as a, OscPeer(x32_sim.address) as b:
        a.send("/xremote")
        b.send("/xremote")
        await wait_for(lambda: len(x32_sim.subscribers()) == 2)
        a.send("/ch/02/mix/fader", ("f", 0.25))
        pushed = await b.receive()
        assert pushed.address == "/ch/02/mix/fader" and pushed.params[0] == pytest.approx(255 / 1023, abs=1e-7)
        assert await a.collect(0.2) == []


async def test_engineer_moves_reach_every_subscriber(x32_sim):
    async with OscPeer(x32_sim.address) as a:
        a.send("/xremote")
        await wait_for(lambda: len(x32_sim.subscribers()) == 1)
        x32_sim.move_fader_db(4, -10.0)
        pushed = await a.receive()
        assert pushed.address == "/ch/04/mix/fader" and pushed.params[0] == pytest.approx(511 / 1023, abs=1e-7)
        x32_sim.set_mute(4, True)
        assert list((await a.receive()).params) == [0]


async def test_fifth_subscriber_gets_nothing(x32_sim):
    peers = [OscPeer(x32_sim.address) for _ in range(5)]
    for peer in peers:
        await peer.__aenter__()
    try:
        for peer in peers[:4]:
            peer.send("/xremote")
        await wait_for(lambda: len(x32_sim.subscribers()) == 4)
        peers[4].send("/xremote")
        await peers[4].ask("/status")
        assert x32_sim.stats.refused_subscriptions == 1
        x32_sim.move_fader(1, 0.3)
        for peer in peers[:4]:
            assert (await peer.receive()).address == "/ch/01/mix/fader"
        assert await peers[4].collect(0.2) == []
    finally:
        for peer in peers:
            await peer.__aexit__(None, None, None)


async def test_xair_takes_eight_subscribers():
    async with DeskSimulator(get_profile("xair"), port=0) as sim:
        peers = [OscPeer(sim.address) for _ in range(9)]
        for peer in peers:
            await peer.__aenter__()
        try:
            for peer in peers:
                peer.send("/xremote")
            await peers[8].ask("/status")
            assert len(sim.subscribers()) == 8 and sim.stats.refused_subscriptions == 1
        finally:
            for peer in peers:
                await peer.__aexit__(None, None, None)


async def test_lease_expires_without_renewal():
    async with DeskSimulator(short_lease(get_profile("x32"), lease_s=0.4, renew_s=0.2), port=0) as sim:
        async with OscPeer(sim.address) as client:
            client.send("/xremote")
            await wait_for(lambda: len(sim.subscribers()) == 1)
            await asyncio.sleep(0.5)
            assert sim.subscribers() == []
            sim.move_fader(1, 0.1)
            assert await client.collect(0.2) == []


async def test_linked_pair_moves_together_and_pushes_the_partner(x32_sim):
    x32_sim.set_link(5, True)
    async with OscPeer(x32_sim.address) as writer:
        writer.send("/xremote")
        await wait_for(lambda: len(x32_sim.subscribers()) == 1)
        writer.send("/ch/05/mix/fader", ("f", 0.5))
        pushed = await writer.receive()
        assert pushed.address == "/ch/06/mix/fader"  # the partner's change, never the writer's own
        assert x32_sim.fader(5) == x32_sim.fader(6) == 511 / 1023


async def test_meters_blob_carries_fed_levels(x32_sim):
    x32_sim.feed_levels([-6.0, -20.0])
    async with OscPeer(x32_sim.address) as client:
        client.send("/meters", ("s", "/meters/1"), ("i", 1))
        message = await client.receive()
        assert message.address == "/meters/1"
        blob = message.params[0]
        count = struct.unpack_from("<i", blob)[0]
        assert count == 96
        values = struct.unpack_from("<96f", blob, 4)
        assert values[0] == pytest.approx(10 ** (-6 / 20), rel=1e-5)
        assert values[1] == pytest.approx(0.1, rel=1e-5)
        assert values[2] == 0.0
        assert METER_CODECS["x32_blob"].decode(blob)[:2] == pytest.approx([-6.0, -20.0], abs=1e-4)


async def test_packet_loss_drops_datagrams(x32_sim):
    x32_sim.faults.set_loss(1.0)
    async with OscPeer(x32_sim.address) as client:
        with pytest.raises(asyncio.TimeoutError):
            await client.ask("/xinfo", timeout_s=0.2)
    assert x32_sim.stats.dropped_by_loss >= 1


async def test_delay_holds_replies_back(x32_sim):
    x32_sim.faults.delay_s = 0.2
    async with OscPeer(x32_sim.address) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await client.ask("/xinfo")
        assert loop.time() - start >= 0.19


@pytest.mark.parametrize("keep_state", [True, False])
async def test_restart_forgets_leases_and_keeps_or_resets_state(x32_sim, keep_state):
    async with OscPeer(x32_sim.address) as client:
        client.send("/xremote")
        client.send("/ch/01/mix/fader", ("f", 0.25))
        await wait_for(lambda: x32_sim.fader(1) == 255 / 1023)
        await x32_sim.restart(keep_state=keep_state, downtime_s=0.05)
        assert x32_sim.subscribers() == []
        held = (await client.ask("/ch/01/mix/fader")).params[0]
        assert held == pytest.approx(255 / 1023 if keep_state else 767 / 1023, abs=1e-7)
