"""The whole bridge on real parts: a dummy jackd, a player client feeding it, the bridge tapping it, the X32 simulator as desk."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ailive.bridge.audio import JackSource
from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, read_records
from ailive.bridge.show import load_show
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.show import DeskAddress
from ailive.models.base import FRAME_S
from ailive.models.registry import load_model
from tests.conftest import wait_for
from tests.signals import noise_channels
from tests.jackserver import JackPlayer
from tests.test_cli import AILIVE, RunningSim, ailive

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "x32-demo.toml"
RATE = 48000


def band(levels_db: list[float | None], seconds: float = 4.0, seed: int = 11) -> np.ndarray:
    return noise_channels(levels_db, seconds, RATE, seed)


HOT_KICK = [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0]


def show_for(player: JackPlayer, port: int, **policy):
    show = load_show(EXAMPLE).with_desk(DeskAddress("127.0.0.1", port))
    channels = tuple(replace(c, port=p) for c, p in zip(show.channels, player.output_ports))
    return replace(show, channels=channels, policy=replace(show.policy, **policy))


def show_file_for(path: Path, player_ports: list[str], port: int) -> Path:
    lines = ['[show]\nname = "jack-test"\n', f'[desk]\nprofile = "x32"\nhost = "127.0.0.1"\nport = {port}\n']
    for index, name in enumerate(player_ports, start=1):
        lines.append(f'[[channel]]\nport = "{name}"\ndesk = {index}\nname = "In {index}"\n')
    path.write_text("\n".join(lines))
    return path


async def test_bridge_taps_jack_brings_a_hot_channel_down_respects_a_hand_and_kill_restores(jack_server, x32_sim, tmp_path):
    with JackPlayer(jack_server.name, band(HOT_KICK), RATE) as player:
        show = show_for(player, x32_sim.port, override_hold_s=2.0)
        source = JackSource([c.name for c in show.channels], [c.port for c in show.channels],
                            client_name="ailive-bridge", server_name=jack_server.name)
        await source.start()
        driver = OscDeskDriver(show.profile, "127.0.0.1", x32_sim.port, show.desk_channels)
        await driver.connect()
        snapshot = {ch: x32_sim.fader_db(ch) for ch in show.desk_channels}
        with Journal(tmp_path / "j", show.name) as journal:
            engine = Engine(show, source, driver, load_model("loudness"), journal)
            task = asyncio.create_task(engine.run(arm_after_s=0.5))
            try:
                await wait_for(lambda: x32_sim.fader_db(1) < -3.0, timeout_s=8.0)  # 12 dB too hot: coming down
                assert x32_sim.fader_db(8) == snapshot[8]  # talkback is excluded
                x32_sim.move_fader_db(2, -5.0)  # the engineer's hand, inside the window: a crossing write is undone
                await wait_for(lambda: engine.status.engineer_moves >= 1, timeout_s=1.0)
                writes_before = x32_sim.stats.writes.get("/ch/02/mix/fader", 0)
                await asyncio.sleep(1.5)
                # Respected for the hold: at most the hand's own level sent back (one of our writes may have crossed it).
                assert x32_sim.stats.writes.get("/ch/02/mix/fader", 0) - writes_before <= 1
                assert x32_sim.fader_db(2) == pytest.approx(-5.0, abs=0.1)
                engine.kill()
                await wait_for(lambda: all(x32_sim.fader_db(ch) == snapshot[ch] for ch in show.desk_channels), timeout_s=2.0)
            finally:
                engine.stop()
                await task
                await driver.close()
                await source.stop()
        kinds = [r.get("what") for r in read_records(journal.path) if r["kind"] == "event"]
        assert kinds.index("armed") < kinds.index("override") < kinds.index("killed")


def test_sigkill_then_restore_with_a_jack_source(jack_server, tmp_path):
    sim = RunningSim("x32")
    try:
        with JackPlayer(jack_server.name, band(HOT_KICK), RATE) as player:
            show = show_file_for(tmp_path / "show.toml", player.output_ports, sim.port)
            journal = tmp_path / "j"
            bridge = subprocess.Popen([*AILIVE, "run", str(show), "--source", "jack", "--jack-server", jack_server.name,
                                       "--arm", "--arm-after", "0.3", "--headless", "--journal", str(journal)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 15
                record = journal / "jack-test.jsonl"
                while time.monotonic() < deadline and not (record.exists() and '"ch": 1' in record.read_text()):
                    time.sleep(0.1)
                time.sleep(1.0)
                assert bridge.poll() is None, bridge.stderr.read() if bridge.stderr else ""
                bridge.send_signal(signal.SIGKILL)
                bridge.wait(timeout=5)
            finally:
                if bridge.poll() is None:
                    bridge.kill()
            result = ailive("check", str(show), "--json")
            moved = {c["desk_channel"]: c["fader_db"] for c in __import__("json").loads(result.stdout)["channels"]}
            assert moved[1] < -1.0
            restored = ailive("restore", str(show), "--journal", str(journal))
            assert restored.returncode == 0, restored.stderr
            result = ailive("check", str(show), "--json")
            after = {c["desk_channel"]: c["fader_db"] for c in __import__("json").loads(result.stdout)["channels"]}
            assert all(db == pytest.approx(-0.01, abs=0.005) for db in after.values())
    finally:
        sim.stop()


def test_check_lists_jack_ports_and_flags_missing_ones(jack_server, tmp_path):
    sim = RunningSim("x32")
    try:
        with JackPlayer(jack_server.name, band(HOT_KICK, seconds=1.0), RATE) as player:
            good = show_file_for(tmp_path / "good.toml", player.output_ports, sim.port)
            result = ailive("check", str(good), "--jack-server", jack_server.name, "--json")
            assert result.returncode == 0, result.stderr
            report = __import__("json").loads(result.stdout)
            assert report["jack"]["running"] and set(player.output_ports) <= set(report["jack"]["ports"])
            bad = show_file_for(tmp_path / "bad.toml", [*player.output_ports[:7], "nosuch:out_9"], sim.port)
            result = ailive("check", str(bad), "--jack-server", jack_server.name)
            assert result.returncode == 1
            assert "problem: the show taps JACK port 'nosuch:out_9'" in result.stdout
        no_server = ailive("check", str(good), "--jack-server", "ailive-no-such-server")
        assert no_server.returncode == 0 and "no JACK server named 'ailive-no-such-server'" in no_server.stdout
    finally:
        sim.stop()


async def test_a_dead_jack_server_holds_every_fader_and_the_loop_keeps_its_pace(own_jack_server, x32_sim, tmp_path):
    with JackPlayer(own_jack_server.name, band(HOT_KICK), RATE) as player:
        show = show_for(player, x32_sim.port)
        source = JackSource([c.name for c in show.channels], [c.port for c in show.channels],
                            client_name="ailive-bridge", server_name=own_jack_server.name)
        await source.start()
        async with OscDeskDriver(show.profile, "127.0.0.1", x32_sim.port, show.desk_channels) as driver:
            with Journal(tmp_path / "j", show.name) as journal:
                engine = Engine(show, source, driver, load_model("loudness"), journal)
                task = asyncio.create_task(engine.run(arm_after_s=0.3))
                await wait_for(lambda: engine.status.moves > 0, timeout_s=5.0)
                own_jack_server.kill()
                await wait_for(lambda: engine.state.hold == "held: stale audio", timeout_s=1.0)
                writes = x32_sim.stats.total_writes()
                steps, began = engine.status.steps, asyncio.get_running_loop().time()
                await asyncio.sleep(1.0)
                elapsed_s = asyncio.get_running_loop().time() - began
                assert x32_sim.stats.total_writes() == writes  # every fader held
                stepped = engine.status.steps - steps
                assert 1 <= stepped <= elapsed_s / FRAME_S + 1  # still stepping, never faster than the control rate
                assert driver.connected  # the desk link kept alive meanwhile
                engine.stop()
                await task
        await source.stop()
