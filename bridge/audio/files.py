"""A multitrack as one mono file per channel: the demo, tests and offline evaluation."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from .base import AudioSourceError, Block, EndOfSource, StartStop

#: File types ``FileSource.from_directory`` takes.
AUDIO_SUFFIXES = (".wav", ".flac")


class FileSource(StartStop):
    """A multitrack as one mono file per channel: the demo, tests and offline evaluation.

    ``realtime=False`` hands blocks out as fast as asked, so the engine runs
    on the file's clock; ``realtime=True`` paces them like a live desk.
    """

    def __init__(self, paths: list[Path], realtime: bool = False) -> None:
        if not paths:
            raise AudioSourceError("no audio files given")
        self.paths = [Path(path) for path in paths]
        self.realtime = realtime
        soundfile = _soundfile()
        infos = [_info(soundfile, path) for path in self.paths]
        for path, info in zip(self.paths, infos):
            if info.channels != 1:
                raise AudioSourceError(f"{path}: {info.channels} channels; a multitrack is one mono file per channel")
        first_path, first = self.paths[0], infos[0]
        for path, info in zip(self.paths, infos):
            if info.samplerate != first.samplerate:
                raise AudioSourceError(
                    f"{path} is {info.samplerate} Hz but {first_path} is {first.samplerate} Hz; "
                    f"all files of a multitrack must share one sample rate"
                )
        self.sample_rate = int(first.samplerate)
        self.channel_names = [path.stem for path in self.paths]
        self.total_frames = max(int(info.frames) for info in infos)
        self._files: list[Any] | None = None
        self._read_frames = 0
        self._started_s = 0.0

    @classmethod
    def from_directory(cls, folder: Path, realtime: bool = False) -> FileSource:
        """Every ``*.wav``/``*.flac`` in ``folder``, one channel each, in filename order."""
        folder = Path(folder)
        if not folder.is_dir():
            raise AudioSourceError(f"{folder}: no such folder")
        paths = sorted(
            (path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES),
            key=lambda path: path.name,
        )
        if not paths:
            raise AudioSourceError(f"{folder}: no .wav or .flac files")
        return cls(paths, realtime=realtime)

    @property
    def duration_s(self) -> float:
        return self.total_frames / self.sample_rate

    @property
    def xruns(self) -> int:
        return 0

    @property
    def overruns(self) -> int:
        return 0

    async def start(self) -> None:
        if self._files is not None:
            return
        soundfile = _soundfile()
        files: list[Any] = []
        try:
            for path in self.paths:
                files.append(soundfile.SoundFile(path))
        except (soundfile.SoundFileError, OSError) as exc:
            for opened in files:
                opened.close()
            raise AudioSourceError(f"{path}: cannot read audio ({exc})") from exc
        self._files = files
        self._read_frames = 0
        self._started_s = asyncio.get_running_loop().time()

    async def next_block(self, frames: int, timeout_s: float) -> Block | None:
        if self._files is None:
            raise RuntimeError("FileSource.next_block() before start()")
        if frames <= 0:
            raise ValueError(f"frames must be positive, got {frames}")
        if self._read_frames >= self.total_frames:
            raise EndOfSource(f"all {self.total_frames} frames played")
        if self.realtime:
            loop = asyncio.get_running_loop()
            last_frame = min(self._read_frames + frames, self.total_frames)
            wait_s = self._started_s + last_frame / self.sample_rate - loop.time()
            if wait_s > timeout_s:
                await asyncio.sleep(max(timeout_s, 0.0))
                return None
            if wait_s > 0:
                await asyncio.sleep(wait_s)
        samples = np.zeros((len(self._files), frames), dtype=np.float32)  # (channels, frames)
        for row, file in zip(samples, self._files):
            file.read(frames, dtype="float32", out=row)
        start = self._read_frames
        self._read_frames += frames
        return Block(samples, start, self.sample_rate)

    async def stop(self) -> None:
        files, self._files = self._files, None
        for file in files or []:
            file.close()


def _soundfile() -> Any:
    """soundfile, imported when files are first read (it loads libsndfile)."""
    try:
        import soundfile
    except (ImportError, OSError) as exc:
        raise AudioSourceError(f"reading audio files needs soundfile and libsndfile ({exc})") from exc
    return soundfile


def _info(soundfile: Any, path: Path) -> Any:
    try:
        return soundfile.info(str(path))
    except (soundfile.SoundFileError, OSError) as exc:
        raise AudioSourceError(f"{path}: cannot read audio ({exc})") from exc
