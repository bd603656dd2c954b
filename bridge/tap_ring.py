"""The audio ring the JACK tap process writes and the bridge reads (one shared-memory file, no locks), and the request that opens it.

Layout: a header of int64 counters, a fixed space for the reason JACK gave
when it shut the tap down, then ``(channels, ring_frames)`` float32 samples,
row-major. The tap process is the only writer: it copies a period into the
samples, then advances ``written`` with one aligned 8-byte store, so a
reader that sees a count sees the samples before it (x86-64 keeps stores in
order; the reader also re-checks the count after copying, so samples
overwritten meanwhile are never handed out).
"""
from __future__ import annotations

import json
import mmap
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Header slots (int64): frames written so far, xruns JACK reported, 1 once JACK shut the tap down.
WRITTEN, XRUNS, DIED = 0, 1, 2
HEADER_SLOTS = 8
REASON_BYTES = 512
SAMPLES_OFFSET = HEADER_SLOTS * 8 + REASON_BYTES
#: Frames kept free between the writer and the oldest readable frame, so a copy
#: out of the ring never races the block JACK is writing (>= two JACK periods).
RING_GUARD_FRAMES = 8192
#: Where the ring's file is made: memory-backed on Linux.
SHM_FOLDER = Path("/dev/shm")


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
        size = SAMPLES_OFFSET + channels * ring_frames * 4
        if os.fstat(handle).st_size != size:
            raise ValueError(f"{path} holds {os.fstat(handle).st_size} bytes, a {channels} x {ring_frames} ring {size}")
        mapping = mmap.mmap(handle, size)
        header = np.frombuffer(mapping, np.int64, HEADER_SLOTS)
        samples = np.frombuffer(mapping, np.float32, channels * ring_frames, SAMPLES_OFFSET).reshape(channels, ring_frames)
        return cls(path, channels, ring_frames, mapping, header, samples)

    @property
    def written(self) -> int:
        return int(self.header[WRITTEN])

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
        try:
            self.mapping.close()
        except BufferError:
            pass
