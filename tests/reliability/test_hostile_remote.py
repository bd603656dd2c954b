"""Hostile remote control: the command gate, MQTT through a real mosquitto, the web surface on a real socket.

A stranger on the show network, a broken tablet or a crashed laptop sends
what it likes: payloads nested thousands deep, retained commands, floods of
refused commands with forged log lines in their names, idle sockets that
take every slot, a DNS name rebound to the bridge, a command sent again. The
bridge answers each with a refusal and a code, keeps taking the commands of
whoever holds the token, and keeps its log short and its own.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import signal
import socket
import time
from typing import Any

import aiohttp
import pytest

from ailive.bridge.journal import read_records
from ailive.bridge.remote.commands import MAX_NESTING, REMEMBERED_IDS, CommandGate, RecentIds, Refused, decode, nesting
from ailive.bridge.remote.mqtt_settings import MqttSettings
from ailive.bridge.remote.refusals import RefusalLog, printable
from ailive.bridge.remote.web import MAX_CLIENTS, MAX_GUESTS, WebAddress
from tests.conftest import wait_for
from tests.test_telemetry import running_bridge as mqtt_bridge, watching
from tests.test_web import EXAMPLE, ailive, page, read_url, running_bridge as web_bridge, stems  # noqa: F401
from tests.test_web_browser import browser, open_page  # noqa: F401  (browser is a fixture)

from .test_hostile_input import idle_engine

TOKEN = "s3cret-foh"
FORGED = "arm\nailive: ERROR: desk lost"
#: A few kilobytes of brackets: Python's JSON parser recurses once per level, and gives up near 1000.
DEEP = [b"[" * 3000, b"[" * 2000 + b"]" * 2000,
        ('{"id": "deep", "token": "%s", "v": ' % TOKEN).encode() + b"[" * 3000,
        b'{"id": "deep2", "x": [{"a": ' + b"[" * 1500 + b"]" * 1500 + b"}]}"]


def token_protocols(token: str) -> tuple[str, ...]:
    """The WebSocket subprotocols the page offers when it holds ``token``."""
    return ("ailive", f"ailive-token.{token.encode().hex()}")


def mqtt_settings(port: int, token: str = TOKEN) -> MqttSettings:
    return MqttSettings(enabled=True, host="127.0.0.1", port=port, token=token)


async def raw_handshake(port: int, *, host: str = "127.0.0.1", headers: tuple[str, ...] = ()) -> tuple[int, Any]:
    """A WebSocket handshake by hand, as a script would make it; the status and the open connection (never read again)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    request = [f"GET /ws HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
               f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", *headers]
    writer.write(("\r\n".join(request) + "\r\n\r\n").encode())
    await writer.drain()
    status = int((await asyncio.wait_for(reader.readline(), 5)).split()[1])
    while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
        pass
    return status, writer


# ----- 2. nesting and retained commands ----------------------------------------------------------------


def test_nesting_is_counted_without_parsing_and_a_deep_payload_is_refused_unparsed():
    assert [nesting(b) for b in (b"{}", b'{"a": [1, {"b": 2}]}', b'{"a": "[[[[[[[[[["}', b'"\\"[[[', b"[" * 3000)] == \
        [1, 3, 1, 0, 3000]
    for payload in DEEP:
        with pytest.raises(Refused) as refused:
            decode(payload)
        assert refused.value.code == "too_deep" and "over the limit of 8" in str(refused.value)
    assert decode(b'{"id": "ok", "v": 1}') == {"id": "ok", "v": 1}
    assert MAX_NESTING == 8


def test_no_payload_raises_out_of_the_gate(tmp_path):
    engine = idle_engine(tmp_path)
    gate = CommandGate(engine, origin="mqtt", token=TOKEN)
    answers: list[dict[str, Any]] = []
    for payload in DEEP:
        for retained in (False, True):
            gate.take("kill", payload, answers.append, retained=retained)
    assert engine._commands == [] and len(answers) == 2 * len(DEEP)
    assert [a["code"] for a in answers] == ["too_deep", "retained"] * len(DEEP)
    assert answers[5]["id"] is None  # a retained payload is read no further than its id, and this one has none


async def test_a_deep_command_on_the_web_socket_is_refused_and_the_socket_stays(x32_sim, stems, tmp_path):
    async with web_bridge(x32_sim, stems, tmp_path, token=TOKEN) as bridge, page(bridge) as client:
        for payload in DEEP:
            refused = await client.ask(payload)
            assert refused["ok"] is False and refused["code"] == "too_deep", refused
            assert re.match(r"nested \d+ levels deep, over the limit of 8", refused["reason"])
        armed = await client.ask({"command": "arm", "id": "after-deep", "token": TOKEN})
        assert armed["ok"] is True and armed["armed"] is True  # the same socket, still taking commands
        assert bridge.surface.stats.commands_refused == len(DEEP)


async def test_retained_and_deep_commands_through_mosquitto_never_act_nor_stop_the_gate(
        x32_sim, stems, tmp_path, mosquitto, caplog):
    caplog.set_level(logging.INFO)
    async with watching(mosquitto.port) as early:  # left on the broker before the bridge starts
        await early.send("kill", DEEP[2], retain=True)
        await early.send("arm", {"id": "stale-arm", "token": TOKEN}, retain=True)
    async with watching(mosquitto.port) as watcher:
        async with mqtt_bridge(x32_sim, stems, tmp_path, mqtt_settings(mosquitto.port)) as bridge:
            stale = await watcher.expect("cmd/result", lambda p: p["id"] == "stale-arm")
            assert stale["ok"] is False and stale["code"] == "retained"
            deep_retained = await watcher.expect("cmd/result", lambda p: p["command"] == "kill")
            assert deep_retained["code"] == "retained" and deep_retained["id"] is None
            for payload in DEEP:  # the same garbage, live
                after = len(watcher.seen)
                await watcher.send("kill", payload)
                live = await watcher.expect("cmd/result", lambda p: True, after=after)
                assert live["ok"] is False and live["code"] == "too_deep", live
            armed = await watcher.ask("arm", {"id": "real-arm", "token": TOKEN})
            assert armed["ok"] is True and armed["armed"] is True and bridge.engine.state.armed
            assert bridge.telemetry.stats.connects == 1 and bridge.telemetry.stats.failed_connects == 0
            assert bridge.telemetry.connected
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]  # no traceback, no error


# ----- 5. connection slots -----------------------------------------------------------------------------


async def test_idle_sockets_without_the_token_never_lock_the_token_holder_out(x32_sim, stems, tmp_path):
    async with web_bridge(x32_sim, stems, tmp_path, token=TOKEN) as bridge:
        port = bridge.surface.address.port
        squatters: list[Any] = []
        statuses: list[int] = []
        try:
            for _ in range(MAX_CLIENTS + MAX_GUESTS + 8):  # no Origin, no token, never read again
                status, writer = await raw_handshake(port)
                statuses.append(status)
                squatters.append(writer)
            async with page(bridge, protocols=token_protocols(TOKEN)) as tablet:
                assert tablet.hello["token_required"] is True and tablet.hello["authenticated"] is True
                armed = await tablet.ask({"command": "arm", "id": "tablet-arm", "token": TOKEN})
                assert armed["ok"] is True
                killed = await tablet.ask({"command": "kill", "id": "tablet-kill", "token": TOKEN})
                assert killed["ok"] is True and killed["armed"] is False
            assert statuses.count(101) == MAX_GUESTS and set(statuses) == {101, 403}
            assert bridge.surface.stats.guests == MAX_GUESTS
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # a wrong token is only a watcher
                async with page(bridge, protocols=token_protocols("guess")):
                    pass
            assert refused.value.status == 403
        finally:
            for writer in squatters:
                writer.close()
    print(f"\n{len(statuses)} idle sockets: {statuses.count(101)} let in as watchers, {statuses.count(403)} turned away; "
          "the token holder armed and killed")


async def test_a_socket_without_the_token_that_stops_answering_is_closed(x32_sim, stems, tmp_path):
    options = {"guest_heartbeat_s": 2.0}
    async with web_bridge(x32_sim, stems, tmp_path, token=TOKEN, surface_options=options) as bridge, \
            page(bridge) as watcher:
        assert watcher.hello["authenticated"] is False
        status, idle = await raw_handshake(bridge.surface.address.port)
        assert status == 101 and bridge.surface.stats.guests == 2
        try:
            while bridge.surface.stats.guests > 1:  # the watcher reads (and so answers pings); the idle one does not
                await watcher.next("state", timeout_s=10)
            assert not watcher.ws.closed and bridge.surface.stats.guests == 1
        finally:
            idle.close()


async def test_the_page_holding_the_token_gets_past_squatters_in_a_real_browser(x32_sim, stems, tmp_path, browser):
    from playwright.async_api import expect

    async with web_bridge(x32_sim, stems, tmp_path, token=TOKEN) as bridge:
        squatters = [(await raw_handshake(bridge.surface.address.port))[1] for _ in range(MAX_CLIENTS + MAX_GUESTS)]
        try:
            tab, errors = await open_page(browser, f"{bridge.url}#token={TOKEN}")
            await tab.locator("#arm").click()
            await wait_for(lambda: bridge.engine.state.armed, timeout_s=5)
            await tab.locator("#kill").click()
            await tab.locator("#kill-confirm").click()
            await expect(tab.locator("#armed")).to_have_text("disarmed")
            assert sum(1 for c in bridge.surface._clients if c.member) == 1
            assert [e for e in errors if "403" not in e] == []
        finally:
            for writer in squatters:
                writer.close()


# ----- 6. refusals are counted, not logged one by one --------------------------------------------------


def test_a_refusal_log_is_bounded_per_source_and_escapes_what_a_stranger_chose():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("ailive.test.refusals")
    logger.addHandler(Keep())
    logger.propagate = False
    now = [0.0]
    refusals = RefusalLog(logger, "commands", clock=lambda: now[0])
    for index in range(10_000):
        now[0] = index * 0.001  # ten seconds of a flood from one source
        refusals.refused("web 10.0.0.66", "unknown_command", f"refused {printable(FORGED)}")
    refusals.flush(final=True)
    assert 10 <= len(records) <= 12, records
    assert all("\n" not in line for line in records) and records[0] == "refused arm\\nailive: ERROR: desk lost"
    assert records[-1].startswith("web 10.0.0.66: ") and "more commands refused (unknown_command" in records[-1]
    logged = [line for line in records if line.startswith("refused ")]
    counted = sum(int(n) for line in records for n in re.findall(r"(\d+) more commands refused", line))
    assert counted + len(logged) == 10_000  # every refusal is in the log: once in words, or in a count


async def test_a_flood_of_refused_commands_is_a_few_lines_of_the_bridges_own(x32_sim, stems, tmp_path):
    bridge = await ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{x32_sim.port}",
                          "--headless", "--web", "127.0.0.1:0", "--journal", str(tmp_path / "j"))
    assert bridge.stderr is not None
    stderr = asyncio.create_task(bridge.stderr.read())  # read all along: a full pipe would stall the bridge
    started = time.monotonic()
    sent = 3000
    try:
        url = await read_url(bridge)
        async with aiohttp.ClientSession() as session, session.ws_connect(url + "ws") as ws:
            await ws.receive_json(timeout=5)
            for index in range(sent):
                await ws.send_json({"command": "explode" if index % 2 else FORGED, "id": index})
            await ws.send_json({"command": "disarm", "id": "last"})  # answered after every refusal before it
            codes = set()
            while (message := await ws.receive_json(timeout=10)).get("id") != "last":
                codes |= {message["code"]} if message["type"] == "result" else set()
            assert codes == {"unknown_command"} and message["ok"] is True  # (a browser that reads slowly misses some)
    finally:
        bridge.send_signal(signal.SIGINT)
        assert bridge.stdout is not None
        await asyncio.wait_for(asyncio.gather(bridge.stdout.read(), bridge.wait()), 30)
        err = await asyncio.wait_for(stderr, 30)
    elapsed_s = time.monotonic() - started
    lines = err.decode().splitlines()
    refusals = [line for line in lines if "refused" in line]
    print(f"\n{sent} refused commands in {elapsed_s:.1f} s: {len(refusals)} log lines, {len(err)} bytes of stderr")
    assert bridge.returncode == 0, err.decode()
    assert 1 <= len(refusals) <= elapsed_s + 3, refusals
    assert all(line.startswith(("ailive: ", "stopped: ")) for line in lines), lines
    assert not any(line.startswith("ailive: ERROR") for line in lines), lines
    assert "command 'arm\\nailive: ERROR: desk lost'" in refusals[0]  # the forged name, escaped on the bridge's line
    assert any("more commands refused (unknown_command" in line for line in refusals)


async def test_a_flood_of_bad_tokens_through_mosquitto_is_counted_not_logged_one_by_one(
        x32_sim, stems, tmp_path, mosquitto, caplog):
    caplog.set_level(logging.WARNING, logger="ailive.bridge.remote.commands")
    sent = 600
    started = time.monotonic()
    async with watching(mosquitto.port) as watcher:
        async with mqtt_bridge(x32_sim, stems, tmp_path, mqtt_settings(mosquitto.port)) as bridge:
            await wait_for(lambda: bridge.telemetry.connected, timeout_s=5)
            for index in range(sent):  # QoS 0 in bursts the bridge's incoming queue holds (QoS 1 waits for each ack)
                payload = json.dumps({"id": f"guess-{index}", "token": f"guess-{index}"})
                await watcher.client.publish(f"ailive/x32-demo/cmd/{'kill' if index % 2 else 'arm'}", payload, qos=0)
                if index % 50 == 49:
                    await wait_for(lambda: bridge.telemetry.stats.commands_refused > index, timeout_s=10)
            assert not bridge.engine.state.armed
    elapsed_s = time.monotonic() - started
    lines = [r.getMessage() for r in caplog.records if r.name == "ailive.bridge.remote.commands"]
    print(f"\n{sent} bad tokens through mosquitto in {elapsed_s:.1f} s: {len(lines)} log lines")
    assert 1 <= len(lines) <= elapsed_s + 3, lines
    assert all("guess-" not in line.partition("refused")[2] for line in lines)  # what was given is never echoed
    logged = [line for line in lines if "refused [unauthorised]" in line]
    assert sum(int(n) for line in lines for n in re.findall(r"(\d+) more commands refused", line)) + len(logged) == sent


# ----- 9. DNS rebinding on an any-address bind ---------------------------------------------------------


async def test_on_every_interface_only_this_bridges_names_are_served_and_a_token_is_required(x32_sim, stems, tmp_path):
    hosts = {"surface_options": {"hosts": ["FOH.venue.example."]}}
    async with web_bridge(x32_sim, stems, tmp_path, web_address=WebAddress("0.0.0.0", 0), **hosts) as bridge:
        surface = bridge.surface
        port = surface.address.port
        made = re.search(r"/#token=([\w-]{16,}) \(listening on every interface\)$", surface.url)
        assert surface.token_required and made, surface.url
        async with aiohttp.ClientSession() as session:
            for name in ("rebind.attacker.example", "attacker.example", "10.66.0.1", "localhost.attacker.example",
                         "foh.venue.example.attacker.example"):
                rebound = {"Host": f"{name}:{port}", "Origin": f"http://{name}:{port}"}
                async with session.get(bridge.url, headers=rebound) as response:
                    assert response.status == 403, name
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(bridge.ws_url, headers=rebound)
                assert refused.value.status == 403
            for name in ("127.0.0.1", "localhost", "foh.venue.example", socket.gethostname()):
                async with session.get(bridge.url, headers={"Host": f"{name}:{port}"}) as response:
                    assert response.status == 200, name
        async with page(bridge) as client:
            assert client.hello["token_required"] is True
            missing = await client.ask({"command": "arm", "id": "no-token"})
            assert missing["ok"] is False and missing["code"] == "unauthorised"
            armed = await client.ask({"command": "arm", "id": "made-token", "token": made.group(1)})
            assert armed["ok"] is True
        assert surface.stats.turned_away == 10


async def test_cli_names_allowed_hosts_and_prints_the_token_it_made(x32_sim, stems, tmp_path):
    bridge = await ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{x32_sim.port}",
                          "--headless", "--web", "0.0.0.0:0", "--web-host", "foh.venue.example",
                          "--journal", str(tmp_path / "j"))
    try:
        url = await read_url(bridge)
        found = re.fullmatch(r"http://<this machine's address>:(\d+)/#token=([\w-]+) \(listening on every interface\)", url)
        assert found, url
        port = int(found.group(1))
        async with aiohttp.ClientSession() as session:
            for name, status in (("foh.venue.example", 200), ("rebind.attacker.example", 403), ("127.0.0.1", 200)):
                async with session.get(f"http://127.0.0.1:{port}/", headers={"Host": f"{name}:{port}"}) as response:
                    assert response.status == status, name
    finally:
        bridge.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(bridge.communicate(), 30)
    assert bridge.returncode == 0, err.decode()
    assert found.group(2) not in err.decode()  # the token is in the printed URL, never in the log


# ----- 11. replays -------------------------------------------------------------------------------------


def test_ids_are_remembered_within_a_bound():
    recent = RecentIds(size=3)
    for rid in ("a", 1, "b", "c"):
        recent.add(rid)
    assert "a" not in recent and 1 in recent and "1" not in recent and "c" in recent
    assert REMEMBERED_IDS == 4096


async def test_a_replayed_command_on_the_web_surface_is_refused(x32_sim, stems, tmp_path):
    arm = json.dumps({"command": "arm", "id": "a1", "token": TOKEN})
    async with web_bridge(x32_sim, stems, tmp_path, token=TOKEN) as bridge, page(bridge) as client:
        assert (await client.ask(arm))["armed"] is True
        assert (await client.ask({"command": "kill", "id": "k1", "token": TOKEN}))["armed"] is False
        replayed = await client.ask(arm)  # the same bytes again, after the kill
        assert replayed["ok"] is False and replayed["code"] == "replayed" and replayed["id"] == "a1"
        assert replayed["reason"].startswith("replayed: id 'a1' was already acted on in this run")
        await bridge.steps(3)
        assert not bridge.engine.state.armed
        fresh = await client.ask({"command": "arm", "id": "a2", "token": TOKEN})
        assert fresh["ok"] is True  # a new id is a new command
    commands = [r["command"] for r in read_records(bridge.journal_path) if r["kind"] == "command"]
    assert commands == ["arm", "kill", "arm"]


async def test_a_replayed_command_through_mosquitto_is_refused(x32_sim, stems, tmp_path, mosquitto):
    async with watching(mosquitto.port) as watcher:
        async with mqtt_bridge(x32_sim, stems, tmp_path, mqtt_settings(mosquitto.port)) as bridge:
            await wait_for(lambda: bridge.telemetry.connected, timeout_s=5)
            assert (await watcher.ask("arm", {"id": "a1", "token": TOKEN}))["armed"] is True
            assert (await watcher.ask("kill", {"id": "k1", "token": TOKEN}))["armed"] is False
            replayed = await watcher.ask("arm", {"id": "a1", "token": TOKEN})
            assert replayed["ok"] is False and replayed["code"] == "replayed"
            assert not bridge.engine.state.armed
            unknown = await watcher.ask("arm", {"id": "a1"})  # a stranger cannot learn or burn ids: the token comes first
            assert unknown["code"] == "unauthorised"
