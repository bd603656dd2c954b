"""A real jackd for tests and benchmarks: a named dummy-driver server, and a player client.

Each server gets a name of its own (``jackd -n NAME``) so parallel runs never
share one, is polled until it answers instead of slept for, and is stopped by
its PID. The player copies a multitrack into its output ports in its process
callback, so a test can wire it to a ``JackSource`` and compare samples.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

log = logging.getLogger(__name__)

#: Where jackd2 keeps its sockets, semaphores and server registry (``jackd --version`` prints it).
JACK_TMPDIR = Path("/dev/shm")
#: Every test server's name starts with this, so litter from crashed runs is recognisable.
TEST_SERVER_PREFIX = "ailive-test-"


def unique_server_name(prefix: str = TEST_SERVER_PREFIX) -> str:
    return f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def jack_env(server_name: str | None = None) -> dict[str, str]:
    """Environment for jackd and JACK tools: no device reservation, never auto-start a server."""
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    if server_name is not None:
        env["JACK_DEFAULT_SERVER"] = server_name
    return env


def _any_core() -> None:
    """A probe runs on every core, whatever core its parent was pinned to (the benchmark pins the bridge's)."""
    os.sched_setaffinity(0, range(os.cpu_count() or 1))


def probe_server(server_name: str) -> tuple[list[str] | None, str]:
    """The server's port names (None when no server of that name answers), and what jack_lsp said on stderr."""
    result = subprocess.run(
        ["jack_lsp", "-s", server_name], env=jack_env(), capture_output=True, text=True, timeout=10,
        preexec_fn=_any_core,
    )
    if result.returncode != 0:
        return None, result.stderr.strip()
    return (result.stdout.split("\n")[:-1] if result.stdout else []), ""


def list_ports(server_name: str) -> list[str] | None:
    """The server's port names, or None when no server of that name answers."""
    return probe_server(server_name)[0]


def server_is_up(server_name: str) -> bool:
    return list_ports(server_name) is not None


def jackd_pids(server_name: str) -> list[int]:
    """PIDs of jackd processes started with ``-n server_name``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name == "jackd" and server_name.encode() in argv:
            pids.append(int(entry.name))
    return pids


def jack_available() -> str | None:
    """Why JACK tests cannot run here, or None when they can."""
    for tool in ("jackd", "jack_lsp"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install jackd2)"
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"JACK-Client cannot load libjack: {exc}"
    return None


def stale_servers(prefix: str = "") -> list[str]:
    """Names in JACK's server registry whose jackd is gone (killed, crashed), starting with ``prefix``.

    The registry (``jack-shm-registry``) holds, per server, its PID followed
    by ``jack-<uid>:<name>:``.
    """
    registry = JACK_TMPDIR / "jack-shm-registry"
    if not registry.exists():
        return []
    data = registry.read_bytes()
    names = []
    for match in re.finditer(rb"jack-%d:([^\0:]+):\0" % os.getuid(), data):
        pid = int.from_bytes(data[match.start() - 4 : match.start()], "little", signed=True)
        name = match.group(1).decode(errors="replace")
        if name.startswith(prefix) and pid > 0 and not _alive(pid):
            names.append(name)
    return names


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_server_slot(name: str) -> None:
    """Free a dead server's registry slot: JACK reuses it for the same name, and a clean stop releases it."""
    JackServer(name=name, capture_channels=1, playback_channels=1).start().stop()


class _NotReady(RuntimeError):
    """jackd runs but no client reaches it."""


class JackServer:
    """``jackd -n NAME -d dummy``: a headless server paced by the wall clock."""

    def __init__(
        self,
        name: str | None = None,
        sample_rate: int = 48000,
        period_frames: int = 256,
        capture_channels: int = 16,
        playback_channels: int = 2,
        realtime: bool = True,
        ready_timeout_s: float = 10.0,
    ) -> None:
        self.name = name or unique_server_name()
        self._renamable = name is None  # a server started to free a registry slot must keep its name
        self.sample_rate = sample_rate
        self.period_frames = period_frames
        self.capture_channels = capture_channels
        self.playback_channels = playback_channels
        self.realtime = realtime
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.ready_after_s = 0.0

    @property
    def command(self) -> list[str]:
        rt = [] if self.realtime else ["-r"]
        return [
            "jackd", "-n", self.name, *rt, "-d", "dummy",
            "-r", str(self.sample_rate), "-p", str(self.period_frames),
            "-C", str(self.capture_channels), "-P", str(self.playback_channels),
        ]  # fmt: skip

    @property
    def capture_ports(self) -> list[str]:
        return [f"system:capture_{index}" for index in range(1, self.capture_channels + 1)]

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> JackServer:
        """Start jackd and wait until a client can reach it.

        A jackd that runs but never answers a client (seen once in a while on
        a loaded shared machine, with nothing in its log) is stopped and
        started once more (under a new name unless it was given one); the
        second failure is the error.
        """
        if self.process is not None:
            return self
        try:
            return self._start_once()
        except _NotReady as first:
            log.warning("%s; starting a fresh one", first)
            if self._renamable:
                self.name = unique_server_name()
            try:
                return self._start_once()
            except _NotReady as second:
                raise RuntimeError(f"{second} (and before it: {first})") from None

    def _start_once(self) -> JackServer:
        handle, log_name = tempfile.mkstemp(prefix=f"jackd-{self.name}-", suffix=".log")
        self.log_path = Path(log_name)
        with os.fdopen(handle, "wb") as log_file:
            self.process = subprocess.Popen(
                self.command, env=jack_env(), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
        started = time.monotonic()
        while (probe := probe_server(self.name))[0] is None:
            returncode = self.process.poll()
            if returncode is not None:
                text = self.log_text()
                self._forget()
                raise RuntimeError(f"jackd exited with {returncode}: {text[-2000:]}")
            if time.monotonic() - started > self.ready_timeout_s:
                text = self.log_text()
                self.stop()
                raise _NotReady(f"jackd {self.name!r} not ready within {self.ready_timeout_s} s; jack_lsp said "
                                f"{probe[1][-300:]!r}; jackd said: {text[-600:]}")
            time.sleep(0.005)
        self.ready_after_s = time.monotonic() - started
        return self

    def log_text(self) -> str:
        """What jackd printed so far, for a failing test's message."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def ports(self) -> list[str]:
        return list_ports(self.name) or []

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM by PID, SIGKILL if it lingers; idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        self._forget()

    def kill(self, reclaim: bool = True) -> None:
        """SIGKILL, as when jackd crashes: its clients see the server vanish.

        A killed jackd keeps its slot in JACK's server registry, which has
        eight, and only a server of the same name frees it; so unless told
        otherwise this starts the name once more and stops it cleanly.
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5.0)
        self._forget()
        if reclaim:
            reclaim_server_slot(self.name)

    def _forget(self) -> None:
        """Remove the sockets and semaphores carrying this server's name (a killed jackd leaves them)."""
        uid = os.getuid()
        for pattern in (f"jack_{self.name}_*", f"jack_sem.{uid}_{self.name}_*"):
            for leftover in JACK_TMPDIR.glob(pattern):
                leftover.unlink(missing_ok=True)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None
        self.process = None

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class JackPlayer:
    """A JACK client playing a multitrack on one output port per channel, looping if asked."""

    def __init__(
        self,
        server_name: str,
        signals: np.ndarray,
        sample_rate: int,
        loop: bool = True,
        client_name: str = "player",
    ) -> None:
        self.signals = np.ascontiguousarray(signals, dtype=np.float32)  # (channels, frames)
        if self.signals.ndim != 2 or self.signals.shape[1] == 0:
            raise ValueError(f"signals must be (channels, frames) with frames > 0, got {self.signals.shape}")
        self.server_name = server_name
        self.sample_rate = sample_rate
        self.loop = loop
        self.client_name = client_name
        self.played_frames = 0
        self.client: Any = None
        self._ports: list[Any] = []

    @property
    def name(self) -> str:
        """The client's name on the server (JACK renames a duplicate)."""
        return self.client.name

    @property
    def output_ports(self) -> list[str]:
        return [port.name for port in self._ports]

    def connections(self, channel: int) -> list[str]:
        """Full names of the ports channel ``channel``'s output feeds."""
        return [port.name for port in self.client.get_all_connections(self._ports[channel])]

    def start(self) -> JackPlayer:
        import jack

        client = jack.Client(self.client_name, no_start_server=True, servername=self.server_name)
        if client.samplerate != self.sample_rate:
            client.close()
            raise ValueError(f"server runs at {client.samplerate} Hz, the signals are {self.sample_rate} Hz")
        self._ports = [client.outports.register(f"out_{index}") for index in range(1, len(self.signals) + 1)]
        client.set_process_callback(self._process)
        client.activate()
        self.client = client
        return self

    def _process(self, frames: int) -> None:
        total = self.signals.shape[1]
        for row, port in zip(self.signals, self._ports):
            out = port.get_array()
            done = 0
            while done < frames:
                at = self.played_frames + done
                if self.loop:
                    at %= total
                elif at >= total:
                    out[done:] = 0.0
                    break
                count = min(frames - done, total - at)
                out[done : done + count] = row[at : at + count]
                done += count
        self.played_frames += frames

    def stop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.deactivate()
            client.close()

    def __enter__(self) -> JackPlayer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _skip_without_jack() -> None:
    """Skip when JACK is missing; free registry slots that crashed test runs left behind."""
    reason = jack_available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the JACK tests: {reason}")
        pytest.skip(reason)
    for name in stale_servers(prefix=TEST_SERVER_PREFIX):
        reclaim_server_slot(name)


@pytest.fixture(scope="module")
def jack_server() -> Iterator[JackServer]:
    """One dummy jackd per test module (48 kHz, 256-frame periods, 16 capture ports)."""
    _skip_without_jack()
    with JackServer() as server:
        yield server


@pytest.fixture
def own_jack_server() -> Iterator[JackServer]:
    """A jackd for one test, for tests that kill or restart it."""
    _skip_without_jack()
    with JackServer() as server:
        yield server
