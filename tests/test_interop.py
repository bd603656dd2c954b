"""Clients nobody here wrote talk to our simulator, and our driver sees what they do.

xair-api (blocking, X-Air and X32 dialects) and behringer-mixer (asyncio,
subscribes with /xremote) are PyPI packages written against real desks.
"""
from __future__ import annotations

import asyncio

import pytest
import xair_api
from behringer_mixer import mixer_api

from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.events import FaderMoved
from ailive.consoles.profile import get_profile
from ailive.consoles.sim import DeskSimulator
from tests.conftest import wait_for


@pytest.mark.parametrize("desk,kind", [("xair", "XR18"), ("x32", "X32")])
async def test_xair_api_reads_and_moves_faders(desk, kind):
    async with DeskSimulator(get_profile(desk), port=0) as sim:
        sim.move_fader_db(1, -20.0)
        sim.set_name(1, "Kick")
        events: list = []
        driver = OscDeskDriver(sim.profile, "127.0.0.1", sim.port, [1, 2])
        driver.add_listener(events.append)
        await driver.connect()
        try:
            def use_xair_api() -> tuple[float, str, bool]:
                with xair_api.connect(kind, ip="127.0.0.1", port=sim.port) as mixer:
                    level = mixer.strip[0].mix.fader
                    name = mixer.strip[0].config.name
                    on = mixer.strip[0].mix.on
                    mixer.strip[1].mix.fader = -10.0
                    return level, name, on

            level, name, on = await asyncio.to_thread(use_xair_api)
            assert level == pytest.approx(-20.0, abs=0.1)
            assert (name, on) == ("Kick", True)
            await wait_for(lambda: any(isinstance(e, FaderMoved) and e.source == "external" for e in events))
            move = next(e for e in events if isinstance(e, FaderMoved) and e.source == "external")
            assert move.channel == 2 and move.db == pytest.approx(-10.039, abs=1e-3)
            assert sim.fader(2) == 511 / 1023
        finally:
            await driver.close()


async def test_behringer_mixer_syncs_subscribes_and_sees_our_writes():
    async with DeskSimulator(get_profile("x32"), port=0) as sim:
        sim.set_name(1, "Kick")
        sim.move_fader_db(1, -10.0)
        mixer = mixer_api.create("X32", ip="127.0.0.1", port=sim.port, delay=0.001)
        assert await mixer.start()
        updates: list[dict] = []
        subscription = asyncio.create_task(mixer.subscribe(updates.append))
        driver = OscDeskDriver(sim.profile, "127.0.0.1", sim.port, [1, 2, 3])
        await driver.connect()
        try:
            await mixer.reload()
            await wait_for(lambda: mixer.state().get("/ch/1/config_name") == "Kick")
            assert mixer.state()["/ch/1/mix_fader_db"] == pytest.approx(-10.0, abs=0.1)
            assert mixer._mixer_status["type"] == "X32"
            await wait_for(lambda: len(sim.subscribers()) == 2)
            driver.set_fader_db(3, -30.0)
            await wait_for(lambda: mixer.state().get("/ch/3/mix_fader_db") is not None
                           and abs(mixer.state()["/ch/3/mix_fader_db"] + 30.1) < 0.2)
        finally:
            subscription.cancel()
            await driver.close()
            await mixer.stop()
