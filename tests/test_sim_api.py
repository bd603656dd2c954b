"""Simulated desks for integrators: the async context manager, its waits, and the ``ailive_desk`` pytest fixture."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from importlib.metadata import distributions
from pathlib import Path

import pytest

from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.errors import DeskUnreachableError, ProfileError
from ailive.consoles.profile import dump_toml, get_profile, resolved_table
from ailive.consoles.sim import SimulatedDesk, resolve_profile, simulated_desk
from tests.conftest import wait_for


@pytest.fixture(autouse=True)
def no_user_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("AILIVE_PROFILES", raising=False)


@pytest.fixture
def profile_file(tmp_path) -> Path:
    table = resolved_table("xair")
    table.update(name="myxair", channels=4)
    path = tmp_path / "myxair.toml"
    path.write_text(dump_toml(table))
    return path


# ----- the context manager -------------------------------------------------------------------------


async def test_desks_start_on_free_ports_and_stop():
    async with simulated_desk("x32") as a, simulated_desk("wing", channels=4) as b:
        assert isinstance(a, SimulatedDesk) and a.running and b.running
        assert a.address[0] == "127.0.0.1" and a.port not in (0, 10023, b.port)
        assert (a.profile.name, b.profile.name, b.channels) == ("x32", "wing", 4)
    assert not a.running and not b.running


async def test_engineer_moves_faults_and_restarts_as_a_client_sees_them():
    async with simulated_desk("x32", channels=4, seed=3) as desk:
        desk.move_fader_db(2, -20.0)
        desk.set_mute(3, True)
        desk.set_name(1, "Kick")
        async with OscDeskDriver(desk.profile, *desk.address, [1, 2, 3], reply_timeout_s=0.2) as driver:
            assert (driver.view[1].name, driver.view[3].muted) == ("Kick", True)
            assert driver.view[2].fader_db == pytest.approx(-20.0, abs=0.2)
            await desk.wait_subscribers(1)
            desk.move_fader_db(2, -5.0)  # pushed to the subscriber
            await wait_for(lambda: driver.view[2].fader_db == pytest.approx(desk.fader_db(2)))
            driver.set_fader_db(1, -10.0)
            assert await desk.wait_fader_db(1, -10.0) == pytest.approx(-10.039, abs=1e-3)
            assert await desk.wait_fader_writes(1) == 1 and desk.fader_writes(2) == 0
            desk.faults.set_loss(1.0)
            with pytest.raises(DeskUnreachableError):
                await driver.query(desk.profile.fader.address_of(1), timeout_s=0.05)
            assert desk.stats.dropped_by_loss >= 3
            desk.faults.set_loss(0.0)
        await desk.restart(keep_state=False, downtime_s=0.05)
        assert desk.running and desk.subscribers() == []
        assert desk.fader_db(1) == pytest.approx(held(desk, 0.0)) and desk.name(1) == "" and not desk.muted(3)


def held(desk: SimulatedDesk, db: float) -> float:
    law = desk.profile.law
    return law.to_db(law.quantize(law.from_db(db)))


async def test_waits_say_what_did_not_happen():
    async with simulated_desk("xair", channels=2) as desk:
        desk.move_fader_db(1, -20.0)
        with pytest.raises(TimeoutError, match=r"fader 1 holds -20\.\d\d dB, not -10\.04 dB, after 0\.05 s"):
            await desk.wait_fader_db(1, -10.0, timeout_s=0.05)
        assert await desk.wait_fader_db(1, -20.0, timeout_s=0.05) == pytest.approx(-20.0, abs=0.2)
        assert await desk.wait_fader_db(1, -19.0, tolerance_db=1.5, timeout_s=0.05) < -19.0
        with pytest.raises(TimeoutError, match=r"1 subscriber\(s\) not met within 0\.05 s"):
            await desk.wait_subscribers(1, timeout_s=0.05)
        with pytest.raises(TimeoutError, match=r"1 write\(s\) to fader 2 not met"):
            await desk.wait_fader_writes(2, timeout_s=0.05)
        desk.move_fader_db(1, -math.inf)
        assert await desk.wait_fader_db(1, -math.inf, timeout_s=0.05) == -math.inf


async def test_profiles_by_name_file_or_object(profile_file):
    assert resolve_profile("wing").name == "wing"
    assert resolve_profile(profile_file).name == "myxair" and resolve_profile(str(profile_file)).channels == 4
    assert resolve_profile("myxair", [profile_file.parent]).source_kind == "dir"
    x32 = get_profile("x32")
    assert resolve_profile(x32) is x32
    with pytest.raises(ProfileError, match="unknown desk 'nosuchdesk'"):
        resolve_profile("nosuchdesk")
    async with simulated_desk(profile_file) as desk:
        assert desk.channels == 4 and desk.profile.name == "myxair"


# ----- the pytest fixture --------------------------------------------------------------------------


def test_plugin_is_registered_for_pytest(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("ailive")  # loaded from the entry point, as in any project
    assert plugin is not None and plugin.__name__ == "ailive.consoles.sim.pytest_plugin"
    ours = [e for d in distributions() if d.metadata["Name"] == "ailive-bridge" for e in d.entry_points if e.group == "pytest11"]
    assert ("ailive", "ailive.consoles.sim.pytest_plugin") in [(e.name, e.value) for e in ours]


@pytest.mark.parametrize("ailive_desk", ["wing", {"profile": "xair", "channels": 3}], indirect=True)
async def test_fixture_in_our_own_suite(ailive_desk):
    assert ailive_desk.running and ailive_desk.profile.name in ("wing", "xair")
    assert ailive_desk.channels == (3 if ailive_desk.profile.name == "xair" else 40)


INTEGRATOR_TESTS = '''
import pytest

@pytest.mark.asyncio
async def test_default_desk(ailive_desk):
    assert ailive_desk.profile.name == "x32" and ailive_desk.running

@pytest.mark.asyncio
@pytest.mark.parametrize("ailive_desk", ["xair", "wing"], indirect=True)
async def test_parametrized(ailive_desk):
    ailive_desk.move_fader_db(1, -12.0)
    assert await ailive_desk.wait_fader_db(1, -12.0) == pytest.approx(-12.0, abs=0.2)

@pytest.mark.asyncio
@pytest.mark.ailive_desk("{profile_file}", channels=2)
async def test_marker_with_a_profile_file(ailive_desk):
    assert (ailive_desk.profile.name, ailive_desk.channels) == ("myxair", 2)

@pytest.mark.asyncio
@pytest.mark.ailive_desk("x32", chanels=2)
async def test_misspelt_option(ailive_desk):
    pass
'''


def run_pytest(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """pytest in a child process in a folder of its own: none of our conftest or settings apply."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(folder), "-q",
                           "-o", "asyncio_mode=strict", "-o", "asyncio_default_fixture_loop_scope=function", *args,
                           str(folder)], cwd=folder, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})


def test_fixture_for_an_integrator_outside_our_tree(tmp_path, profile_file):
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_theirs.py").write_text(INTEGRATOR_TESTS.replace("{profile_file}", str(profile_file)))
    result = run_pytest(project)
    assert "4 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "ailive_desk: unknown option 'chanels'; known: profile, channels" in result.stdout


def test_fixture_without_pytest_asyncio_says_so(tmp_path):
    shadow = tmp_path / "shadow" / "pytest_asyncio"  # found first on sys.path: as if it were not installed
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named pytest_asyncio')\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_theirs.py").write_text(textwrap.dedent('''
        def test_wants_a_desk(ailive_desk):
            pass
    '''))
    result = run_pytest(project, "-p", "no:asyncio", env={"PYTHONPATH": str(shadow.parent)})
    assert "1 error" in result.stdout, result.stdout + result.stderr
    assert "the ailive_desk fixture needs pytest-asyncio (pip install pytest-asyncio)" in result.stdout
