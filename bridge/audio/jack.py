"""The desk's inputs through JACK: port names, the server check, and the source that reads the tap's ring.

The JACK client runs in a tap process of its own whose callback only copies
into a shared ring and advances one counter; the asyncio side polls that
counter and never signals the real-time thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


from .base import AudioSourceError, Block, StartStop
from .tap_ring import TapRequest, TapRing

log = logging.getLogger(__name__)

#: How often ``JackSource.next_block`` looks at the ring's write counter, seconds.
POLL_S = 0.003
#: How long the JACK tap process may take to start and answer (Python, numpy and libjack load first).
TAP_START_TIMEOUT_S = 20.0
#: How long it may take to leave JACK and exit once its pipe closes.
TAP_STOP_TIMEOUT_S = 5.0
#: How many candidate ports an error message lists.
LISTED_PORTS = 8
#: Longest port short name we register (JACK allows more; desks' names are short).
MAX_PORT_NAME_CHARS = 64
#: Where jackd2 keeps its sockets unless JACK_TMPDIR says otherwise.
JACK_TMPDIR = "/dev/shm"


def port_short_names(channel_names: list[str]) -> list[str]:
    """JACK port names for the channels: letters, digits, ``_.-`` only, never empty, unique.

    ``:`` separates client from port in JACK and spaces or brackets make port
    names awkward to type and to match as patterns, so they become ``_``.
    """
    names: list[str] = []
    taken: set[str] = set()
    for index, channel in enumerate(channel_names, start=1):
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", channel).strip("_")[:MAX_PORT_NAME_CHARS] or f"ch{index}"
        name, suffix = base, 2
        while name in taken:
            name = f"{base}_{suffix}"
            suffix += 1
        taken.add(name)
        names.append(name)
    return names


def match_port(wanted: str, available: list[str]) -> str:
    """The output port ``wanted`` names: an exact name, else the one port a regex finds.

    A pattern that finds several ports is refused: tapping the wrong input
    would make the bridge ride a fader on someone else's signal.
    """
    if wanted in available:
        return wanted
    try:
        pattern = re.compile(wanted)
    except re.error:
        matches: list[str] = []
    else:
        matches = [name for name in available if pattern.search(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioSourceError(f"JACK port {wanted!r} not found; available outputs: {_listing(available)}")
    raise AudioSourceError(
        f"JACK port pattern {wanted!r} matches {len(matches)} ports ({_listing(matches)}); "
        f"name one port, e.g. anchor the pattern with '$'"
    )


def _listing(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:LISTED_PORTS])
    more = len(names) - LISTED_PORTS
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def _no_server_message(server_name: str | None) -> str:
    name = server_name or os.environ.get("JACK_DEFAULT_SERVER")
    if not name:
        return (
            "no JACK server is running (start one, e.g. 'jackd -d dummy -r 48000 -p 256', "
            "or 'jackd -d alsa' for a sound card)"
        )
    return (
        f"no JACK server named {name!r} is running (start one, e.g. 'jackd -n {name} -d dummy -r 48000 -p 256', "
        f"or 'jackd -n {name} -d alsa' for a sound card)"
    )


def _jack_says(message: str) -> None:
    """libjack's own messages go to the log, so a user's error stays one line."""
    log.debug("libjack: %s", message)


def jack_server_listening(server_name: str | None) -> bool | None:
    """Whether a jackd2 server of that name accepts connections: asked of its socket, not of libjack.

    A failed ``jack_client_open`` is not harmless inside libjack: any other
    client of the dead server left in the process (a test's player) crashes
    on its next call. So a tap waiting for its server to come back asks the
    server's request socket first. None when the socket layout is not
    jackd2's (another JACK, another temporary folder): then only libjack can tell.
    """
    folder = Path(os.environ.get("JACK_TMPDIR", JACK_TMPDIR))
    if not folder.is_dir():
        return None
    name = server_name or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    path = folder / f"jack_{name}_{os.getuid()}_0"
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.1)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def open_jack_client(client_name: str, server_name: str | None) -> tuple[Any, Any]:
    """Import JACK and open a client on a running server, never starting one; errors say how to fix it."""
    try:
        import jack
    except (ImportError, OSError) as exc:
        raise AudioSourceError(f"the JACK library is not available ({exc}); install jackd2 and JACK-Client") from exc
    jack.set_error_function(_jack_says)
    jack.set_info_function(_jack_says)
    try:
        return jack, jack.Client(client_name, no_start_server=True, servername=server_name)
    except jack.JackOpenError as exc:
        if exc.status.server_failed:
            raise AudioSourceError(_no_server_message(server_name)) from exc
        raise AudioSourceError(f"cannot open JACK client {client_name!r}: {exc.status}") from exc


def jack_output_ports(server_name: str | None = None, client_name: str = "ailive-check") -> list[str]:
    """The audio output ports a running JACK server offers (the desk's capture channels among them).

    Raises :class:`AudioSourceError` when no server runs; starts none.
    """
    _, client = open_jack_client(client_name, server_name)
    try:
        return [port.name for port in client.get_ports(is_output=True, is_audio=True)]
    finally:
        client.close()


class JackSource(StartStop):
    """The desk's inputs as JACK input ports, one per channel, read from the tap process's shared ring.

    The JACK client lives in a process of its own (``tap_process``), so its
    real-time callback never waits for this process's GIL, which the control
    loop holds for milliseconds at a time. The callback copies each period
    into a shared-memory ring (``tap_ring``) and advances its counters; this
    side polls the count, copies blocks out, and checks after copying that
    none of it was overwritten meanwhile (the ring's protocol), so a torn
    block is never handed out, on x86-64 or aarch64.
    """

    realtime = True

    def __init__(
        self,
        channel_names: list[str],
        connect_to: list[str | None],
        client_name: str = "ailive",
        server_name: str | None = None,
        ring_seconds: float = 4.0,
        timing_path: Path | None = None,
    ) -> None:
        if not channel_names:
            raise AudioSourceError("no channels to tap")
        if len(connect_to) != len(channel_names):
            raise AudioSourceError(
                f"{len(channel_names)} channels but {len(connect_to)} JACK ports to connect; give one per channel"
            )
        if ring_seconds <= 0:
            raise ValueError(f"ring_seconds must be positive, got {ring_seconds}")
        self.channel_names = list(channel_names)
        self.connect_to = list(connect_to)
        self.client_name = client_name
        self.server_name = server_name
        self.ring_seconds = ring_seconds
        self.timing_path = timing_path
        self.sample_rate = 0  # known once started
        self.port_names: list[str] = []  # full JACK names of our input ports, once started
        self._tap: subprocess.Popen[bytes] | None = None
        self._ring: TapRing | None = None
        self._usable_frames = 0
        self._read_frames = 0
        self._overruns = 0
        self._xruns_when_closed = 0
        self._died_reason: str | None = None  # set when the tap closed on its own: server gone, process died

    @property
    def xruns(self) -> int:
        """Xruns JACK reported to the tap since it was last opened (kept once it is closed)."""
        return self._ring.xruns if self._ring is not None else self._xruns_when_closed

    @property
    def overruns(self) -> int:
        return self._overruns

    @property
    def server_died(self) -> bool:
        """The JACK server went away; ``stop()`` then ``start()`` reconnects once one runs again."""
        return self._gone() is not None

    @property
    def shutdown_reason(self) -> str:
        return self._gone() or ""

    @property
    def tap_pid(self) -> int | None:
        """The tap process, while the tap is open."""
        return self._tap.pid if self._tap is not None else None

    @property
    def backlog_frames(self) -> int:
        """Frames captured but not yet read: how far the caller lags the desk."""
        return (self._ring.written if self._ring is not None else 0) - self._read_frames

    def _gone(self) -> str | None:
        """Why the tap closed on its own, or None while it runs (or was never started)."""
        if self._died_reason is None and self._ring is not None:
            if self._ring.died:
                self._died_reason = self._ring.reason
            elif self._tap is not None and self._tap.poll() is not None:
                self._died_reason = f"the JACK tap process exited with code {self._tap.returncode}"
        return self._died_reason

    async def start(self) -> None:
        if self._ring is not None:
            return
        reopening = self._died_reason is not None
        if reopening and jack_server_listening(self.server_name) is False:
            raise AudioSourceError(_no_server_message(self.server_name))
        request = TapRequest(self.channel_names, self.connect_to, self.client_name, self.server_name, self.ring_seconds,
                             str(self.timing_path) if self.timing_path else None)
        tap = subprocess.Popen([sys.executable, "-m", "ailive.bridge.audio.tap_process"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
        try:
            answer = await asyncio.wait_for(asyncio.to_thread(_handshake, tap, request), TAP_START_TIMEOUT_S)
        except asyncio.TimeoutError:
            _end(tap)
            raise AudioSourceError(f"the JACK tap did not start within {TAP_START_TIMEOUT_S:g} s") from None
        except BaseException:
            _end(tap)
            raise
        if "error" in answer:
            _end(tap)
            raise AudioSourceError(answer["error"])
        try:
            ring = TapRing.attach(Path(answer["ring"]), len(self.channel_names), int(answer["ring_frames"]))
        except (OSError, ValueError) as exc:
            _end(tap)
            raise AudioSourceError(f"cannot map the JACK tap's ring: {exc}") from exc
        ring.unlink()  # both sides hold it mapped; nothing is left behind whoever exits first
        self._tap, self._ring = tap, ring
        self.sample_rate = int(answer["sample_rate"])
        self.port_names = list(answer["port_names"])
        self._usable_frames = int(answer["usable_frames"])
        self._read_frames = 0
        self._overruns = 0
        self._xruns_when_closed = 0
        self._died_reason = None
        log.info("tapping %d channels as JACK client %r at %d Hz (tap process %d)", len(self.port_names),
                 self.port_names[0].split(":")[0] if self.port_names else self.client_name, self.sample_rate, tap.pid)

    async def next_block(self, frames: int, timeout_s: float) -> Block | None:
        if self._ring is None:
            if self._died_reason is not None:  # the server died; the tap is closed until start() opens it again
                return None
            raise RuntimeError("JackSource.next_block() before start()")
        if not 0 < frames <= self._usable_frames:
            raise ValueError(f"frames must be 1..{self._usable_frames} (the ring), got {frames}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._ring.written - self._read_frames < frames:
            remaining_s = deadline - loop.time()
            if remaining_s <= 0 or self._gone() is not None:
                return None
            await asyncio.sleep(min(POLL_S, remaining_s))
        return self._take(self._ring, frames)

    def _take(self, ring: TapRing, frames: int) -> Block:
        overwritten = False
        while True:
            written = ring.available()
            if overwritten or written - self._read_frames > self._usable_frames:
                self._read_frames = written - frames
                self._overruns += 1
            start = self._read_frames
            samples = ring.read(start, frames)
            if samples is not None:
                break
            overwritten = True  # the tap overwrote part of the copy meanwhile: skip to the newest audio
        self._read_frames = start + frames
        return Block(samples, start, self.sample_rate)

    async def stop(self) -> None:
        """Close the tap: its process leaves JACK and exits; the reason it died, if it did, is kept for start()."""
        self._gone()
        if self._ring is not None:
            self._xruns_when_closed = self._ring.xruns
        ring, self._ring = self._ring, None
        tap, self._tap = self._tap, None
        if tap is not None:
            await asyncio.to_thread(_end, tap)
        if ring is not None:
            ring.close()


def _handshake(tap: subprocess.Popen[bytes], request: TapRequest) -> dict[str, Any]:
    """Send the request, read the one-line answer (blocking: run in a thread)."""
    assert tap.stdin is not None and tap.stdout is not None
    try:
        tap.stdin.write(request.to_line())
        tap.stdin.flush()
    except BrokenPipeError:
        pass  # it exited already; its exit code says why below
    line = tap.stdout.readline()
    if not line:
        return {"error": f"the JACK tap process exited with code {tap.wait()} before it answered"}
    return json.loads(line)


def _end(tap: subprocess.Popen[bytes]) -> None:
    """Close the tap's stdin (its signal to leave JACK and exit), then wait; kill it if it lingers."""
    for pipe in (tap.stdin, tap.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except BrokenPipeError:
                pass
    try:
        tap.wait(TAP_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("the JACK tap process %d did not exit within %g s; killed", tap.pid, TAP_STOP_TIMEOUT_S)
        tap.kill()
        tap.wait()
