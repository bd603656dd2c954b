"""Shared fixtures: desk simulators on free loopback ports, stopped after each test."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import pytest

from ailive.consoles.profile import Profile, get_profile
from ailive.consoles.sim import DeskSimulator
from ailive.consoles.sim.harness import wait_until

# Real jackd and mosquitto fixtures (jack_server, own_jack_server, mosquitto, mosquitto_factory).
pytest_plugins = ["tests.jackserver", "tests.mosquitto", "tests.alm_models"]


@pytest.fixture
def x32_profile() -> Profile:
    return get_profile("x32")


@pytest.fixture
async def x32_sim(x32_profile):
    async with DeskSimulator(x32_profile, port=0) as sim:
        yield sim


def short_lease(profile: Profile, lease_s: float = 1.0, renew_s: float = 0.6) -> Profile:
    """The same desk with a short subscription lease, so expiry is testable in a second."""
    assert profile.subscription is not None
    return replace(profile, subscription=replace(profile.subscription, lease_s=lease_s, renew_s=renew_s))


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 2.0, step_s: float = 0.005) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, fails the test on timeout."""
    try:
        return await wait_until(predicate, timeout_s, step_s=step_s)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None
