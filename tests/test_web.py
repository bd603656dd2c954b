"""The web surface's server on real parts: the X32 simulator, real-time audio files, a real WebSocket client."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from ailive.bridge.audio import FileSource
from ailive.bridge.engine import Engine
from ailive.bridge.journal import Journal, read_records
from ailive.bridge.remote.web import (PAGES, STATIC_DIR, WebAddress, WebError, WebSurface, listen, parse_web_address)
from ailive.bridge.show import Show, load_show
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.show import DeskAddress
from ailive.models.registry import load_model
from tests.conftest import wait_for
from tests.test_engine import write_stems

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "x32-demo.toml"
#: Kick and snare equally hot (the bridge pulls both down alike), the rest at a fair level.
LEVELS = [-8.0, -8.0, -20.0, -20.0, -20.0, -20.0, -20.0, -30.0]


@pytest.fixture(scope="module")
def stems(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stems(tmp_path_factory.mktemp("stems"), LEVELS, seconds=40.0)


@dataclass
class Bridge:
    engine: Engine
    surface: WebSurface
    show: Show
    journal_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.surface.address.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.surface.address.port}/ws"

    async def steps(self, count: int) -> None:
        """Let ``count`` control steps run (50 ms each on the audio clock)."""
        target = self.engine.status.steps + count
        await wait_for(lambda: self.engine.status.steps >= target, timeout_s=5 + count * 0.2)


@contextlib.asynccontextmanager
async def running_bridge(x32_sim, stems: Path, tmp_path: Path, *, token: str = "", arm_after_s: float | None = None,
                         web_address: WebAddress = WebAddress("127.0.0.1", 0), surface_options: dict[str, Any] | None = None,
                         **policy: Any) -> AsyncIterator[Bridge]:
    """The bridge in this process: files played in real time, the X32 simulator, the web surface on a free port."""
    show = load_show(EXAMPLE).with_desk(DeskAddress("127.0.0.1", x32_sim.port))
    show = replace(show, policy=replace(show.policy, **policy))
    sock = listen(web_address)
    source = FileSource.from_directory(stems, realtime=True)
    await source.start()
    driver = OscDeskDriver(show.profile, "127.0.0.1", x32_sim.port, show.desk_channels)
    await driver.connect()
    journal = Journal(tmp_path / "journal", show.name)
    journal.open()
    engine = Engine(show, source, driver, load_model("loudness"), journal)
    surface = WebSurface(engine, sock, token=token, **(surface_options or {}))
    await surface.start()
    task = asyncio.create_task(engine.run(arm_after_s=arm_after_s))
    try:
        yield Bridge(engine, surface, show, journal.path)
    finally:
        engine.stop()
        await task
        await surface.close()
        journal.close()
        await driver.close()
        await source.stop()


@dataclass
class Page:
    """What a browser's script sees on the WebSocket."""

    ws: aiohttp.ClientWebSocketResponse
    hello: dict[str, Any]

    async def next(self, kind: str, timeout_s: float = 3.0) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), timeout_s)
            if message["type"] == kind:
                return message

    async def ask(self, body: dict[str, Any] | str | bytes) -> dict[str, Any]:
        if isinstance(body, dict):
            await self.ws.send_json(body)
        elif isinstance(body, str):
            await self.ws.send_str(body)
        else:
            await self.ws.send_bytes(body)
        return await self.next("result")


@contextlib.asynccontextmanager
async def page(bridge: Bridge, *, protocols: tuple[str, ...] = (), **headers: str) -> AsyncIterator[Page]:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(bridge.ws_url, headers=headers, protocols=protocols) as ws:
            hello = await ws.receive_json(timeout=3)
            yield Page(ws, hello)


# ----- the live state ----------------------------------------------------------------------------


async def test_state_streams_at_ten_hertz_with_every_strip(x32_sim, stems, tmp_path):
    async with running_bridge(x32_sim, stems, tmp_path) as bridge, page(bridge) as client:
        assert client.hello == {"type": "hello", "v": 1, "show": "x32-demo", "token_required": False,
                                "authenticated": True, "period_s": 0.1}
        states = [await client.next("state") for _ in range(12)]
    first = states[-1]
    assert first["armed"] is False and first["hold"] == "" and first["show"] == "x32-demo"
    assert first["links"]["desk"] == {"ok": True, "detail": f"x32 127.0.0.1:{x32_sim.port}"}
    assert first["links"]["audio"]["ok"] is True and first["links"]["audio"]["kind"] == "files"
    assert first["links"]["model"] == {"ok": True, "detail": "loudness"}
    assert [c["ch"] for c in first["channels"]] == list(range(1, 9))
    kick = first["channels"][0]
    assert kick["name"] == "Kick" and kick["mode"] == "auto" and kick["locked"] is False and kick["muted"] is False
    assert kick["level_db"] == pytest.approx(-8.0, abs=1.5) and isinstance(kick["proposed_db"], float)
    assert kick["fader_db"] == pytest.approx(-0.01, abs=0.02) and kick["fader_pos"] == pytest.approx(0.75, abs=0.01)
    assert kick["target_db"] is None and kick["reason"] == "disarmed"  # nothing to aim at while disarmed
    talkback = first["channels"][7]
    assert talkback["mode"] == "excluded" and talkback["locked"] is True and talkback["proposed_db"] is None
    seqs = [s["seq"] for s in states]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    gaps = [b["t"] - a["t"] for a, b in zip(states, states[1:])]
    assert min(gaps) >= 0.09, gaps  # never faster than 10 Hz, whatever the load
    levels = {s["channels"][0]["level_db"] for s in states}
    assert len(levels) > 3  # the meter moves


async def test_commands_take_the_engine_path_and_are_answered(x32_sim, stems, tmp_path):
    async with running_bridge(x32_sim, stems, tmp_path) as bridge, page(bridge) as client:
        await client.next("state")
        armed = await client.ask({"command": "arm", "id": "a1"})
        assert armed == {"type": "result", "v": 1, "id": "a1", "command": "arm", "ok": True, "armed": True,
                         "detail": "8 faders in the snapshot", "t": armed["t"]}
        manual = await client.ask({"command": "ch/3/mode", "mode": "manual", "id": 7})
        assert manual["ok"] and manual["id"] == 7 and manual["ch"] == 3 and manual["mode"] == "manual"
        state = await client.next("state")
        assert state["armed"] is True and state["channels"][2]["mode"] == "manual"
        await wait_for(lambda: x32_sim.fader_db(1) < -1.0, timeout_s=5)
        riding = await client.next("state")
        assert isinstance(riding["channels"][0]["target_db"], float)  # armed and riding: the page shows the aim
        killed = await client.ask({"command": "kill", "id": "k1"})
        assert killed["ok"] and killed["armed"] is False and re.fullmatch(r"\d faders restored", killed["detail"])
        assert (await client.ask({"command": "disarm", "id": "d1"}))["detail"] == "no change"
    commands = [r for r in read_records(bridge.journal_path) if r["kind"] == "command"]
    assert [(c["command"], c["origin"]) for c in commands] == [("arm", "web"), ("mode", "web"), ("kill", "web"),
                                                                ("disarm", "web")]


BAD = [
    ("{not json", r"^malformed JSON \(Expecting property name", None, None),
    (b"\xff\xfe", r"not UTF-8", None, None),
    ("[1, 2]", r"^expected a JSON object, got list", None, None),
    ({"id": "b1"}, r"^command: expected one of arm, disarm, kill, ch/<n>/mode; it is missing", "b1", None),
    ({"id": "b2", "command": "explode"}, r"^unknown command 'explode'; the commands are arm, disarm, kill, ch/<n>/mode$",
     "b2", "explode"),
    ({"id": "b3", "command": "arm", "force": True}, r"^unknown key 'force' \(known: id, token, v\)", "b3", "arm"),
    ({"id": "b4", "command": "ch/40/mode", "mode": "manual"}, r"desk channel 40 is not mapped", "b4", "ch/40/mode"),
    ({"id": "b5", "command": "ch/2/mode", "mode": "loud"}, r"^mode: expected one of auto, manual, excluded; got 'loud'",
     "b5", "ch/2/mode"),
    ({"id": "b6", "command": "ch/8/mode", "mode": "auto"}, r"Talkback.*excluded in the show file", "b6", "ch/8/mode"),
    ({"id": "b7", "command": "arm", "v": 2}, r"^v: this bridge speaks payload version 1", "b7", "arm"),
    ({"id": ["x"], "command": "arm"}, r"^id: expected a string", None, None),
    ({"id": "b8", "command": "arm", "pad": "x" * 5000}, r"^payload of 50\d\d bytes is over the 4096-byte limit", None, None),
]


async def test_bad_input_is_refused_with_a_reason_and_nothing_moves(x32_sim, stems, tmp_path):
    async with running_bridge(x32_sim, stems, tmp_path) as bridge, page(bridge) as client:
        for body, reason, request_id, command in BAD:
            result = await client.ask(body)
            assert result["ok"] is False and result["id"] == request_id and result["command"] == command, (body, result)
            assert re.search(reason, result["reason"]), (body, result)
        await bridge.steps(4)
        assert not bridge.engine.state.armed and bridge.engine.state.channel(2).mode == "auto"
        assert bridge.surface.stats.commands_refused == len(BAD) and bridge.surface.stats.commands_queued == 0
        assert x32_sim.stats.writes == {}  # not one fader moved
        assert (await client.ask({"command": "arm", "id": "ok"}))["ok"] is True  # the socket is still good


async def test_a_token_guards_commands_not_the_view(x32_sim, stems, tmp_path, caplog):
    async with running_bridge(x32_sim, stems, tmp_path, token="s3cret-foh") as bridge, page(bridge) as client:
        assert client.hello["token_required"] is True
        assert (await client.next("state"))["armed"] is False  # anyone on the page may look
        missing = await client.ask({"command": "arm", "id": "n1"})
        assert missing["ok"] is False and re.match(r"unauthorised: .*missing", missing["reason"])
        wrong = await client.ask({"command": "kill", "id": "n2", "token": "guess"})
        assert wrong["ok"] is False and re.match(r"unauthorised: .*wrong", wrong["reason"])
        await bridge.steps(3)
        assert not bridge.engine.state.armed and x32_sim.stats.writes == {}
        assert (await client.ask({"command": "arm", "id": "y", "token": "s3cret-foh"}))["armed"] is True
    assert "s3cret" not in caplog.text


async def test_other_sites_and_rebound_names_are_turned_away(x32_sim, stems, tmp_path):
    async with running_bridge(x32_sim, stems, tmp_path) as bridge, aiohttp.ClientSession() as session:
        async with session.get(bridge.url) as response:
            assert response.status == 200 and response.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert '<script type="module" src="/app.js">' in await response.text()
        for path in PAGES:
            async with session.get(bridge.url.rstrip("/") + path) as response:
                assert response.status == 200
        for missing in ("web.py", "static/app.js", "index.html"):
            async with session.get(bridge.url + missing) as response:
                assert response.status == 404
        for headers in ({"Origin": "http://evil.example"}, {"Host": "evil.example:80"}, {"Origin": "null"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(bridge.ws_url, headers=headers)
            assert refused.value.status == 403
        async with session.get(bridge.url, headers={"Host": "attacker.example"}) as response:
            assert response.status == 403
        async with session.ws_connect(bridge.ws_url, headers={"Origin": bridge.url.rstrip("/")}) as ws:
            assert (await ws.receive_json(timeout=3))["type"] == "hello"  # the page's own origin is welcome
        assert bridge.surface.stats.turned_away == 4
        assert not bridge.engine.state.armed


async def test_stopping_closes_every_socket(x32_sim, stems, tmp_path):
    async with running_bridge(x32_sim, stems, tmp_path) as bridge:
        async with aiohttp.ClientSession() as session, session.ws_connect(bridge.ws_url) as ws:
            await ws.receive_json(timeout=3)

            async def last_message() -> aiohttp.WSMessage:
                while (message := await ws.receive(timeout=3)).type == aiohttp.WSMsgType.TEXT:
                    pass
                return message

            reader = asyncio.create_task(last_message())  # a browser reads all the time, and answers the close
            await bridge.surface.close()
            assert (await reader).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1001 and bridge.surface.stats.clients == 0


def test_page_weight():
    """The whole page: three small files, no build step, no framework."""
    sizes = {name: (STATIC_DIR / name).stat().st_size for name, _ in PAGES.values()}
    assert set(sizes) == {"index.html", "app.js", "style.css"}
    assert sum(sizes.values()) < 32_000, sizes


# ----- addresses and the command line ------------------------------------------------------------


def test_web_addresses():
    assert parse_web_address("8080") == WebAddress("127.0.0.1", 8080)
    assert parse_web_address("0") == WebAddress("127.0.0.1", 0)
    assert parse_web_address("0.0.0.0:8080") == WebAddress("0.0.0.0", 8080)
    assert parse_web_address("[::1]:0") == WebAddress("::1", 0)
    assert parse_web_address("localhost") == WebAddress("localhost", 8765)
    assert parse_web_address("127.0.0.1:0").loopback and not parse_web_address("0.0.0.0:1").loopback
    for bad in ("", ":8080", "h:x", "h:70000", "99999"):
        with pytest.raises(ValueError):
            parse_web_address(bad)


def test_a_port_in_use_is_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(WebError, match=rf"^web surface: cannot listen on 127\.0\.0\.1:{port}: Address already in use$"):
            listen(WebAddress("127.0.0.1", port))


async def ailive(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "ailive.bridge.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, "COLUMNS": "200"})


async def test_cli_run_refuses_a_port_in_use_before_touching_the_desk(x32_sim, stems, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bridge = await ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{x32_sim.port}",
                              "--headless", "--arm", "--arm-after", "0", "--web", f"127.0.0.1:{port}",
                              "--journal", str(tmp_path / "j"))
        _, err = await asyncio.wait_for(bridge.communicate(), 30)
    assert bridge.returncode == 1
    assert err.decode().strip() == f"ailive: error: web surface: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert x32_sim.stats.writes == {} and not (tmp_path / "j").exists()


async def test_cli_refuses_a_bad_web_address():
    bad = await ailive("run", str(EXAMPLE), "--web", "127.0.0.1:99999")
    _, err = await asyncio.wait_for(bad.communicate(), 30)
    assert bad.returncode == 2
    assert err.decode().strip() == "ailive: error: --web: web address '127.0.0.1:99999': port must be 1..65535"


async def read_url(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line, "the bridge ended without printing the web surface's URL"
        if line.startswith("web surface: "):
            return line.removeprefix("web surface: ").strip()


async def test_cli_run_serves_the_page_and_takes_a_command(x32_sim, stems, tmp_path):
    bridge = await ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{x32_sim.port}",
                          "--headless", "--web", "127.0.0.1:0", "--journal", str(tmp_path / "j"))
    try:
        url = await read_url(bridge)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                assert response.status == 200
            async with session.ws_connect(url + "ws") as ws:
                await ws.receive_json(timeout=5)
                await ws.send_json({"command": "arm", "id": "cli"})
                while (message := await ws.receive_json(timeout=5))["type"] != "result":
                    pass
                assert message["ok"] is True and message["armed"] is True
        await wait_for(lambda: x32_sim.fader_db(1) < -1.0, timeout_s=5)
    finally:
        bridge.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(bridge.communicate(), 30)
    assert bridge.returncode == 0, err.decode()
    commands = [r for r in read_records(tmp_path / "j" / "x32-demo.jsonl") if r["kind"] == "command"]
    assert [(c["command"], c["origin"]) for c in commands] == [("arm", "web")]


async def test_cli_demo_with_web_prints_the_url_and_serves(tmp_path):
    demo = await ailive("demo", "--headless", "--web", "127.0.0.1:0", "--out", str(tmp_path / "demo"))
    try:
        url = await read_url(demo)
        async with aiohttp.ClientSession() as session, session.ws_connect(url + "ws") as ws:
            assert (await ws.receive_json(timeout=5))["show"] == "x32-demo"
            while (state := await ws.receive_json(timeout=5))["type"] != "state":
                pass
            assert [c["name"] for c in state["channels"]][:2] == ["Kick", "Snare"]
    finally:
        demo.send_signal(signal.SIGINT)
        await asyncio.wait_for(demo.communicate(), 30)
