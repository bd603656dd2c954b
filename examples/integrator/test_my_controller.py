"""An integrator's tests: their own controller against ailive's simulated desks, through the ``ailive_desk`` fixture.

Nothing here imports ailive: the fixture comes with the installed package
(pytest11 entry point) and hands each test a running desk on a free port.
"""
from __future__ import annotations

import pytest
from my_controller import MiniController


@pytest.mark.asyncio
@pytest.mark.parametrize("ailive_desk", ["x32", "xair"], indirect=True)
async def test_controller_follows_the_engineer_and_moves_a_fader(ailive_desk):
    async with MiniController(*ailive_desk.address) as controller:
        await ailive_desk.wait_subscribers(1)
        ailive_desk.move_fader_db(3, -20.0)                  # the engineer's hand
        await controller.pushed(3, ailive_desk.fader(3))     # the desk pushed it to us
        controller.set_fader(3, 0.5)                         # our move: -10 dB on this law
        assert await ailive_desk.wait_fader_db(3, -10.0) == pytest.approx(-10.04, abs=0.01)
        assert ailive_desk.fader_writes(3) == 1


@pytest.mark.asyncio
@pytest.mark.ailive_desk("x32", channels=8, seed=1)
async def test_controller_survives_a_desk_restart(ailive_desk):
    async with MiniController(*ailive_desk.address) as controller:
        ailive_desk.move_fader_db(2, -30.0)
        await ailive_desk.restart(keep_state=True, downtime_s=0.1)
        assert await controller.fader(2) == pytest.approx(ailive_desk.fader(2))
        assert ailive_desk.fader_db(2) == pytest.approx(-30.0, abs=0.2)
