"""The bridge's JACK tap on PipeWire, as most current Linux desktops serve JACK clients: ``pw-jack`` and a headless server.

PipeWire runs here with no session manager and no sound card: its own
dummy driver paces the graph. A player and the tap, both through
PipeWire's libjack (``pw-jack``), exchange a counter signal; the capture
is checked sample by sample, as on jackd.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CAPTURE = textwrap.dedent("""
    import asyncio, json, numpy as np
    import jack
    from ailive.bridge.audio import JackSource
    from tests.jackserver import JackPlayer
    from tests.test_sources import counter, loop_frames

    async def main():
        probe = jack.Client("probe", no_start_server=True)
        rate = probe.samplerate
        probe.close()
        with JackPlayer(None, counter(4, rate), rate) as player:
            async with JackSource(["a", "b", "c", "d"], player.output_ports, client_name="pwtap") as source:
                blocks = [await source.next_block(rate // 20, timeout_s=10.0) for _ in range(40)]
                xruns = source.xruns
        frames = loop_frames(np.concatenate([block.samples for block in blocks], axis=1))
        heard = frames[frames >= 0]
        through_pipewire = "pipewire-0.3/jack/libjack" in open("/proc/self/maps").read()
        print(json.dumps({"pipewire": through_pipewire, "rate": rate, "heard": int(heard.size), "xruns": xruns,
                          "steps": int(np.count_nonzero(np.diff(heard) % rate != 1))}))

    asyncio.run(main())
""")


def pipewire_missing() -> str | None:
    for tool in ("pipewire", "pw-jack", "pw-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install pipewire pipewire-jack)"
    return None


@pytest.fixture
def pipewire(tmp_path):
    """A headless PipeWire server with its own runtime folder, stopped by its PID."""
    reason = pipewire_missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PipeWire test: {reason}")
        pytest.skip(reason)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JACK_", "PIPEWIRE_"))}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    server = subprocess.Popen(["pipewire"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20.0
        while True:
            nodes = subprocess.run(["pw-cli", "ls", "Node"], env=env, capture_output=True, text=True, timeout=10)
            if "Dummy-Driver" in nodes.stdout:
                break
            assert server.poll() is None, f"pipewire exited: {server.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "pipewire did not offer its dummy driver within 20 s"
            time.sleep(0.1)
        yield env
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_the_tap_captures_sample_exact_through_pw_jack(pipewire):
    result = subprocess.run(["pw-jack", sys.executable, "-c", CAPTURE], env=pipewire, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["pipewire"]  # PipeWire's libjack, not jackd's
    assert seen["heard"] > seen["rate"]  # over a second of the loop came through, after the ports were connected
    assert seen["steps"] <= 2 * seen["xruns"]  # every heard frame follows the one before, but where an xrun broke it
