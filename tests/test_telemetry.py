"""MQTT telemetry and remote control on real parts: a mosquitto per test, the X32 simulator, real-time audio files."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiomqtt
import pytest

from ailive.bridge.audio import FileSource
from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, read_records
from ailive.bridge.remote.mqtt_settings import MqttSettings
from ailive.bridge.remote.telemetry import BrokerAddress, Telemetry, TelemetryError, parse_broker, with_broker
from ailive.bridge.show import Show, load_show
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.errors import ShowFileError
from ailive.consoles.show import DeskAddress
from ailive.models.registry import load_model
from tests.test_show import MINIMAL as SHOW_MINIMAL
from tests.conftest import wait_for
from tests.mosquitto import Mosquitto, TlsFiles, free_port
from tests.test_engine import write_stems

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "x32-demo.toml"
TOPICS = "ailive/x32-demo"
HOT = [-8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0]  # channel 1 is 12 dB too hot: the bridge pulls it down


@pytest.fixture(scope="module")
def stems(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stems(tmp_path_factory.mktemp("stems"), HOT, seconds=30.0)


# ----- a watcher: what an engineer's mosquitto_sub sees ------------------------------------------


@dataclass
class Seen:
    topic: str
    payload: Any  # decoded JSON
    retain: bool


@dataclass
class Watcher:
    client: aiomqtt.Client
    seen: list[Seen] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async for message in self.client.messages:
            topic = str(message.topic)
            if topic.startswith(f"{TOPICS}/cmd/") and topic != f"{TOPICS}/cmd/result":
                continue  # our own commands, echoed by the broker
            self.seen.append(Seen(topic, json.loads(message.payload), bool(message.retain)))

    async def expect(self, topic: str, predicate: Callable[[Any], bool] = lambda p: True, timeout_s: float = 3.0,
                     after: int = 0) -> Any:
        """The first message on ``topic`` (from index ``after`` on) whose payload satisfies ``predicate``."""
        found: list[Any] = []

        def match() -> bool:
            for seen in self.seen[after:]:
                if seen.topic == f"{TOPICS}/{topic}" and predicate(seen.payload):
                    found.append(seen.payload)
                    return True
            return False

        await wait_for(match, timeout_s=timeout_s, step_s=0.02)
        return found[0]

    async def send(self, command: str, body: dict[str, Any] | bytes, *, retain: bool = False) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.client.publish(f"{TOPICS}/cmd/{command}", payload, qos=1, retain=retain)

    async def ask(self, command: str, body: dict[str, Any], timeout_s: float = 3.0) -> dict[str, Any]:
        """Send a command and wait for the answer carrying its id."""
        after = len(self.seen)
        await self.send(command, body)
        return await self.expect("cmd/result", lambda p: p.get("id") == body.get("id"), timeout_s, after)

    def payloads(self, topic: str) -> list[Any]:
        return [s.payload for s in self.seen if s.topic == f"{TOPICS}/{topic}"]


@contextlib.asynccontextmanager
async def watching(port: int, **client_options: Any) -> AsyncIterator[Watcher]:
    async with aiomqtt.Client("127.0.0.1", port, **client_options) as client:
        watcher = Watcher(client)
        await client.subscribe(f"{TOPICS}/#", qos=1)
        watcher._task = asyncio.create_task(watcher._read())
        try:
            yield watcher
        finally:
            watcher._task.cancel()
            await asyncio.gather(watcher._task, return_exceptions=True)


# ----- the bridge in this process: engine + telemetry on the simulator -----------------------------


@dataclass
class Bridge:
    engine: Engine
    telemetry: Telemetry
    show: Show
    journal_path: Path
    records: list[dict[str, Any]]  # every record the engine made, as a listener saw it
    connected_at_record: list[bool]  # telemetry.connected when each record was made


@contextlib.asynccontextmanager
async def running_bridge(x32_sim, stems: Path, tmp_path: Path, settings: MqttSettings, *, arm_after_s: float | None = None,
                         profile_changes: dict[str, Any] | None = None, **telemetry_options: Any) -> AsyncIterator[Bridge]:
    show = load_show(EXAMPLE).with_desk(DeskAddress("127.0.0.1", x32_sim.port))
    if profile_changes:
        show = replace(show, profile=replace(show.profile, **profile_changes))
    show = replace(show, mqtt=settings)
    source = FileSource.from_directory(stems, realtime=True)
    await source.start()
    driver = OscDeskDriver(show.profile, "127.0.0.1", x32_sim.port, show.desk_channels)
    await driver.connect()
    journal = Journal(tmp_path / "journal", show.name)
    journal.open()
    engine = Engine(show, source, driver, load_model("loudness"), journal)
    telemetry_options.setdefault("backoff_s", (0.1, 0.5))
    telemetry = Telemetry(engine, settings, **telemetry_options)
    bridge = Bridge(engine, telemetry, show, journal.path, [], [])

    def listen(record: dict[str, Any]) -> None:
        bridge.records.append(record)
        bridge.connected_at_record.append(telemetry.connected)

    engine.add_listener(listen)
    telemetry.start()
    task = asyncio.create_task(engine.run(arm_after_s=arm_after_s))
    try:
        yield bridge
    finally:
        engine.stop()
        await task
        await telemetry.close()
        journal.close()
        await driver.close()
        await source.stop()


def on(broker: Mosquitto, **changes: Any) -> MqttSettings:
    return MqttSettings(enabled=True, host="127.0.0.1", port=broker.port, **changes)


# ----- topics ------------------------------------------------------------------------------------


async def test_state_and_channel_topics_appear(x32_sim, stems, tmp_path, mosquitto):
    async with running_bridge(x32_sim, stems, tmp_path, on(mosquitto)) as bridge:
        await wait_for(lambda: bridge.telemetry.connected, timeout_s=3)
        async with watching(mosquitto.port) as watcher:  # subscribes late: the state is retained
            state = await watcher.expect("state")
            assert next(s for s in watcher.seen if s.topic.endswith("/state")).retain
            assert state["v"] == 1 and state["online"] is True and state["show"] == "x32-demo"
            assert state["armed"] is False and state["connected"] is True
            assert state["model"] == "loudness" and state["xruns"] == 0
            for ch in range(1, 9):
                await watcher.expect(f"ch/{ch}")
            kick = await watcher.expect("ch/1", lambda p: p["level_db"] is not None and p["level_db"] > -30)
            assert kick["level_db"] == pytest.approx(-8.0, abs=1.5)
            assert kick["fader_db"] == pytest.approx(-0.01, abs=0.02) and kick["mode"] == "auto"
            assert kick["name"] == "Kick" and kick["reason"] == "disarmed" and kick["muted"] is False
            assert isinstance(kick["proposed_db"], float)
            talkback = await watcher.expect("ch/8")
            assert talkback["mode"] == "excluded" and talkback["proposed_db"] is None  # never analysed
            first = len(watcher.seen)
            await asyncio.sleep(1.0)
            per_channel = [sum(1 for s in watcher.seen[first:] if s.topic == f"{TOPICS}/ch/{ch}") for ch in (1, 2)]
            assert all(4 <= n <= 11 for n in per_channel), per_channel  # levels change: about 10 Hz, never more


async def test_commands_arm_set_modes_and_kill_on_the_simulator(x32_sim, stems, tmp_path, mosquitto):
    async with running_bridge(x32_sim, stems, tmp_path, on(mosquitto)) as bridge:
        async with watching(mosquitto.port) as watcher:
            await watcher.expect("state", lambda p: p["online"])
            armed = await watcher.ask("arm", {"id": "a1"})
            assert armed["ok"] is True and armed["command"] == "arm" and armed["armed"] is True
            assert armed["detail"] == "8 faders in the snapshot" and armed["v"] == 1
            await watcher.expect("state", lambda p: p["armed"] is True)
            again = await watcher.ask("arm", {"id": 2})
            assert again["ok"] is True and again["detail"] == "no change" and again["id"] == 2

            manual = await watcher.ask("ch/2/mode", {"id": "m1", "mode": "manual"})
            assert manual["ok"] and manual["ch"] == 2 and manual["mode"] == "manual" and manual["detail"] == "manual"
            assert bridge.engine.state.channel(2).mode == "manual"
            await watcher.expect("ch/2", lambda p: p["mode"] == "manual" and p["reason"] == "manual")

            await wait_for(lambda: x32_sim.fader_db(1) < -1.5, timeout_s=5)  # the hot kick comes down
            move = await watcher.expect("events", lambda p: p["kind"] == "move" and p["ch"] == 1)
            assert move["v"] == 1 and isinstance(move["seq"], int) and move["reason"]
            assert not any(p["kind"] == "move" and p["ch"] == 2 for p in watcher.payloads("events")
                           if p["seq"] > move["seq"] + 50)  # manual: never written again

            killed = await watcher.ask("kill", {"id": "k1"})
            assert killed["ok"] is True and killed["armed"] is False
            assert re.fullmatch(r"[1-8] faders restored", killed["detail"]), killed
            await wait_for(lambda: abs(x32_sim.fader_db(1) - -0.01) < 0.02, timeout_s=2)  # the snapshot is back
            await watcher.expect("state", lambda p: p["armed"] is False)
            await watcher.expect("events", lambda p: p["kind"] == "event" and p["what"] == "killed")

            disarm = await watcher.ask("disarm", {"id": "d1"})
            assert disarm["ok"] is True and disarm["detail"] == "no change"
            commands = [p for p in watcher.payloads("events") if p["kind"] == "command"]
            assert [(c["command"], c["origin"]) for c in commands[:3]] == [("arm", "mqtt"), ("arm", "mqtt"), ("mode", "mqtt")]


async def test_bad_commands_are_refused_with_a_reason_and_change_nothing(x32_sim, stems, tmp_path, mosquitto, caplog):
    caplog.set_level(logging.DEBUG)
    token = {"token": "s3cret-foh"}
    async with watching(mosquitto.port) as early:  # a retained command left on the broker before the bridge starts
        await early.send("arm", {"id": "stale", **token}, retain=True)
    cases: list[tuple[str, bytes, str, Any]] = [
        ("arm", b"{not json", r"^malformed JSON \(Expecting property name", None),
        ("arm", b"", r"^malformed JSON", None),
        ("arm", b"[1, 2]", r"^expected a JSON object, got list", None),
        ("arm", b"\xff\xfe", r"not UTF-8", None),
        ("arm", json.dumps({"id": "n1"}).encode(), r"^unauthorised: .*token.*missing", "n1"),
        ("kill", json.dumps({"id": "n2", "token": "guess"}).encode(), r"^unauthorised: .*wrong", "n2"),
        ("explode", json.dumps({"id": "n3", **token}).encode(), r"^unknown command 'explode'; the commands are arm", "n3"),
        ("ch/40/mode", json.dumps({"id": "n4", "mode": "manual", **token}).encode(), r"desk channel 40 is not mapped", "n4"),
        ("ch/x/mode", json.dumps({"id": "n5", "mode": "manual", **token}).encode(), r"channel 'x': expected a desk channel", "n5"),
        ("ch/2/mode", json.dumps({"id": "n6", "mode": "loud", **token}).encode(),
         r"^mode: expected one of auto, manual, excluded; got 'loud'", "n6"),
        ("ch/2/mode", json.dumps({"id": "n7", **token}).encode(), r"^mode: .*it is missing", "n7"),
        ("ch/8/mode", json.dumps({"id": "n8", "mode": "auto", **token}).encode(), r"Talkback.*excluded in the show file", "n8"),
        ("arm", json.dumps({"id": "n9", "force": True, **token}).encode(), r"^unknown key 'force' \(known: id, token, v\)", "n9"),
        ("arm", json.dumps({"id": "n10", "v": 2, **token}).encode(), r"^v: this bridge speaks payload version 1", "n10"),
        ("arm", json.dumps({"id": [1], **token}).encode(), r"^id: expected a string", None),
        ("arm", json.dumps({"id": "big", "pad": "x" * 5000, **token}).encode(), r"^payload of 50\d\d bytes is over the 4096-byte limit", None),
    ]
    async with watching(mosquitto.port) as watcher:
        async with running_bridge(x32_sim, stems, tmp_path, on(mosquitto, **token)) as bridge:
            stale = await watcher.expect("cmd/result", lambda p: p["id"] == "stale")
            assert stale["ok"] is False and stale["reason"].startswith("a retained command is never acted on")
            for index, (command, payload, reason, request_id) in enumerate(cases):
                after = len(watcher.seen)
                await watcher.send(command, payload)
                result = await watcher.expect("cmd/result", lambda p: True, after=after)
                assert result["ok"] is False and result["id"] == request_id and result["v"] == 1, (index, result)
                assert result["command"] == command and re.search(reason, result["reason"]), (index, result)
                assert "s3cret" not in json.dumps(result)
            await asyncio.sleep(0.3)
            assert not bridge.engine.state.armed and bridge.engine.state.channel(2).mode == "auto"
            assert x32_sim.stats.writes == {}  # not one fader moved
            assert bridge.telemetry.stats.commands_refused == len(cases) + 1
            assert not any(r["kind"] in ("arm", "move") for r in bridge.records)

            armed = await watcher.ask("arm", {"id": "ok", **token})  # the right token does arm
            assert armed["ok"] is True and armed["armed"] is True
            assert (await watcher.ask("disarm", {"id": "off", **token}))["ok"]
    # the bridge did not re-answer its own results, and the retained command was refused once only
    assert sum(1 for p in watcher.payloads("cmd/result") if p.get("id") == "stale") == 1
    assert "s3cret" not in caplog.text and "unauthorised" in caplog.text  # refusals are logged, the token never


async def test_a_policy_refusal_comes_back_on_cmd_result(x32_sim, stems, tmp_path, mosquitto):
    async with running_bridge(x32_sim, stems, tmp_path, on(mosquitto), profile_changes={"liveness_timeout_s": 0.4}) as bridge:
        async with watching(mosquitto.port) as watcher:
            await watcher.expect("state", lambda p: p["connected"] is True)
            x32_sim.faults.set_loss(1.0)  # the desk's network goes away
            await watcher.expect("state", lambda p: p["connected"] is False and p["hold"] == "", timeout_s=3)
            refused = await watcher.ask("arm", {"id": "r1"})
            assert refused["ok"] is False and refused["reason"] == "the desk is not connected"
            assert not bridge.engine.state.armed
            assert any(r["kind"] == "refused" and r["command"] == "arm" for r in bridge.records)


# ----- a broker that dies ------------------------------------------------------------------------


async def test_the_broker_dies_mid_show_the_bridge_mixes_on_and_reconnects(x32_sim, stems, tmp_path, mosquitto):
    settings = on(mosquitto)
    async with running_bridge(x32_sim, stems, tmp_path, settings, arm_after_s=0.3, backoff_s=(0.6, 0.6)) as bridge:
        async with watching(mosquitto.port) as watcher:
            await watcher.expect("state", lambda p: p["armed"] is True)
            await watcher.expect("events", lambda p: p["kind"] == "move")
        killed_at = len(bridge.records)
        mosquitto.kill()
        await wait_for(lambda: not bridge.telemetry.connected, timeout_s=3)
        steps, moves = bridge.engine.status.steps, bridge.engine.status.moves
        await asyncio.sleep(1.5)
        assert bridge.engine.status.steps >= steps + 25  # the control loop never waited for the broker
        assert bridge.engine.status.moves > moves  # and kept riding the desk
        outage = [i for i, connected in enumerate(bridge.connected_at_record) if i >= killed_at and not connected]
        assert outage, "no record was made while the broker was down"

        failures = bridge.telemetry.stats.failed_connects
        await wait_for(lambda: bridge.telemetry.stats.failed_connects > failures, timeout_s=2)  # a retry just failed:
        mosquitto.start()  # the next is >= 0.48 s away. Same port, no persistence: nothing retained survives
        async with watching(mosquitto.port) as watcher:  # so this subscribes before the bridge is back
            assert not bridge.telemetry.connected
            state = await watcher.expect("state", lambda p: p["online"], timeout_s=3)  # republished by the bridge
            assert state["armed"] is True and state["connected"] is True
            await wait_for(lambda: bridge.telemetry.connected and bridge.telemetry.stats.connects == 2, timeout_s=3)
            await watcher.expect("ch/1")
            # every record made while the broker was down was queued and arrives, in order, after the reconnect
            await watcher.expect("events", lambda p: p["seq"] >= outage[-1] + 1)
            seqs = [p["seq"] for p in watcher.payloads("events")]
            assert [i + 1 for i in outage] == [s for s in seqs if s - 1 in set(outage)]
            mode = await watcher.ask("ch/3/mode", {"id": "after", "mode": "manual"})
            assert mode["ok"] and bridge.engine.state.channel(3).mode == "manual"
    journal = read_records(bridge.journal_path)
    # no journal entry lost: every record the engine made is on disk, field for field (the arm snapshot goes
    # only to the journal, not to listeners)
    assert [{k: v for k, v in r.items() if k != "t"} for r in journal if r["kind"] != "arm"] == bridge.records
    assert sum(r["kind"] == "move" for r in journal) == bridge.engine.status.moves
    times = [r["t"] for r in journal]
    assert times == sorted(times)


async def test_no_broker_at_all_costs_telemetry_not_mixing(x32_sim, stems, tmp_path):
    nobody = MqttSettings(enabled=True, host="127.0.0.1", port=free_port())
    async with running_bridge(x32_sim, stems, tmp_path, nobody, arm_after_s=0.2, event_queue=16) as bridge:
        await wait_for(lambda: x32_sim.fader_db(1) < -1.5, timeout_s=5)
        assert not bridge.telemetry.connected and "refused" in bridge.telemetry.stats.last_error.lower()
        await wait_for(lambda: bridge.telemetry.stats.events_dropped > 0, timeout_s=3)  # bounded: oldest events dropped
    assert bridge.telemetry.events_queued == 16
    assert bridge.engine.status.moves > 0


# ----- credentials and TLS -----------------------------------------------------------------------


async def test_password_and_tls(x32_sim, stems, tmp_path, mosquitto_factory, caplog):
    tls = TlsFiles.make(tmp_path / "tls")
    broker = mosquitto_factory(passwords={"foh": "correct-horse-77"}, tls=tls)
    caplog.set_level(logging.DEBUG)
    secure = on(broker, username="foh", password="wrong-battery-11", tls=True, ca_file=str(tls.ca))
    async with running_bridge(x32_sim, stems, tmp_path, secure) as bridge:
        await wait_for(lambda: bridge.telemetry.stats.last_error != "", timeout_s=3)
        await asyncio.sleep(0.5)
        assert not bridge.telemetry.connected and bridge.telemetry.stats.connects == 0
        assert re.search(r"not authori[sz]ed|bad user ?name or password", bridge.telemetry.stats.last_error, re.I)
    assert "wrong-battery-11" not in caplog.text and "wrong-battery-11" not in repr(secure)

    client_tls = aiomqtt.TLSParameters(ca_certs=str(tls.ca))
    async with running_bridge(x32_sim, stems, tmp_path / "ok", replace(secure, password="correct-horse-77")) as bridge:
        async with watching(broker.port, username="foh", password="correct-horse-77", tls_params=client_tls) as watcher:
            assert (await watcher.expect("state"))["online"] is True
            assert (await watcher.ask("arm", {"id": "tls"}))["ok"] is True
    assert "correct-horse-77" not in caplog.text
    wrong_ca = replace(secure, password="correct-horse-77", ca_file="")  # the system CAs do not know this broker
    async with running_bridge(x32_sim, stems, tmp_path / "ca", wrong_ca) as bridge:
        await wait_for(lambda: "certificate verify failed" in bridge.telemetry.stats.last_error, timeout_s=3)
        assert not bridge.telemetry.connected


# ----- the command line --------------------------------------------------------------------------


async def ailive_run(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "ailive.bridge.cli", "run", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, "COLUMNS": "200"})


async def test_cli_mqtt_commands_and_last_will(x32_sim, stems, tmp_path, mosquitto):
    async with watching(mosquitto.port) as watcher:
        bridge = await ailive_run(str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{x32_sim.port}",
                                  "--mqtt", f"127.0.0.1:{mosquitto.port}", "--headless", "--journal", str(tmp_path / "j"))
        try:
            await watcher.expect("state", lambda p: p["online"] is True, timeout_s=15)
            assert (await watcher.ask("arm", {"id": "cli"}))["armed"] is True
            await wait_for(lambda: x32_sim.fader_db(1) < -1.5, timeout_s=5)
            await watcher.expect("events", lambda p: p["kind"] == "move" and p["ch"] == 1)
            bridge.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the last will
            await bridge.wait()
            will = await watcher.expect("state", lambda p: p["online"] is False, timeout_s=3)
            assert will == {"v": 1, "online": False, "show": "x32-demo", "reason": "connection lost"}
        finally:
            if bridge.returncode is None:
                bridge.kill()
                await bridge.wait()
    async with watching(mosquitto.port) as late:  # and it is retained for whoever looks later
        assert (await late.expect("state"))["online"] is False


async def test_cli_runs_without_a_broker_then_says_goodbye_to_one(x32_sim, stems, tmp_path, mosquitto):
    common = [str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{x32_sim.port}", "--headless", "--arm",
              "--arm-after", "0.2", "--duration", "1.5"]
    nobody = await ailive_run(*common, "--mqtt", f"127.0.0.1:{free_port()}", "--journal", str(tmp_path / "a"))
    out, err = await asyncio.wait_for(nobody.communicate(), 30)
    assert nobody.returncode == 0, err.decode()
    assert "ARMED" in out.decode() and x32_sim.fader_db(1) < -0.5
    assert "mqtt: cannot reach the broker" in err.decode()

    async with watching(mosquitto.port) as watcher:
        clean = await ailive_run(*common, "--mqtt", f"127.0.0.1:{mosquitto.port}", "--journal", str(tmp_path / "b"))
        _, err = await asyncio.wait_for(clean.communicate(), 30)
        assert clean.returncode == 0, err.decode()
        goodbye = await watcher.expect("state", lambda p: p["online"] is False)
        assert goodbye["reason"] == "bridge stopped"
        kinds = [p["kind"] for p in watcher.payloads("events")]
        assert kinds[0] == "start" and kinds[-1] == "stop" and "move" in kinds  # flushed before the goodbye


async def test_cli_refuses_a_bad_mqtt_address():
    bad = await ailive_run(str(EXAMPLE), "--mqtt", "127.0.0.1:99999")
    _, err = await asyncio.wait_for(bad.communicate(), 30)
    assert bad.returncode == 2
    assert err.decode().strip() == "ailive: error: --mqtt: broker address '127.0.0.1:99999': port must be 1..65535"


# ----- the [mqtt] block and addresses ------------------------------------------------------------


MINIMAL = SHOW_MINIMAL + "\n[mqtt]\n"


def show_with(tmp_path: Path, mqtt: str) -> Show:
    path = tmp_path / "gig.toml"
    path.write_text(MINIMAL + mqtt)
    return load_show(path)


def test_mqtt_block_defaults_and_tls_files(tmp_path):
    plain = show_with(tmp_path, 'host = "broker.local"\n').mqtt
    assert plain.enabled and plain.host == "broker.local" and plain.port == 1883 and not plain.tls
    assert plain.topic_prefix == "ailive" and plain.token == ""
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("x")
    secure = show_with(tmp_path, 'ca_file = "certs/ca.pem"\nusername = "foh"\npassword = "pw-xyzzy-1"\ntoken = "tok-plugh-2"\n').mqtt
    assert secure.tls and secure.port == 8883 and secure.ca_file == str(tmp_path / "certs" / "ca.pem")
    assert "pw-xyzzy-1" not in repr(secure) and "tok-plugh-2" not in repr(secure)
    assert show_with(tmp_path, 'topic_prefix = "venue/foh"\nenabled = false\n').mqtt.topic_prefix == "venue/foh"


@pytest.mark.parametrize("block,key,expected", [
    ('ca_file = "missing.pem"\n', "mqtt.ca_file", "existing PEM file"),
    ('key_file = "gig.toml"\n', "mqtt.cert_file", "client certificate that goes with key_file"),
    ('ca_file = "gig.toml"\ntls = false\n', "mqtt.tls", "true when ca_file or cert_file is set"),
    ('password = "pw"\n', "mqtt.username", "a user name to go with password"),
    ('port = 0\n', "mqtt.port", "an integer in 1..65535"),
    ('topic_prefix = "ailive/#"\n', "mqtt.topic_prefix", "no +, #"),
    ('topic_prefix = "a//b"\n', "mqtt.topic_prefix", "empty levels"),
    ('host = ""\n', "mqtt.host", "broker's IP address"),
    ('tokn = "x"\n', "mqtt.tokn", "no such key"),
])
def test_mqtt_block_mistakes_name_the_key(tmp_path, block, key, expected):
    with pytest.raises(ShowFileError) as caught:
        show_with(tmp_path, block)
    assert caught.value.key == key and expected in str(caught.value)


def test_a_wrong_secret_is_not_echoed(tmp_path):
    with pytest.raises(ShowFileError) as caught:
        show_with(tmp_path, 'username = "foh"\npassword = 123456\n')
    assert caught.value.key == "mqtt.password" and "123456" not in str(caught.value) and "not shown" in str(caught.value)


def test_broker_addresses():
    assert parse_broker("mqtt.local", 1883) == BrokerAddress("mqtt.local", 1883)
    assert parse_broker("10.0.0.2:1884", 1883) == BrokerAddress("10.0.0.2", 1884)
    assert str(parse_broker("[::1]:8883", 1883)) == "[::1]:8883"
    for bad in ("", ":1883", "h:0", "h:x"):
        with pytest.raises(ValueError):
            parse_broker(bad, 1883)
    moved = with_broker(MqttSettings(enabled=False, username="foh", token="t"), BrokerAddress("h", 2))
    assert moved.enabled and moved.host == "h" and moved.port == 2 and moved.username == "foh" and moved.token == "t"


async def test_a_show_name_that_cannot_be_a_topic_is_refused(x32_sim, stems, tmp_path):
    show = load_show(EXAMPLE).with_desk(DeskAddress("127.0.0.1", x32_sim.port))
    show = replace(show, name="foh#2")
    source = FileSource.from_directory(stems)
    async with OscDeskDriver(show.profile, "127.0.0.1", x32_sim.port, show.desk_channels) as driver:
        with Journal(tmp_path / "j", "x") as journal:
            engine = Engine(show, source, driver, load_model("unity"), journal)
            with pytest.raises(TelemetryError, match=r"show name 'foh#2' cannot be an MQTT topic level"):
                Telemetry(engine, MqttSettings(enabled=True))
