"""A desk the bridge does not ship, described as data only: search path, driver, simulator, engine, CLI."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pythonosc.udp_client import SimpleUDPClient

from ailive.bridge.audio import FileSource
from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.errors import ProfileError
from ailive.consoles.faderlaw import held_db
from ailive.consoles.profile import (dump_toml, get_profile, load_profile_files, load_profiles, parse_profile,
                                     profile_search_path, resolved_table)
from ailive.bridge.show import load_show
from ailive.consoles.show import DeskAddress
from ailive.consoles.sim import DeskSimulator
from ailive.models.registry import load_model
from tests.conftest import wait_for
from tests.test_engine import write_stems

AILIVE = [sys.executable, "-m", "ailive.bridge.cli"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: A made-up desk family: three-digit padding, its own addresses, dB law, a "/hello" subscription.
ACME = """
schema = 1
name = "acme"
vendor = "Acme Audio"
description = "Acme Console 24, made up for this test"
transport = "osc-udp"
port = 9100
channels = 24
models = ["AC24"]

[identify]
queries = ["/acme/info"]
model_arg = 0
name_arg = 1
firmware_arg = 2

[subscription]
address = "/acme/hello"
renew_s = 4.0
lease_s = 6.0
max_clients = 2

[fader]
address = "/acme/input/{ch:03d}/level"
type = "f"
law = "db"
min_db = -90.0
max_db = 12.0
step_db = 0.5

[mute]
address = "/acme/input/{ch:03d}/cut"
type = "i"

[channel_name]
address = "/acme/input/{ch:03d}/label"
type = "s"

[sim]
model = "AC24"
firmware = "1.0"
[sim.replies]
"/acme/info" = { type = "sss", args = ["{model}", "{name}", "{firmware}"] }
"""


@pytest.fixture(autouse=True)
def no_user_profiles(tmp_path, monkeypatch):
    """The user's own config and $AILIVE_PROFILES never leak into a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("AILIVE_PROFILES", raising=False)


@pytest.fixture
def acme_dir(tmp_path) -> Path:
    folder = tmp_path / "acme-profiles"
    folder.mkdir()
    (folder / "acme.toml").write_text(ACME)
    return folder


def ailive(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AILIVE, *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "COLUMNS": "250", **(env or {})})


# ----- search path -----------------------------------------------------------------------------


def test_search_path_order_and_source_kinds(tmp_path, monkeypatch, acme_dir):
    user = tmp_path / "config" / "ailive" / "profiles"
    user.mkdir(parents=True)
    (user / "acme.toml").write_text(ACME.replace("port = 9100", "port = 9200"))
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    assert get_profile("acme").port == 9200 and get_profile("acme").source_kind == "user"
    (env_dir / "acme.toml").write_text(ACME.replace("port = 9100", "port = 9300"))
    monkeypatch.setenv("AILIVE_PROFILES", os.pathsep.join([str(tmp_path / "missing"), str(env_dir)]))
    assert get_profile("acme").port == 9300 and get_profile("acme").source_kind == "dir"
    assert get_profile("acme", [acme_dir]).port == 9100  # --profiles wins
    assert get_profile("acme", [acme_dir]).source == str(acme_dir / "acme.toml")
    assert [kind for kind, _ in profile_search_path([acme_dir])] == ["built-in", "user", "dir", "dir", "dir"]
    assert get_profile("x32").source_kind == "built-in"


def test_two_profiles_with_one_name_in_one_folder(acme_dir):
    (acme_dir / "other.toml").write_text(ACME)
    with pytest.raises(ProfileError, match=r"two profiles named 'acme' in one folder: .*acme\.toml and .*other\.toml"):
        load_profiles([acme_dir])


def test_resolved_profile_round_trips_as_toml():
    import tomllib

    for name, profile in load_profiles().items():
        text = dump_toml(resolved_table(name))
        assert "extends" not in tomllib.loads(text)
        assert parse_profile(tomllib.loads(text), profile.source) == profile


# ----- driver, simulator and the whole bridge on the data-only desk -----------------------------


async def test_driver_and_simulator_speak_the_new_dialect(acme_dir):
    profile = get_profile("acme", [acme_dir])
    assert profile.fader.address_of(7) == "/acme/input/007/level"
    async with DeskSimulator(profile, port=0) as sim:
        sim.move_fader_db(3, -20.0)
        sim.set_name(2, "Kick")
        async with OscDeskDriver(profile, "127.0.0.1", sim.port, [1, 2, 3], reply_timeout_s=0.3) as driver:
            assert driver.identity.model == "AC24"
            assert driver.view[2].name == "Kick"
            assert driver.view[3].fader_db == pytest.approx(-20.0)
            assert sim.subscribers() == [driver.local_address]
            held = driver.set_fader_db(1, -10.2)
            assert held == pytest.approx(held_db(profile.law, -10.2)) == pytest.approx(-10.0)
            await wait_for(lambda: sim.fader_db(1) == pytest.approx(held))
            assert sim.stats.writes == {"/acme/input/001/level": 1}


async def test_engine_rides_the_new_desk_from_a_show_file(acme_dir, tmp_path):
    show_path = tmp_path / "acme-show.toml"
    show_path.write_text((EXAMPLES / "x32-demo.toml").read_text().replace('profile = "x32"', 'profile = "acme"', 1))
    show = load_show(show_path, [acme_dir])
    assert show.profile.name == "acme" and show.profile.source_kind == "dir"
    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0])
    async with DeskSimulator(show.profile, port=0) as sim:
        show = show.with_desk(DeskAddress("127.0.0.1", sim.port))
        start_db = sim.fader_db(1)
        source = FileSource.from_directory(stems, realtime=False)
        await source.start()
        driver = OscDeskDriver.for_show(show)
        await driver.connect()
        journal = Journal(tmp_path / "journal", show.name)
        journal.open()
        try:
            status = await Engine(show, source, driver, load_model("loudness"), journal).run(arm_after_s=1.0)
            await asyncio.sleep(0.2)
        finally:
            journal.close()
            await driver.close()
            await source.stop()
        assert status.moves > 0 and status.model_errors == 0
        assert sim.fader_db(1) < start_db - 4.0
        assert set(sim.stats.writes) <= {f"/acme/input/{ch:03d}/level" for ch in range(1, 25)}


# ----- the command line -------------------------------------------------------------------------


def test_copy_edit_run_walkthrough(tmp_path):
    shown = ailive("profiles", "show", "x32")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.replace('name = "x32"', 'name = "myx32"', 1).replace("port = 10023", "port = 10123", 1)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "myx32.toml").write_text(text)
    assert "ok: " in ailive("profiles", "validate", str(mine / "myx32.toml")).stdout
    rows = {r["name"]: r for r in json.loads(ailive("profiles", "--profiles", str(mine), "--json").stdout)}
    assert rows["myx32"]["source_kind"] == "dir" and rows["myx32"]["port"] == 10123
    assert rows["x32"]["source_kind"] == "built-in"
    table = ailive("profiles", "--profiles", str(mine))
    assert re.search(r"myx32 .*dir: ", table.stdout), table.stdout
    process = subprocess.Popen([*AILIVE, "sim", "myx32", "--profiles", str(mine), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"ailive sim myx32: .*listening on 127\.0\.0\.1:(\d+)", banner)
        assert match, (banner, process.stderr.read() if process.poll() is not None else "")
        answer = stock_client_query(int(match.group(1)), "/ch/01/mix/fader")
        assert answer == ("/ch/01/mix/fader", [pytest.approx(0.75, abs=0.001)])
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_sim_takes_a_profile_file(acme_dir):
    process = subprocess.Popen([*AILIVE, "sim", "--profile", str(acme_dir / "acme.toml"), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", process.stdout.readline())
        assert match
        address, args = stock_client_query(int(match.group(1)), "/acme/input/001/label")
        assert address == "/acme/input/001/label" and isinstance(args[0], str)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def stock_client_query(port: int, address: str) -> tuple[str, list]:
    """Ask with python-osc's own client and read the answer off its socket."""
    from pythonosc.osc_message import OscMessage

    client = SimpleUDPClient("127.0.0.1", port)
    client._sock.settimeout(3.0)
    client.send_message(address, [])
    data, _ = client._sock.recvfrom(65536)
    message = OscMessage(data)
    return message.address, list(message.params)


BAD = {
    "unknown_key": (lambda t: t.replace("channels = 24", "channels = 24\nfaders = 24"), r"faders: expected no such key"),
    "wrong_type": (lambda t: t.replace("channels = 24", 'channels = "24"'), r"channels: expected an integer in 1\.\.256, got '24'"),
    "no_placeholder": (lambda t: t.replace("/acme/input/{ch:03d}/level", "/acme/input/level"),
                       r"fader\.address: expected an OSC address template containing \{ch\}, got '/acme/input/level'"),
    "unknown_law": (lambda t: t.replace('law = "db"', 'law = "audio_taper"'), r"fader\.law: expected one of x32, db, got 'audio_taper'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_names_file_key_expected_got(case, tmp_path):
    edit, pattern = BAD[case]
    path = tmp_path / "acme.toml"
    path.write_text(edit(ACME))
    result = ailive("profiles", "validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert re.search(re.escape(str(path)) + ": " + pattern, lines[0]), lines[0]


def test_validate_extends_cycle_and_duplicates(tmp_path):
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    a.write_text('schema = 1\nname = "a"\nextends = "b"\n')
    b.write_text('schema = 1\nname = "b"\nextends = "a"\n')
    result = ailive("profiles", "validate", str(a), str(b))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all("'extends' forms a cycle" in line for line in lines)
    good = tmp_path / "acme.toml"
    twin = tmp_path / "acme2.toml"
    good.write_text(ACME)
    twin.write_text(ACME)
    result = ailive("profiles", "validate", str(good), str(twin))
    assert result.returncode == 1
    assert result.stdout.startswith("ok: ")
    [line] = result.stderr.strip().splitlines()
    assert "two profiles named 'acme' in one folder" in line and str(good) in line and str(twin) in line
    results = load_profile_files([good])
    assert results[0][1].name == "acme"


def test_validate_ok_lines(acme_dir):
    result = ailive("profiles", "validate", str(acme_dir / "acme.toml"))
    assert result.returncode == 0 and result.stdout.startswith("ok: ") and "acme" in result.stdout
