"""``ailive init``: a show file from what a simulated desk and a real jackd report, that ``load_show`` and ``ailive check`` accept."""
from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import tomllib
from dataclasses import dataclass, fields

import pytest

from ailive.bridge.init.showplan import DeskChannel, match_by_name, mode_for, plan_channels, stereo_groups
from ailive.bridge.init.showwriter import POLICY_NOTES, ShowWriteError, write_show
from ailive.bridge.policy_settings import PolicySettings
from ailive.bridge.show import load_show
from ailive.consoles.profile import dump_toml, get_profile, resolved_table
from ailive.consoles.sim import DeskSimulator, simulated_desk

AILIVE = [sys.executable, "-m", "ailive.bridge.cli"]
NAMES = {1: "Kick", 2: "Snare", 3: "Keys L", 4: "Keys R", 5: "Vox", 6: "TalkBack", 7: "Spare", 8: "PB L", 9: "Ch 09",
         10: "Click"}


@pytest.fixture(autouse=True)
def no_user_profiles(tmp_path, monkeypatch):
    """The user's own profiles never leak into a test (nor into the commands it runs)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("AILIVE_PROFILES", raising=False)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def ailive(*args: str) -> Result:
    """The command in a child process, while this test's event loop keeps serving the simulator."""
    process = await asyncio.create_subprocess_exec(*AILIVE, *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def one_line_error(result: Result, pattern: str, code: int = 1) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def named_sim(profile: str = "x32") -> DeskSimulator:
    sim = DeskSimulator(get_profile(profile), port=0)
    for channel, name in NAMES.items():
        sim.set_name(channel, name)
    return sim


NO_JACK = ["--jack-server", "ailive-test-no-such-server"]


# ----- the plan: modes, ports, pairs ---------------------------------------------------------------


@pytest.mark.parametrize("name,mode", [
    ("Kick", "auto"), ("Vox 1", "auto"), ("Bass DI", "auto"), ("Combo", "auto"), ("Talk", "auto"),
    ("", "excluded"), ("  ", "excluded"), ("Ch 05", "excluded"), ("CH12", "excluded"), ("Input 3", "excluded"),
    ("TalkBack", "excluded"), ("Talk Back", "excluded"), ("TB Mic", "excluded"), ("Spare 3", "excluded"),
    ("PB L", "excluded"), ("Playback", "excluded"), ("Click", "excluded"), ("Tracks R", "excluded"),
])
def test_modes_from_names(name, mode):
    assert mode_for(name)[0] == mode


def test_ports_match_names_longest_first():
    channels = [DeskChannel(1, "Kick"), DeskChannel(2, "Kick In"), DeskChannel(3, "Snare"), DeskChannel(4, "")]
    ports = ["stage:Kick In", "stage:Kick", "stage:snare-top", "stage:snare-bottom", "system:capture_1"]
    assert match_by_name(channels, ports) == {1: "stage:Kick", 2: "stage:Kick In"}  # two snare ports: neither


def test_plan_fills_by_order_and_leaves_the_rest_untapped():
    channels = [DeskChannel(n, name) for n, name in [(1, "Vox"), (2, ""), (3, "Keys L"), (4, "Keys R"), (5, "Gtr")]]
    ports = ["stage:Vox", "system:capture_1", "system:capture_2", "system:capture_3", "other:out_1"]
    plan = plan_channels(channels, ports)
    assert [(p.desk, p.port, p.mode) for p in plan] == [
        (1, "stage:Vox", "auto"), (2, "system:capture_1", "excluded"), (3, "system:capture_2", "auto"),
        (4, "system:capture_3", "auto"), (5, None, "auto")]
    assert [p.group for p in plan] == ["", "", "keys", "keys", ""]
    guessed = plan_channels(channels, None)
    assert [p.port for p in guessed] == [f"system:capture_{n}" for n in range(1, 6)]


def test_pairs_need_adjacent_left_then_right():
    def groups(*names: str) -> dict[int, str]:
        return stereo_groups([DeskChannel(n, name) for n, name in enumerate(names, 1)])

    assert groups("OH L", "OH R", "Piano Left", "Piano Right") == {1: "oh", 2: "oh", 3: "piano", 4: "piano"}
    assert groups("Gtr R", "Gtr L") == {}
    assert groups("Keys L", "Vox", "Keys R") == {}
    assert groups("Keys L", "Pad R") == {}
    plan = plan_channels([DeskChannel(1, "PB L"), DeskChannel(2, "PB R")], None)  # excluded: no group
    assert [p.group for p in plan] == ["", ""]


# ----- the file: one source of defaults, safe writes --------------------------------------------


def test_every_policy_number_has_a_note():
    assert set(POLICY_NOTES) == {f.name for f in fields(PolicySettings)}


def test_write_refuses_to_replace_without_force(tmp_path):
    path = tmp_path / "gig.toml"
    path.write_text("mine")
    with pytest.raises(ShowWriteError, match="exists; --force replaces it"):
        write_show(path, "anything", force=False)
    assert path.read_text() == "mine"
    with pytest.raises(ShowWriteError, match="does not read back"):
        write_show(path, "[desk]\nprofile = 'x32'\n", force=True)
    assert path.read_text() == "mine" and list(tmp_path.iterdir()) == [path]


# ----- the command against simulators -------------------------------------------------------------


async def test_init_writes_a_show_that_loads_and_checks(tmp_path):
    path = tmp_path / "friday gig.toml"
    async with named_sim() as sim:
        result = await ailive("init", str(path), "--desk", f"127.0.0.1:{sim.port}", *NO_JACK)
        assert result.returncode == 0, result.stderr
        assert re.search(r"wrote .*: x32 desk X32 at 127\.0\.0\.1:\d+, 5 channels auto, 27 excluded", result.stdout)
        assert "also answers as m32" in result.stdout  # the M32 profile speaks the same dialect
        show = load_show(path)
        assert (show.name, show.profile.name, show.desk.host, show.desk.port) == ("friday-gig", "x32", "127.0.0.1", sim.port)
        modes = {c.desk_channel: (c.name, c.mode, c.group) for c in show.channels}
        assert modes[1] == ("Kick", "auto", "") and modes[5] == ("Vox", "auto", "")
        assert modes[3] == ("Keys L", "auto", "keys") and modes[4] == ("Keys R", "auto", "keys")
        assert all(modes[n][1] == "excluded" for n in (6, 7, 8, 9, 10, 11, 32))
        assert modes[9][0] == "Ch 9" and modes[11][0] == "Ch 11"  # desk defaults and blanks stay unnamed
        assert [c.port for c in show.channels] == [f"system:capture_{n}" for n in range(1, 33)]
        assert show.policy == PolicySettings()
        table = tomllib.loads(path.read_text())
        assert set(table["policy"]) == {f.name for f in fields(PolicySettings)}  # every number written, none repeated here
        assert "# window_db" not in path.read_text() and "window_db = 6.0" in path.read_text()
        assert sim.stats.total_writes() == 0  # init only reads
        check = await ailive("check", str(path), *NO_JACK)
        assert check.returncode == 0, check.stdout + check.stderr
        again = await ailive("init", str(path), "--desk", f"127.0.0.1:{sim.port}", "--profile", "x32", *NO_JACK)
        one_line_error(again, r"friday gig\.toml exists; --force replaces it")
        sim.set_name(2, "Snare Top")
        forced = await ailive("init", str(path), "--desk", f"127.0.0.1:{sim.port}", "--profile", "x32", "--force", *NO_JACK)
        assert forced.returncode == 0, forced.stderr
        assert "also answers" not in forced.stdout
        assert load_show(path).channels[1].name == "Snare Top"


async def test_init_maps_jack_ports_by_name_then_in_order(tmp_path, jack_server):
    import jack

    stage = jack.Client("stage", no_start_server=True, servername=jack_server.name)
    stage.outports.register("Vox")
    stage.outports.register("kick")
    stage.activate()
    path = tmp_path / "show.toml"
    try:
        async with named_sim() as sim:
            result = await ailive("init", str(path), "--desk", f"127.0.0.1:{sim.port}", "--profile", "x32",
                                  "--jack-server", jack_server.name)
            assert result.returncode == 0, result.stderr
            assert "14 without a JACK port" in result.stdout
            show = load_show(path)
            ports = {c.desk_channel: c.port for c in show.channels}
            assert ports[1] == f"{stage.name}:kick" and ports[5] == f"{stage.name}:Vox"
            assert [ports[n] for n in (2, 3, 4, 6, 7)] == [f"system:capture_{n}" for n in range(1, 6)]
            assert ports[18] == "system:capture_16" and 19 not in ports
            assert "# desk channel 19: no JACK port left for it, not tapped" in path.read_text()
            listed = " ".join(line[2:] for line in path.read_text().splitlines() if line.startswith("# "))
            assert "JACK ports to choose from: system:capture_1, system:capture_2," in listed
            assert f"system:capture_16, {stage.name}:Vox, {stage.name}:kick" in listed
            check = await ailive("check", str(path), "--jack-server", jack_server.name)
            assert check.returncode == 0, check.stdout + check.stderr
    finally:
        stage.deactivate()
        stage.close()


@pytest.mark.parametrize("desk", ["wing", "xair"])
async def test_init_finds_other_desks_by_their_answer(desk, tmp_path):
    path = tmp_path / "show.toml"
    async with named_sim(desk) as sim:
        result = await ailive("init", str(path), "--desk", f"127.0.0.1:{sim.port}", *NO_JACK)
        assert result.returncode == 0, result.stderr
        show = load_show(path)
        assert show.profile.name == desk and len(show.channels) == sim.channels
        assert [c.name for c in show.channels[:2]] == ["Kick", "Snare"]
        assert (await ailive("check", str(path), *NO_JACK)).returncode == 0


async def test_init_with_a_profile_from_a_folder(tmp_path):
    folder = tmp_path / "profiles"
    folder.mkdir()
    table = resolved_table("xair")
    table.update(name="myxair", port=10124)
    (folder / "myxair.toml").write_text(dump_toml(table))
    profile = get_profile("myxair", [folder])
    path = tmp_path / "show.toml"
    async with DeskSimulator(profile, port=0) as sim:
        sim.set_name(1, "Kick")
        result = await ailive("init", str(path), "--desk", f"127.0.0.1:{sim.port}", "--profile", "myxair",
                              "--profiles", str(folder), *NO_JACK)
        assert result.returncode == 0, result.stderr
        assert f"--profiles {folder}" in path.read_text()
        assert load_show(path, [folder]).profile.name == "myxair"
        assert (await ailive("check", str(path), "--profiles", str(folder), *NO_JACK)).returncode == 0


async def test_from_a_copied_profile_to_a_run(tmp_path):
    """The user's path: copy a profile, change it, simulate it, init a show from it, check it, run the bridge on it."""
    from tests.test_engine import write_stems

    shown = await ailive("profiles", "show", "x32")
    text = shown.stdout.replace('name = "x32"', 'name = "mydesk"', 1).replace("channels = 32", "channels = 4", 1)
    user = tmp_path / "config" / "ailive" / "profiles"
    user.mkdir(parents=True)
    (user / "mydesk.toml").write_text(text)
    async with simulated_desk("mydesk") as desk:
        for channel, name in enumerate(["Kick", "Bass", "Vox", "Talkback"], 1):
            desk.set_name(channel, name)
        path = tmp_path / "show.toml"
        result = await ailive("init", str(path), "--desk", f"127.0.0.1:{desk.port}", "--profile", "mydesk", *NO_JACK)
        assert result.returncode == 0, result.stderr
        assert "3 channels auto, 1 excluded" in result.stdout
        assert (await ailive("check", str(path), *NO_JACK)).returncode == 0
        stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -20.0, -20.0], seconds=4.0)
        run = await ailive("run", str(path), "--source", str(stems), "--arm", "--arm-after", "0.5", "--headless", "--fast",
                           "--journal", str(tmp_path / "journal"))
        assert run.returncode == 0, run.stderr
        assert desk.fader_writes(1) > 0 and desk.fader_db(1) < -1.0  # the hot kick came down from 0 dB
        assert desk.fader_writes(4) == 0  # talkback: excluded, never written


# ----- a desk that says nothing, or is something else ---------------------------------------------


@pytest.fixture
def silent_port():
    """A UDP port someone holds and never answers on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_silent_desk_leaves_no_file(tmp_path, silent_port):
    path = tmp_path / "show.toml"
    result = await ailive("init", str(path), "--desk", f"127.0.0.1:{silent_port}", "--profile", "x32", "--timeout", "0.1")
    one_line_error(result, r"no x32 answered /xinfo within 3 x 0\.1 s")
    result = await ailive("init", str(path), "--desk", f"127.0.0.1:{silent_port}", "--timeout", "0.1")
    one_line_error(result, r"no desk answered at 127\.0\.0\.1:\d+ in any known dialect \(digico, m32, wing, x32, xair; "
                           r"3 x 0\.1 s each\).*--profile")
    assert not path.exists() and list(tmp_path.iterdir()) == []


async def test_foreign_desk_leaves_no_file(tmp_path):
    path = tmp_path / "show.toml"
    async with DeskSimulator(get_profile("xair"), port=0) as sim:
        result = await ailive("init", str(path), "--desk", f"127.0.0.1:{sim.port}", "--profile", "x32", "--timeout", "0.2")
        one_line_error(result, r"the desk says it is a 'XR18', not one of the x32 family")
    folder = tmp_path / "other"
    folder.mkdir()
    table = resolved_table("x32")
    table.update(name="foreign", models=["FOO-1"])
    table["sim"]["model"] = "FOO-1"
    (folder / "foreign.toml").write_text(dump_toml(table))
    async with DeskSimulator(get_profile("foreign", [folder]), port=0) as sim:
        result = await ailive("init", str(path), "--desk", f"127.0.0.1:{sim.port}", "--timeout", "0.2")
        one_line_error(result, r"something answers at 127\.0\.0\.1:\d+, but as none of the known desks .*'FOO-1'.*docs/profiles\.md")
    assert not path.exists()


async def test_bad_arguments_are_one_line(tmp_path):
    path = tmp_path / "show.toml"
    one_line_error(await ailive("init", str(path), "--desk", "127.0.0.1:99999"), r"--desk '127\.0\.0\.1:99999': port must be 1\.\.65535", 2)
    one_line_error(await ailive("init", str(path), "--desk", "127.0.0.1", "--profile", "x23"), r"unknown desk 'x23'")
    one_line_error(await ailive("init", str(tmp_path), "--desk", "127.0.0.1", "--profile", "x32"), r"is a folder")
    result = await ailive("init", str(path))
    assert result.returncode == 2 and "--desk" in result.stderr
    assert not path.exists()
