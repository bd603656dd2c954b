"""The audio ring the JACK tap process writes and the bridge reads (one shared-memory file, no locks), and the request that opens it.

Layout: a header of int64 counters, a fixed space for the reason JACK gave
when it shut the tap down, then ``(channels, ring_frames)`` float32 samples,
row-major. The tap process is the only writer.

The protocol is a sequence lock over frame counts, correct on weakly ordered
CPUs (aarch64) as well as on x86-64: the writer first claims the period it
is about to overwrite (``WRITING``), copies it in, then publishes it
(``WRITTEN``), with a full memory fence between each step. The reader loads
``WRITTEN`` and fences before it copies, so every sample it copies was
stored before the count it saw; after the copy it fences and loads
``WRITING``: if the writer had by then claimed any slot the copy came from,
the copy is refused, so a torn period is never handed out. Each counter is
one aligned 8-byte store or load.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

#: Header slots (int64): frames published so far, xruns JACK reported, 1 once JACK shut the tap down,
#: and the end of the frames the writer has claimed (published, or being copied in).
WRITTEN, XRUNS, DIED, WRITING = 0, 1, 2, 3
HEADER_SLOTS = 8
REASON_BYTES = 512
SAMPLES_OFFSET = HEADER_SLOTS * 8 + REASON_BYTES
#: Frames kept free between the writer and the oldest frame the bridge reads, so a copy
#: out of the ring rarely overlaps the period JACK is writing and is refused (>= two JACK periods).
RING_GUARD_FRAMES = 8192
#: Where the ring's file is made: memory-backed on Linux.
SHM_FOLDER = Path("/dev/shm")


#: Machines whose stores and loads keep their program order as the protocol needs (total store order).
ORDERED_MACHINES = ("x86_64", "amd64", "i386", "i686")
#: C11's memory_order_seq_cst.
SEQ_CST = 5


class RingOrderError(RuntimeError):
    """No memory fence is available on a CPU that needs one."""


def _atomic_thread_fence() -> Callable[[int], None] | None:
    """C11 ``atomic_thread_fence`` from libatomic, called without releasing the GIL (``PyDLL``); None without libatomic."""
    for name in ("libatomic.so.1", ctypes.util.find_library("atomic")):
        if not name:
            continue
        try:
            function = ctypes.PyDLL(name).atomic_thread_fence
        except (OSError, AttributeError):
            continue
        function.argtypes, function.restype = [ctypes.c_int], None
        return function
    return None


_ATOMIC_THREAD_FENCE = _atomic_thread_fence()


def fence() -> None:
    """A full memory barrier between the accesses before and after it (both sides of the ring call it).

    Without libatomic nothing is done: right on x86-64, where stores keep
    their order among stores and loads among loads, which is all the
    protocol needs; ``require_fence`` refuses to open a ring anywhere else.
    """
    if _ATOMIC_THREAD_FENCE is not None:
        _ATOMIC_THREAD_FENCE(SEQ_CST)


def require_fence() -> None:
    if _ATOMIC_THREAD_FENCE is None and platform.machine().lower() not in ORDERED_MACHINES:
        raise RingOrderError(f"the JACK tap's ring needs a memory fence on {platform.machine()}: "
                             f"install libatomic (apt-get install libatomic1)")


@dataclass(frozen=True)
class TapRequest:
    channel_names: list[str]
    connect_to: list[str | None]
    client_name: str
    server_name: str | None
    ring_seconds: float
    timing_path: str | None = None  # where to save each callback's start and duration (benchmarks)

    def to_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"


@dataclass
class TapRing:
    """Views into one mapping of the ring's file; either side of the tap holds one."""

    path: Path
    channels: int
    ring_frames: int
    mapping: mmap.mmap
    header: np.ndarray  # int64[HEADER_SLOTS]
    samples: np.ndarray  # float32 (channels, ring_frames)
    rows: list[np.ndarray]  # one view per channel, made once (not in every JACK period)

    @classmethod
    def create(cls, channels: int, ring_frames: int) -> TapRing:
        """A new zeroed ring in a fresh file, every page touched (a page fault in JACK's thread costs a period)."""
        folder = SHM_FOLDER if SHM_FOLDER.is_dir() else Path(tempfile.gettempdir())
        handle, name = tempfile.mkstemp(prefix="ailive-tap-", suffix=".ring", dir=folder)
        try:
            os.ftruncate(handle, SAMPLES_OFFSET + channels * ring_frames * 4)
            ring = cls._map(Path(name), handle, channels, ring_frames)
        except BaseException:
            os.unlink(name)
            raise
        finally:
            os.close(handle)
        ring.samples.fill(0.0)
        return ring

    @classmethod
    def attach(cls, path: Path, channels: int, ring_frames: int) -> TapRing:
        handle = os.open(path, os.O_RDWR)
        try:
            return cls._map(path, handle, channels, ring_frames)
        finally:
            os.close(handle)

    @classmethod
    def _map(cls, path: Path, handle: int, channels: int, ring_frames: int) -> TapRing:
        require_fence()
        size = SAMPLES_OFFSET + channels * ring_frames * 4
        if os.fstat(handle).st_size != size:
            raise ValueError(f"{path} holds {os.fstat(handle).st_size} bytes, a {channels} x {ring_frames} ring {size}")
        mapping = mmap.mmap(handle, size)
        header = np.frombuffer(mapping, np.int64, HEADER_SLOTS)
        samples = np.frombuffer(mapping, np.float32, channels * ring_frames, SAMPLES_OFFSET).reshape(channels, ring_frames)
        return cls(path, channels, ring_frames, mapping, header, samples, list(samples))

    @property
    def written(self) -> int:
        """Frames published so far (a hint for waiting; ``available`` before reading)."""
        return int(self.header[WRITTEN])

    def write(self, buffers: Iterable[np.ndarray], frames: int) -> None:
        """The writer: claim the next ``frames``, copy one buffer per channel in, publish them."""
        header, total = self.header, self.ring_frames
        written = int(header[WRITTEN])
        header[WRITING] = written + frames
        fence()  # the claim is visible before any claimed slot changes
        start = written % total
        stop = start + frames
        if stop <= total:
            for row, buffer in zip(self.rows, buffers):
                row[start:stop] = buffer
        else:
            split = total - start
            for row, buffer in zip(self.rows, buffers):
                row[start:] = buffer[:split]
                row[: frames - split] = buffer[split:]
        fence()  # the samples are visible before the count that hands them out
        header[WRITTEN] = written + frames

    def available(self) -> int:
        """The reader: frames published so far; every one of them is visible to a copy made after this."""
        written = int(self.header[WRITTEN])
        fence()
        return written

    def read(self, start_frame: int, frames: int) -> np.ndarray | None:
        """The reader: a fresh ``(channels, frames)`` copy of published frames, or None if the writer overwrote any meanwhile."""
        samples = self.copy_span(start_frame, frames)
        return samples if self.intact_since(start_frame) else None

    def copy_span(self, start_frame: int, frames: int) -> np.ndarray:
        start = start_frame % self.ring_frames
        stop = start + frames
        if stop <= self.ring_frames:
            return self.samples[:, start:stop].copy()
        return np.concatenate((self.samples[:, start:], self.samples[:, : stop - self.ring_frames]), axis=1)

    def intact_since(self, start_frame: int) -> bool:
        """After a copy from ``start_frame`` on: no slot it came from has been claimed for a newer frame."""
        fence()  # the copy's loads are done before the claim is read
        return int(self.header[WRITING]) - self.ring_frames <= start_frame

    @property
    def xruns(self) -> int:
        return int(self.header[XRUNS])

    @property
    def died(self) -> bool:
        return bool(self.header[DIED])

    @property
    def reason(self) -> str:
        raw = self.mapping[HEADER_SLOTS * 8 : SAMPLES_OFFSET]
        return raw.split(b"\0", 1)[0].decode(errors="replace")

    def mark_died(self, reason: str) -> None:
        encoded = reason.encode(errors="replace")[: REASON_BYTES - 1]
        self.mapping[HEADER_SLOTS * 8 : HEADER_SLOTS * 8 + len(encoded) + 1] = encoded + b"\0"
        self.header[DIED] = 1

    def unlink(self) -> None:
        """Remove the file; both mappings stay valid until closed."""
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Unmap, unless a view of the samples is still held somewhere (then the mapping goes with the last one)."""
        self.header = self.samples = np.zeros(0)
        self.rows = []
        try:
            self.mapping.close()
        except BufferError:
            pass
