"""The ``ailive`` command as a user runs it: real processes, real sockets, one-line errors."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.oscpeer import build

ROOT = Path(__file__).resolve().parent.parent
AILIVE = [sys.executable, "-m", "ailive.bridge.cli"]
EXAMPLE = ROOT / "examples" / "x32-demo.toml"


def ailive(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AILIVE, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def assert_one_line_error(result: subprocess.CompletedProcess[str], pattern: str, code: int = 1) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(pattern, lines[0]), lines[0]


class RunningSim:
    """``ailive sim`` in the foreground of a child process, stopped by PID."""

    def __init__(self, desk: str = "x32", *extra: str) -> None:
        self.process = subprocess.Popen([*AILIVE, "sim", desk, "--port", "0", *extra], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.banner = self.process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.banner)
        assert match, (self.banner, self.process.stderr.read() if self.process.poll() is not None else "")
        self.port = int(match.group(1))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)


@pytest.fixture
def sim_process():
    sims: list[RunningSim] = []

    def start(desk: str = "x32", *extra: str) -> RunningSim:
        sims.append(RunningSim(desk, *extra))
        return sims[-1]

    yield start
    for sim in sims:
        if sim.process.poll() is None:
            sim.process.kill()
            sim.process.wait()


def test_version():
    result = ailive("--version")
    assert result.returncode == 0 and re.fullmatch(r"ailive \d+\.\d+\.\d+\S*\n", result.stdout)


def test_profiles_table_and_json():
    table = ailive("profiles")
    assert table.returncode == 0
    for word in ("x32", "xair", "m32", "10023", "10024", "x32 piecewise"):
        assert word in table.stdout
    rows = {row["name"]: row for row in json.loads(ailive("profiles", "--json").stdout)}
    assert rows["xair"]["port"] == 10024 and rows["xair"]["channels"] == 16
    assert rows["x32"]["transport"] == "osc-udp"


def test_sim_answers_a_stock_client_and_stops_on_sigterm(sim_process):
    import socket

    from pythonosc.osc_message import OscMessage

    sim = sim_process("x32")
    assert "X32 simulator" in sim.banner and "32 channels" in sim.banner
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2.0)
        client.sendto(build("/xinfo"), ("127.0.0.1", sim.port))
        reply = OscMessage(client.recv(1024))
        assert reply.address == "/xinfo" and reply.params[2] == "X32"
        client.sendto(build("/ch/01/mix/fader", ("f", 0.25)), ("127.0.0.1", sim.port))
        client.sendto(build("/ch/01/mix/fader"), ("127.0.0.1", sim.port))
        assert OscMessage(client.recv(1024)).params[0] == pytest.approx(255 / 1023, abs=1e-7)
    assert sim.stop() == 0


def test_sim_channels_option(sim_process):
    sim = sim_process("xair", "--channels", "12")
    assert "12 channels" in sim.banner and "XR18" in sim.banner


def test_sim_unknown_desk():
    assert_one_line_error(ailive("sim", "yamaha-cl5"), r"unknown desk 'yamaha-cl5'; known desks: .*x32")


def test_sim_port_in_use(sim_process):
    sim = sim_process("x32")
    assert_one_line_error(ailive("sim", "x32", "--port", str(sim.port)), rf"cannot listen on 127\.0\.0\.1:{sim.port}")


def test_check_reports_what_the_desk_holds(sim_process):
    sim = sim_process("x32")
    result = ailive("check", str(EXAMPLE), "--desk", f"127.0.0.1:{sim.port}")
    assert result.returncode == 0, result.stderr
    assert "X32 firmware 4.06" in result.stdout and "Talkback" in result.stdout and "-0.01 dB" in result.stdout
    report = json.loads(ailive("check", str(EXAMPLE), "--desk", f"127.0.0.1:{sim.port}", "--json").stdout)
    assert report["model"] == "X32" and len(report["channels"]) == 8
    assert report["channels"][0]["fader_db"] == pytest.approx(-0.01, abs=0.005)


def test_check_refuses_a_desk_of_another_family(sim_process):
    sim = sim_process("xair")
    assert_one_line_error(ailive("check", str(EXAMPLE), "--desk", f"127.0.0.1:{sim.port}"), r"'XR18', not one of the x32 family")


def test_check_unreachable_desk_is_clear(sim_process):
    sim = sim_process("x32")
    port = sim.port
    sim.stop()
    result = ailive("check", str(EXAMPLE), "--desk", f"127.0.0.1:{port}", "--timeout", "0.1")
    assert_one_line_error(result, r"no x32 answered /xinfo .*check the desk's IP address")


def test_check_malformed_show_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace('mode = "excluded"', 'mode = "off"'))
    assert_one_line_error(ailive("check", str(bad)), r"bad\.toml: channel\[7\]\.mode: expected one of auto, manual, excluded, got 'off'")


def test_check_missing_show_file(tmp_path):
    assert_one_line_error(ailive("check", str(tmp_path / "none.toml")), r"none\.toml: expected an existing file")


def test_check_bad_desk_option():
    assert_one_line_error(ailive("check", str(EXAMPLE), "--desk", "127.0.0.1:99999"), r"--desk: .*port must be 1\.\.65535", code=2)


def make_stems(folder: Path, channels: int = 8, seconds: float = 20.0) -> Path:
    from tests.test_engine import write_stems

    levels = [-8.0] + [-20.0] * (channels - 2) + [-30.0]
    return write_stems(folder, levels[:channels], seconds=seconds)


def assert_the_hot_channel_came_down(faders: dict[int, float]) -> None:
    """After a ride of :func:`make_stems`: channel 1, 12 dB hotter than channels 2-7, ends down and well under them."""
    assert faders[1] < -2.0 and faders[1] < min(faders[c] for c in range(2, 8)) - 3.0, faders


def desk_faders(port: int) -> dict[int, float]:
    report = json.loads(ailive("check", str(EXAMPLE), "--desk", f"127.0.0.1:{port}", "--json").stdout)
    return {ch["desk_channel"]: ch["fader_db"] for ch in report["channels"]}


def test_run_rides_the_simulator_with_a_folder_source(sim_process, tmp_path):
    sim = sim_process("x32")
    stems = make_stems(tmp_path / "stems", seconds=4.0)
    result = ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}", "--arm",
                    "--arm-after", "0.2", "--headless", "--journal", str(tmp_path / "j"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ARMED" in result.stdout and "stopped:" in result.stderr
    faders = desk_faders(sim.port)
    assert_the_hot_channel_came_down(faders)
    assert faders[8] == pytest.approx(-0.01, abs=0.02)


def test_sigkill_then_restore_puts_the_snapshot_back(sim_process, tmp_path):
    sim = sim_process("x32")
    stems = make_stems(tmp_path / "stems", seconds=30.0)
    journal = tmp_path / "j"
    bridge = subprocess.Popen([*AILIVE, "run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}",
                               "--arm", "--arm-after", "0.2", "--headless", "--journal", str(journal)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (journal / "x32-demo.jsonl").exists() and '"kind": "move"' in (journal / "x32-demo.jsonl").read_text():
                break
            time.sleep(0.1)
        time.sleep(1.5)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(timeout=5)
    finally:
        if bridge.poll() is None:
            bridge.kill()
    moved = desk_faders(sim.port)
    assert moved[1] < -1.0  # the bridge had moved the hot channel when it died
    result = ailive("restore", str(EXAMPLE), "--desk", f"127.0.0.1:{sim.port}", "--journal", str(journal))
    assert result.returncode == 0, result.stderr
    assert all(db == pytest.approx(-0.01, abs=0.005) for db in desk_faders(sim.port).values())


def test_restore_without_a_journal(tmp_path, sim_process):
    sim = sim_process("x32")
    assert_one_line_error(ailive("restore", str(EXAMPLE), "--desk", f"127.0.0.1:{sim.port}", "--journal", str(tmp_path)),
                          r"no journal at .*x32-demo\.jsonl")


def test_run_refuses_a_folder_with_the_wrong_channel_count(tmp_path, sim_process):
    sim = sim_process("x32")
    stems = make_stems(tmp_path / "stems", channels=5, seconds=1.0)
    assert_one_line_error(ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}"),
                          r"holds 5 audio files but the show maps 8 channels")


def test_run_refuses_an_unknown_model(tmp_path, sim_process):
    sim = sim_process("x32")
    stems = make_stems(tmp_path / "stems", seconds=1.0)
    assert_one_line_error(ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}",
                                 "--model", "alm-xxl"), r"unknown model 'alm-xxl'")


def test_run_without_a_jack_server_says_how_to_start_one(sim_process):
    sim = sim_process("x32")
    result = ailive("run", str(EXAMPLE), "--desk", f"127.0.0.1:{sim.port}", "--jack-server", "ailive-no-such-server")
    assert_one_line_error(result, r"JACK server.*jackd")


def test_sigint_disarms_and_leaves_the_faders_where_they_are(sim_process, tmp_path):
    sim = sim_process("x32")
    stems = make_stems(tmp_path / "stems", seconds=30.0)
    journal = tmp_path / "j"
    bridge = subprocess.Popen([*AILIVE, "run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}",
                               "--arm", "--arm-after", "0.2", "--headless", "--journal", str(journal)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    record = journal / "x32-demo.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (record.exists() and record.read_text().count('"kind": "move"') > 10):
        time.sleep(0.1)
    bridge.send_signal(signal.SIGINT)
    _, stderr = bridge.communicate(timeout=10)
    assert bridge.returncode == 0, stderr
    assert "stopped:" in stderr and "Traceback" not in stderr
    records = [json.loads(line) for line in record.read_text().splitlines()]
    assert records[-1]["kind"] == "stop"
    assert any(r["kind"] == "event" and r["what"] == "disarmed" and r["detail"] == "bridge stopped" for r in records)
    last_moves = {r["ch"]: r["to"] for r in records if r["kind"] == "move"}
    time.sleep(0.3)
    faders = desk_faders(sim.port)
    for ch, db in last_moves.items():
        assert faders[ch] == pytest.approx(db, abs=0.05)  # no restore, no jump: where the bridge left them
    assert faders[1] < -1.0


# ----- the one error boundary --------------------------------------------------------------


@pytest.mark.parametrize("args, pattern, code", [
    (("profiles", "show", "no-such-desk"), r"no-such-desk", 1),  # consoles: an unknown profile
    (("profiles", "validate", "{tmp}/none.toml"), r"none\.toml", 1),  # consoles: a missing profile file
    (("check", "{tmp}/bad.toml"), r"bad\.toml: channel\[7\]\.mode", 1),  # consoles: a show file key
    (("export", "{tmp}/no-checkpoint.pt", "--out", "{tmp}/model"), r"no-checkpoint\.pt: no such checkpoint", 2),  # models
    (("train", "--config", "{tmp}/train.toml", "--out", "{tmp}/run"), r"train\.toml: unknown keys no_such_key", 2),  # models: a bad config
    (("eval", "--models", "no-such-model", "--set", "{tmp}"), r"unknown model 'no-such-model'", 1),  # models: a name
])
def test_user_errors_end_as_one_line_and_a_non_zero_exit(tmp_path, args, pattern, code):
    (tmp_path / "bad.toml").write_text(EXAMPLE.read_text().replace('mode = "excluded"', 'mode = "off"'))
    (tmp_path / "train.toml").write_text('no_such_key = 1\n')
    result = ailive(*(a.format(tmp=tmp_path) for a in args), timeout=120.0)
    assert_one_line_error(result, pattern, code)


def test_the_boundary_catches_both_bases_and_leaves_bugs_their_traceback():
    import click
    from click.testing import CliRunner

    from ailive.bridge.cli.fail import ErrorBoundary
    from ailive.consoles.errors import AiliveError
    from ailive.models.errors import ModelError

    @click.group(cls=ErrorBoundary)
    def group() -> None:
        pass

    @group.command()
    @click.argument("kind")
    def boom(kind: str) -> None:
        raise {"desk": AiliveError("the desk said no"), "model": ModelError("the model said no"),
               "bug": ZeroDivisionError("a bug")}[kind]

    runner = CliRunner()
    for kind, said in (("desk", "the desk said no"), ("model", "the model said no")):
        result = runner.invoke(group, ["boom", kind])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert result.output.strip() == f"ailive: error: {said}"
    bug = runner.invoke(group, ["boom", "bug"])
    assert isinstance(bug.exception, ZeroDivisionError)  # a bug is not dressed up as a user error
