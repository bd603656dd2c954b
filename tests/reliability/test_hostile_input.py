"""Hostile input: fuzzed OSC at the driver and the simulator, fuzzed show files and MQTT commands, a spoofed desk.

Nothing crashes and nothing moves: garbage is counted and reported, a packet
from anywhere but the configured desk is ignored and journaled, and a
command without the show's token is refused before the engine sees it.
"""
from __future__ import annotations

import asyncio
import json
import math
import struct
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, JournalError, read_records
from ailive.bridge.remote.commands import CommandGate
from ailive.bridge.show import load_show
from ailive.consoles import osc
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.errors import AiliveError, OscDecodeError
from ailive.consoles.profile import get_profile
from ailive.consoles.sim import DeskSimulator
from ailive.models.registry import load_model
from tests.conftest import wait_for

from .audio import SyntheticSource
from .rig import EXAMPLE, example_show, recording_desk, running_bridge

X32 = get_profile("x32")
DESK: tuple[str, int] = ("127.0.0.1", 10023)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Wire:
    """A transport that keeps what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, peer: Any = None) -> None:
        self.sent.append(data)

    send = sendto  # the driver's desk socket (consoles/link.py) sends with send()

    def close(self) -> None:
        return None

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000)


# ----- what a hostile datagram looks like ------------------------------------------------------------


def _pad(raw: bytes) -> bytes:
    return raw + b"\x00" * (4 - len(raw) % 4)


ADDRESSES = st.sampled_from([
    "/ch/01/mix/fader", "/ch/02/mix/on", "/ch/03/config/name", "/ch/09/mix/fader", "/ch/33/mix/fader",
    "/ch/1/mix/fader", "/xinfo", "/status", "/xremote", "/main/st/mix/fader", "/config/chlink/1-2", "/",
]) | st.text(min_size=0, max_size=40).map(lambda s: "/" + s)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Well-padded messages with any address, any type tags (also ones nobody speaks) and any arguments."""
    address = draw(ADDRESSES).encode("utf-8", "replace")
    tags = draw(st.text(alphabet="ifsbTFNhdc[]", max_size=4))
    body = b""
    for tag in tags:
        if tag == "i":
            body += struct.pack(">i", draw(st.integers(-2**31, 2**31 - 1)))
        elif tag == "f":
            body += struct.pack(">f", draw(st.floats(width=32, allow_nan=True, allow_infinity=True)))
        elif tag == "s":
            body += _pad(draw(st.text(max_size=30)).encode("utf-8", "replace").replace(b"\x00", b""))
        elif tag == "b":
            blob = draw(st.binary(max_size=20))
            body += struct.pack(">i", draw(st.sampled_from([len(blob), -1, 2**31 - 1]))) + blob
        else:
            body += draw(st.binary(max_size=8))
    return _pad(address.replace(b"\x00", b"")) + _pad(("," + tags).encode()) + body


def huge() -> st.SearchStrategy[bytes]:
    return st.integers(1000, 60000).map(lambda n: osc.encode("/ch/01/config/name", "s", ("x" * n,)))


def mutated(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    raw = bytearray(data[: max(0, len(data) - cut)])
    for at, value in flips:
        if raw:
            raw[at % len(raw)] = value
    return bytes(raw)


DATAGRAMS = st.one_of(
    st.binary(max_size=200),
    messages(),
    st.builds(mutated, messages(), st.integers(0, 12), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                                                  max_size=3)),
    huge(),
)


def _decodes(data: bytes) -> osc.OscMessage | None:
    try:
        return osc.decode(data)
    except OscDecodeError:
        return None


# ----- the driver ------------------------------------------------------------------------------------


def connected_driver() -> tuple[OscDeskDriver, Wire, asyncio.AbstractEventLoop]:
    """A driver that believes it is connected to DESK, sending into a :class:`Wire`; its view is known."""
    driver = OscDeskDriver(X32, *DESK, list(range(1, 9)))
    loop = asyncio.new_event_loop()
    wire = Wire()
    driver._loop, driver._peer, driver._link, driver.connected = loop, DESK, wire, True  # type: ignore[assignment]
    for ch, view in driver.view.items():
        view.fader = X32.law.quantize(0.5)
        view.fader_db = X32.law.to_db(view.fader)
        view.muted, view.name = False, f"ch{ch}"
    return driver, wire, loop


SEEN = {"driver": 0, "simulator": 0, "show files": 0, "commands": 0}


@FUZZ
@given(data=DATAGRAMS)
def test_driver_survives_any_datagram_from_the_desk_and_writes_nothing(data):
    SEEN["driver"] += 1
    driver, wire, loop = connected_driver()
    try:
        events: list[Any] = []
        driver.add_listener(events.append)
        before = {ch: (v.fader, v.muted, v.name) for ch, v in driver.view.items()}
        driver._on_datagram(data, DESK)
        message = _decodes(data)
        after = {ch: (v.fader, v.muted, v.name) for ch, v in driver.view.items()}
        assert wire.sent == []  # garbage is never answered with a write
        if message is None:
            assert after == before and driver.stats.rejected == 1
        else:
            changed = {ch for ch in after if after[ch] != before[ch]}
            mapped = {driver.profile.fader.address_of(ch) for ch in changed} | \
                {driver.profile.mute.address_of(ch) for ch in changed} | \
                {driver.profile.name_param.address_of(ch) for ch in changed}
            assert not changed or message.address in mapped  # only the one parameter the message names
            for ch in changed:
                assert 0.0 <= driver.view[ch].fader <= 1.0 and not math.isnan(driver.view[ch].fader)
        assert driver.connected
    finally:
        loop.close()


@FUZZ
@given(data=DATAGRAMS)
def test_a_datagram_from_anywhere_but_the_desk_changes_nothing(data):
    driver, wire, loop = connected_driver()
    try:
        events: list[Any] = []
        driver.add_listener(events.append)
        before = {ch: (v.fader, v.muted, v.name) for ch, v in driver.view.items()}
        driver._on_datagram(data, ("127.0.0.1", 10024))  # the desk's address, another port
        driver._on_datagram(data, ("10.0.0.66", 10023))  # the desk's port, another host
        assert {ch: (v.fader, v.muted, v.name) for ch, v in driver.view.items()} == before
        assert driver.stats.rejected == 2 and wire.sent == []
        assert [type(e).__name__ for e in events] == ["PacketRejected", "PacketRejected"]
    finally:
        loop.close()


# ----- the simulator ---------------------------------------------------------------------------------


@FUZZ
@given(data=DATAGRAMS)
def test_simulator_survives_any_datagram_and_only_a_well_formed_write_changes_it(data):
    SEEN["simulator"] += 1
    sim = DeskSimulator(X32, port=0, channels=8)
    loop = asyncio.new_event_loop()
    sim._loop, sim._transport = loop, Wire()  # type: ignore[assignment]
    try:
        before = {a: p.value for a, p in sim.params.items()}
        sim._on_datagram(data, ("127.0.0.1", 40000))
        changed = {a for a, p in sim.params.items() if p.value != before[a]}
        message = _decodes(data)
        if message is None or len(message.args) != 1 or message.address not in sim.params \
                or message.tags != sim.params[message.address].type:
            assert changed == set()
        else:
            assert changed <= {message.address}  # (a linked partner too, and links are off here)
    finally:
        loop.close()


# ----- show files ------------------------------------------------------------------------------------

EXAMPLE_TOML = tomllib.loads(EXAMPLE.read_text())
TOML_VALUES = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=30), st.lists(st.integers(), max_size=3), st.just({"x": 1}),
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


@st.composite
def show_files(draw: st.DrawFn) -> str:
    """The example show with keys changed, dropped or made up, or its text cut and flipped."""
    lines = EXAMPLE.read_text().splitlines()
    kind = draw(st.sampled_from(["value", "drop", "cut", "extra", "name"]))
    if kind == "name":  # what becomes a file name and an MQTT topic level
        lines[lines.index('name = "x32-demo"                 # used in journal and MQTT topics')] = \
            f"name = {_toml(draw(st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=12)))}"
    keyed = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
    if kind == "value":
        for i in draw(st.lists(st.sampled_from(keyed), min_size=1, max_size=3)):
            key = lines[i].split("=")[0].strip()
            lines[i] = f"{key} = {_toml(draw(TOML_VALUES))}"
    elif kind == "drop":
        for i in sorted(draw(st.lists(st.sampled_from(keyed), min_size=1, max_size=4, unique=True)), reverse=True):
            del lines[i]
    elif kind == "extra":
        lines.insert(draw(st.integers(0, len(lines))), f"{draw(st.from_regex(r'[a-z_]{1,12}', fullmatch=True))} = "
                                                       f"{_toml(draw(TOML_VALUES))}")
    text = "\n".join(lines)
    if kind == "cut":
        text = text[: draw(st.integers(0, len(text)))] + draw(st.text(max_size=20))
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=show_files())
def test_a_mangled_show_file_loads_or_is_one_clear_error_and_a_loaded_one_can_journal(tmp_path, text):
    SEEN["show files"] += 1
    path = tmp_path / "gig.toml"
    path.write_text(text, encoding="utf-8")
    try:
        show = load_show(path)
    except AiliveError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    p = show.policy
    numbers = [p.window_db, p.ceiling_db, p.total_gain_cap_db, p.slew_up_db_per_s, p.slew_down_db_per_s,
               p.override_hold_s, p.silence_db, p.stale_audio_s, p.max_writes_per_s, p.deadband_db, p.min_step_db]
    assert all(math.isfinite(n) for n in numbers)
    assert p.slew_up_db_per_s > 0 and p.slew_down_db_per_s > 0 and p.max_writes_per_s > 0
    try:  # whatever the show is called, its journal opens, or the bridge says in one line why not
        with Journal(tmp_path / "journal", show.name) as journal:
            journal.write("start", show=show.name)
    except JournalError as exc:
        assert "\n" not in str(exc)


# ----- MQTT (and web) commands -----------------------------------------------------------------------


def idle_engine(tmp_path: Path) -> Engine:
    """An engine that is never run: the gate hands it commands, and the test reads what it was handed."""
    show = example_show(10023)
    journal = Journal(tmp_path / "j", show.name)
    return Engine(show, SyntheticSource([-20.0] * 8), OscDeskDriver.for_show(show), load_model("unity"), journal)


COMMAND_NAMES = st.sampled_from(["arm", "disarm", "kill", "ch/1/mode", "ch/8/mode", "ch/99/mode", "ch/-1/mode",
                                 "ch/01/mode", "ch//mode", "", "result", "arm/"]) | st.text(max_size=20)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                              max_size=3), max_leaves=8)
PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["id", "token", "v", "mode", "force", "command"]) | st.text(max_size=6),
                    JSON_VALUES, max_size=5).map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.integers(4000, 9000).map(lambda n: json.dumps({"id": "x" * n}).encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=COMMAND_NAMES, payload=PAYLOADS, retained=st.booleans())
def test_a_command_without_the_token_never_reaches_the_engine(tmp_path, command, payload, retained):
    SEEN["commands"] += 1
    engine = idle_engine(tmp_path)
    gate = CommandGate(engine, origin="mqtt", token="s3cret-foh")
    answers: list[dict[str, Any]] = []
    gate.take(command, payload, answers.append, retained=retained)
    assert engine._commands == []  # nothing for the control loop
    assert len(answers) == 1 and answers[0]["ok"] is False and "s3cret" not in json.dumps(answers[0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=COMMAND_NAMES, payload=PAYLOADS)
def test_without_a_token_only_a_well_formed_command_reaches_the_engine(tmp_path, command, payload):
    SEEN["commands"] += 1
    engine = idle_engine(tmp_path)
    gate = CommandGate(engine, origin="mqtt")
    answers: list[dict[str, Any]] = []

    async def take() -> None:  # the engine's commands are answered by futures on the loop
        gate.take(command, payload, answers.append)

    asyncio.run(take())
    if engine._commands:
        queued, _ = engine._commands[0]
        assert queued.origin == "mqtt" and answers == []
        assert (queued.name, command) in {("arm", "arm"), ("disarm", "disarm"), ("kill", "kill"), ("mode", "ch/1/mode")}
        if queued.name == "mode":
            assert queued.channel == 1 and queued.mode in ("auto", "manual", "excluded")
    else:
        assert len(answers) == 1 and answers[0]["ok"] is False and answers[0]["reason"]


# ----- on the wire: a stranger pretending to be the desk, and a flood ---------------------------------


async def test_a_stranger_pretending_to_be_the_desk_is_ignored_and_journaled_and_a_flood_stays_bounded(tmp_path):
    from tests.oscpeer import OscPeer

    async with recording_desk() as desk:
        async with running_bridge(desk, tmp_path) as bridge:
            await wait_for(lambda: bridge.engine.state.armed, timeout_s=3)
            view = {ch: v.fader for ch, v in bridge.driver.view.items()}
            async with OscPeer(bridge.peer) as stranger:  # aims at the bridge's own socket, as the desk would
                stranger.send("/ch/01/mix/fader", ("f", 1.0))  # "the engineer pushed the kick to +10 dB"
                stranger.send("/ch/02/mix/on", ("i", 0))
                await wait_for(lambda: bridge.driver.stats.rejected >= 2, timeout_s=2)
                for index in range(3000):  # a flood, garbage and fakes mixed
                    stranger.send_raw(osc.encode("/ch/03/mix/fader", "f", (0.0,)) if index % 2 else b"\x00" * 16)
                    if index % 20 == 0:
                        await asyncio.sleep(0.001)  # the kernel drops what the socket buffer cannot hold
                await wait_for(lambda: bridge.driver.stats.rejected >= 1000, timeout_s=5)
                await asyncio.sleep(1.2)
            assert bridge.engine.status.engineer_moves == 0  # no fake was taken for a hand
            assert bridge.driver.view[2].muted is False and bridge.engine.state.armed
            assert desk.fader(1) < X32.law.quantize(1.0)
    rejected = [r for r in read_records(bridge.journal_path) if r["kind"] == "desk" and r["what"] == "rejected"]
    counted = sum(r.get("count", 1) for r in rejected)
    print(f"\nspoofed desk: {bridge.driver.stats.rejected} datagrams refused, {len(rejected)} journal records "
          f"({counted} counted in them)")
    # The socket's filter drops a stranger in the kernel, which counts but cannot name it.
    assert rejected and all(r["peer"] == "not the desk" for r in rejected)
    assert "not the desk" in rejected[0]["reason"]
    assert bridge.driver.stats.dropped_in_kernel == bridge.driver.stats.rejected
    assert len(rejected) <= 10  # a flood cannot fill the disk: at most one record a second, with a count
    assert counted == bridge.driver.stats.rejected
    del view


async def test_fuzzed_commands_through_a_real_broker_change_nothing_without_the_token(tmp_path, mosquitto):
    import random

    from ailive.bridge.remote.telemetry import Telemetry
    from ailive.bridge.remote.mqtt_settings import MqttSettings
    from tests.test_telemetry import watching

    rng = random.Random(12)

    def payload() -> bytes:
        kind = rng.randrange(4)
        if kind == 0:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        if kind == 1:
            return json.dumps({rng.choice(["id", "token", "v", "mode", "x"]): rng.choice([1, "a", None, [1], {"k": 2}, True])
                               for _ in range(rng.randrange(4))}).encode()
        if kind == 2:
            return json.dumps({"id": rng.randrange(99), "token": rng.choice(["", "s3cret", "S3CRET-FOH", "s3cret-fo"])}).encode()
        return json.dumps({"id": "m", "mode": rng.choice(["auto", "manual", "loud"]), "token": "nope"}).encode()

    topics = ["arm", "disarm", "kill", "ch/1/mode", "ch/9/mode", "ch/1/mode/x", "nope", "ch/8/mode"]
    settings_ = MqttSettings(enabled=True, host="127.0.0.1", port=mosquitto.port, token="s3cret-foh")
    async with recording_desk() as desk:
        async with running_bridge(desk, tmp_path, arm_after_s=None) as bridge:
            telemetry = Telemetry(bridge.engine, settings_, backoff_s=(0.1, 0.5))
            telemetry.start()
            try:
                async with watching(mosquitto.port) as watcher:
                    await wait_for(lambda: telemetry.connected, timeout_s=5)
                    sent = 120
                    for _ in range(sent):
                        await watcher.send(rng.choice(topics), payload())
                    await wait_for(lambda: len(watcher.payloads("cmd/result")) >= sent, timeout_s=10)
                    results = watcher.payloads("cmd/result")
                    assert all(r["ok"] is False for r in results)
                    assert not bridge.engine.state.armed and desk.stats.writes == {}
                    assert all(bridge.engine.state.channel(ch).mode == c.mode
                               for ch, c in zip(bridge.show.desk_channels, bridge.show.channels))
                    armed = await watcher.ask("arm", {"id": "real", "token": "s3cret-foh"})
                    assert armed["ok"] is True  # the bridge is still listening
            finally:
                await telemetry.close()
    print(f"\nMQTT: {sent} fuzzed commands through mosquitto, {len(results)} refused, 0 acted on")


def test_the_fuzzers_ran():
    """Reports how many inputs each fuzzer tried in this run (pytest -s)."""
    print(f"\ninputs fuzzed: {SEEN}")
